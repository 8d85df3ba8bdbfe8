#include "services/worker.h"

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
#include "services/sandbox_manager.h"
#include "services/snapshot_service.h"
#include "services/tool_cache.h"
#include "services/transcript.h"
#include "util/log.h"
#include "util/redactor.h"

namespace paddock {
namespace {

std::int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A failed store write for a run: remember whether the run has moved on (its lease is gone) or
// the store is unreachable, and pass the status on.
Status NoteStoreError(Status s, std::atomic<bool>& lease_lost, std::atomic<bool>& store_down) {
  if (s.code() == StatusCode::kAborted) lease_lost = true;
  if (s.code() == StatusCode::kUnavailable) store_down = true;
  return s;
}

// The same for a read: a store that cannot be reached hands the run back (it is re-queued when
// its lease lapses) rather than failing it.
template <typename T>
Result<T> Noted(Result<T> r, std::atomic<bool>& lease_lost, std::atomic<bool>& store_down) {
  if (!r.ok()) (void)NoteStoreError(r.status(), lease_lost, store_down);
  return r;
}

// What a harness sees of the host during one turn. Every event it emits is fenced by the
// run's lease; a refused one tells the executor why.
class HostTurnContext final : public TurnContext {
 public:
  struct Flags {
    const std::atomic<bool>& cancelled;
    std::atomic<bool>& lease_lost;
    std::atomic<bool>& store_down;
  };

  struct Host {
    SessionStore& store;
    EventService& events;
    Metrics& metrics;
    RunLease lease;
    std::string tools_dir;
  };

  HostTurnContext(const Agent& agent, const Session& session, const Run& run, RuntimeClient runtime,
                  Host host, Flags flags, TurnResume resume)
      : agent_(agent),
        session_(session),
        run_(run),
        runtime_(std::move(runtime)),
        host_(std::move(host)),
        events_(host_.events),
        flags_(flags),
        resume_(std::move(resume)),
        native_id_(session.native_session_id) {}

  const Agent& agent() const noexcept override { return agent_; }
  const Session& session() const noexcept override { return session_; }
  const Run& run() const noexcept override { return run_; }

  Result<ExecResult> Exec(const ExecRequest& request, ExecObserver& observer) noexcept override {
    try {
      // The session's env and secrets are in the runtime already (SandboxManager::Bind).
      ExecRequest r = request;
      if (r.timeout.count() == 0) r.timeout = std::chrono::seconds(agent_.run_timeout_seconds);
      return runtime_.Exec(r, observer);
    } catch (const std::exception& e) {
      return Status::Internal(std::string("exec: ") + e.what());
    }
  }

  // "output" events pass through the stream redactor, so that a secret split across two
  // chunks of a stream never shows in either; anything else first shows what it holds back.
  Status Emit(std::string_view type, std::string_view data) noexcept override {
    try {
      std::lock_guard lock(emit_mu_);
      if (type == "output" && !events_.redactor().empty()) {
        std::optional<std::pair<std::string, std::string>> chunk = OutputChunk(data);
        if (chunk) {
          std::string shown = output_.Feed(chunk->first, chunk->second);
          return shown.empty() ? Status::Ok() : AppendOutput(chunk->first, shown);
        }
      }
      PADDOCK_RETURN_IF_ERROR(FlushOutputLocked());
      return Noted(events_.Append(session_.id, run_.id, type, data, run_.generation).status());
    } catch (const std::exception& e) {
      return Status::Internal(std::string("emit: ") + e.what());
    }
  }

  // Shows what the stream redactor still holds (the turn ended).
  Status FlushOutput() noexcept {
    try {
      std::lock_guard lock(emit_mu_);
      return FlushOutputLocked();
    } catch (const std::exception& e) {
      return Status::Internal(std::string("emit: ") + e.what());
    }
  }

  bool Cancelled() const noexcept override { return flags_.cancelled.load() || flags_.lease_lost.load(); }

  const TurnResume& resume() const noexcept override { return resume_; }

  std::string tools_dir() const noexcept override { return host_.tools_dir; }

  Status RecordUsage(const Usage& usage) noexcept override {
    try {
      if (usage.input_tokens < 0 || usage.output_tokens < 0 || usage.cache_read_tokens < 0 ||
          (usage.cost_usd && *usage.cost_usd < 0)) {
        return Status::InvalidArgument("usage must not be negative");
      }
      std::string data = "{\"model\":" + JsonQuote(usage.model) +
                         ",\"input_tokens\":" + std::to_string(usage.input_tokens) +
                         ",\"output_tokens\":" + std::to_string(usage.output_tokens) +
                         ",\"cache_read_tokens\":" + std::to_string(usage.cache_read_tokens);
      if (usage.cost_usd) {
        char cost[64];
        std::snprintf(cost, sizeof cost, "%.6f", *usage.cost_usd);
        data += std::string(",\"cost_usd\":") + cost;
      }
      data += "}";
      PADDOCK_ASSIGN_OR_RETURN(NewEvent event, events_.Prepare(run_.id, "usage", data));
      Result<Event> stored = host_.store.RecordRunUsage(host_.lease, usage, event);
      if (!stored.ok()) return Noted(stored.status());
      events_.Published(*stored);
      host_.metrics.ModelUsage(agent_.id, agent_.harness, usage);
      return Status::Ok();
    } catch (const std::exception& e) {
      return Status::Internal(std::string("usage: ") + e.what());
    }
  }

  std::string native_session_id() const noexcept override {
    std::lock_guard lock(native_mu_);
    return native_id_;
  }

  Status SetNativeSessionId(std::string_view id) noexcept override {
    try {
      Status s = Noted(host_.store.SetNativeSessionId(host_.lease, id));
      if (s.ok()) {
        std::lock_guard lock(native_mu_);
        native_id_ = std::string(id);
      }
      return s;
    } catch (const std::exception& e) {
      return Status::Internal(std::string("native session id: ") + e.what());
    }
  }

 private:
  Status Noted(Status s) const { return NoteStoreError(std::move(s), flags_.lease_lost, flags_.store_down); }

  // (stream, text) of an "output" event's data {"stream": ..., "text": ...}; nullopt for any
  // other shape, which is then stored as it is (and redacted as every event is).
  static std::optional<std::pair<std::string, std::string>> OutputChunk(std::string_view data) {
    try {
      Poco::JSON::Parser parser;
      Poco::Dynamic::Var parsed = parser.parse(std::string(data));
      if (parsed.type() != typeid(Poco::JSON::Object::Ptr)) return std::nullopt;
      auto obj = parsed.extract<Poco::JSON::Object::Ptr>();
      if (obj->size() != 2 || !obj->has("stream") || !obj->has("text")) return std::nullopt;
      Poco::Dynamic::Var stream = obj->get("stream"), text = obj->get("text");
      if (!stream.isString() || !text.isString()) return std::nullopt;
      return std::make_pair(stream.extract<std::string>(), text.extract<std::string>());
    } catch (const Poco::Exception&) {
      return std::nullopt;
    }
  }

  Status AppendOutput(const std::string& stream, const std::string& text) {
    return Noted(events_
                     .Append(session_.id, run_.id, "output",
                             "{\"stream\":" + JsonQuote(stream) + ",\"text\":" + JsonQuote(text) + "}",
                             run_.generation)
                     .status());
  }

  Status FlushOutputLocked() {
    for (const std::string& stream : output_.Pending()) {
      std::string text = output_.Flush(stream);
      if (!text.empty()) PADDOCK_RETURN_IF_ERROR(AppendOutput(stream, text));
    }
    return Status::Ok();
  }

  const Agent& agent_;
  const Session& session_;
  const Run& run_;
  RuntimeClient runtime_;
  Host host_;
  EventService& events_;
  Flags flags_;
  TurnResume resume_;
  mutable std::mutex native_mu_;
  std::string native_id_;
  std::mutex emit_mu_;
  StreamRedactor output_{events_.redactor()};  // guarded by emit_mu_
};

// How often a run may lose its sandbox before it fails instead of resuming in another.
constexpr int kMaxSandboxLosses = 3;

std::string ResumedData(const Run& run, const TurnResume& resume, const std::string& sandbox_id) {
  return "{\"attempt\":" + std::to_string(run.attempt) + ",\"reason\":" + JsonQuote(resume.reason) +
         ",\"restored\":" + JsonQuote(resume.restored.empty() ? "none" : resume.restored) +
         ",\"snapshot_version\":" + std::to_string(resume.snapshot_version) +
         ",\"sandbox_id\":" + JsonQuote(sandbox_id) + "}";
}

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
      if (renewed->cancel_requested) a->cancelled = true;
      continue;
    }
    if (renewed.status().code() == StatusCode::kAborted || !LeaseMayBeHeld(*a)) {
      LogWarn("run " + a->lease.run_id + ": lease lost (" + renewed.status().message() +
              "); stopping it here");
      a->lease_lost = true;
      a->cancelled = true;
    }
  }
}

Result<RunStatus> RunExecutor::Drive(const Run& run, Active& active, std::optional<int>& exit_code,
                                     std::string& error) {
  PADDOCK_ASSIGN_OR_RETURN(Session session,
                           Noted(store_.GetSession(run.session_id), active.lease_lost, active.store_down));
  PADDOCK_ASSIGN_OR_RETURN(Agent agent,
                           Noted(store_.GetAgent(session.agent_id), active.lease_lost, active.store_down));
  auto found = harnesses_.by_name.find(agent.harness);
  if (found == harnesses_.by_name.end()) {
    return Status::FailedPrecondition("harness '" + agent.harness + "' of agent " + agent.id +
                                      " is not loaded in this process");
  }
  Harness& harness = *found->second;
  const std::vector<std::string> native = harness.NativeStatePaths(agent);
  std::string tools_dir;
  if (tools_) {
    Result<std::string> installed = tools_->Ensure(harness.Needs(agent));
    if (!installed.ok()) {
      return installed.status().Annotate("installing what harness '" + agent.harness + "' needs");
    }
    tools_dir = *installed;
  }
  TurnResume resume;
  resume.resuming = run.attempt > 1;
  if (resume.resuming) resume.reason = "attempt " + std::to_string(run.attempt - 1) + " was interrupted";
  bool started = false;
  for (int losses = 0;;) {
    // A resumed run starts again from the last durable point: the newest snapshot.
    Result<EnsuredSandbox> ensured = sandboxes_.Ensure(session.id, resume.resuming ? &native : nullptr);
    if (!ensured.ok() && ensured.status().code() == StatusCode::kUnavailable && !active.cancelled) {
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
    resume.restored.clear();
    resume.snapshot_version = 0;
    bool rehydrate = false;
    std::vector<TranscriptMessage> history;  // earlier messages, for Rehydrate
    if (sandbox.fresh || resume.resuming) {
      if (sandbox.restored) resume.snapshot_version = sandbox.restored->version;
      if (sandbox.restored && sandbox.restored->native) {
        resume.restored = "snapshot";
      } else {
        PADDOCK_ASSIGN_OR_RETURN(
            std::vector<TranscriptEntry> before,
            Noted(BuildTranscript(store_, session.id, run.id), active.lease_lost, active.store_down));
        rehydrate = resume.resuming || !before.empty();
        if (rehydrate) resume.restored = "transcript";
        for (const TranscriptEntry& e : before) history.push_back({e.role, e.run_id, e.content, e.status});
      }
    }
    if (!started) {
      PADDOCK_ASSIGN_OR_RETURN(NewEvent event,
                               events_.Prepare(run.id, "run.started",
                                               "{\"attempt\":" + std::to_string(run.attempt) +
                                                   ",\"sandbox_id\":" + JsonQuote(sandbox.info.id) + "}"));
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
      Result<Event> resumed = events_.Append(session.id, run.id, "run.resumed",
                                             ResumedData(run, resume, sandbox.info.id), run.generation);
      if (!resumed.ok()) return NoteStoreError(resumed.status(), active.lease_lost, active.store_down);
    }
    HostTurnContext ctx(agent, session, run, runtime, {store_, events_, metrics_, active.lease, tools_dir},
                        {active.cancelled, active.lease_lost, active.store_down}, resume);
    if (rehydrate) {
      PADDOCK_RETURN_IF_ERROR(
          harness.Rehydrate(ctx, history).status().Annotate("rehydrating from the transcript"));
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
    error = outcome->error;
    RunStatus status = outcome->status;
    if (active.cancelled && status != RunStatus::kSucceeded) status = RunStatus::kCancelled;
    if (!IsTerminal(status)) {
      error = "harness returned non-terminal status " + std::string(ToString(outcome->status));
      status = RunStatus::kFailed;
    }
    if (status == RunStatus::kFailed) {
      // The provider's detail counts out-of-memory kills: a new one during the turn explains it.
      if (Result<SandboxInfo> now = sandboxes_.Inspect(sandbox.info.id);
          now.ok() && now->detail.find("out of memory") != std::string::npos &&
          now->detail != sandbox.info.detail) {
        error += (error.empty() ? "" : "; ") + std::string("the sandbox reached its memory limit");
      }
    }
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
        (void)events_.Append(session.id, run.id, "snapshot.failed",
                             "{\"error\":" + JsonQuote(snap.status().message()) + "}", run.generation);
      }
    }
    return status;
  }
}

void RunExecutor::Finish(const Run& run, Active& active, RunStatus status, std::optional<int> exit_code,
                         std::string error) {
  error = redactor_.Redact(error);
  Result<NewEvent> event = events_.Prepare(run.id, "run.finished", RunFinishedData(status, exit_code, error));
  if (!event.ok()) {
    LogError("run " + run.id + ": " + event.status().ToString());
    return;
  }
  // The store may be briefly unreachable: keep trying while the lease may still be ours (the
  // heartbeat thread keeps renewing it); after that the sweeper re-queues the run.
  for (;;) {
    Result<Event> finished = store_.FinishRun(active.lease, status, exit_code, error, *event);
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
