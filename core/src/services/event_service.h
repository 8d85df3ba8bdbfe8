// EventService: the only way events enter a session's log. It redacts secret values, appends
// to the store (which assigns the gap-free seq), and only then wakes anyone waiting.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "paddock/session_store.h"

namespace paddock {

class Metrics;
class Redactor;

// Thread safety: every method may be called concurrently.
class EventService {
 public:
  EventService(SessionStore& store, const Redactor& redactor, Metrics& metrics);

  // Appends an event. `data` must be a JSON object (kInvalidArgument otherwise); every string
  // in it is redacted before it is stored.
  Result<Event> Append(std::string_view session_id, std::string_view run_id, std::string_view type,
                       std::string_view data);

  // Checks and redacts an event for a store write that appends it together with other changes
  // (EnqueueRun, FinishRun); pass the stored result to Published() afterwards.
  Result<NewEvent> Prepare(std::string_view run_id, std::string_view type, std::string_view data) const;

  // Tells waiters about an event the store appended as part of another write.
  void Published(const Event& event);

  // Drops what this process remembers of the session (its newest seq), e.g. once it is closed;
  // waiters then fall back to their periodic re-read.
  void Forget(std::string_view session_id);

  Result<std::vector<Event>> List(std::string_view session_id, std::int64_t after_seq, int limit);

  // Blocks until an event with seq > after_seq was appended to the session by this process,
  // `timeout` passes, or Shutdown() is called. Returns true when woken by a new event.
  bool WaitForNewer(const std::string& session_id, std::int64_t after_seq, std::chrono::milliseconds timeout);

  const Redactor& redactor() const { return redactor_; }

  // Wakes every waiter; later waits return at once.
  void Shutdown();
  bool shutting_down() const;

 private:
  SessionStore& store_;
  const Redactor& redactor_;
  Metrics& metrics_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::int64_t, std::less<>> latest_;  // session -> newest seq seen
  bool shutdown_ = false;
};

// The data of a "run.finished" event.
std::string RunFinishedData(RunStatus status, std::optional<int> exit_code, std::string_view error);

// `json` (an object) with every string value redacted, re-serialised. kInvalidArgument when it
// is not a JSON object.
Result<std::string> RedactJsonObject(std::string_view json, const Redactor& redactor);

}  // namespace paddock
