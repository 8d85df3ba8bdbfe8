// AppendShare: each session's bounded share of the store's write rate. A token bucket per
// session, refilled at `events_per_second` and `bytes_per_second` and holding one second of
// each; an append that finds its session's bucket empty waits for it to refill. The wait is on
// the appending thread (a run's turn), so a session that floods slows itself — its command
// blocks on a full pipe — while other sessions' appends find the store free.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace paddock {

class AppendShare {
 public:
  // 0 for either rate: that rate is not limited.
  AppendShare(double events_per_second, double bytes_per_second);

  // Takes one event of `bytes` from the session's bucket and returns how long the caller must
  // wait before appending it (zero while the session is within its share).
  std::chrono::nanoseconds Take(std::string_view session_id, std::size_t bytes);

  // Take, then sleeps that long. Returns the time waited.
  std::chrono::nanoseconds Wait(std::string_view session_id, std::size_t bytes);

 private:
  using Clock = std::chrono::steady_clock;
  struct Bucket {
    double events = 0;  // tokens; negative: owed
    double bytes = 0;
    Clock::time_point at{};
  };
  void Prune(Clock::time_point now);  // forgets full buckets (idle sessions)

  const double events_rate_;
  const double bytes_rate_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  Clock::time_point pruned_at_{};
};

}  // namespace paddock
