#include "services/events/event_service.h"

#include "services/teams/authenticator.h"

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

EventService::EventService(SessionStore& store, const Redactor& redactor, Metrics& metrics,
                           double append_rate, double append_bytes_rate)
    : store_(store), redactor_(redactor), metrics_(metrics), share_(append_rate, append_bytes_rate) {}

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

NewEvent EventService::Prepare(std::string_view run_id, const CoreEvent& event) const {
  NewEvent e;
  e.run_id = std::string(run_id);
  e.type = std::string(event.type);
  std::ostringstream out;
  if (redactor_.empty()) {
    event.data->stringify(out);
  } else {
    Poco::JSON::Stringifier::stringify(RedactJson(Poco::Dynamic::Var(event.data), redactor_), out, 0, -1,
                                       Poco::JSON_WRAP_STRINGS);
  }
  e.data = out.str();
  return e;
}

Result<Event> EventService::Append(std::string_view session_id, std::string_view run_id,
                                   const CoreEvent& event, std::int64_t generation) {
  NewEvent e = Prepare(run_id, event);
  e.generation = generation;
  return AppendPrepared(session_id, std::move(e));
}

Result<Event> EventService::Append(std::string_view session_id, std::string_view run_id,
                                   std::string_view type, std::string_view data, std::int64_t generation) {
  PADDOCK_ASSIGN_OR_RETURN(NewEvent e, Prepare(run_id, type, data));
  e.generation = generation;
  return AppendPrepared(session_id, std::move(e));
}

Result<Event> EventService::AppendPrepared(std::string_view session_id, NewEvent e) {
  if (auto waited = share_.Wait(session_id, e.data.size()); waited.count() > 0)
    metrics_.AppendWaited(std::chrono::duration<double>(waited).count());
  PADDOCK_ASSIGN_OR_RETURN(Event stored, store_.AppendEvent(session_id, e));
  Published(stored);
  return stored;
}

void EventService::Published(const Event& event) {
  metrics_.EventsAppended(1);
  if (EventHub* hub = hub_.load()) hub->Offer(event);
}

void EventService::AttachHub(EventHub* hub) { hub_.store(hub); }

void EventService::OnAppended(std::string_view session_id, std::int64_t seq) noexcept {
  if (EventHub* hub = hub_.load()) hub->OnAppended(session_id, seq);
}

void EventService::OnFeedState(bool live) noexcept {
  live_.store(live);
  if (EventHub* hub = hub_.load()) hub->OnFeedState(live);
  if (Authenticator* auth = auth_.load()) auth->OnFeedState(live);
}

void EventService::OnKeyRevoked(std::string_view key_id) noexcept {
  if (Authenticator* auth = auth_.load()) auth->OnKeyRevoked(key_id);
}

Result<std::vector<Event>> EventService::List(std::string_view session_id, std::int64_t after_seq,
                                              int limit) {
  return store_.ListEvents(session_id, after_seq, limit);
}

}  // namespace paddock
