// The in-process worker: threads that claim queued runs from the store and drive the agent's
// harness in the session's sandbox, one run per session at a time.
#pragma once

#include <atomic>
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

namespace paddock {

class EventService;
class Metrics;
class Redactor;
class SandboxManager;

struct Harnesses {
  std::map<std::string, std::shared_ptr<Harness>, std::less<>> by_name;
};

// Executes one claimed run from start to terminal status.
// Thread safety: Execute is called concurrently for runs of different sessions.
class RunExecutor {
 public:
  RunExecutor(SessionStore& store, EventService& events, SandboxManager& sandboxes, SandboxProvider& provider,
              const Harnesses& harnesses, Redactor& redactor, Metrics& metrics);

  // Runs `run` (already claimed: status running) to a terminal status, recording it in the
  // store and as a "run.finished" event.
  void Execute(const Run& run);

  // Asks a running run to stop; true when it was running in this process.
  bool Cancel(const std::string& run_id);
  // Stops every run in progress because the process is shutting down: they end failed, with
  // that reason, and runs claimed from now on stop at once.
  void CancelAll();

 private:
  struct Active {
    std::atomic<bool> cancelled{false};
    std::atomic<bool> shutdown{false};  // cancelled because this process is stopping
  };
  Result<RunStatus> Drive(const Run& run, Active& active, std::optional<int>& exit_code, std::string& error);

  SessionStore& store_;
  EventService& events_;
  SandboxManager& sandboxes_;
  SandboxProvider& provider_;
  const Harnesses& harnesses_;
  Redactor& redactor_;
  Metrics& metrics_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Active>> active_;
  bool stopping_ = false;  // guarded by mu_: runs claimed after CancelAll start cancelled
};

class WorkerPool {
 public:
  WorkerPool(SessionStore& store, RunExecutor& executor, int threads,
             std::chrono::milliseconds poll_interval);
  ~WorkerPool();

  void Start();
  // Wakes an idle worker: a run was queued.
  void Wake();
  // Cancels runs in progress, waits for the threads to finish.
  void Stop();

 private:
  void Loop();

  SessionStore& store_;
  RunExecutor& executor_;
  int thread_count_;
  std::chrono::milliseconds poll_interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t wakeups_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace paddock
