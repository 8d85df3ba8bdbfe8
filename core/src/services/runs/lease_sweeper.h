// LeaseSweeper: the periodic housekeeping every process does against the shared store. It turns
// expired run leases into interrupted (re-queued, or finally failed) runs, forgets old
// Idempotency-Keys, and destroys this process's sandboxes that no session uses any more.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "paddock/session_store.h"

namespace paddock {

class Metrics;
class SandboxManager;

class LeaseSweeper {
 public:
  // `on_requeued` is called after a sweep put runs back in the queue (to wake local workers);
  // `sandboxes` may be null (a process that runs no sandboxes).
  LeaseSweeper(SessionStore& store, Metrics& metrics, SweepOptions options,
               std::chrono::milliseconds interval, std::function<void()> on_requeued,
               SandboxManager* sandboxes,
               std::chrono::milliseconds reconcile_interval = std::chrono::minutes(1));
  ~LeaseSweeper();

  // One sweep with `options`; returns the runs it changed.
  Result<std::vector<Run>> Sweep(const SweepOptions& options);

  void Start();
  void Stop();

  static constexpr std::chrono::hours kIdempotencyKeyTtl{24};

 private:
  void Loop();

  SessionStore& store_;
  Metrics& metrics_;
  SweepOptions options_;
  std::chrono::milliseconds interval_;
  std::function<void()> on_requeued_;
  SandboxManager* sandboxes_;
  std::chrono::milliseconds reconcile_interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace paddock
