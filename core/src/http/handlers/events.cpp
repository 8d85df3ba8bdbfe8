// /api/sessions/{id}/events and its server-sent-events stream.
#include <chrono>

#include "http/exchange.h"
#include "http/handlers.h"
#include "http/render.h"
#include "services/app.h"
#include "services/event_service.h"

namespace paddock::handlers {
namespace {

constexpr int kPage = 500;
constexpr auto kHeartbeat = std::chrono::seconds(15);

// The seq to resume after: Last-Event-ID wins over ?after=.
Result<std::int64_t> ResumePoint(Exchange& x) {
  if (x.request.has("Last-Event-ID")) {
    const std::string& v = x.request.get("Last-Event-ID");
    std::optional<std::int64_t> n = ParseInt64(v);
    if (!n || *n < 0) {
      return Status::InvalidArgument("Last-Event-ID must be a non-negative integer (an event seq), not '" +
                                     v + "'");
    }
    return *n;
  }
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
  const std::string id = x.Param("id");
  if (Status s = x.app.store().GetSession(id).status(); !s.ok()) return x.SendError(s);

  x.response.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
  x.response.setContentType("text/event-stream");
  x.response.set("Cache-Control", "no-store");
  x.response.set("X-Accel-Buffering", "no");
  x.response.setChunkedTransferEncoding(true);
  x.MarkSent(200);
  std::ostream& out = x.response.send();
  out << "retry: 2000\n\n";
  out.flush();
  EventService& events = x.app.events();
  std::int64_t seq = *after;
  auto last_write = std::chrono::steady_clock::now();
  while (out.good() && !events.shutting_down()) {
    Result<std::vector<Event>> page = events.List(id, seq, kPage);
    if (!page.ok()) {
      out << "event: error\ndata: {\"message\":\"event store unavailable\"}\n\n";
      out.flush();
      return;  // the client reconnects with Last-Event-ID
    }
    for (const Event& e : *page) {
      out << "id: " << e.seq << "\nevent: " << e.type << "\ndata: " << RenderEventJson(e) << "\n\n";
      seq = e.seq;
    }
    if (!page->empty()) {
      out.flush();
      last_write = std::chrono::steady_clock::now();
    }
    if (static_cast<int>(page->size()) == kPage) continue;
    if (std::chrono::steady_clock::now() - last_write >= kHeartbeat) {
      out << ": keep-alive\n\n";
      out.flush();
      last_write = std::chrono::steady_clock::now();
    }
    (void)events.WaitForNewer(id, seq, kHeartbeat);
  }
}

}  // namespace paddock::handlers
