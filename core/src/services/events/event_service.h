// EventService: the only way events enter a session's log. It redacts secret values, appends
// to the store (which assigns the gap-free seq), and only then tells the event hub.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "paddock/events.h"
#include "paddock/session_store.h"
#include "services/events/append_share.h"
#include "services/events/catalogue.h"

namespace paddock {

class Authenticator;

class EventHub;
class Metrics;
class Redactor;

// Thread safety: every method may be called concurrently.
class EventService final : public EventFeed {
 public:
  // Each session's share of the store's write rate ([sessions] append_rate and
  // append_bytes_rate; 0 = unlimited): Append waits while its session is over it.
  EventService(SessionStore& store, const Redactor& redactor, Metrics& metrics, double append_rate = 0,
               double append_bytes_rate = 0);

  // Appends an event, after waiting for the session's share if it is over it. `data` must be a JSON object
  // (kInvalidArgument otherwise); every string in it is redacted before it is stored. A non-zero `generation`
  // fences the append by the run's lease (kAborted once the run has moved on).
  Result<Event> Append(std::string_view session_id, std::string_view run_id, std::string_view type,
                       std::string_view data, std::int64_t generation = 0);

  // The same for an event the core built (catalogue.h): its data is redacted and written out
  // once, never parsed.
  Result<Event> Append(std::string_view session_id, std::string_view run_id, const CoreEvent& event,
                       std::int64_t generation = 0);

  // Checks and redacts an event for a store write that appends it together with other changes
  // (EnqueueRun, FinishRun); pass the stored result to Published() afterwards.
  Result<NewEvent> Prepare(std::string_view run_id, std::string_view type, std::string_view data) const;
  NewEvent Prepare(std::string_view run_id, const CoreEvent& event) const;

  // Counts an event the store appended as part of another write and hands it to the hub.
  void Published(const Event& event);

  Result<std::vector<Event>> List(std::string_view session_id, std::int64_t after_seq, int limit);

  // EventFeed, called by the store: forwarded to the hub (event streams wait there).
  void OnAppended(std::string_view session_id, std::int64_t seq) noexcept override;
  void OnFeedState(bool live) noexcept override;
  // Key revocations and the feed's state, forwarded to the process's Authenticator.
  void OnKeyRevoked(std::string_view key_id) noexcept override;
  bool feed_live() const { return live_.load(); }
  // REQUIRES: called before the store's feed is set (App::Start), and `auth` outlives it.
  void AttachAuthenticator(Authenticator* auth) { auth_.store(auth); }

  const Redactor& redactor() const { return redactor_; }

  // Every append from now on is also announced to `hub` (the process's stream fan-out);
  // nullptr detaches it. REQUIRES: the hub outlives the attachment.
  void AttachHub(EventHub* hub);

 private:
  // The share, the store, the hub: what every append does once its event is ready.
  Result<Event> AppendPrepared(std::string_view session_id, NewEvent e);
  SessionStore& store_;
  const Redactor& redactor_;
  Metrics& metrics_;
  AppendShare share_;
  std::atomic<bool> live_{false};  // the store's notifications are flowing
  std::atomic<EventHub*> hub_{nullptr};
  std::atomic<Authenticator*> auth_{nullptr};
};

// `json` (an object) with every string value redacted, re-serialised. kInvalidArgument when it
// is not a JSON object.
Result<std::string> RedactJsonObject(std::string_view json, const Redactor& redactor);

}  // namespace paddock
