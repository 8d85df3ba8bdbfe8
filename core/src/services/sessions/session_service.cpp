#include "services/sessions/session_service.h"

#include <functional>
#include <map>

#include "metrics/metrics.h"
#include "paddock/events.h"
#include "paddock/json.h"
#include "services/events/event_service.h"
#include "services/runs/transcript.h"
#include "services/runs/worker.h"
#include "services/sandboxes/sandbox_manager.h"
#include "util/digest.h"
#include "util/ids.h"

namespace paddock {

SessionService::SessionService(SessionStore& store, EventService& events, SandboxManager* sandboxes,
                               Metrics& metrics, RunExecutor* executor, WorkerPool* workers,
                               QuotaService* quotas)
    : store_(store),
      events_(events),
      sandboxes_(sandboxes),
      metrics_(metrics),
      executor_(executor),
      workers_(workers),
      quotas_(quotas) {}

namespace {

// Idempotency-Key: 1-255 printable ASCII characters (the IETF draft leaves the format to the
// server; this keeps keys loggable and index-friendly).
Status CheckIdempotencyKey(const std::string& key) {
  bool ok = !key.empty() && key.size() <= 255;
  for (char c : key) ok = ok && c >= 0x21 && c <= 0x7e;
  if (!ok) {
    return Status::InvalidArgument("Idempotency-Key must be 1-255 printable ASCII characters without spaces");
  }
  return Status::Ok();
}

// Looks `key` up in `scope`: the resource id an earlier request with the same hash created,
// nullopt when the key is new, kFailedPrecondition when it came with another request.
Result<std::optional<std::string>> Replay(SessionStore& store, const IdempotencyKey& idem) {
  PADDOCK_ASSIGN_OR_RETURN(std::optional<IdempotencyRecord> rec,
                           store.FindIdempotencyKey(idem.scope, idem.key));
  if (!rec) return std::optional<std::string>();
  if (rec->request_hash != idem.request_hash) {
    return Status::FailedPrecondition("Idempotency-Key '" + idem.key +
                                      "' was already used with a different request; send a new key for a new "
                                      "request");
  }
  return std::optional<std::string>(rec->resource_id);
}

// Runs `create` for a request with an Idempotency-Key (or without: key empty), replaying the
// earlier result when the key was seen. A concurrent twin that recorded the key first wins and
// this request replays its result.
template <class T>
Result<Idempotent<T>> WithIdempotency(SessionStore& store, const IdempotencyKey& idem,
                                      const std::function<Result<T>(const IdempotencyKey&)>& create,
                                      const std::function<Result<T>(const std::string&)>& fetch) {
  if (idem.key.empty()) {
    PADDOCK_ASSIGN_OR_RETURN(T made, create(idem));
    return Idempotent<T>{std::move(made), false};
  }
  PADDOCK_RETURN_IF_ERROR(CheckIdempotencyKey(idem.key));
  for (int attempt = 0; attempt < 2; ++attempt) {
    PADDOCK_ASSIGN_OR_RETURN(std::optional<std::string> earlier, Replay(store, idem));
    if (earlier) {
      PADDOCK_ASSIGN_OR_RETURN(T found, fetch(*earlier));
      return Idempotent<T>{std::move(found), true};
    }
    Result<T> made = create(idem);
    if (made.ok()) return Idempotent<T>{std::move(made).value(), false};
    if (made.status().code() != StatusCode::kAlreadyExists) return made.status();
    // The key was recorded between the lookup and the write: replay that request's result.
  }
  return Status::Unavailable("Idempotency-Key '" + idem.key + "' is contended; retry the request");
}

}  // namespace

Result<Run> SessionService::Cancel(const std::string& run_id, const std::string& reason) {
  const NewEvent event =
      events_.Prepare(run_id, event::RunFinished(RunStatus::kCancelled, std::nullopt, reason));
  PADDOCK_ASSIGN_OR_RETURN(Run run, store_.CancelRun(run_id, reason, event));
  if (run.status == RunStatus::kCancelled) {
    metrics_.RunFinished(ToString(RunStatus::kCancelled));
  } else if (executor_) {
    executor_->Cancel(run_id);  // running here: stop it now rather than at the next heartbeat
  }
  return run;
}

Result<SandboxManager*> SessionService::Sandboxes() {
  if (!sandboxes_) {
    return Status::FailedPrecondition(
        "this server runs no sandboxes (it was started with --no-worker); sandboxes live in the worker "
        "processes, which create one for a session when it next runs a message");
  }
  return sandboxes_;
}

Result<Idempotent<Session>> SessionService::Create(const Principal& who, const std::string& agent_id,
                                                   const std::string& key, QuotaRefusal* refused) {
  PADDOCK_ASSIGN_OR_RETURN(Agent agent, store_.GetAgent(agent_id));
  if (!who.Sees(agent.team_id)) return Status::NotFound("agent '" + agent_id + "' does not exist");
  // The default team keeps the scope its keys had before teams.
  const std::string scope = who.team_id == kDefaultTeam ? "sessions" : "sessions:" + who.team_id;
  IdempotencyKey idem{scope, key, key.empty() ? "" : Sha256Hex("agent_id\n" + agent_id)};
  return WithIdempotency<Session>(
      store_, idem,
      [&](const IdempotencyKey& k) -> Result<Session> {
        // Held until the session is written: nothing else of this team's is admitted between.
        std::optional<QuotaService::Admission> admitted;
        if (quotas_) {
          PADDOCK_ASSIGN_OR_RETURN(admitted,
                                   quotas_->AdmitSession(agent.team_id, sandboxes_ != nullptr, refused));
        }
        Session s;
        s.id = NewId("ses");
        s.agent_id = agent_id;
        s.status = sandboxes_ ? SessionStatus::kProvisioning : SessionStatus::kSuspended;
        s.created_at = s.updated_at = NowMs();
        PADDOCK_RETURN_IF_ERROR(store_.CreateSession(s, k));
        // A session's log starts with its creation; one the store cannot say that of is taken
        // back (with its idempotency key), so a retry starts afresh.
        Result<Event> created = events_.Append(s.id, "", event::SessionCreated(agent_id));
        if (!created.ok()) {
          (void)store_.PurgeSession(s.id);
          return created.status();
        }
        if (sandboxes_) sandboxes_->ProvisionInBackground(s.id);
        return store_.GetSession(s.id);
      },
      [&](const std::string& id) { return store_.GetSession(id); });
}

Result<Session> SessionService::Get(const std::string& id) { return store_.GetSession(id); }

Result<Page<Session>> SessionService::List(const SessionFilter& filter) {
  return store_.ListSessions(filter);
}

Status SessionService::CancelActiveRuns(const std::string& session_id, const std::string& reason) {
  PADDOCK_ASSIGN_OR_RETURN(std::vector<Run> runs, store_.ListRuns(session_id, 1000));
  for (const Run& r : runs) {
    if (IsTerminal(r.status)) continue;
    Result<Run> cancelled = Cancel(r.id, reason);
    if (!cancelled.ok() && cancelled.status().code() != StatusCode::kFailedPrecondition) {
      return cancelled.status();  // kFailedPrecondition: it finished meanwhile
    }
  }
  return Status::Ok();
}

namespace {
// The reason a session has between the two steps of Close: closed (nothing new is accepted), its
// runs, sandbox and snapshots not yet all gone. A Close that failed half-way leaves it so, and
// the next Close finishes the work.
constexpr std::string_view kClosing = "closing";
}  // namespace

Result<Session> SessionService::Close(const std::string& id) {
  PADDOCK_ASSIGN_OR_RETURN(Session s, store_.GetSession(id));
  if (s.status == SessionStatus::kClosed && s.status_reason != kClosing) return s;
  if (s.status != SessionStatus::kClosed) {
    PADDOCK_RETURN_IF_ERROR(store_.SetSessionStatus(id, SessionStatus::kClosed, kClosing));
  }
  PADDOCK_RETURN_IF_ERROR(CancelActiveRuns(id, "session closed"));
  // Without sandboxes here, the worker that holds the session's sandbox destroys it when it
  // next reconciles (closed sessions keep none).
  if (sandboxes_) PADDOCK_RETURN_IF_ERROR(sandboxes_->Release(id, /*delete_data=*/true));
  PADDOCK_RETURN_IF_ERROR(store_.DeleteSnapshots(id));
  PADDOCK_RETURN_IF_ERROR(store_.SetSessionStatus(id, SessionStatus::kClosed, "closed by request"));
  (void)events_.Append(id, "", event::SessionClosed());
  return store_.GetSession(id);
}

Status SessionService::Purge(const std::string& id) {
  Result<Session> session = store_.GetSession(id);
  if (!session.ok())
    return session.status().code() == StatusCode::kNotFound ? Status::Ok() : session.status();
  PADDOCK_RETURN_IF_ERROR(Close(id).status());
  PADDOCK_RETURN_IF_ERROR(store_.PurgeSession(id));
  return Status::Ok();
}

Result<std::vector<SnapshotInfo>> SessionService::Snapshots(const std::string& session_id) {
  PADDOCK_RETURN_IF_ERROR(store_.GetSession(session_id).status());
  return store_.ListSnapshots(session_id);
}

Result<Session> SessionService::Usable(const std::string& session_id) {
  PADDOCK_ASSIGN_OR_RETURN(Session s, store_.GetSession(session_id));
  if (s.status == SessionStatus::kClosed || s.status == SessionStatus::kFailed) {
    return Status::FailedPrecondition("session '" + session_id + "' is " + std::string(ToString(s.status)) +
                                      (s.status_reason.empty() ? "" : " (" + s.status_reason + ")") +
                                      "; create a new session");
  }
  return s;
}

Result<Idempotent<Run>> SessionService::Send(const std::string& session_id, const std::string& content,
                                             OnBusy on_busy, const std::string& key, QuotaRefusal* refused) {
  static constexpr const char* kOnBusy[] = {"queue", "reject", "interrupt"};
  IdempotencyKey idem{"messages:" + session_id, key,
                      key.empty() ? ""
                                  : Sha256Hex(std::string("on_busy\n") + kOnBusy[static_cast<int>(on_busy)] +
                                              "\ncontent\n" + content)};
  auto create = [&](const IdempotencyKey& k) -> Result<Run> {
    PADDOCK_ASSIGN_OR_RETURN(Session session, Usable(session_id));
    std::optional<QuotaService::Admission> admitted;  // until the run is written
    if (quotas_) {
      PADDOCK_ASSIGN_OR_RETURN(admitted, quotas_->AdmitRun(session, refused));
    }
    if (on_busy != OnBusy::kQueue) {
      PADDOCK_ASSIGN_OR_RETURN(std::int64_t active, store_.CountActiveRuns(session_id));
      if (active > 0 && on_busy == OnBusy::kReject) {
        return Status::FailedPrecondition("session '" + session_id + "' has " + std::to_string(active) +
                                          " run(s) queued or running; send with on_busy=queue to wait "
                                          "or on_busy=interrupt to cancel them");
      }
      if (active > 0) PADDOCK_RETURN_IF_ERROR(CancelActiveRuns(session_id, "interrupted by a new message"));
    }
    Run run;
    run.id = NewId("run");
    run.session_id = session_id;
    run.content = content;
    run.created_at = NowMs();
    const NewEvent message = events_.Prepare(run.id, event::MessageUser(content));
    PADDOCK_ASSIGN_OR_RETURN(Event stored, store_.EnqueueRun(run, message, k));
    events_.Published(stored);
    if (workers_) workers_->Wake();
    return store_.GetRun(run.id);
  };
  if (!key.empty()) PADDOCK_RETURN_IF_ERROR(store_.GetSession(session_id).status());
  return WithIdempotency<Run>(store_, idem, create, [&](const std::string& id) { return store_.GetRun(id); });
}

Result<std::vector<Run>> SessionService::Runs(const std::string& session_id, int limit) {
  PADDOCK_RETURN_IF_ERROR(store_.GetSession(session_id).status());
  return store_.ListRuns(session_id, limit);
}

Result<Run> SessionService::CancelRun(const std::string& session_id, const std::string& run_id) {
  PADDOCK_ASSIGN_OR_RETURN(Run run, store_.GetRun(run_id));
  if (run.session_id != session_id) {
    return Status::NotFound("run '" + run_id + "' does not exist in session '" + session_id + "'");
  }
  if (IsTerminal(run.status)) {
    return Status::FailedPrecondition("run '" + run_id + "' is already " + std::string(ToString(run.status)));
  }
  return Cancel(run_id, "cancelled by request");
}

Result<SandboxInfo> SessionService::Sandbox(const std::string& session_id) {
  PADDOCK_ASSIGN_OR_RETURN(Session s, store_.GetSession(session_id));
  if (s.sandbox_id.empty()) {
    return Status::NotFound("session '" + session_id + "' has no sandbox (status " +
                            std::string(ToString(s.status)) + ")");
  }
  PADDOCK_ASSIGN_OR_RETURN(SandboxManager * sandboxes, Sandboxes());
  return sandboxes->Inspect(s.sandbox_id);
}

namespace {

// Keeps the first `max` bytes of each stream.
class BoundedCapture final : public ExecObserver {
 public:
  explicit BoundedCapture(size_t max) : max_(max) {}
  void OnOutput(ExecStream stream, std::string_view chunk) noexcept override {
    std::string& buf = stream == ExecStream::kStdout ? out : err;
    size_t room = max_ > buf.size() ? max_ - buf.size() : 0;
    if (chunk.size() > room) truncated = true;
    buf.append(chunk.substr(0, room));
  }
  std::string out, err;
  bool truncated = false;

 private:
  size_t max_;
};

}  // namespace

Result<SessionService::ExecOutput> SessionService::Exec(const std::string& session_id,
                                                        const ExecRequest& request, size_t max_output) {
  PADDOCK_RETURN_IF_ERROR(Usable(session_id).status());
  PADDOCK_ASSIGN_OR_RETURN(SandboxManager * sandboxes, Sandboxes());
  BoundedCapture capture(max_output);
  PADDOCK_ASSIGN_OR_RETURN(ExecResult result, sandboxes->Exec(session_id, request, capture));
  (void)events_.Append(session_id, "", event::SandboxExec(request.argv, result.exit_code, result.timed_out));
  return ExecOutput{result, std::move(capture.out), std::move(capture.err), capture.truncated};
}

Result<Session> SessionService::Restart(const std::string& session_id) {
  PADDOCK_RETURN_IF_ERROR(Usable(session_id).status());
  PADDOCK_ASSIGN_OR_RETURN(std::int64_t active, store_.CountActiveRuns(session_id));
  if (active > 0) {
    return Status::FailedPrecondition("session '" + session_id + "' has " + std::to_string(active) +
                                      " run(s) queued or running; cancel them before restarting its sandbox");
  }
  PADDOCK_ASSIGN_OR_RETURN(SandboxManager * sandboxes, Sandboxes());
  PADDOCK_RETURN_IF_ERROR(sandboxes->Release(session_id, /*delete_data=*/false));
  PADDOCK_RETURN_IF_ERROR(sandboxes->Ensure(session_id).status());
  return store_.GetSession(session_id);
}

Result<std::vector<TranscriptEntry>> SessionService::Transcript(const std::string& session_id) {
  PADDOCK_RETURN_IF_ERROR(store_.GetSession(session_id).status());
  return BuildTranscript(store_, session_id);
}

}  // namespace paddock
