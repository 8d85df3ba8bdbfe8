#include "services/runs/lease_sweeper.h"

#include "metrics/metrics.h"
#include "services/sandboxes/sandbox_manager.h"
#include "util/log.h"

namespace paddock {

LeaseSweeper::LeaseSweeper(SessionStore& store, Metrics& metrics, SweepOptions options,
                           std::chrono::milliseconds interval, std::function<void()> on_requeued,
                           SandboxManager* sandboxes, std::chrono::milliseconds reconcile_interval)
    : store_(store),
      metrics_(metrics),
      options_(std::move(options)),
      interval_(interval),
      on_requeued_(std::move(on_requeued)),
      sandboxes_(sandboxes),
      reconcile_interval_(reconcile_interval) {}

LeaseSweeper::~LeaseSweeper() { Stop(); }

Result<std::vector<Run>> LeaseSweeper::Sweep(const SweepOptions& options) {
  PADDOCK_ASSIGN_OR_RETURN(std::vector<Run> runs, store_.SweepExpiredLeases(options));
  bool requeued = false;
  for (const Run& r : runs) {
    metrics_.RunInterrupted();
    if (IsTerminal(r.status)) {
      metrics_.RunFinished(ToString(r.status));
      LogWarn("run " + r.id + ": lease expired on attempt " + std::to_string(r.attempt) + "; " +
              std::string(ToString(r.status)));
    } else {
      requeued = true;
      LogWarn("run " + r.id + ": lease expired on attempt " + std::to_string(r.attempt) + "; re-queued");
    }
  }
  if (requeued && on_requeued_) on_requeued_();
  return runs;
}

void LeaseSweeper::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void LeaseSweeper::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LeaseSweeper::Loop() {
  auto next_prune = std::chrono::steady_clock::now();
  auto next_reconcile = std::chrono::steady_clock::now() + reconcile_interval_;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    if (Result<std::vector<Run>> swept = Sweep(options_); !swept.ok()) {
      LogWarn("sweeping leases: " + swept.status().ToString());
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_prune) {
      auto cutoff =
          NowMs() - std::chrono::duration_cast<std::chrono::milliseconds>(kIdempotencyKeyTtl).count();
      Result<std::int64_t> pruned = store_.PruneIdempotencyKeys(cutoff);
      if (pruned.ok()) next_prune = now + std::chrono::minutes(10);
    }
    if (sandboxes_ && now >= next_reconcile) {
      next_reconcile = now + reconcile_interval_;
      // Sandboxes younger than 10 s may be about to be bound to their session.
      if (Result<int> r = sandboxes_->Reconcile(std::chrono::seconds(10)); !r.ok()) {
        LogWarn("reconciling sandboxes: " + r.status().ToString());
      }
    }
    lock.lock();
    cv_.wait_for(lock, interval_, [&] { return stopping_; });
  }
}

}  // namespace paddock
