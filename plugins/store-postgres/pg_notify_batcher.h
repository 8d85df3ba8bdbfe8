// NotifyBatcher: one NOTIFY per burst of appends to a session, not one per event.
//
// Every paddock process LISTENs on the store's channel, and each notification wakes every
// listening backend and its client: on a small machine that doubled an append's time. Event
// streams read every event up to the seq they are told of, so telling them the last seq of a
// burst is enough. The first append to a session in a window notifies in its own statement (a
// lone event is delivered at once); the appends that follow within the window stay quiet, and
// when the window closes the newest of them is notified from this thread. A stream in another
// process sees a burst's events at most one window late, and is woken once per window.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "paddock/logger.h"
#include "pg_db.h"

namespace paddock::plugins::store_postgres {

class NotifyBatcher {
 public:
  // window 0: every append notifies for itself.
  NotifyBatcher(PgPool& pool, std::string channel, std::chrono::milliseconds window, Logger& logger);
  ~NotifyBatcher();

  void Start();
  // Notifies what is pending, then ends the thread.
  void Stop();

  // True when an append to `session` now should notify in its own statement; it then counts as
  // the window's notification.
  bool Loud(std::string_view session);
  // A quiet append of `session` committed `seq`: notified when the window closes.
  void Quiet(std::string_view session, std::int64_t seq);

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    Clock::time_point notified{};
    std::int64_t pending = 0;  // the newest quiet seq not notified yet; 0: none
  };
  void Loop();
  // Takes the pending seqs whose window closed by `now` (all, with `all`), marking them notified.
  std::vector<std::pair<std::string, std::int64_t>> TakeDueLocked(Clock::time_point now, bool all);
  // Sends them; what could not be sent is pending again.
  void Send(const std::vector<std::pair<std::string, std::int64_t>>& due);
  void ForgetStaleLocked(Clock::time_point now);

  PgPool& pool_;
  const std::string channel_;
  const std::chrono::milliseconds window_;
  Logger& logger_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, Entry> sessions_;  // under mu_
  static constexpr size_t kForgetAbove = 4096;
  size_t forget_at_ = kForgetAbove;  // under mu_: prune past this size
  bool stopping_ = false;            // under mu_
  std::thread thread_;
};

}  // namespace paddock::plugins::store_postgres
