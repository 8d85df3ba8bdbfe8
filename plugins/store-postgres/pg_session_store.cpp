#include "pg_session_store.h"

#include <poll.h>

#include <algorithm>

#include "paddock/events.h"
#include "paddock/plugin/store_fields.h"
#include "postgres_migrations.h"

namespace paddock::plugins::store_postgres {
namespace {

using plugin::DecodeQuotas;
using plugin::DecodeSecretRefs;
using plugin::EncodeQuotas;
using plugin::EncodeSecretRefs;
using plugin::Guard;
using plugin::JoinNames;
using plugin::SplitNames;

constexpr char kAgentColumns[] =
    "id, name, harness, model, prompt, run_timeout_seconds, created_at, updated_at, idle_timeout_seconds, "
    "team_id, profile, secrets";
constexpr char kTeamColumns[] = "id, name, created_at, profiles, quotas";
constexpr char kSealedColumns[] = "team_id, name, version, key_id, sealed, created_at, updated_at";
constexpr char kSessionColumns[] =
    "id, agent_id, status, status_reason, sandbox_id, last_seq, created_at, updated_at, native_session_id, "
    "model, input_tokens, output_tokens, cache_read_tokens, cost_microusd, team_id";
constexpr char kKeyColumns[] = "id, team_id, name, role, prefix, hash, created_at, expires_at, revoked_at";
// A NOTIFY payload that tells of a revoked key, not of an event: session ids hold no '!'.
constexpr std::string_view kKeyRevokedPrefix = "key!";
constexpr char kRunColumns[] =
    "id, session_id, status, content, exit_code, error, attempt, created_at, started_at, finished_at, "
    "generation, lease_owner, lease_expires_at, cancel_requested, model, input_tokens, output_tokens, "
    "cache_read_tokens, cost_microusd";
constexpr char kEventColumns[] = "session_id, seq, run_id, type, data, created_at";

Agent ReadAgent(const PgResult& r, int i) {
  Agent a;
  a.id = r.Text(i, 0);
  a.name = r.Text(i, 1);
  a.harness = r.Text(i, 2);
  a.model = r.Text(i, 3);
  a.prompt = r.Text(i, 4);
  a.run_timeout_seconds = r.Int(i, 5);
  a.created_at = r.Int(i, 6);
  a.updated_at = r.Int(i, 7);
  if (!r.IsNull(i, 8)) a.idle_timeout_seconds = r.Int(i, 8);
  a.team_id = r.Text(i, 9);
  a.profile = r.Text(i, 10);
  a.secrets = DecodeSecretRefs(r.Text(i, 11));
  return a;
}

Team ReadTeam(const PgResult& r, int i) {
  return Team{r.Text(i, 0), r.Text(i, 1), r.Int(i, 2), SplitNames(r.Text(i, 3)), DecodeQuotas(r.Text(i, 4))};
}

SealedSecret ReadSealed(const PgResult& r, int i) {
  return SealedSecret{r.Text(i, 0), r.Text(i, 1), r.Int(i, 2), r.Text(i, 3),
                      r.Text(i, 4), r.Int(i, 5),  r.Int(i, 6)};
}

std::string NoSecret(std::string_view team_id, std::string_view name) {
  return "team '" + std::string(team_id) + "' has no secret '" + std::string(name) + "'";
}

// Usage columns (model, input_tokens, output_tokens, cache_read_tokens, cost_microusd) from `col`.
Usage ReadUsage(const PgResult& r, int i, int col) {
  Usage u;
  u.model = r.Text(i, col);
  u.input_tokens = r.Int(i, col + 1);
  u.output_tokens = r.Int(i, col + 2);
  u.cache_read_tokens = r.Int(i, col + 3);
  if (!r.IsNull(i, col + 4)) u.cost_usd = static_cast<double>(r.Int(i, col + 4)) / 1e6;
  return u;
}

Session ReadSession(const PgResult& r, int i) {
  Session s;
  s.id = r.Text(i, 0);
  s.agent_id = r.Text(i, 1);
  s.status = ParseSessionStatus(r.Text(i, 2)).value_or(SessionStatus::kFailed);
  s.status_reason = r.Text(i, 3);
  s.sandbox_id = r.Text(i, 4);
  s.last_seq = r.Int(i, 5);
  s.created_at = r.Int(i, 6);
  s.updated_at = r.Int(i, 7);
  s.native_session_id = r.Text(i, 8);
  s.usage = ReadUsage(r, i, 9);
  s.team_id = r.Text(i, 14);
  return s;
}

ApiKey ReadKey(const PgResult& r, int i) {
  ApiKey k;
  k.id = r.Text(i, 0);
  k.team_id = r.Text(i, 1);
  k.name = r.Text(i, 2);
  k.role = ParseRole(r.Text(i, 3)).value_or(Role::kViewer);
  k.prefix = r.Text(i, 4);
  k.hash = r.Text(i, 5);
  k.created_at = r.Int(i, 6);
  k.expires_at = r.Int(i, 7);
  k.revoked_at = r.Int(i, 8);
  return k;
}

Run ReadRun(const PgResult& r, int i) {
  Run run;
  run.id = r.Text(i, 0);
  run.session_id = r.Text(i, 1);
  run.status = ParseRunStatus(r.Text(i, 2)).value_or(RunStatus::kFailed);
  run.content = r.Text(i, 3);
  if (!r.IsNull(i, 4)) run.exit_code = static_cast<int>(r.Int(i, 4));
  run.error = r.Text(i, 5);
  run.attempt = static_cast<int>(r.Int(i, 6));
  run.created_at = r.Int(i, 7);
  run.started_at = r.Int(i, 8);
  run.finished_at = r.Int(i, 9);
  run.generation = r.Int(i, 10);
  run.lease_owner = r.Text(i, 11);
  run.lease_expires_at = r.Int(i, 12);
  run.cancel_requested = r.Bool(i, 13);
  run.usage = ReadUsage(r, i, 14);
  return run;
}

Event ReadEvent(const PgResult& r, int i) {
  Event e;
  e.session_id = r.Text(i, 0);
  e.seq = r.Int(i, 1);
  e.run_id = r.Text(i, 2);
  e.type = r.Text(i, 3);
  e.data = r.Text(i, 4);
  e.created_at = r.Int(i, 5);
  return e;
}

std::string Cols(const char* columns) { return std::string(" ") + columns + " "; }

}  // namespace

PostgresSessionStore::PostgresSessionStore(PoolOptions options, Logger& logger)
    : options_(options),
      logger_(logger),
      pool_(std::move(options)),
      channel_("paddock:" + options_.schema),
      notify_(pool_, channel_, options_.notify_window, logger_) {}

PostgresSessionStore::~PostgresSessionStore() { Stop(); }

Status PostgresSessionStore::Start() noexcept {
  return Guard([&]() -> Status {
    // Fail start-up when the database cannot be reached at all: a misconfigured URL should stop
    // the process, not leave it answering 503 for ever.
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_RETURN_IF_ERROR(conn->Query("SELECT 1").status());
    stopping_ = false;
    listener_ = std::thread([this] { ListenLoop(); });
    notify_.Start();
    return Status::Ok();
  });
}

void PostgresSessionStore::Stop() noexcept {
  notify_.Stop();
  stopping_ = true;
  if (listener_.joinable()) listener_.join();
  pool_.Clear();
}

Health PostgresSessionStore::GetHealth() const noexcept {
  try {
    Result<Borrowed> conn = pool_.Acquire();
    if (!conn.ok()) return {HealthState::kDown, conn.status().message()};
    Result<PgResult> probe = (*conn)->Query("SELECT 1");
    if (!probe.ok()) return {HealthState::kDown, probe.status().message()};
    if (!listening_) {
      return {HealthState::kDegraded,
              "event notifications (LISTEN) are down; event streams poll the database"};
    }
    return {};
  } catch (...) {
    return {HealthState::kDown, "database probe failed"};
  }
}

// ---- notifications ----------------------------------------------------------------------

void PostgresSessionStore::SetEventFeed(EventFeed* feed) noexcept {
  std::lock_guard lock(feed_mu_);
  feed_ = feed;
  if (feed_) feed_->OnFeedState(listening_);
}

void PostgresSessionStore::ListenLoop() {
  auto backoff = std::chrono::milliseconds(100);
  while (!stopping_) {
    Result<std::unique_ptr<PgConnection>> conn = Connect(options_);
    if (conn.ok()) {
      PGconn* raw = (*conn)->raw();
      std::string quoted = "\"" + channel_ + "\"";
      if ((*conn)->Exec("LISTEN " + quoted).ok()) {
        listening_ = true;
        backoff = std::chrono::milliseconds(100);
        {
          std::lock_guard lock(feed_mu_);
          if (feed_) feed_->OnFeedState(true);  // waiters re-read what they may have missed
        }
        logger_.Info("listening for events on channel " + channel_);
        while (!stopping_) {
          pollfd pfd{PQsocket(raw), POLLIN, 0};
          int ready = poll(&pfd, 1, 200);
          if (ready < 0 && errno != EINTR) break;
          if (ready > 0 && !PQconsumeInput(raw)) break;
          if (PQstatus(raw) != CONNECTION_OK) break;
          while (PGnotify* n = PQnotifies(raw)) {
            std::string_view payload(n->extra);
            size_t colon = payload.rfind(':');
            if (payload.substr(0, kKeyRevokedPrefix.size()) == kKeyRevokedPrefix) {
              std::lock_guard lock(feed_mu_);
              if (feed_) feed_->OnKeyRevoked(payload.substr(kKeyRevokedPrefix.size()));
            } else if (colon != std::string_view::npos) {
              std::int64_t seq = std::strtoll(n->extra + colon + 1, nullptr, 10);
              std::lock_guard lock(feed_mu_);
              if (feed_) feed_->OnAppended(payload.substr(0, colon), seq);
            }
            PQfreemem(n);
          }
        }
      }
      if (listening_.exchange(false)) {
        if (!stopping_)
          logger_.Warn("event notifications lost (" + std::string(PQerrorMessage(raw)) + "); polling");
        std::lock_guard lock(feed_mu_);
        if (feed_) feed_->OnFeedState(false);
      }
    }
    for (auto slept = std::chrono::milliseconds(0); slept < backoff && !stopping_;
         slept += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

// ---- schema -----------------------------------------------------------------------------

Result<std::vector<std::string>> PostgresSessionStore::AppliedOn(PgConnection& conn) {
  PADDOCK_ASSIGN_OR_RETURN(PgResult exists,
                           conn.Query("SELECT to_regclass('schema_migrations') IS NOT NULL"));
  if (!exists.Bool(0, 0)) return std::vector<std::string>();
  PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                           conn.Query("SELECT version FROM schema_migrations ORDER BY applied_at, version"));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.Text(i, 0));
  return out;
}

Result<std::vector<std::string>> PostgresSessionStore::Migrate() noexcept {
  return Guard([&]() -> Result<std::vector<std::string>> {
    // Its own connection: the advisory lock belongs to a session, and migrations may take a while.
    PADDOCK_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, Connect(options_));
    // Processes starting at once queue here; each then finds what the others applied. The lock
    // comes before the schema: two CREATE SCHEMA IF NOT EXISTS at once can both try to create it
    // (a unique violation in pg_namespace), the lock makes them one after the other.
    PADDOCK_RETURN_IF_ERROR(
        conn->Query("SELECT pg_advisory_lock(hashtext($1))", {"paddock.migrate." + options_.schema})
            .status());
    PADDOCK_RETURN_IF_ERROR(conn->Exec("CREATE SCHEMA IF NOT EXISTS \"" + options_.schema + "\""));
    PADDOCK_RETURN_IF_ERROR(
        conn->Exec("CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at "
                   "BIGINT NOT NULL)"));
    PADDOCK_ASSIGN_OR_RETURN(std::vector<std::string> done, AppliedOn(*conn));
    std::vector<std::string> applied;
    for (const auto& file : migrations::kFiles) {
      std::string version(file.name);
      if (std::find(done.begin(), done.end(), version) != done.end()) continue;
      PgTransaction tx(*conn);
      PADDOCK_RETURN_IF_ERROR(tx.Begin());
      Status ran = conn->Exec(std::string(file.content));
      if (!ran.ok()) return Status(ran.code(), "migration " + version + " failed: " + ran.message());
      PADDOCK_RETURN_IF_ERROR(
          conn->Query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, " NOW_MS ")",
                      {version})
              .status());
      PADDOCK_RETURN_IF_ERROR(tx.Commit());
      logger_.Info("applied migration " + version);
      applied.push_back(version);
    }
    (void)conn->Query("SELECT pg_advisory_unlock(hashtext($1))", {"paddock.migrate." + options_.schema});
    return applied;
  });
}

Result<std::vector<std::string>> PostgresSessionStore::AppliedMigrations() noexcept {
  return Guard([&]() -> Result<std::vector<std::string>> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    return AppliedOn(*conn);
  });
}

Result<std::vector<std::string>> PostgresSessionStore::PendingMigrations() noexcept {
  return Guard([&]() -> Result<std::vector<std::string>> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(std::vector<std::string> done, AppliedOn(*conn));
    std::vector<std::string> pending;
    for (const auto& file : migrations::kFiles) {
      if (std::find(done.begin(), done.end(), std::string(file.name)) == done.end())
        pending.emplace_back(file.name);
    }
    return pending;
  });
}

// ---- teams and API keys ------------------------------------------------------------------

Status PostgresSessionStore::CreateTeam(const Team& team) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    Status s =
        conn->Query(
                std::string("INSERT INTO teams (") + kTeamColumns + ") VALUES ($1, $2, $3, $4, $5)",
                {team.id, team.name, team.created_at, JoinNames(team.profiles), EncodeQuotas(team.quotas)})
            .status();
    if (s.code() == StatusCode::kAlreadyExists)
      return Status::AlreadyExists("team '" + team.id + "' already exists");
    return s;
  });
}

Status PostgresSessionStore::UpdateTeam(const Team& team) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r, conn->Query("UPDATE teams SET name = $1, profiles = $2, quotas = $3 WHERE id = $4",
                                {team.name, JoinNames(team.profiles), EncodeQuotas(team.quotas), team.id}));
    if (r.affected() == 0) return Status::NotFound("team '" + team.id + "' does not exist");
    return Status::Ok();
  });
}

Result<Team> PostgresSessionStore::GetTeam(std::string_view id) noexcept {
  return Guard([&]() -> Result<Team> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r, conn->Query(std::string("SELECT ") + kTeamColumns + " FROM teams WHERE id = $1", {id}));
    if (r.rows() == 0) return Status::NotFound("team '" + std::string(id) + "' does not exist");
    return ReadTeam(r, 0);
  });
}

Result<Page<Team>> PostgresSessionStore::ListTeams(const PageRequest& page) noexcept {
  return Guard([&]() -> Result<Page<Team>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(page.limit));
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r, conn->Query(std::string("SELECT ") + kTeamColumns +
                                    " FROM teams WHERE ($1 = '' OR id < $1) ORDER BY id DESC LIMIT $2",
                                {page.cursor, static_cast<std::int64_t>(page.limit) + 1}));
    Page<Team> out;
    for (int i = 0; i < r.rows() && i < page.limit; ++i) out.items.push_back(ReadTeam(r, i));
    if (r.rows() > page.limit) out.next_cursor = out.items.back().id;
    return out;
  });
}

Status PostgresSessionStore::CreateApiKey(const ApiKey& key) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    Status s = conn->Query(std::string("INSERT INTO api_keys (") + kKeyColumns +
                               ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                           {key.id, key.team_id, key.name, ToString(key.role), key.prefix, key.hash,
                            key.created_at, key.expires_at, key.revoked_at})
                   .status();
    if (s.code() == StatusCode::kAlreadyExists) return Status::AlreadyExists("the key already exists");
    if (s.code() == StatusCode::kFailedPrecondition)
      return Status::NotFound("team '" + key.team_id + "' does not exist");
    return s;
  });
}

Result<ApiKey> PostgresSessionStore::FindApiKey(std::string_view hash) noexcept {
  return Guard([&]() -> Result<ApiKey> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE hash = $1", {hash}));
    if (r.rows() == 0) return Status::NotFound("no such key");
    return ReadKey(r, 0);
  });
}

Result<ApiKey> PostgresSessionStore::GetApiKey(std::string_view id) noexcept {
  return Guard([&]() -> Result<ApiKey> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r, conn->Query(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = $1", {id}));
    if (r.rows() == 0) return Status::NotFound("key '" + std::string(id) + "' does not exist");
    return ReadKey(r, 0);
  });
}

Result<Page<ApiKey>> PostgresSessionStore::ListApiKeys(std::string_view team_id,
                                                       const PageRequest& page) noexcept {
  return Guard([&]() -> Result<Page<ApiKey>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(page.limit));
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r, conn->Query(std::string("SELECT ") + kKeyColumns +
                                    " FROM api_keys WHERE ($1 = '' OR team_id = $1) AND ($2 = '' OR id < $2) "
                                    "ORDER BY id DESC LIMIT $3",
                                {team_id, page.cursor, static_cast<std::int64_t>(page.limit) + 1}));
    Page<ApiKey> out;
    for (int i = 0; i < r.rows() && i < page.limit; ++i) out.items.push_back(ReadKey(r, i));
    if (r.rows() > page.limit) out.next_cursor = out.items.back().id;
    return out;
  });
}

Status PostgresSessionStore::RevokeApiKey(std::string_view id, TimestampMs at) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r, conn->Query("UPDATE api_keys SET revoked_at = CASE WHEN revoked_at = 0 THEN $2 ELSE "
                                "revoked_at END WHERE id = $1",
                                {id, at}));
    if (r.affected() == 0) return Status::NotFound("key '" + std::string(id) + "' does not exist");
    // Delivered with the commit, to every listening process (this one too).
    PADDOCK_RETURN_IF_ERROR(
        conn->Query("SELECT pg_notify($1, $2)", {channel_, std::string(kKeyRevokedPrefix) + std::string(id)})
            .status());
    PADDOCK_RETURN_IF_ERROR(tx.Commit());
    // This process at once, whether or not its listener is connected.
    std::lock_guard lock(feed_mu_);
    if (feed_) feed_->OnKeyRevoked(id);
    return Status::Ok();
  });
}

// ---- audit log ----------------------------------------------------------------------------

Result<std::int64_t> PostgresSessionStore::AppendAudit(const AuditEvent& e) noexcept {
  return Guard([&]() -> Result<std::int64_t> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query("INSERT INTO audit_events (at, team_id, key_id, source, request_id, action, resource, "
                    "status, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    {e.at, e.team_id, e.key_id, e.source, e.request_id, e.action, e.resource, e.status,
                     e.outcome, e.detail}));
    return r.Int(0, 0);
  });
}

Result<Page<AuditEvent>> PostgresSessionStore::ListAudit(const AuditFilter& filter) noexcept {
  return Guard([&]() -> Result<Page<AuditEvent>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(filter.page.limit));
    std::int64_t before = INT64_MAX;
    if (!filter.page.cursor.empty()) {
      char* end = nullptr;
      before = std::strtoll(filter.page.cursor.c_str(), &end, 10);
      if (*end != '\0' || before <= 0)
        return Status::InvalidArgument("the audit cursor is not one this store gave");
    }
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query(
            "SELECT id, at, team_id, key_id, source, request_id, action, resource, status, outcome, detail "
            "FROM audit_events WHERE id < $1 AND ($2 = '' OR team_id = $2) ORDER BY id DESC LIMIT $3",
            {before, filter.team_id, static_cast<std::int64_t>(filter.page.limit) + 1}));
    Page<AuditEvent> out;
    for (int i = 0; i < r.rows() && i < filter.page.limit; ++i) {
      AuditEvent e;
      e.id = r.Int(i, 0);
      e.at = r.Int(i, 1);
      e.team_id = r.Text(i, 2);
      e.key_id = r.Text(i, 3);
      e.source = r.Text(i, 4);
      e.request_id = r.Text(i, 5);
      e.action = r.Text(i, 6);
      e.resource = r.Text(i, 7);
      e.status = static_cast<int>(r.Int(i, 8));
      e.outcome = r.Text(i, 9);
      e.detail = r.Text(i, 10);
      out.items.push_back(std::move(e));
    }
    if (r.rows() > filter.page.limit) out.next_cursor = std::to_string(out.items.back().id);
    return out;
  });
}

Result<std::int64_t> PostgresSessionStore::PruneAudit(TimestampMs before) noexcept {
  return Guard([&]() -> Result<std::int64_t> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r, conn->Query("DELETE FROM audit_events WHERE at < $1", {before}));
    return r.affected();
  });
}

// ---- agents -----------------------------------------------------------------------------

Status PostgresSessionStore::WriteAgentEnv(PgConnection& conn, const Agent& agent) {
  PADDOCK_RETURN_IF_ERROR(conn.Query("DELETE FROM agent_env WHERE agent_id = $1", {agent.id}).status());
  for (const auto& [name, value] : agent.env) {
    PADDOCK_RETURN_IF_ERROR(conn.Query("INSERT INTO agent_env (agent_id, name, value) VALUES ($1, $2, $3)",
                                       {agent.id, name, value})
                                .status());
  }
  return Status::Ok();
}

// ---- sealed team secrets ------------------------------------------------------------------

Result<SealedSecret> PostgresSessionStore::PutSealedSecret(const SealedSecret& secret) noexcept {
  return Guard([&]() -> Result<SealedSecret> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    Result<PgResult> r = conn->Query(
        std::string("INSERT INTO team_secrets (") + kSealedColumns +
            ") VALUES ($1, $2, 1, $3, $4, $5, $5) ON CONFLICT (team_id, name) DO UPDATE SET "
            "version = team_secrets.version + 1, key_id = excluded.key_id, sealed = excluded.sealed, "
            "updated_at = excluded.updated_at RETURNING " +
            kSealedColumns,
        {secret.team_id, secret.name, secret.key_id, secret.sealed, secret.updated_at});
    if (r.status().code() == StatusCode::kFailedPrecondition)
      return Status::NotFound("team '" + secret.team_id + "' does not exist");
    PADDOCK_RETURN_IF_ERROR(r.status());
    return ReadSealed(*r, 0);
  });
}

Result<SealedSecret> PostgresSessionStore::GetSealedSecret(std::string_view team_id,
                                                           std::string_view name) noexcept {
  return Guard([&]() -> Result<SealedSecret> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                             conn->Query(std::string("SELECT ") + kSealedColumns +
                                             " FROM team_secrets WHERE team_id = $1 AND name = $2",
                                         {team_id, name}));
    if (r.rows() == 0) return Status::NotFound(NoSecret(team_id, name));
    return ReadSealed(r, 0);
  });
}

Result<std::vector<SealedSecret>> PostgresSessionStore::ListSealedSecrets(std::string_view team_id) noexcept {
  return Guard([&]() -> Result<std::vector<SealedSecret>> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r, conn->Query(std::string("SELECT ") + kSealedColumns +
                                                         " FROM team_secrets WHERE ($1 = '' OR team_id = $1) "
                                                         "ORDER BY team_id, name",
                                                     {team_id}));
    std::vector<SealedSecret> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadSealed(r, i));
    return out;
  });
}

Status PostgresSessionStore::DeleteSealedSecret(std::string_view team_id, std::string_view name) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query("DELETE FROM team_secrets WHERE team_id = $1 AND name = $2", {team_id, name}));
    if (r.affected() == 0) return Status::NotFound(NoSecret(team_id, name));
    return Status::Ok();
  });
}

Status PostgresSessionStore::ResealSecret(const SealedSecret& secret) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r, conn->Query("UPDATE team_secrets SET key_id = $1, sealed = $2 "
                                "WHERE team_id = $3 AND name = $4 AND version = $5",
                                {secret.key_id, secret.sealed, secret.team_id, secret.name, secret.version}));
    if (r.affected() == 0) {
      return Status::FailedPrecondition("secret '" + secret.name + "' of team '" + secret.team_id +
                                        "' changed or was deleted meanwhile");
    }
    return Status::Ok();
  });
}

Status PostgresSessionStore::CreateAgent(const Agent& agent) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    Status s = conn->Query(std::string("INSERT INTO agents (") + kAgentColumns +
                               ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                           {agent.id, agent.name, agent.harness, agent.model, agent.prompt,
                            agent.run_timeout_seconds, agent.created_at, agent.updated_at,
                            agent.idle_timeout_seconds, agent.team_id, agent.profile,
                            EncodeSecretRefs(agent.secrets)})
                   .status();
    if (s.code() == StatusCode::kAlreadyExists)
      return Status::AlreadyExists("agent '" + agent.id + "' already exists");
    if (s.code() == StatusCode::kFailedPrecondition)
      return Status::NotFound("team '" + agent.team_id + "' does not exist");
    PADDOCK_RETURN_IF_ERROR(s);
    PADDOCK_RETURN_IF_ERROR(WriteAgentEnv(*conn, agent));
    return tx.Commit();
  });
}

Result<Agent> PostgresSessionStore::GetAgentOn(PgConnection& conn, std::string_view id) {
  PADDOCK_ASSIGN_OR_RETURN(
      PgResult r, conn.Query(std::string("SELECT ") + kAgentColumns + " FROM agents WHERE id = $1", {id}));
  if (r.rows() == 0) return Status::NotFound("agent '" + std::string(id) + "' does not exist");
  Agent a = ReadAgent(r, 0);
  PADDOCK_ASSIGN_OR_RETURN(
      PgResult env, conn.Query("SELECT name, value FROM agent_env WHERE agent_id = $1 ORDER BY name", {id}));
  for (int i = 0; i < env.rows(); ++i) a.env[env.Text(i, 0)] = env.Text(i, 1);
  return a;
}

Result<Agent> PostgresSessionStore::GetAgent(std::string_view id) noexcept {
  return Guard([&]() -> Result<Agent> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    return GetAgentOn(*conn, id);
  });
}

Result<Page<Agent>> PostgresSessionStore::ListAgents(std::string_view team_id,
                                                     const PageRequest& page) noexcept {
  return Guard([&]() -> Result<Page<Agent>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(page.limit));
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query("SELECT id FROM agents WHERE ($1 = '' OR team_id = $1) AND ($2 = '' OR id < $2) "
                    "ORDER BY id DESC LIMIT $3",
                    {team_id, page.cursor, static_cast<std::int64_t>(page.limit) + 1}));
    Page<Agent> out;
    for (int i = 0; i < r.rows() && i < page.limit; ++i) {
      PADDOCK_ASSIGN_OR_RETURN(Agent a, GetAgentOn(*conn, r.Text(i, 0)));
      out.items.push_back(std::move(a));
    }
    if (r.rows() > page.limit) out.next_cursor = out.items.back().id;
    return out;
  });
}

Status PostgresSessionStore::UpdateAgent(const Agent& agent) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query("UPDATE agents SET name = $1, harness = $2, model = $3, prompt = $4, "
                    "run_timeout_seconds = $5, updated_at = $6, idle_timeout_seconds = $8, profile = $9, "
                    "secrets = $10 WHERE id = $7",
                    {agent.name, agent.harness, agent.model, agent.prompt, agent.run_timeout_seconds,
                     agent.updated_at, agent.id, agent.idle_timeout_seconds, agent.profile,
                     EncodeSecretRefs(agent.secrets)}));
    if (r.affected() == 0) return Status::NotFound("agent '" + agent.id + "' does not exist");
    PADDOCK_RETURN_IF_ERROR(WriteAgentEnv(*conn, agent));
    return tx.Commit();
  });
}

Status PostgresSessionStore::DeleteAgent(std::string_view id) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(PgResult count,
                             conn->Query("SELECT COUNT(*) FROM sessions WHERE agent_id = $1", {id}));
    auto in_use = [&](std::int64_t n) {
      return Status::FailedPrecondition("agent '" + std::string(id) + "' still has " + std::to_string(n) +
                                        " session(s); an agent with sessions cannot be deleted");
    };
    if (count.Int(0, 0) > 0) return in_use(count.Int(0, 0));
    Result<PgResult> r = conn->Query("DELETE FROM agents WHERE id = $1", {id});
    if (r.status().code() == StatusCode::kFailedPrecondition)
      return in_use(1);  // a session arrived meanwhile
    PADDOCK_RETURN_IF_ERROR(r.status());
    if (r->affected() == 0) return Status::NotFound("agent '" + std::string(id) + "' does not exist");
    return Status::Ok();
  });
}

// ---- sessions ---------------------------------------------------------------------------

Status PostgresSessionStore::RecordKey(PgConnection& conn, const IdempotencyKey& idem,
                                       std::string_view resource_id) {
  if (idem.key.empty()) return Status::Ok();
  Status s = conn.Query(
                     "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at) "
                     "VALUES ($1, $2, $3, $4, $5)",
                     {idem.scope, idem.key, idem.request_hash, resource_id, NowMs()})
                 .status();
  if (s.code() == StatusCode::kAlreadyExists) {
    return Status::AlreadyExists("Idempotency-Key '" + idem.key + "' is already recorded");
  }
  return s;
}

Status PostgresSessionStore::CreateSession(const Session& session, const IdempotencyKey& idem) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    // The session's team is its agent's.
    Result<PgResult> r = conn->Query(
        "INSERT INTO sessions (id, agent_id, status, status_reason, sandbox_id, last_seq, created_at, "
        "updated_at, team_id) SELECT $1, id, $3, $4, $5, 0, $6, $7, team_id FROM agents WHERE id = $2",
        {session.id, session.agent_id, ToString(session.status), session.status_reason, session.sandbox_id,
         session.created_at, session.updated_at});
    if (r.status().code() == StatusCode::kAlreadyExists)
      return Status::AlreadyExists("session '" + session.id + "' already exists");
    PADDOCK_RETURN_IF_ERROR(r.status());
    if (r->affected() == 0) return Status::NotFound("agent '" + session.agent_id + "' does not exist");
    PADDOCK_RETURN_IF_ERROR(RecordKey(*conn, idem, session.id));
    return tx.Commit();
  });
}

Result<Session> PostgresSessionStore::GetSession(std::string_view id) noexcept {
  return Guard([&]() -> Result<Session> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query(std::string("SELECT ") + kSessionColumns + " FROM sessions WHERE id = $1", {id}));
    if (r.rows() == 0) return Status::NotFound("session '" + std::string(id) + "' does not exist");
    return ReadSession(r, 0);
  });
}

Result<Page<Session>> PostgresSessionStore::ListSessions(const SessionFilter& filter) noexcept {
  return Guard([&]() -> Result<Page<Session>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(filter.page.limit));
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query(std::string("SELECT ") + kSessionColumns +
                        " FROM sessions WHERE ($1 = '' OR agent_id = $1) AND ($2 = '' OR status = $2) "
                        "AND ($3 = '' OR id < $3) AND ($5 = '' OR team_id = $5) ORDER BY id DESC LIMIT $4",
                    {filter.agent_id, filter.status ? std::string(ToString(*filter.status)) : std::string(),
                     filter.page.cursor, static_cast<std::int64_t>(filter.page.limit) + 1, filter.team_id}));
    Page<Session> out;
    for (int i = 0; i < r.rows() && i < filter.page.limit; ++i) out.items.push_back(ReadSession(r, i));
    if (r.rows() > filter.page.limit) out.next_cursor = out.items.back().id;
    return out;
  });
}

Status PostgresSessionStore::SetSessionStatus(std::string_view id, SessionStatus status,
                                              std::string_view reason) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query("UPDATE sessions SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4",
                    {ToString(status), reason, NowMs(), id}));
    if (r.affected() == 0) return Status::NotFound("session '" + std::string(id) + "' does not exist");
    return Status::Ok();
  });
}

Status PostgresSessionStore::TransitionSession(std::string_view id, SessionStatus from, SessionStatus to,
                                               std::string_view reason) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r, conn->Query("UPDATE sessions SET status = $1, status_reason = $2, updated_at = $3 "
                                "WHERE id = $4 AND status = $5",
                                {ToString(to), reason, NowMs(), id, ToString(from)}));
    if (r.affected() > 0) return Status::Ok();
    PADDOCK_ASSIGN_OR_RETURN(PgResult now, conn->Query("SELECT status FROM sessions WHERE id = $1", {id}));
    if (now.rows() == 0) return Status::NotFound("session '" + std::string(id) + "' does not exist");
    return Status::FailedPrecondition("session '" + std::string(id) + "' is " + now.Text(0, 0) + ", not " +
                                      std::string(ToString(from)));
  });
}

Status PostgresSessionStore::SetSessionSandbox(std::string_view id, std::string_view sandbox_id) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                             conn->Query("UPDATE sessions SET sandbox_id = $1, updated_at = $2 WHERE id = $3",
                                         {sandbox_id, NowMs(), id}));
    if (r.affected() == 0) return Status::NotFound("session '" + std::string(id) + "' does not exist");
    return Status::Ok();
  });
}

Result<TeamUsage> PostgresSessionStore::GetTeamUsage(std::string_view team_id, TimestampMs runs_since,
                                                     TimestampMs day) noexcept {
  return Guard([&]() -> Result<TeamUsage> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    // One statement, one snapshot: the counts agree with each other.
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query(
            "SELECT "
            "(SELECT COUNT(*) FROM sessions WHERE team_id = $1 AND status NOT IN ('closed', 'failed')), "
            "(SELECT COUNT(*) FROM sessions WHERE team_id = $1 AND status NOT IN ('closed', 'failed') "
            "AND (sandbox_id <> '' OR status = 'provisioning')), "
            "(SELECT COUNT(*) FROM runs r JOIN sessions s ON s.id = r.session_id "
            "WHERE r.created_at >= $2 AND s.team_id = $1), "
            "(SELECT COALESCE(MIN(r.created_at), 0) FROM runs r JOIN sessions s ON s.id = r.session_id "
            "WHERE r.created_at >= $2 AND s.team_id = $1), "
            "(SELECT COALESCE(MAX(tokens), 0) FROM team_days WHERE team_id = $1 AND day = $3), "
            "(SELECT COALESCE(MAX(cost_microusd), 0) FROM team_days WHERE team_id = $1 AND day = $3)",
            {team_id, runs_since, day}));
    TeamUsage u;
    u.open_sessions = r.Int(0, 0);
    u.sandboxes = r.Int(0, 1);
    u.runs = r.Int(0, 2);
    u.oldest_run_at = r.Int(0, 3);
    u.tokens = r.Int(0, 4);
    u.cost_microusd = r.Int(0, 5);
    return u;
  });
}

Result<SessionCounts> PostgresSessionStore::CountSessions() noexcept {
  return Guard([&]() -> Result<SessionCounts> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                             conn->Query("SELECT status, COUNT(*) FROM sessions GROUP BY status"));
    SessionCounts counts;
    for (int i = 0; i < r.rows(); ++i) {
      if (auto status = ParseSessionStatus(r.Text(i, 0)))
        counts.by_status[static_cast<int>(*status)] = r.Int(i, 1);
    }
    return counts;
  });
}

// ---- idempotency keys -------------------------------------------------------------------

Result<std::optional<IdempotencyRecord>> PostgresSessionStore::FindIdempotencyKey(
    std::string_view scope, std::string_view key) noexcept {
  return Guard([&]() -> Result<std::optional<IdempotencyRecord>> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                             conn->Query("SELECT request_hash, resource_id, created_at FROM idempotency_keys "
                                         "WHERE scope = $1 AND key = $2",
                                         {scope, key}));
    if (r.rows() == 0) return std::optional<IdempotencyRecord>();
    return std::optional<IdempotencyRecord>(IdempotencyRecord{r.Text(0, 0), r.Text(0, 1), r.Int(0, 2)});
  });
}

Result<std::int64_t> PostgresSessionStore::PruneIdempotencyKeys(TimestampMs before) noexcept {
  return Guard([&]() -> Result<std::int64_t> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                             conn->Query("DELETE FROM idempotency_keys WHERE created_at < $1", {before}));
    return r.affected();
  });
}

// ---- events -----------------------------------------------------------------------------

Status PostgresSessionStore::LeaseRefusal(PgConnection& conn, const RunLease& lease) {
  PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                           conn.Query("SELECT status, generation FROM runs WHERE id = $1", {lease.run_id}));
  if (r.rows() == 0) return Status::NotFound("run '" + lease.run_id + "' does not exist");
  return Status::Aborted("run '" + lease.run_id + "' is no longer held under generation " +
                         std::to_string(lease.generation) + " (now " + r.Text(0, 0) + ", generation " +
                         r.Text(0, 1) + ")");
}

Result<Event> PostgresSessionStore::AppendOn(PgConnection& conn, std::string_view session_id,
                                             const NewEvent& event, bool notify) {
  // One statement: check the fence (a share lock on the run, so a concurrent sweep waits or
  // wins), take the next seq, insert, and notify (delivered when the transaction commits).
  static const std::string kWrite =
      "WITH r AS (SELECT 1 FROM runs WHERE id = $2 AND generation = $6 AND status = 'running' "
      "           AND session_id = $1 FOR SHARE), "
      "s AS (UPDATE sessions SET last_seq = last_seq + 1 WHERE id = $1 "
      "      AND ($6 = 0 OR EXISTS (SELECT 1 FROM r)) RETURNING last_seq), "
      "e AS (INSERT INTO events (" +
      std::string(kEventColumns) + ") SELECT $1, s.last_seq, $2, $3, $4, $5 FROM s RETURNING seq) ";
  static const std::string kAppend = kWrite + "SELECT e.seq, pg_notify($7, $1 || ':' || e.seq) FROM e";
  static const std::string kAppendQuiet = kWrite + "SELECT e.seq FROM e";
  const TimestampMs now = NowMs();
  std::vector<Arg> args = {session_id, event.run_id, event.type, event.data, now, event.generation};
  if (notify) args.emplace_back(channel_);
  PADDOCK_ASSIGN_OR_RETURN(PgResult r, conn.Query(notify ? kAppend : kAppendQuiet, args));
  if (r.rows() == 0) {
    if (event.generation != 0) {
      PADDOCK_ASSIGN_OR_RETURN(PgResult run,
                               conn.Query("SELECT session_id FROM runs WHERE id = $1", {event.run_id}));
      if (run.rows() > 0 && run.Text(0, 0) != session_id) {
        return Status::InvalidArgument("run '" + event.run_id + "' is not a run of session '" +
                                       std::string(session_id) + "'");
      }
      if (run.rows() > 0) return LeaseRefusal(conn, {event.run_id, event.generation});
    }
    return Status::NotFound("session '" + std::string(session_id) + "' does not exist");
  }
  Event e;
  e.session_id = std::string(session_id);
  e.seq = r.Int(0, 0);
  e.run_id = event.run_id;
  e.type = event.type;
  e.data = event.data;
  e.created_at = now;
  return e;
}

Result<Event> PostgresSessionStore::AppendEvent(std::string_view session_id, const NewEvent& event) noexcept {
  return Guard([&]() -> Result<Event> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    // Alone, the statement commits as it returns: a quiet seq can be handed on at once.
    const bool loud = notify_.Loud(session_id);
    Result<Event> e = AppendOn(*conn, session_id, event, loud);
    if (e.ok() && !loud) notify_.Quiet(session_id, e->seq);
    return e;
  });
}

Result<std::vector<Event>> PostgresSessionStore::ListEvents(std::string_view session_id,
                                                            std::int64_t after_seq, int limit) noexcept {
  return Guard([&]() -> Result<std::vector<Event>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(limit));
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                             conn->Query(std::string("SELECT ") + kEventColumns +
                                             " FROM events WHERE session_id = $1 AND seq > $2 "
                                             "ORDER BY seq LIMIT $3",
                                         {session_id, after_seq, static_cast<std::int64_t>(limit)}));
    std::vector<Event> out;
    out.reserve(r.rows());
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadEvent(r, i));
    return out;
  });
}

// ---- runs -------------------------------------------------------------------------------

Result<Run> PostgresSessionStore::GetRunOn(PgConnection& conn, std::string_view id, bool for_update) {
  PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                           conn.Query(std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = $1" +
                                          (for_update ? " FOR UPDATE" : ""),
                                      {id}));
  if (r.rows() == 0) return Status::NotFound("run '" + std::string(id) + "' does not exist");
  return ReadRun(r, 0);
}

Result<Run> PostgresSessionStore::GetRun(std::string_view id) noexcept {
  return Guard([&]() -> Result<Run> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    return GetRunOn(*conn, id);
  });
}

Result<std::vector<Run>> PostgresSessionStore::ListRuns(std::string_view session_id, int limit) noexcept {
  return Guard([&]() -> Result<std::vector<Run>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(limit));
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                             conn->Query(std::string("SELECT ") + kRunColumns +
                                             " FROM runs WHERE session_id = $1 ORDER BY position LIMIT $2",
                                         {session_id, static_cast<std::int64_t>(limit)}));
    std::vector<Run> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadRun(r, i));
    return out;
  });
}

Result<Event> PostgresSessionStore::EnqueueRun(const Run& run, const NewEvent& event,
                                               const IdempotencyKey& idem) noexcept {
  return Guard([&]() -> Result<Event> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    Status s = conn->Query(
                       "INSERT INTO runs (id, session_id, status, content, attempt, created_at) "
                       "VALUES ($1, $2, 'queued', $3, 0, $4)",
                       {run.id, run.session_id, run.content, run.created_at})
                   .status();
    if (s.code() == StatusCode::kAlreadyExists)
      return Status::AlreadyExists("run '" + run.id + "' already exists");
    if (s.code() == StatusCode::kFailedPrecondition) {
      return Status::NotFound("session '" + run.session_id + "' does not exist");
    }
    PADDOCK_RETURN_IF_ERROR(s);
    PADDOCK_RETURN_IF_ERROR(RecordKey(*conn, idem, run.id));
    NewEvent e = event;
    e.generation = 0;
    PADDOCK_ASSIGN_OR_RETURN(Event stored, AppendOn(*conn, run.session_id, e));
    PADDOCK_RETURN_IF_ERROR(tx.Commit());
    return stored;
  });
}

Result<std::optional<Run>> PostgresSessionStore::ClaimNextRun(std::string_view worker_id,
                                                              std::chrono::milliseconds lease) noexcept {
  return Guard([&]() -> Result<std::optional<Run>> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    // The oldest queued run of a session with no running run and no older queued run; a row
    // another worker is claiming right now is skipped, and its session's later runs with it
    // (they still see it queued).
    static const std::string kClaim =
        "UPDATE runs SET status = 'running', started_at = " NOW_MS
        ", attempt = attempt + 1, generation = generation + 1, lease_owner = $1, lease_expires_at = " NOW_MS
        " + $2 WHERE position = ("
        "  SELECT r.position FROM runs r WHERE r.status = 'queued'"
        "  AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.session_id = r.session_id AND x.status = 'running')"
        "  AND NOT EXISTS (SELECT 1 FROM runs y WHERE y.session_id = r.session_id AND y.status = 'queued'"
        "                  AND y.position < r.position)"
        "  ORDER BY r.position LIMIT 1 FOR UPDATE OF r SKIP LOCKED) "
        "AND status = 'queued' RETURNING" +
        Cols(kRunColumns);
    Result<PgResult> r = conn->Query(kClaim, {worker_id, static_cast<std::int64_t>(lease.count())});
    // Another worker started this session's run between our look and our write: the unique
    // index on running runs refused ours. Nothing to claim this time.
    if (r.status().code() == StatusCode::kAlreadyExists) return std::optional<Run>();
    PADDOCK_RETURN_IF_ERROR(r.status());
    if (r->rows() == 0) return std::optional<Run>();
    return std::optional<Run>(ReadRun(*r, 0));
  });
}

Result<Run> PostgresSessionStore::HeartbeatRun(const RunLease& lease,
                                               std::chrono::milliseconds extend) noexcept {
  return Guard([&]() -> Result<Run> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r, conn->Query("UPDATE runs SET lease_expires_at = " NOW_MS
                                " + $3 WHERE id = $1 AND generation = $2 AND status = 'running' "
                                "RETURNING" +
                                    Cols(kRunColumns),
                                {lease.run_id, lease.generation, static_cast<std::int64_t>(extend.count())}));
    if (r.rows() == 0) return LeaseRefusal(*conn, lease);
    return ReadRun(r, 0);
  });
}

Result<Event> PostgresSessionStore::StartRun(const RunLease& lease, const NewEvent& event) noexcept {
  return Guard([&]() -> Result<Event> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                             conn->Query("SELECT session_id FROM runs WHERE id = $1 AND generation = $2 "
                                         "AND status = 'running' FOR SHARE",
                                         {lease.run_id, lease.generation}));
    if (r.rows() == 0) return LeaseRefusal(*conn, lease);
    const std::string session_id = r.Text(0, 0);
    PADDOCK_RETURN_IF_ERROR(conn->Query("UPDATE sessions SET status = 'running', updated_at = $2 "
                                        "WHERE id = $1 AND status = 'ready'",
                                        {session_id, NowMs()})
                                .status());
    NewEvent e = event;
    e.run_id = lease.run_id;
    e.generation = 0;  // checked above, under the lock
    PADDOCK_ASSIGN_OR_RETURN(Event stored, AppendOn(*conn, session_id, e));
    PADDOCK_RETURN_IF_ERROR(tx.Commit());
    return stored;
  });
}

Status PostgresSessionStore::EndRun(PgConnection& conn, const Run& run, RunStatus status,
                                    std::optional<int> exit_code, std::string_view error) {
  PADDOCK_RETURN_IF_ERROR(
      conn.Query("UPDATE runs SET status = $2, exit_code = $3, error = $4, finished_at = $5, "
                 "lease_owner = '', lease_expires_at = 0 WHERE id = $1",
                 {run.id, ToString(status),
                  exit_code ? Arg(static_cast<std::int64_t>(*exit_code)) : Arg(std::nullopt), error, NowMs()})
          .status());
  return conn
      .Query("UPDATE sessions SET status = 'ready', updated_at = $2 WHERE id = $1 AND status = 'running'",
             {run.session_id, NowMs()})
      .status();
}

Result<Event> PostgresSessionStore::FinishRun(const RunLease& lease, RunStatus status,
                                              std::optional<int> exit_code, std::string_view error,
                                              const NewEvent& event) noexcept {
  return Guard([&]() -> Result<Event> {
    if (!IsTerminal(status)) {
      return Status::InvalidArgument("FinishRun needs a terminal status, not " +
                                     std::string(ToString(status)));
    }
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    PADDOCK_ASSIGN_OR_RETURN(PgResult r, conn->Query(std::string("SELECT ") + kRunColumns +
                                                         " FROM runs WHERE id = $1 AND generation = $2 "
                                                         "AND status = 'running' FOR UPDATE",
                                                     {lease.run_id, lease.generation}));
    if (r.rows() == 0) return LeaseRefusal(*conn, lease);
    Run run = ReadRun(r, 0);
    PADDOCK_RETURN_IF_ERROR(EndRun(*conn, run, status, exit_code, error));
    NewEvent e = event;
    e.run_id = run.id;
    e.generation = 0;
    PADDOCK_ASSIGN_OR_RETURN(Event stored, AppendOn(*conn, run.session_id, e));
    PADDOCK_RETURN_IF_ERROR(tx.Commit());
    return stored;
  });
}

Result<std::string> PostgresSessionStore::LockLeasedRun(PgConnection& conn, const RunLease& lease) {
  PADDOCK_ASSIGN_OR_RETURN(PgResult r,
                           conn.Query("SELECT session_id FROM runs WHERE id = $1 AND generation = $2 "
                                      "AND status = 'running' FOR UPDATE",
                                      {lease.run_id, lease.generation}));
  if (r.rows() == 0) return LeaseRefusal(conn, lease);
  return r.Text(0, 0);
}

Result<Event> PostgresSessionStore::RecordRunUsage(const RunLease& lease, const Usage& usage,
                                                   const NewEvent& event) noexcept {
  return Guard([&]() -> Result<Event> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    PADDOCK_ASSIGN_OR_RETURN(std::string session_id, LockLeasedRun(*conn, lease));
    std::optional<std::int64_t> micro;
    if (usage.cost_usd) micro = static_cast<std::int64_t>(*usage.cost_usd * 1e6 + 0.5);
    for (const char* table : {"runs", "sessions"}) {
      PADDOCK_RETURN_IF_ERROR(
          conn->Query(std::string("UPDATE ") + table +
                          " SET model = CASE WHEN $1 = '' THEN model ELSE $1 END, "
                          "input_tokens = input_tokens + $2, output_tokens = output_tokens + $3, "
                          "cache_read_tokens = cache_read_tokens + $4, "
                          "cost_microusd = CASE WHEN $5::BIGINT IS NULL THEN cost_microusd "
                          "ELSE COALESCE(cost_microusd, 0) + $5::BIGINT END WHERE id = $6",
                      {usage.model, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, micro,
                       std::string_view(table) == "runs" ? lease.run_id : session_id})
              .status());
    }
    // The team's spend on the day the run was sent (its quotas read this row).
    PADDOCK_RETURN_IF_ERROR(
        conn->Query("INSERT INTO team_days (team_id, day, tokens, cost_microusd) "
                    "SELECT s.team_id, r.created_at - r.created_at % 86400000, $1::BIGINT, $2::BIGINT FROM "
                    "runs r "
                    "JOIN sessions s ON s.id = r.session_id WHERE r.id = $3 "
                    "ON CONFLICT (team_id, day) DO UPDATE SET tokens = team_days.tokens + EXCLUDED.tokens, "
                    "cost_microusd = team_days.cost_microusd + EXCLUDED.cost_microusd",
                    {usage.input_tokens + usage.output_tokens, micro.value_or(0), lease.run_id})
            .status());
    NewEvent e = event;
    e.run_id = lease.run_id;
    e.generation = 0;
    PADDOCK_ASSIGN_OR_RETURN(Event stored, AppendOn(*conn, session_id, e));
    PADDOCK_RETURN_IF_ERROR(tx.Commit());
    return stored;
  });
}

Status PostgresSessionStore::SetNativeSessionId(const RunLease& lease, std::string_view id) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    PADDOCK_ASSIGN_OR_RETURN(std::string session_id, LockLeasedRun(*conn, lease));
    PADDOCK_RETURN_IF_ERROR(
        conn->Query("UPDATE sessions SET native_session_id = $1 WHERE id = $2", {std::string(id), session_id})
            .status());
    return tx.Commit();
  });
}

Result<Run> PostgresSessionStore::CancelRun(std::string_view id, std::string_view reason,
                                            const NewEvent& event) noexcept {
  return Guard([&]() -> Result<Run> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    PADDOCK_ASSIGN_OR_RETURN(Run run, GetRunOn(*conn, id, /*for_update=*/true));
    if (IsTerminal(run.status)) {
      return Status::FailedPrecondition("run '" + run.id + "' is already " +
                                        std::string(ToString(run.status)));
    }
    if (run.status == RunStatus::kRunning) {
      PADDOCK_RETURN_IF_ERROR(
          conn->Query("UPDATE runs SET cancel_requested = true WHERE id = $1", {id}).status());
    } else {
      PADDOCK_RETURN_IF_ERROR(EndRun(*conn, run, RunStatus::kCancelled, std::nullopt, reason));
      NewEvent e = event;
      e.run_id = run.id;
      e.generation = 0;
      PADDOCK_RETURN_IF_ERROR(AppendOn(*conn, run.session_id, e).status());
    }
    PADDOCK_ASSIGN_OR_RETURN(run, GetRunOn(*conn, id));
    PADDOCK_RETURN_IF_ERROR(tx.Commit());
    return run;
  });
}

Result<std::int64_t> PostgresSessionStore::CountActiveRuns(std::string_view session_id) noexcept {
  return Guard([&]() -> Result<std::int64_t> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult r,
        conn->Query("SELECT COUNT(*) FROM runs WHERE session_id = $1 AND status IN ('queued', 'running')",
                    {session_id}));
    return r.Int(0, 0);
  });
}

Result<std::vector<Run>> PostgresSessionStore::SweepExpiredLeases(const SweepOptions& options) noexcept {
  return Guard([&]() -> Result<std::vector<Run>> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    std::vector<Run> out;
    // One run per transaction; a run another sweeper (or its worker, finishing) holds is skipped.
    for (int handled = 0; handled < 100; ++handled) {
      PgTransaction tx(*conn);
      PADDOCK_RETURN_IF_ERROR(tx.Begin());
      PADDOCK_ASSIGN_OR_RETURN(
          PgResult r,
          conn->Query(std::string("SELECT ") + kRunColumns +
                          " FROM runs WHERE status = 'running' AND ($1 OR "
                          "lease_expires_at < " NOW_MS ") ORDER BY position LIMIT 1 FOR UPDATE SKIP LOCKED",
                      {options.all}));
      if (r.rows() == 0) break;
      Run run = ReadRun(r, 0);
      const SweepDecision decision = DecideSweep(run, options);
      PADDOCK_RETURN_IF_ERROR(AppendOn(*conn, run.session_id,
                                       {run.id, "run.interrupted",
                                        RunInterruptedData(run.attempt, options.reason, decision.next)})
                                  .status());
      if (decision.end == RunStatus::kQueued) {
        PADDOCK_RETURN_IF_ERROR(conn->Query("UPDATE runs SET status = 'queued', generation = generation + 1, "
                                            "lease_owner = '', lease_expires_at = 0 WHERE id = $1",
                                            {run.id})
                                    .status());
        PADDOCK_RETURN_IF_ERROR(conn->Query("UPDATE sessions SET status = 'ready', updated_at = $2 "
                                            "WHERE id = $1 AND status = 'running'",
                                            {run.session_id, NowMs()})
                                    .status());
      } else {
        PADDOCK_RETURN_IF_ERROR(EndRun(*conn, run, decision.end, std::nullopt, decision.error));
        PADDOCK_RETURN_IF_ERROR(
            AppendOn(*conn, run.session_id,
                     {run.id, "run.finished", RunFinishedData(decision.end, std::nullopt, decision.error)})
                .status());
      }
      PADDOCK_ASSIGN_OR_RETURN(run, GetRunOn(*conn, run.id));
      PADDOCK_RETURN_IF_ERROR(tx.Commit());
      out.push_back(std::move(run));
    }
    return out;
  });
}

}  // namespace paddock::plugins::store_postgres
