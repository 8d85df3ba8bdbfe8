#include "pg_notify_batcher.h"

#include <algorithm>
#include <optional>

namespace paddock::plugins::store_postgres {

namespace {
// Entries of sessions that have been quiet this many windows are dropped (by Loud, once the map
// has doubled since the last pass), so the map holds the sessions appended to lately.
constexpr int kForgetAfterWindows = 64;
}  // namespace

NotifyBatcher::NotifyBatcher(PgPool& pool, std::string channel, std::chrono::milliseconds window,
                             Logger& logger)
    : pool_(pool), channel_(std::move(channel)), window_(window), logger_(logger) {}

NotifyBatcher::~NotifyBatcher() { Stop(); }

void NotifyBatcher::Start() {
  std::lock_guard lock(mu_);
  if (window_.count() == 0 || thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void NotifyBatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool NotifyBatcher::Loud(std::string_view session) {
  if (window_.count() == 0) return true;
  std::lock_guard lock(mu_);
  if (!thread_.joinable()) return true;  // not started, or stopped: nothing would send the rest
  const auto now = Clock::now();
  if (sessions_.size() > forget_at_) {  // amortised: the map must double before the next pass
    ForgetStaleLocked(now);
    forget_at_ = std::max(kForgetAbove, 2 * sessions_.size());
  }
  Entry& e = sessions_[std::string(session)];
  if (e.pending != 0 || now - e.notified < window_) return false;
  e.notified = now;
  return true;
}

void NotifyBatcher::Quiet(std::string_view session, std::int64_t seq) {
  {
    std::lock_guard lock(mu_);
    if (thread_.joinable() && !stopping_) {
      Entry& e = sessions_[std::string(session)];
      // The thread needs waking only for a session's first quiet seq in a window (it may be due
      // before whatever the thread waits for); the next ones ride on the same deadline.
      const bool first = e.pending == 0;
      e.pending = std::max(e.pending, seq);
      if (first) cv_.notify_one();
      return;
    }
  }
  Send({{std::string(session), seq}});  // stopping: nothing would send it later
}

std::vector<std::pair<std::string, std::int64_t>> NotifyBatcher::TakeDueLocked(Clock::time_point now,
                                                                               bool all) {
  std::vector<std::pair<std::string, std::int64_t>> due;
  for (auto& [session, e] : sessions_) {
    if (e.pending == 0 || (!all && now - e.notified < window_)) continue;
    due.emplace_back(session, e.pending);
    e.pending = 0;
    e.notified = now;
  }
  return due;
}

void NotifyBatcher::ForgetStaleLocked(Clock::time_point now) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.pending == 0 && now - it->second.notified > window_ * kForgetAfterWindows) {
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

void NotifyBatcher::Send(const std::vector<std::pair<std::string, std::int64_t>>& due) {
  Status failed;
  {
    Result<Borrowed> conn = pool_.Acquire();
    if (!conn.ok()) {
      failed = conn.status();
    } else {
      for (const auto& [session, seq] : due) {
        Result<PgResult> sent =
            (*conn)->Query("SELECT pg_notify($1, $2)", {channel_, session + ":" + std::to_string(seq)});
        if (!sent.ok()) {
          failed = sent.status();
          break;
        }
      }
    }
  }
  if (failed.ok()) return;
  // Listeners that miss these catch up when their connection comes back; until then, retry
  // each second.
  logger_.Warn("event notifications not sent (" + failed.message() + "); retrying in 1s");
  std::lock_guard lock(mu_);
  const auto retry = Clock::now() + std::chrono::seconds(1) - window_;
  for (const auto& [session, seq] : due) {
    Entry& e = sessions_[session];
    e.pending = std::max(e.pending, seq);
    e.notified = std::max(e.notified, retry);
  }
}

void NotifyBatcher::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const auto now = Clock::now();
    auto due = TakeDueLocked(now, false);
    if (!due.empty()) {
      lock.unlock();
      Send(due);
      lock.lock();
      continue;
    }
    std::optional<Clock::time_point> next;
    for (const auto& [session, e] : sessions_) {
      if (e.pending != 0 && (!next || e.notified + window_ < *next)) next = e.notified + window_;
    }
    if (next) {
      cv_.wait_until(lock, *next);
    } else {
      cv_.wait(lock);
    }
  }
  auto rest = TakeDueLocked(Clock::now(), true);
  lock.unlock();
  if (!rest.empty()) Send(rest);
}

}  // namespace paddock::plugins::store_postgres
