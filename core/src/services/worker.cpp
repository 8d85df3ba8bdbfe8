#include "services/worker.h"

#include "metrics/metrics.h"
#include "paddock/json.h"
#include "services/event_service.h"
#include "services/sandbox_manager.h"
#include "util/log.h"
#include "util/redactor.h"

namespace paddock {
namespace {

// What a harness sees of the host during one turn.
class HostTurnContext final : public TurnContext {
 public:
  HostTurnContext(const Agent& agent, const Session& session, const Run& run, std::string sandbox_id,
                  EnvMap env, SandboxProvider& provider, EventService& events,
                  const std::atomic<bool>& cancelled)
      : agent_(agent),
        session_(session),
        run_(run),
        sandbox_id_(std::move(sandbox_id)),
        env_(std::move(env)),
        provider_(provider),
        events_(events),
        cancelled_(cancelled) {}

  const Agent& agent() const noexcept override { return agent_; }
  const Session& session() const noexcept override { return session_; }
  const Run& run() const noexcept override { return run_; }

  Result<ExecResult> Exec(const ExecRequest& request, ExecObserver& observer) noexcept override {
    try {
      ExecRequest r = request;
      for (const auto& [k, v] : env_) r.env.emplace(k, v);  // the request's own entries win
      if (r.timeout.count() == 0) r.timeout = std::chrono::seconds(agent_.run_timeout_seconds);
      return provider_.Exec(sandbox_id_, r, observer);
    } catch (const std::exception& e) {
      return Status::Internal(std::string("exec: ") + e.what());
    }
  }

  Status Emit(std::string_view type, std::string_view data) noexcept override {
    try {
      return events_.Append(session_.id, run_.id, type, data).status();
    } catch (const std::exception& e) {
      return Status::Internal(std::string("emit: ") + e.what());
    }
  }

  bool Cancelled() const noexcept override { return cancelled_.load(); }

 private:
  const Agent& agent_;
  const Session& session_;
  const Run& run_;
  std::string sandbox_id_;
  EnvMap env_;
  SandboxProvider& provider_;
  EventService& events_;
  const std::atomic<bool>& cancelled_;
};

}  // namespace

RunExecutor::RunExecutor(SessionStore& store, EventService& events, SandboxManager& sandboxes,
                         SandboxProvider& provider, const Harnesses& harnesses, Redactor& redactor,
                         Metrics& metrics)
    : store_(store),
      events_(events),
      sandboxes_(sandboxes),
      provider_(provider),
      harnesses_(harnesses),
      redactor_(redactor),
      metrics_(metrics) {}

bool RunExecutor::Cancel(const std::string& run_id) {
  std::lock_guard lock(mu_);
  auto it = active_.find(run_id);
  if (it == active_.end()) return false;
  it->second->cancelled = true;
  return true;
}

void RunExecutor::CancelAll() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  for (auto& [id, a] : active_) {
    a->shutdown = true;
    a->cancelled = true;
  }
}

Result<RunStatus> RunExecutor::Drive(const Run& run, Active& active, std::optional<int>& exit_code,
                                     std::string& error) {
  PADDOCK_ASSIGN_OR_RETURN(Session session, store_.GetSession(run.session_id));
  PADDOCK_ASSIGN_OR_RETURN(Agent agent, store_.GetAgent(session.agent_id));
  auto harness = harnesses_.by_name.find(agent.harness);
  if (harness == harnesses_.by_name.end()) {
    return Status::FailedPrecondition("harness '" + agent.harness + "' of agent " + agent.id +
                                      " is not loaded in this process");
  }
  PADDOCK_ASSIGN_OR_RETURN(std::string sandbox_id, sandboxes_.Ensure(session.id));
  PADDOCK_ASSIGN_OR_RETURN(session, store_.GetSession(session.id));  // Ensure may have changed it
  PADDOCK_ASSIGN_OR_RETURN(EnvMap env, sandboxes_.Environment(agent, session));
  (void)store_.TransitionSession(session.id, SessionStatus::kReady, SessionStatus::kRunning, "");
  PADDOCK_RETURN_IF_ERROR(events_
                              .Append(session.id, run.id, "run.started",
                                      "{\"attempt\":" + std::to_string(run.attempt) +
                                          ",\"sandbox_id\":" + JsonQuote(sandbox_id) + "}")
                              .status());
  HostTurnContext ctx(agent, session, run, sandbox_id, std::move(env), provider_, events_, active.cancelled);
  PADDOCK_ASSIGN_OR_RETURN(TurnOutcome outcome, harness->second->RunTurn(ctx));
  exit_code = outcome.exit_code;
  error = outcome.error;
  if (active.cancelled && outcome.status != RunStatus::kSucceeded) return RunStatus::kCancelled;
  if (!IsTerminal(outcome.status)) {
    error = "harness returned non-terminal status " + std::string(ToString(outcome.status));
    return RunStatus::kFailed;
  }
  return outcome.status;
}

void RunExecutor::Execute(const Run& run) {
  auto active = std::make_shared<Active>();
  {
    std::lock_guard lock(mu_);
    active_[run.id] = active;
    if (stopping_) {
      active->shutdown = true;
      active->cancelled = true;
    }
  }
  std::optional<int> exit_code;
  std::string error;
  RunStatus status;
  Result<RunStatus> driven = Drive(run, *active, exit_code, error);
  if (driven.ok()) {
    status = *driven;
  } else {
    status = active->cancelled ? RunStatus::kCancelled : RunStatus::kFailed;
    error = driven.status().message();
  }
  {
    std::lock_guard lock(mu_);
    active_.erase(run.id);
  }
  if (active->shutdown && status != RunStatus::kSucceeded) {
    // Not the user's doing: say so. Resuming such runs is for a later version.
    status = RunStatus::kFailed;
    error = "the server shut down during the run";
  }
  error = redactor_.Redact(error);
  // The session is ready again before its run's end is in the log, so that whoever reacts to
  // "run.finished" finds it so (or already running the next run).
  (void)store_.TransitionSession(run.session_id, SessionStatus::kRunning, SessionStatus::kReady, "");
  Result<NewEvent> event = events_.Prepare(run.id, "run.finished", RunFinishedData(status, exit_code, error));
  Result<Event> finished =
      event.ok() ? store_.FinishRun(run.id, status, exit_code, error, *event) : Result<Event>(event.status());
  if (!finished.ok()) {
    // Another path (cancel, close) finished it first; its outcome and its event stand.
    LogWarn("run " + run.id + ": " + finished.status().ToString());
    return;
  }
  metrics_.RunFinished(ToString(status));
  events_.Published(*finished);
}

WorkerPool::WorkerPool(SessionStore& store, RunExecutor& executor, int threads,
                       std::chrono::milliseconds poll_interval)
    : store_(store), executor_(executor), thread_count_(threads), poll_interval_(poll_interval) {}

WorkerPool::~WorkerPool() { Stop(); }

void WorkerPool::Start() {
  for (int i = 0; i < thread_count_; ++i) threads_.emplace_back([this] { Loop(); });
}

void WorkerPool::Wake() {
  {
    std::lock_guard lock(mu_);
    ++wakeups_;
  }
  cv_.notify_all();
}

void WorkerPool::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  executor_.CancelAll();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void WorkerPool::Loop() {
  for (;;) {
    std::uint64_t seen;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      seen = wakeups_;
    }
    Result<std::optional<Run>> claimed = store_.ClaimNextRun();
    if (claimed.ok() && claimed->has_value()) {
      executor_.Execute(**claimed);
      continue;  // there may be more
    }
    if (!claimed.ok()) LogWarn("claiming a run: " + claimed.status().ToString());
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, poll_interval_, [&] { return stopping_ || wakeups_ != seen; });
  }
}

}  // namespace paddock
