// /api/sessions/{id}/events and its server-sent-events stream.
#include "http/exchange.h"
#include "http/handlers.h"
#include "http/render.h"
#include "services/app.h"
#include "services/events/event_service.h"

namespace paddock::handlers {
namespace {

// The seq to resume after: Last-Event-ID wins over ?after=.
Result<std::int64_t> ResumePoint(Exchange& x) {
  if (const std::string* last = x.request.Header("Last-Event-ID")) return ParseLastEventId(*last);
  return x.QueryInt("after", 0, 0, INT64_MAX);
}

}  // namespace

void ListEvents(Exchange& x) {
  if (Status s = x.CheckQuery({"after", "limit"}); !s.ok()) return x.SendError(s);
  Result<std::int64_t> after = x.QueryInt("after", 0, 0, INT64_MAX);
  if (!after.ok()) return x.SendError(after.status());
  Result<std::int64_t> limit = x.QueryInt("limit", 100, 1, 1000);
  if (!limit.ok()) return x.SendError(limit.status());
  const std::string& id = x.Param("id");
  if (Status s = x.app.store().GetSession(id).status(); !s.ok()) return x.SendError(s);
  Result<std::vector<Event>> events = x.app.events().List(id, *after, static_cast<int>(*limit));
  if (!events.ok()) return x.SendError(events.status());
  std::string out = "{\"events\":[";
  for (size_t i = 0; i < events->size(); ++i) out += (i ? "," : "") + RenderEventJson((*events)[i]);
  std::int64_t next = events->empty() ? *after : events->back().seq;
  out += "],\"next_after\":" + std::to_string(next) +
         ",\"has_more\":" + (static_cast<std::int64_t>(events->size()) == *limit ? "true" : "false") + "}";
  x.SendRawJson(200, out);
}

void StreamEvents(Exchange& x) {
  if (Status s = x.CheckQuery({"after"}); !s.ok()) return x.SendError(s);
  Result<std::int64_t> after = ResumePoint(x);
  if (!after.ok()) return x.SendError(after.status());
  const std::string& id = x.Param("id");
  if (Status s = x.app.store().GetSession(id).status(); !s.ok()) return x.SendError(s);
  // The server writes the stream from here on, fed by the process's event hub.
  x.StartEventStream(id, *after);
}

}  // namespace paddock::handlers
