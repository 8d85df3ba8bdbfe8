// EventService: the only way events enter a session's log. It redacts secret values, appends
// to the store (which assigns the gap-free seq), and only then wakes anyone waiting.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "paddock/events.h"
#include "paddock/session_store.h"

namespace paddock {

class EventHub;
class Metrics;
class Redactor;

// Thread safety: every method may be called concurrently.
class EventService final : public EventFeed {
 public:
  EventService(SessionStore& store, const Redactor& redactor, Metrics& metrics);

  // Appends an event. `data` must be a JSON object (kInvalidArgument otherwise); every string
  // in it is redacted before it is stored. A non-zero `generation` fences the append by the
  // run's lease (kAborted once the run has moved on).
  Result<Event> Append(std::string_view session_id, std::string_view run_id, std::string_view type,
                       std::string_view data, std::int64_t generation = 0);

  // Checks and redacts an event for a store write that appends it together with other changes
  // (EnqueueRun, FinishRun); pass the stored result to Published() afterwards.
  Result<NewEvent> Prepare(std::string_view run_id, std::string_view type, std::string_view data) const;

  // Counts an event the store appended as part of another write and wakes its waiters.
  void Published(const Event& event);

  Result<std::vector<Event>> List(std::string_view session_id, std::int64_t after_seq, int limit);

  // Blocks until an event with seq > after_seq is known to be in the session's log (appended by
  // any process sharing the store), `timeout` passes, the store's notifications come back after
  // an outage (so the caller must re-read), or Shutdown() is called. Returns true when the
  // caller should re-read. While notifications are down, waits last at most poll_interval.
  bool WaitForNewer(const std::string& session_id, std::int64_t after_seq, std::chrono::milliseconds timeout);

  // EventFeed, called by the store.
  void OnAppended(std::string_view session_id, std::int64_t seq) noexcept override;
  void OnFeedState(bool live) noexcept override;
  bool feed_live() const;

  const Redactor& redactor() const { return redactor_; }

  // Every append from now on is also announced to `hub` (the process's stream fan-out);
  // nullptr detaches it. REQUIRES: the hub outlives the attachment.
  void AttachHub(EventHub* hub);

  // Wakes every waiter; later waits return at once.
  void Shutdown();
  bool shutting_down() const;

  static constexpr std::chrono::milliseconds kPollInterval{500};

 private:
  struct Latest {
    std::int64_t seq = 0;
    int waiters = 0;
    std::int64_t touched_ms = 0;
  };
  void NoteLocked(std::string_view session_id, std::int64_t seq);
  void Wake(std::string_view session_id, std::int64_t seq) noexcept;

  SessionStore& store_;
  const Redactor& redactor_;
  Metrics& metrics_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // session -> newest seq heard of. Entries nobody waits on are dropped once idle for a minute
  // (checked when the map has doubled), so it does not grow with every session ever seen.
  std::map<std::string, Latest, std::less<>> latest_;
  size_t prune_at_ = 1024;
  bool live_ = false;           // the store's notifications are flowing
  std::uint64_t catch_up_ = 0;  // bumped when they come back: waiters re-read
  bool shutdown_ = false;
  std::atomic<EventHub*> hub_{nullptr};
};

// `json` (an object) with every string value redacted, re-serialised. kInvalidArgument when it
// is not a JSON object.
Result<std::string> RedactJsonObject(std::string_view json, const Redactor& redactor);

}  // namespace paddock
