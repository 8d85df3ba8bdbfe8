// The worker: threads that claim queued runs from the store under a lease and drive the agent's
// harness in the session's sandbox. A heartbeat thread renews the leases of the runs in
// progress; a run whose lease this process lost is stopped without writing anything more.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "paddock/harness.h"
#include "paddock/sandbox_provider.h"
#include "paddock/session_store.h"
#include "util/cancel_signal.h"

namespace paddock {

struct EnsuredSandbox;

class EventService;
class Metrics;
class Redactor;
class SandboxManager;
class SnapshotService;
class ToolCache;

struct Harnesses {
  std::map<std::string, std::shared_ptr<Harness>, std::less<>> by_name;
};

struct LeaseSettings {
  std::chrono::milliseconds ttl{15000};
  std::chrono::milliseconds heartbeat{3000};
};

// Executes claimed runs from start to terminal status.
// Thread safety: Execute is called concurrently for runs of different sessions.
class RunExecutor {
 public:
  // `snapshots` may be null (snapshots disabled); `tools` may be null (harnesses get nothing
  // installed).
  RunExecutor(SessionStore& store, EventService& events, SandboxManager& sandboxes,
              SnapshotService* snapshots, const Harnesses& harnesses, Redactor& redactor, Metrics& metrics,
              LeaseSettings lease, ToolCache* tools = nullptr);

  // Runs `run` (claimed by this process: running, with its generation) to a terminal status,
  // recording it in the store and as a "run.finished" event — unless the lease is lost on the
  // way, in which case whoever holds the run now (or the sweeper) decides its outcome. A run on
  // its second or later attempt starts from the session's newest snapshot ("run.resumed");
  // one whose sandbox dies under it continues in a new one, restored from that snapshot. After
  // the turn, the session's snapshot is taken before the run is recorded as finished.
  void Execute(const Run& run);

  // Asks a run in progress here to stop; true when it was running in this process.
  bool Cancel(const std::string& run_id);
  // Stops every run in progress because the process is shutting down: each gives up its lease
  // (so the sweeper re-queues it for another worker at once) and runs claimed from now on stop
  // at once.
  void CancelAll();
  // Renews the lease of every run in progress; called by the pool's heartbeat thread.
  void Heartbeat();

 private:
  struct Active {
    // Stops the run; the signal also wakes a command waiting in its sandbox.
    void Cancel() { stop.Set(); }
    bool cancelled() const { return stop.IsSet(); }
    RunLease lease;
    CancelSignal stop;
    std::atomic<bool> shutdown{false};        // cancelled because this process is stopping
    std::atomic<bool> lease_lost{false};      // another worker or the sweeper owns the run now
    std::atomic<bool> store_down{false};      // a write for the run failed: the store is unreachable
    std::atomic<std::int64_t> renewed_ms{0};  // steady clock of the last successful renewal
  };
  // What a run needs before its first turn: its session, its agent, the agent's harness and
  // the tools that harness needs.
  struct Setup {
    Session session;
    Agent agent;
    Harness* harness = nullptr;
    std::vector<std::string> native;  // the harness's native state paths
    std::string tools_dir;
  };
  // What a fresh or resumed sandbox brings back of the session: the snapshot, or else the
  // transcript for the harness to rehydrate from.
  struct Restored {
    bool rehydrate = false;
    std::vector<TranscriptMessage> history;
  };
  // Drive's phases, in order.
  Result<Setup> SetUp(const Run& run, Active& active);
  Result<Restored> RestoreState(const Run& run, Active& active, const Session& session,
                                const EnsuredSandbox& sandbox, TurnResume& resume);
  // The run's status from the harness's outcome (cancelled, non-terminal, out of memory).
  RunStatus Judge(const TurnOutcome& outcome, Active& active, const SandboxInfo& sandbox, std::string& error);
  Result<RunStatus> Drive(const Run& run, Active& active, std::optional<int>& exit_code, std::string& error);
  void Finish(const Run& run, Active& active, RunStatus status, std::optional<int> exit_code,
              std::string error);
  bool LeaseMayBeHeld(const Active& active) const;

  SessionStore& store_;
  EventService& events_;
  SandboxManager& sandboxes_;
  SnapshotService* snapshots_;
  const Harnesses& harnesses_;
  Redactor& redactor_;
  Metrics& metrics_;
  LeaseSettings lease_;
  ToolCache* tools_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Active>> active_;
  bool stopping_ = false;  // guarded by mu_: runs claimed after CancelAll start cancelled
};

class WorkerPool {
 public:
  WorkerPool(SessionStore& store, RunExecutor& executor, std::string worker_id, int threads,
             std::chrono::milliseconds poll_interval, LeaseSettings lease);
  ~WorkerPool();

  void Start();
  // Wakes an idle worker: a run was queued.
  void Wake();
  // Cancels runs in progress, waits for the threads to finish.
  void Stop();

  const std::string& worker_id() const { return worker_id_; }

 private:
  void Loop();
  void HeartbeatLoop();

  SessionStore& store_;
  RunExecutor& executor_;
  std::string worker_id_;
  int thread_count_;
  std::chrono::milliseconds poll_interval_;
  LeaseSettings lease_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t wakeups_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// A worker id unique among live processes: host name, pid and a random suffix.
std::string NewWorkerId();

}  // namespace paddock
