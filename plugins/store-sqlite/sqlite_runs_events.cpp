// Runs and events of SqliteSessionStore (agents, sessions and migrations are in
// sqlite_session_store.cpp).
#include "sqlite_db.h"
#include "sqlite_session_store.h"

#include "paddock/events.h"

namespace paddock::plugins::store_sqlite {
namespace {

using plugin::Guard;

constexpr char kRunColumns[] =
    "id, session_id, status, content, exit_code, error, attempt, created_at, started_at, "
    "finished_at, generation, lease_owner, lease_expires_at, cancel_requested, model, input_tokens, "
    "output_tokens, cache_read_tokens, cost_microusd";

Run ReadRun(const Statement& st) {
  Run r;
  r.id = st.Text(0);
  r.session_id = st.Text(1);
  r.status = ParseRunStatus(st.Text(2)).value_or(RunStatus::kFailed);
  r.content = st.Text(3);
  if (!st.IsNull(4)) r.exit_code = static_cast<int>(st.Int(4));
  r.error = st.Text(5);
  r.attempt = static_cast<int>(st.Int(6));
  r.created_at = st.Int(7);
  r.started_at = st.Int(8);
  r.finished_at = st.Int(9);
  r.generation = st.Int(10);
  r.lease_owner = st.Text(11);
  r.lease_expires_at = st.Int(12);
  r.cancel_requested = st.Int(13) != 0;
  r.usage = ReadUsage(st, 14);
  return r;
}

Event ReadEvent(const Statement& st) {
  Event e;
  e.session_id = st.Text(0);
  e.seq = st.Int(1);
  e.run_id = st.Text(2);
  e.type = st.Text(3);
  e.data = st.Text(4);
  e.created_at = st.Int(5);
  return e;
}

}  // namespace

// ---- runs -------------------------------------------------------------------------------

Result<Event> SqliteSessionStore::EnqueueRun(const Run& run, const NewEvent& event,
                                             const IdempotencyKey& idem) noexcept {
  return Write([&]() -> Result<Event> {
    Statement session(cache_, db_, "SELECT 1 FROM sessions WHERE id = ?");
    session.Bind(1, run.session_id);
    PADDOCK_RETURN_IF_ERROR(session.StepRow("session '" + run.session_id + "' does not exist"));
    Statement st(cache_, db_,
                 "INSERT INTO runs (id, session_id, status, content, attempt, created_at) "
                 "VALUES (?, ?, 'queued', ?, 0, ?)");
    st.Bind(1, run.id).Bind(2, run.session_id).Bind(3, run.content).Bind(4, run.created_at);
    Status s = st.Run();
    if (s.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("run '" + run.id + "' already exists");
    }
    PADDOCK_RETURN_IF_ERROR(s);
    PADDOCK_RETURN_IF_ERROR(RecordKeyLocked(idem, run.id));
    PADDOCK_ASSIGN_OR_RETURN(Event e, AppendEventLocked(run.session_id, event));
    return e;
  });
}

Result<Run> SqliteSessionStore::GetRunLocked(std::string_view id) {
  Statement st(cache_, db_, std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?");
  st.Bind(1, id);
  PADDOCK_RETURN_IF_ERROR(st.StepRow("run '" + std::string(id) + "' does not exist"));
  return ReadRun(st);
}

Result<Run> SqliteSessionStore::GetRun(std::string_view id) noexcept {
  return Guard([&]() -> Result<Run> {
    std::lock_guard lock(mu_);
    return GetRunLocked(id);
  });
}

Result<std::vector<Run>> SqliteSessionStore::ListRuns(std::string_view session_id, int limit) noexcept {
  return Guard([&]() -> Result<std::vector<Run>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(limit));
    std::lock_guard lock(mu_);
    Statement st(
        cache_, db_,
        std::string("SELECT ") + kRunColumns + " FROM runs WHERE session_id = ? ORDER BY position LIMIT ?");
    st.Bind(1, session_id).Bind(2, static_cast<std::int64_t>(limit));
    std::vector<Run> out;
    Status s;
    while (st.Step(s)) out.push_back(ReadRun(st));
    PADDOCK_RETURN_IF_ERROR(s);
    return out;
  });
}

Result<std::optional<Run>> SqliteSessionStore::ClaimNextRun(std::string_view worker_id,
                                                            std::chrono::milliseconds lease) noexcept {
  return Write([&]() -> Result<std::optional<Run>> {
    // The oldest queued run of a session that has no running run and no older queued run.
    Statement pick(cache_, db_,
                   "SELECT r.id FROM runs r WHERE r.status = 'queued' "
                   "AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.session_id = r.session_id "
                   "  AND (x.status = 'running' OR (x.status = 'queued' AND x.position < "
                   "r.position))) "
                   "ORDER BY r.position LIMIT 1");
    Status s;
    if (!pick.Step(s)) {
      PADDOCK_RETURN_IF_ERROR(s);
      return std::optional<Run>();
    }
    std::string id = pick.Text(0);
    const TimestampMs now = NowMs();
    Statement claim(cache_, db_,
                    "UPDATE runs SET status = 'running', started_at = ?, attempt = attempt + 1, "
                    "generation = generation + 1, lease_owner = ?, lease_expires_at = ? "
                    "WHERE id = ? AND status = 'queued'");
    claim.Bind(1, now).Bind(2, worker_id).Bind(3, now + lease.count()).Bind(4, id);
    PADDOCK_RETURN_IF_ERROR(claim.Run());
    PADDOCK_ASSIGN_OR_RETURN(Run run, GetRunLocked(id));
    return std::optional<Run>(std::move(run));
  });
}

Result<Run> SqliteSessionStore::CheckLeaseLocked(const RunLease& lease) {
  PADDOCK_ASSIGN_OR_RETURN(Run run, GetRunLocked(lease.run_id));
  if (run.status != RunStatus::kRunning || run.generation != lease.generation) {
    return Status::Aborted("run '" + run.id + "' is no longer held under generation " +
                           std::to_string(lease.generation) + " (now " + std::string(ToString(run.status)) +
                           ", generation " + std::to_string(run.generation) + ")");
  }
  return run;
}

Result<Run> SqliteSessionStore::HeartbeatRun(const RunLease& lease,
                                             std::chrono::milliseconds extend) noexcept {
  return Write([&]() -> Result<Run> {
    PADDOCK_RETURN_IF_ERROR(CheckLeaseLocked(lease).status());
    Statement st(cache_, db_, "UPDATE runs SET lease_expires_at = ? WHERE id = ?");
    st.Bind(1, NowMs() + extend.count()).Bind(2, lease.run_id);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    PADDOCK_ASSIGN_OR_RETURN(Run run, GetRunLocked(lease.run_id));
    return run;
  });
}

Result<Event> SqliteSessionStore::StartRun(const RunLease& lease, const NewEvent& event) noexcept {
  return Write([&]() -> Result<Event> {
    PADDOCK_ASSIGN_OR_RETURN(Run run, CheckLeaseLocked(lease));
    Statement ses(cache_, db_,
                  "UPDATE sessions SET status = 'running', updated_at = ? WHERE id = ? AND status = 'ready'");
    ses.Bind(1, NowMs()).Bind(2, run.session_id);
    PADDOCK_RETURN_IF_ERROR(ses.Run());
    return AppendForRunLocked(run, event);
  });
}

namespace {

// Ends a run (any non-terminal status) and moves its session from running back to ready.
Status EndRunLocked(sqlite3* db, const Run& run, RunStatus status, std::optional<int> exit_code,
                    std::string_view error) {
  Statement st(db,
               "UPDATE runs SET status = ?, exit_code = ?, error = ?, finished_at = ?, "
               "lease_owner = '', lease_expires_at = 0 WHERE id = ?");
  st.Bind(1, ToString(status));
  if (exit_code) {
    st.Bind(2, static_cast<std::int64_t>(*exit_code));
  } else {
    st.BindNull(2);
  }
  st.Bind(3, error).Bind(4, NowMs()).Bind(5, run.id);
  PADDOCK_RETURN_IF_ERROR(st.Run());
  Statement ses(db,
                "UPDATE sessions SET status = 'ready', updated_at = ? WHERE id = ? AND status = 'running'");
  ses.Bind(1, NowMs()).Bind(2, run.session_id);
  return ses.Run();
}

}  // namespace

Result<Event> SqliteSessionStore::FinishRun(const RunLease& lease, RunStatus status,
                                            std::optional<int> exit_code, std::string_view error,
                                            const NewEvent& event) noexcept {
  return Write([&]() -> Result<Event> {
    if (!IsTerminal(status)) {
      return Status::InvalidArgument("FinishRun needs a terminal status, not " +
                                     std::string(ToString(status)));
    }
    PADDOCK_ASSIGN_OR_RETURN(Run run, CheckLeaseLocked(lease));
    PADDOCK_RETURN_IF_ERROR(EndRunLocked(db_, run, status, exit_code, error));
    return AppendForRunLocked(run, event);
  });
}

Result<Event> SqliteSessionStore::RecordRunUsage(const RunLease& lease, const Usage& usage,
                                                 const NewEvent& event) noexcept {
  return Write([&]() -> Result<Event> {
    PADDOCK_ASSIGN_OR_RETURN(Run run, CheckLeaseLocked(lease));
    for (const char* table : {"runs", "sessions"}) {
      Statement st(cache_, db_,
                   std::string("UPDATE ") + table +
                       " SET model = CASE WHEN ? = '' THEN model ELSE ? END, "
                       "input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, "
                       "cache_read_tokens = cache_read_tokens + ?, "
                       "cost_microusd = CASE WHEN ? IS NULL THEN cost_microusd "
                       "ELSE COALESCE(cost_microusd, 0) + ? END WHERE id = ?");
      st.Bind(1, usage.model).Bind(2, usage.model).Bind(3, usage.input_tokens).Bind(4, usage.output_tokens);
      st.Bind(5, usage.cache_read_tokens);
      if (usage.cost_usd) {
        auto micro = static_cast<std::int64_t>(*usage.cost_usd * 1e6 + 0.5);
        st.Bind(6, micro).Bind(7, micro);
      } else {
        st.BindNull(6).BindNull(7);
      }
      st.Bind(8, std::string_view(table) == "runs" ? run.id : run.session_id);
      PADDOCK_RETURN_IF_ERROR(st.Run());
    }
    {
      // The team's spend on the day the run was sent (its quotas read this row).
      Statement st(cache_, db_,
                   "INSERT INTO team_days (team_id, day, tokens, cost_microusd) "
                   "SELECT s.team_id, r.created_at - r.created_at % 86400000, ?, ? FROM runs r "
                   "JOIN sessions s ON s.id = r.session_id WHERE r.id = ? "
                   "ON CONFLICT (team_id, day) DO UPDATE SET tokens = tokens + excluded.tokens, "
                   "cost_microusd = cost_microusd + excluded.cost_microusd");
      st.Bind(1, usage.input_tokens + usage.output_tokens);
      st.Bind(2, usage.cost_usd ? static_cast<std::int64_t>(*usage.cost_usd * 1e6 + 0.5) : std::int64_t{0});
      st.Bind(3, run.id);
      PADDOCK_RETURN_IF_ERROR(st.Run());
    }
    return AppendForRunLocked(run, event);
  });
}

Status SqliteSessionStore::SetNativeSessionId(const RunLease& lease, std::string_view id) noexcept {
  return Write([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Run run, CheckLeaseLocked(lease));
    Statement st(cache_, db_, "UPDATE sessions SET native_session_id = ? WHERE id = ?");
    st.Bind(1, id).Bind(2, run.session_id);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    return Status::Ok();
  });
}

Result<Run> SqliteSessionStore::CancelRun(std::string_view id, std::string_view reason,
                                          const NewEvent& event) noexcept {
  return Write([&]() -> Result<Run> {
    PADDOCK_ASSIGN_OR_RETURN(Run run, GetRunLocked(id));
    if (IsTerminal(run.status)) {
      return Status::FailedPrecondition("run '" + run.id + "' is already " +
                                        std::string(ToString(run.status)));
    }
    if (run.status == RunStatus::kRunning) {
      Statement st(cache_, db_, "UPDATE runs SET cancel_requested = 1 WHERE id = ?");
      st.Bind(1, run.id);
      PADDOCK_RETURN_IF_ERROR(st.Run());
    } else {
      PADDOCK_RETURN_IF_ERROR(EndRunLocked(db_, run, RunStatus::kCancelled, std::nullopt, reason));
      PADDOCK_RETURN_IF_ERROR(AppendForRunLocked(run, event).status());
    }
    PADDOCK_ASSIGN_OR_RETURN(run, GetRunLocked(id));
    return run;
  });
}

Result<std::int64_t> SqliteSessionStore::CountActiveRuns(std::string_view session_id) noexcept {
  return Guard([&]() -> Result<std::int64_t> {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_,
                 "SELECT COUNT(*) FROM runs WHERE session_id = ? "
                 "AND status IN ('queued', 'running')");
    st.Bind(1, session_id);
    Status s;
    std::int64_t n = st.Step(s) ? st.Int(0) : 0;
    PADDOCK_RETURN_IF_ERROR(s);
    return n;
  });
}

Result<std::vector<Run>> SqliteSessionStore::SweepExpiredLeases(const SweepOptions& options) noexcept {
  return Write([&]() -> Result<std::vector<Run>> {
    Statement pick(cache_, db_,
                   std::string("SELECT ") + kRunColumns +
                       " FROM runs WHERE status = 'running' AND (? OR lease_expires_at < ?) "
                       "ORDER BY position");
    pick.Bind(1, static_cast<std::int64_t>(options.all)).Bind(2, NowMs());
    std::vector<Run> runs;
    Status s;
    while (pick.Step(s)) runs.push_back(ReadRun(pick));
    PADDOCK_RETURN_IF_ERROR(s);
    for (Run& r : runs) {
      const SweepDecision decision = DecideSweep(r, options);
      PADDOCK_RETURN_IF_ERROR(
          AppendEventLocked(r.session_id, {r.id, "run.interrupted",
                                           RunInterruptedData(r.attempt, options.reason, decision.next)})
              .status());
      if (decision.end == RunStatus::kQueued) {
        Statement st(cache_, db_,
                     "UPDATE runs SET status = 'queued', generation = generation + 1, lease_owner = '', "
                     "lease_expires_at = 0 WHERE id = ?");
        st.Bind(1, r.id);
        PADDOCK_RETURN_IF_ERROR(st.Run());
        Statement ses(
            cache_, db_,
            "UPDATE sessions SET status = 'ready', updated_at = ? WHERE id = ? AND status = 'running'");
        ses.Bind(1, NowMs()).Bind(2, r.session_id);
        PADDOCK_RETURN_IF_ERROR(ses.Run());
      } else {
        PADDOCK_RETURN_IF_ERROR(EndRunLocked(db_, r, decision.end, std::nullopt, decision.error));
        PADDOCK_RETURN_IF_ERROR(
            AppendEventLocked(r.session_id, {r.id, "run.finished",
                                             RunFinishedData(decision.end, std::nullopt, decision.error)})
                .status());
      }
      PADDOCK_ASSIGN_OR_RETURN(r, GetRunLocked(r.id));
    }
    return runs;
  });
}

// ---- events -----------------------------------------------------------------------------

Result<Event> SqliteSessionStore::AppendEventLocked(std::string_view session_id, const NewEvent& event) {
  if (event.generation != 0) {
    PADDOCK_ASSIGN_OR_RETURN(Run run, GetRunLocked(event.run_id));
    if (run.session_id != session_id) {
      return Status::InvalidArgument("run '" + run.id + "' is not a run of session '" +
                                     std::string(session_id) + "'");
    }
    PADDOCK_RETURN_IF_ERROR(CheckLeaseLocked({event.run_id, event.generation}).status());
  }
  // The next seq, read from the events' primary key under the write lock that every append
  // holds (BEGIN IMMEDIATE): an append writes one row of one table.
  Statement next(cache_, db_,
                 "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events WHERE session_id = ?1) + 1 "
                 "FROM sessions WHERE id = ?1");
  next.Bind(1, session_id);
  PADDOCK_RETURN_IF_ERROR(next.StepRow("session '" + std::string(session_id) + "' does not exist"));
  Event e;
  e.session_id = std::string(session_id);
  e.seq = next.Int(0);
  PADDOCK_RETURN_IF_ERROR(next.Run());
  e.run_id = event.run_id;
  e.type = event.type;
  e.data = event.data;
  e.created_at = NowMs();
  Statement ins(cache_, db_,
                "INSERT INTO events (session_id, seq, run_id, type, data, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)");
  ins.Bind(1, e.session_id).Bind(2, e.seq).Bind(3, e.run_id).Bind(4, e.type);
  ins.Bind(5, e.data).Bind(6, e.created_at);
  PADDOCK_RETURN_IF_ERROR(ins.Run());
  appended_.emplace_back(e.session_id, e.seq);
  return e;
}

Result<Event> SqliteSessionStore::AppendForRunLocked(const Run& run, const NewEvent& event) {
  NewEvent e = event;
  e.run_id = run.id;
  e.generation = 0;  // the caller checked the lease in this transaction
  return AppendEventLocked(run.session_id, e);
}

Result<Event> SqliteSessionStore::AppendEvent(std::string_view session_id, const NewEvent& event) noexcept {
  return Write([&]() -> Result<Event> {
    PADDOCK_ASSIGN_OR_RETURN(Event e, AppendEventLocked(session_id, event));
    return e;
  });
}

Result<std::vector<Event>> SqliteSessionStore::ListEvents(std::string_view session_id, std::int64_t after_seq,
                                                          int limit) noexcept {
  return Guard([&]() -> Result<std::vector<Event>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(limit));
    std::lock_guard lock(mu_);
    Statement st(cache_, db_,
                 "SELECT session_id, seq, run_id, type, data, created_at FROM events "
                 "WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?");
    st.Bind(1, session_id).Bind(2, after_seq).Bind(3, static_cast<std::int64_t>(limit));
    std::vector<Event> out;
    Status s;
    while (st.Step(s)) out.push_back(ReadEvent(st));
    PADDOCK_RETURN_IF_ERROR(s);
    return out;
  });
}

}  // namespace paddock::plugins::store_sqlite
