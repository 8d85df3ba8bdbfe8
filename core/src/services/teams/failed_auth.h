// FailedAuthLimiter: a token bucket per source address for failed authentications, so that a
// client guessing keys is slowed to `per_minute` tries, whatever keys it sends.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace paddock {

class FailedAuthLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  // per_minute: tries refilled per minute, and the burst; 0: no limit. max_addresses bounds the
  // table: past it, full buckets (addresses that are not failing now) are forgotten first.
  explicit FailedAuthLimiter(std::int64_t per_minute, size_t max_addresses = 100000);

  // Seconds until `address` may try again: 0 when it may now.
  std::int64_t RetryAfter(const std::string& address, Clock::time_point now = Clock::now());
  // Takes one try from the address's bucket.
  void Failed(const std::string& address, Clock::time_point now = Clock::now());
  size_t tracked() const;

 private:
  struct Bucket {
    double tokens;
    Clock::time_point at;
  };
  void Refill(Bucket& b, Clock::time_point now) const;
  void Prune(Clock::time_point now);

  double per_minute_;
  size_t max_addresses_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace paddock
