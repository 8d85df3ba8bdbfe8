#include "services/runs/worker.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <unistd.h>

#include <optional>
#include <random>

#include "metrics/metrics.h"
#include "paddock/events.h"
#include "paddock/json.h"
#include "runtime/runtime_client.h"
#include "services/events/event_service.h"
#include "services/runs/host_turn_context.h"
#include "services/runs/transcript.h"
#include "services/sandboxes/sandbox_manager.h"
#include "services/sandboxes/tool_cache.h"
#include "services/snapshots/snapshot_service.h"
#include "util/log.h"
#include "util/redactor.h"

namespace paddock {
namespace {

std::int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// How often a run may lose its sandbox before it fails instead of resuming in another.
constexpr int kMaxSandboxLosses = 3;

}  // namespace

std::string NewWorkerId() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::random_device rd;
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%04x", static_cast<unsigned>(rd() & 0xffff));
  return std::string(host) + "/" + std::to_string(getpid()) + "/" + suffix;
}

RunExecutor::RunExecutor(SessionStore& store, EventService& events, SandboxManager& sandboxes,
                         SnapshotService* snapshots, const Harnesses& harnesses, Redactor& redactor,
                         Metrics& metrics, LeaseSettings lease, ToolCache* tools)
    : store_(store),
      events_(events),
      sandboxes_(sandboxes),
      snapshots_(snapshots),
      harnesses_(harnesses),
      redactor_(redactor),
      metrics_(metrics),
      lease_(lease),
      tools_(tools) {}

bool RunExecutor::Cancel(const std::string& run_id) {
  std::lock_guard lock(mu_);
  auto it = active_.find(run_id);
  if (it == active_.end()) return false;
  it->second->Cancel();
  return true;
}

void RunExecutor::CancelAll() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  for (auto& [id, a] : active_) {
    a->shutdown = true;
    a->Cancel();
  }
}

bool RunExecutor::LeaseMayBeHeld(const Active& active) const {
  return SteadyMs() - active.renewed_ms.load() < lease_.ttl.count();
}

void RunExecutor::Heartbeat() {
  std::vector<std::shared_ptr<Active>> runs;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, a] : active_) runs.push_back(a);
  }
  for (auto& a : runs) {
    if (a->lease_lost) continue;
    const std::int64_t sent = SteadyMs();  // the store's expiry is at least sent + ttl
    Result<Run> renewed = store_.HeartbeatRun(a->lease, lease_.ttl);
    if (renewed.ok()) {
      a->renewed_ms = sent;
      if (renewed->cancel_requested) a->Cancel();
      continue;
    }
    if (renewed.status().code() == StatusCode::kAborted || !LeaseMayBeHeld(*a)) {
      LogWarn("run " + a->lease.run_id + ": lease lost (" + renewed.status().message() +
              "); stopping it here");
      a->lease_lost = true;
      a->Cancel();
    }
  }
}

Result<RunExecutor::Setup> RunExecutor::SetUp(const Run& run, Active& active) {
  Setup setup;
  PADDOCK_ASSIGN_OR_RETURN(setup.session,
                           Noted(store_.GetSession(run.session_id), active.lease_lost, active.store_down));
  PADDOCK_ASSIGN_OR_RETURN(
      setup.agent, Noted(store_.GetAgent(setup.session.agent_id), active.lease_lost, active.store_down));
  const Agent& agent = setup.agent;
  auto found = harnesses_.by_name.find(agent.harness);
  if (found == harnesses_.by_name.end()) {
    return Status::FailedPrecondition("harness '" + agent.harness + "' of agent " + agent.id +
                                      " is not loaded in this process");
  }
  setup.harness = found->second.get();
  setup.native = setup.harness->NativeStatePaths(agent);
  if (tools_) {
    Result<std::string> installed = tools_->Ensure(setup.harness->Needs(agent));
    if (!installed.ok()) {
      return installed.status().Annotate("installing what harness '" + agent.harness + "' needs");
    }
    setup.tools_dir = *installed;
  }
  return setup;
}

Result<RunExecutor::Restored> RunExecutor::RestoreState(const Run& run, Active& active,
                                                        const Session& session, const EnsuredSandbox& sandbox,
                                                        TurnResume& resume) {
  Restored out;
  resume.restored.clear();
  resume.snapshot_version = 0;
  if (!sandbox.fresh && !resume.resuming) return out;
  if (sandbox.restored) resume.snapshot_version = sandbox.restored->version;
  if (sandbox.restored && sandbox.restored->native) {
    resume.restored = "snapshot";
    return out;
  }
  PADDOCK_ASSIGN_OR_RETURN(
      std::vector<TranscriptEntry> before,
      Noted(BuildTranscript(store_, session.id, run.id), active.lease_lost, active.store_down));
  out.rehydrate = resume.resuming || !before.empty();
  if (out.rehydrate) resume.restored = "transcript";
  for (const TranscriptEntry& e : before) out.history.push_back({e.role, e.run_id, e.content, e.status});
  return out;
}

RunStatus RunExecutor::Judge(const TurnOutcome& outcome, Active& active, const SandboxInfo& sandbox,
                             std::string& error) {
  error = outcome.error;
  RunStatus status = outcome.status;
  if (active.cancelled() && status != RunStatus::kSucceeded) status = RunStatus::kCancelled;
  if (!IsTerminal(status)) {
    error = "harness returned non-terminal status " + std::string(ToString(outcome.status));
    status = RunStatus::kFailed;
  }
  if (status == RunStatus::kFailed) {
    // The provider's detail counts out-of-memory kills: a new one during the turn explains it.
    if (Result<SandboxInfo> now = sandboxes_.Inspect(sandbox.id);
        now.ok() && now->detail.find("out of memory") != std::string::npos && now->detail != sandbox.detail) {
      error += (error.empty() ? "" : "; ") + std::string("the sandbox reached its memory limit");
    }
  }
  return status;
}

Result<RunStatus> RunExecutor::Drive(const Run& run, Active& active, std::optional<int>& exit_code,
                                     std::string& error) {
  PADDOCK_ASSIGN_OR_RETURN(Setup setup, SetUp(run, active));
  Session& session = setup.session;
  const Agent& agent = setup.agent;
  Harness& harness = *setup.harness;
  const std::vector<std::string>& native = setup.native;
  const std::string& tools_dir = setup.tools_dir;
  TurnResume resume;
  resume.resuming = run.attempt > 1;
  if (resume.resuming) resume.reason = "attempt " + std::to_string(run.attempt - 1) + " was interrupted";
  bool started = false;
  for (int losses = 0;;) {
    // A resumed run starts again from the last durable point: the newest snapshot.
    Result<EnsuredSandbox> ensured = sandboxes_.Ensure(session.id, resume.resuming ? &native : nullptr);
    if (!ensured.ok() && ensured.status().code() == StatusCode::kUnavailable && !active.cancelled()) {
      // Unavailable is either the store or the sandbox provider. An unreachable store hands the
      // run back (re-queued when its lease lapses); otherwise try again a bounded number of times.
      PADDOCK_RETURN_IF_ERROR(
          Noted(store_.GetSession(session.id), active.lease_lost, active.store_down).status());
      if (++losses > kMaxSandboxLosses) {
        return ensured.status().Annotate("providing a sandbox failed " + std::to_string(losses) + " times");
      }
      LogWarn("run " + run.id + ": providing its sandbox failed (" + ensured.status().ToString() +
              "); trying again");
      std::this_thread::sleep_for(std::chrono::milliseconds(250 * losses));
      continue;
    }
    PADDOCK_ASSIGN_OR_RETURN(EnsuredSandbox sandbox, std::move(ensured));
    // Ensure may have changed it.
    PADDOCK_ASSIGN_OR_RETURN(session,
                             Noted(store_.GetSession(session.id), active.lease_lost, active.store_down));
    RuntimeClient runtime(sandbox.info.runtime);
    PADDOCK_ASSIGN_OR_RETURN(Restored restored, RestoreState(run, active, session, sandbox, resume));
    if (!started) {
      const NewEvent event = events_.Prepare(run.id, event::RunStarted(run.attempt, sandbox.info.id));
      Result<Event> stored = store_.StartRun(active.lease, event);
      if (!stored.ok()) {
        if (stored.status().code() == StatusCode::kAborted || stored.status().code() == StatusCode::kNotFound)
          active.lease_lost = true;
        if (stored.status().code() == StatusCode::kUnavailable) active.store_down = true;
        return stored.status();
      }
      events_.Published(*stored);
      started = true;
    }
    if (resume.resuming) {
      metrics_.RunResumed(resume.restored);
      Result<Event> resumed = events_.Append(
          session.id, run.id, event::RunResumed(run.attempt, resume, sandbox.info.id), run.generation);
      if (!resumed.ok()) return NoteStoreError(resumed.status(), active.lease_lost, active.store_down);
    }
    HostTurnContext ctx(agent, session, run, runtime, {store_, events_, metrics_, active.lease, tools_dir},
                        {active.stop, active.lease_lost, active.store_down}, resume);
    if (restored.rehydrate) {
      PADDOCK_RETURN_IF_ERROR(
          harness.Rehydrate(ctx, restored.history).status().Annotate("rehydrating from the transcript"));
    }
    Result<TurnOutcome> outcome = harness.RunTurn(ctx);
    if (Status flushed = ctx.FlushOutput(); !flushed.ok() && outcome.ok()) outcome = flushed;
    if (active.lease_lost) return Status::Aborted("lease lost during the run");
    if (!sandboxes_.CheckAlive(session.id, sandbox.info, "during run " + run.id)) {
      if (++losses > kMaxSandboxLosses) {
        return Status::Unavailable("the run lost its sandbox " + std::to_string(losses) + " times");
      }
      resume.resuming = true;
      resume.reason = "the sandbox was lost during the run";
      continue;
    }
    PADDOCK_RETURN_IF_ERROR(outcome.status());
    exit_code = outcome->exit_code;
    const RunStatus status = Judge(*outcome, active, sandbox.info, error);
    // The run's end is durable only with the state it left: snapshot first, then finish. A
    // run given back (shutdown) or left to the sweeper starts again from the previous one.
    bool finishing = !(active.shutdown && status != RunStatus::kSucceeded) && !active.store_down;
    if (finishing) {
      // A session closed meanwhile keeps no snapshots.
      Result<Session> now = store_.GetSession(session.id);
      finishing = now.ok() && now->status != SessionStatus::kClosed;
    }
    if (snapshots_ && snapshots_->enabled() && finishing) {
      Result<SnapshotInfo> snap = snapshots_->Take(runtime, session.id, native, &active.lease);
      if (!snap.ok()) {
        if (snap.status().code() == StatusCode::kAborted || snap.status().code() == StatusCode::kNotFound) {
          active.lease_lost = true;
          return snap.status();
        }
        if (!sandboxes_.CheckAlive(session.id, sandbox.info, "while snapshotting after run " + run.id)) {
          if (++losses > kMaxSandboxLosses) {
            return Status::Unavailable("the run lost its sandbox " + std::to_string(losses) + " times");
          }
          resume.resuming = true;
          resume.reason = "the sandbox was lost before its snapshot was taken";
          continue;
        }
        if (snap.status().code() == StatusCode::kUnavailable) {
          active.store_down = true;
          return snap.status();
        }
        LogWarn("run " + run.id + ": snapshot failed: " + snap.status().ToString());
        (void)events_.Append(session.id, run.id, event::SnapshotFailed(snap.status().message()),
                             run.generation);
      }
    }
    return status;
  }
}

void RunExecutor::Finish(const Run& run, Active& active, RunStatus status, std::optional<int> exit_code,
                         std::string error) {
  error = redactor_.Redact(error);
  const NewEvent event = events_.Prepare(run.id, event::RunFinished(status, exit_code, error));
  // The store may be briefly unreachable: keep trying while the lease may still be ours (the
  // heartbeat thread keeps renewing it); after that the sweeper re-queues the run.
  for (;;) {
    Result<Event> finished = store_.FinishRun(active.lease, status, exit_code, error, event);
    if (finished.ok()) {
      metrics_.RunFinished(ToString(status));
      events_.Published(*finished);
      sandboxes_.Touch(run.session_id);
      return;
    }
    if (finished.status().code() == StatusCode::kUnavailable && LeaseMayBeHeld(active) &&
        !active.lease_lost) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      continue;
    }
    LogWarn("run " + run.id + ": could not record its end (" + finished.status().ToString() +
            "); the lease decides who does");
    return;
  }
}

void RunExecutor::Execute(const Run& run) {
  auto active = std::make_shared<Active>();
  active->lease = {run.id, run.generation};
  active->renewed_ms = SteadyMs() - 1000;  // claimed a moment ago: be conservative
  {
    std::lock_guard lock(mu_);
    active_[run.id] = active;
    if (stopping_) {
      active->shutdown = true;
      active->Cancel();
    }
  }
  std::optional<int> exit_code;
  std::string error;
  RunStatus status;
  Result<RunStatus> driven = Drive(run, *active, exit_code, error);
  if (driven.ok()) {
    status = *driven;
  } else {
    status = active->cancelled() ? RunStatus::kCancelled : RunStatus::kFailed;
    error = driven.status().message();
  }
  if (active->lease_lost) {
    LogWarn("run " + run.id + ": lease lost during the run; its new owner decides its outcome");
  } else if (active->shutdown && status != RunStatus::kSucceeded) {
    // Hand the run back: a lease that expires now lets the sweeper of any process re-queue it.
    LogInfo("run " + run.id + ": giving it back because this process is stopping");
    (void)store_.HeartbeatRun(active->lease, std::chrono::milliseconds(0));
  } else if (active->store_down && status != RunStatus::kSucceeded) {
    // Events of the turn were lost: the run is re-queued when its lease expires, not failed.
    LogWarn("run " + run.id + ": the store was unreachable during the run; leaving it to the sweeper");
  } else {
    Finish(run, *active, status, exit_code, std::move(error));
  }
  std::lock_guard lock(mu_);
  active_.erase(run.id);
}

WorkerPool::WorkerPool(SessionStore& store, RunExecutor& executor, std::string worker_id, int threads,
                       std::chrono::milliseconds poll_interval, LeaseSettings lease)
    : store_(store),
      executor_(executor),
      worker_id_(std::move(worker_id)),
      thread_count_(threads),
      poll_interval_(poll_interval),
      lease_(lease) {}

WorkerPool::~WorkerPool() { Stop(); }

void WorkerPool::Start() {
  for (int i = 0; i < thread_count_; ++i) threads_.emplace_back([this] { Loop(); });
  threads_.emplace_back([this] { HeartbeatLoop(); });
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

void WorkerPool::HeartbeatLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    executor_.Heartbeat();
    lock.lock();
    cv_.wait_for(lock, lease_.heartbeat, [&] { return stopping_; });
  }
}

void WorkerPool::Loop() {
  for (;;) {
    std::uint64_t seen;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      seen = wakeups_;
    }
    Result<std::optional<Run>> claimed = store_.ClaimNextRun(worker_id_, lease_.ttl);
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
