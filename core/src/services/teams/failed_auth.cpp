#include "services/teams/failed_auth.h"

#include <algorithm>
#include <cmath>

namespace paddock {

FailedAuthLimiter::FailedAuthLimiter(std::int64_t per_minute, size_t max_addresses)
    : per_minute_(static_cast<double>(per_minute)), max_addresses_(std::max<size_t>(max_addresses, 1)) {}

void FailedAuthLimiter::Refill(Bucket& b, Clock::time_point now) const {
  const double minutes = std::chrono::duration<double>(now - b.at).count() / 60.0;
  if (minutes > 0) {
    b.tokens = std::min(per_minute_, b.tokens + minutes * per_minute_);
    b.at = now;
  }
}

std::int64_t FailedAuthLimiter::RetryAfter(const std::string& address, Clock::time_point now) {
  if (per_minute_ <= 0) return 0;
  std::lock_guard lock(mu_);
  auto it = buckets_.find(address);
  if (it == buckets_.end()) return 0;
  Refill(it->second, now);
  if (it->second.tokens >= 1) return 0;
  return static_cast<std::int64_t>(std::ceil((1 - it->second.tokens) * 60.0 / per_minute_));
}

void FailedAuthLimiter::Failed(const std::string& address, Clock::time_point now) {
  if (per_minute_ <= 0) return;
  std::lock_guard lock(mu_);
  auto it = buckets_.find(address);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_addresses_) Prune(now);
    it = buckets_.emplace(address, Bucket{per_minute_, now}).first;
  }
  Refill(it->second, now);
  it->second.tokens = std::max(0.0, it->second.tokens - 1);
}

void FailedAuthLimiter::Prune(Clock::time_point now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    Refill(it->second, now);
    it = it->second.tokens >= per_minute_ ? buckets_.erase(it) : std::next(it);
  }
  // Still full: every tracked address is failing now; forget the one nearest to full.
  if (buckets_.size() >= max_addresses_) {
    auto most = std::max_element(buckets_.begin(), buckets_.end(), [](const auto& a, const auto& b) {
      return a.second.tokens < b.second.tokens;
    });
    buckets_.erase(most);
  }
}

size_t FailedAuthLimiter::tracked() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace paddock
