#include "services/events/append_share.h"

#include <algorithm>
#include <thread>

namespace paddock {

AppendShare::AppendShare(double events_per_second, double bytes_per_second)
    : events_rate_(std::max(0.0, events_per_second)), bytes_rate_(std::max(0.0, bytes_per_second)) {}

std::chrono::nanoseconds AppendShare::Take(std::string_view session_id, std::size_t bytes) {
  if (events_rate_ == 0 && bytes_rate_ == 0) return std::chrono::nanoseconds(0);
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  if (now - pruned_at_ > std::chrono::seconds(10)) Prune(now);
  auto [it, fresh] = buckets_.try_emplace(std::string(session_id));
  Bucket& b = it->second;
  if (fresh) {
    b.events = events_rate_;
    b.bytes = bytes_rate_;
  } else {
    const double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.events = std::min(events_rate_, b.events + elapsed * events_rate_);
    b.bytes = std::min(bytes_rate_, b.bytes + elapsed * bytes_rate_);
  }
  b.at = now;
  double wait_s = 0;
  if (events_rate_ > 0) {
    b.events -= 1;
    if (b.events < 0) wait_s = std::max(wait_s, -b.events / events_rate_);
  }
  if (bytes_rate_ > 0) {
    b.bytes -= static_cast<double>(bytes);
    if (b.bytes < 0) wait_s = std::max(wait_s, -b.bytes / bytes_rate_);
  }
  return std::chrono::nanoseconds(static_cast<std::int64_t>(wait_s * 1e9));
}

std::chrono::nanoseconds AppendShare::Wait(std::string_view session_id, std::size_t bytes) {
  auto wait = Take(session_id, bytes);
  if (wait.count() > 0) std::this_thread::sleep_for(wait);
  return wait;
}

void AppendShare::Prune(Clock::time_point now) {
  pruned_at_ = now;
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const double idle = std::chrono::duration<double>(now - it->second.at).count();
    const bool full = (events_rate_ == 0 || it->second.events + idle * events_rate_ >= events_rate_) &&
                      (bytes_rate_ == 0 || it->second.bytes + idle * bytes_rate_ >= bytes_rate_);
    it = full ? buckets_.erase(it) : std::next(it);
  }
}

}  // namespace paddock
