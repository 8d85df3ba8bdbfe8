#include "services/events/event_service.h"

#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <algorithm>
#include <sstream>

#include "metrics/metrics.h"
#include "paddock/json.h"
#include "services/events/event_hub.h"
#include "util/json_redact.h"
#include "util/redactor.h"

namespace paddock {
Result<std::string> RedactJsonObject(std::string_view json, const Redactor& redactor) {
  try {
    Poco::JSON::Parser parser;
    parser.setDepth(64);
    Poco::Dynamic::Var parsed = parser.parse(std::string(json));
    if (parsed.type() != typeid(Poco::JSON::Object::Ptr)) {
      return Status::InvalidArgument("event data must be a JSON object");
    }
    if (redactor.empty()) return std::string(json);
    std::ostringstream out;
    Poco::JSON::Stringifier::stringify(RedactJson(parsed, redactor), out, 0, -1, Poco::JSON_WRAP_STRINGS);
    return out.str();
  } catch (const Poco::Exception& e) {
    return Status::InvalidArgument("event data is not valid JSON: " + e.displayText());
  }
}

EventService::EventService(SessionStore& store, const Redactor& redactor, Metrics& metrics)
    : store_(store), redactor_(redactor), metrics_(metrics) {}

Result<NewEvent> EventService::Prepare(std::string_view run_id, std::string_view type,
                                       std::string_view data) const {
  bool type_ok = !type.empty() && type.size() <= 64;
  for (char c : type) {
    type_ok =
        type_ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-');
  }
  if (!type_ok)
    return Status::InvalidArgument("event type must be 1-64 characters of a-z, 0-9, '.', '_' or '-'");
  NewEvent e;
  e.run_id = std::string(run_id);
  e.type = std::string(type);
  PADDOCK_ASSIGN_OR_RETURN(e.data, RedactJsonObject(data, redactor_));
  return e;
}

Result<Event> EventService::Append(std::string_view session_id, std::string_view run_id,
                                   std::string_view type, std::string_view data, std::int64_t generation) {
  PADDOCK_ASSIGN_OR_RETURN(NewEvent e, Prepare(run_id, type, data));
  e.generation = generation;
  PADDOCK_ASSIGN_OR_RETURN(Event stored, store_.AppendEvent(session_id, e));
  Published(stored);
  return stored;
}

void EventService::Published(const Event& event) {
  metrics_.EventsAppended(1);
  Wake(event.session_id, event.seq);
  if (EventHub* hub = hub_.load()) hub->Offer(event);
}

void EventService::AttachHub(EventHub* hub) { hub_.store(hub); }

void EventService::NoteLocked(std::string_view session_id, std::int64_t seq) {
  const std::int64_t now = NowMs();
  if (latest_.size() >= prune_at_) {
    for (auto it = latest_.begin(); it != latest_.end();) {
      bool idle = it->second.waiters == 0 && now - it->second.touched_ms > 60'000;
      it = idle ? latest_.erase(it) : std::next(it);
    }
    prune_at_ = std::max<size_t>(1024, 2 * latest_.size());
  }
  auto it = latest_.find(session_id);
  if (it == latest_.end()) it = latest_.emplace(std::string(session_id), Latest{}).first;
  if (seq > it->second.seq) it->second.seq = seq;
  it->second.touched_ms = now;
}

void EventService::OnAppended(std::string_view session_id, std::int64_t seq) noexcept {
  Wake(session_id, seq);
  if (EventHub* hub = hub_.load()) hub->OnAppended(session_id, seq);
}

void EventService::Wake(std::string_view session_id, std::int64_t seq) noexcept {
  try {
    {
      std::lock_guard lock(mu_);
      NoteLocked(session_id, seq);
    }
    cv_.notify_all();
  } catch (...) {
    // Out of memory: waiters still re-read when their wait times out.
  }
}

void EventService::OnFeedState(bool live) noexcept {
  {
    std::lock_guard lock(mu_);
    if (live && !live_) ++catch_up_;
    live_ = live;
  }
  cv_.notify_all();
  if (EventHub* hub = hub_.load()) hub->OnFeedState(live);
}

bool EventService::feed_live() const {
  std::lock_guard lock(mu_);
  return live_;
}

Result<std::vector<Event>> EventService::List(std::string_view session_id, std::int64_t after_seq,
                                              int limit) {
  return store_.ListEvents(session_id, after_seq, limit);
}

bool EventService::WaitForNewer(const std::string& session_id, std::int64_t after_seq,
                                std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  auto it = latest_.find(session_id);
  if (it == latest_.end()) it = latest_.emplace(session_id, Latest{}).first;
  Latest& entry = it->second;  // std::map: stays valid while the entry is not erased
  ++entry.waiters;
  const std::uint64_t catch_up = catch_up_;
  if (!live_)
    timeout = std::min(timeout, std::chrono::duration_cast<std::chrono::milliseconds>(kPollInterval));
  cv_.wait_for(lock, timeout, [&] { return shutdown_ || entry.seq > after_seq || catch_up_ != catch_up; });
  --entry.waiters;
  entry.touched_ms = NowMs();
  if (shutdown_) return false;
  return entry.seq > after_seq || catch_up_ != catch_up;
}

void EventService::Shutdown() {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

bool EventService::shutting_down() const {
  std::lock_guard lock(mu_);
  return shutdown_;
}

}  // namespace paddock
