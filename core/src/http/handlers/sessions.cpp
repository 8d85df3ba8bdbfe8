// /api/sessions, messages, runs
#include <Poco/JSON/Array.h>

#include "http/exchange.h"
#include "http/handlers.h"
#include "http/render.h"
#include "paddock/json.h"
#include "services/app.h"
#include "services/sessions/session_service.h"

namespace paddock::handlers {
namespace {

// The Idempotency-Key header ("" when absent), checked by the service.
std::string IdempotencyKeyOf(const Exchange& x) {
  const std::string* key = x.request.Header("Idempotency-Key");
  return key ? *key : std::string();
}

void MarkReplay(Exchange& x, bool replayed) {
  if (replayed) x.response.Set("Idempotent-Replayed", "true");
}

// The error; over a quota, 429 with Retry-After and the quota's name in details.
void SendRefusal(Exchange& x, const Status& status, const QuotaRefusal& refused) {
  if (refused.quota.empty()) return x.SendError(status);
  x.response.Set("Retry-After", std::to_string(refused.retry_after_s));
  Poco::JSON::Object::Ptr details = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  details->set("quota", refused.quota);
  details->set("retry_after_seconds", refused.retry_after_s);
  x.SendError(429, StatusCodeName(status.code()), status.message(), details);
}

}  // namespace

void CreateSession(Exchange& x) {
  auto body = x.JsonBody();
  if (!body) return;
  if (Status s = CheckFields(*body, {"agent_id"}); !s.ok()) return x.SendError(s);
  Result<std::optional<std::string>> agent_id = StringField(*body, "agent_id", 200);
  if (!agent_id.ok()) return x.SendError(agent_id.status());
  if (!agent_id->has_value() || (*agent_id)->empty()) {
    return x.SendError(Status::InvalidArgument("field 'agent_id' is required"));
  }
  QuotaRefusal refused;
  Result<Idempotent<Session>> session =
      x.app.sessions().Create(x.principal, **agent_id, IdempotencyKeyOf(x), &refused);
  if (!session.ok()) return SendRefusal(x, session.status(), refused);
  x.resource_team = session->value.team_id;
  x.response.Set("Location", "/api/sessions/" + session->value.id);
  MarkReplay(x, session->replayed);
  x.SendJson(201, RenderSession(session->value));
}

void ListSessions(Exchange& x) {
  if (Status s = x.CheckQuery({"agent_id", "status", "limit", "cursor"}); !s.ok()) return x.SendError(s);
  Result<std::int64_t> limit = x.QueryInt("limit", 50, 1, 1000);
  if (!limit.ok()) return x.SendError(limit.status());
  Result<std::string> cursor = x.QueryCursor();
  if (!cursor.ok()) return x.SendError(cursor.status());
  Result<std::optional<std::string>> agent_id = x.QueryId("agent_id");
  if (!agent_id.ok()) return x.SendError(agent_id.status());
  SessionFilter filter;
  filter.page = PageRequest{static_cast<int>(*limit), *cursor};
  filter.agent_id = agent_id->value_or("");
  filter.team_id = x.principal.ListTeam();
  if (auto status = x.Query("status")) {
    filter.status = ParseSessionStatus(*status);
    if (!filter.status) {
      return x.SendError(Status::InvalidArgument(
          "query parameter 'status' must be one of provisioning, ready, running, suspended, closed, failed"));
    }
  }
  Result<Page<Session>> sessions = x.app.sessions().List(filter);
  if (!sessions.ok()) return x.SendError(sessions.status());
  std::string out = "{\"sessions\":[";
  for (size_t i = 0; i < sessions->items.size(); ++i) {
    if (i) out += ',';
    out += RenderSessionJson(sessions->items[i], x.app.redactor());
  }
  out += "],\"next_cursor\":" +
         (sessions->next_cursor.empty() ? std::string("null") : JsonQuote(sessions->next_cursor)) + "}";
  x.SendRawJson(200, out);
}

void GetSession(Exchange& x) {
  Result<Session> session = x.app.sessions().Get(x.Param("id"));
  if (!session.ok()) return x.SendError(session.status());
  x.SendRawJson(200, RenderSessionJson(*session, x.app.redactor()));
}

void DeleteSession(Exchange& x) {
  if (Status s = x.CheckQuery({"purge"}); !s.ok()) return x.SendError(s);
  const std::string purge = x.Query("purge").value_or("false");
  if (purge != "true" && purge != "false") {
    return x.SendError(Status::InvalidArgument("query parameter 'purge' must be true or false"));
  }
  if (purge == "true") {
    if (Status s = x.app.sessions().Purge(x.Param("id")); !s.ok()) return x.SendError(s);
    x.SendEmpty(204);
    return;
  }
  Result<Session> session = x.app.sessions().Close(x.Param("id"));
  if (!session.ok()) return x.SendError(session.status());
  x.SendJson(200, RenderSession(*session));
}

void SendMessage(Exchange& x) {
  auto body = x.JsonBody();
  if (!body) return;
  if (Status s = CheckFields(*body, {"content", "on_busy"}); !s.ok()) return x.SendError(s);
  Result<std::optional<std::string>> content = StringField(*body, "content", 1 << 20);
  if (!content.ok()) return x.SendError(content.status());
  if (!content->has_value() || (*content)->empty()) {
    return x.SendError(Status::InvalidArgument("field 'content' is required and must not be empty"));
  }
  Result<std::optional<std::string>> on_busy_text = StringField(*body, "on_busy", 32);
  if (!on_busy_text.ok()) return x.SendError(on_busy_text.status());
  OnBusy on_busy = OnBusy::kQueue;
  if (on_busy_text->has_value()) {
    const std::string& v = **on_busy_text;
    if (v == "reject") {
      on_busy = OnBusy::kReject;
    } else if (v == "interrupt") {
      on_busy = OnBusy::kInterrupt;
    } else if (v != "queue") {
      return x.SendError(Status::InvalidArgument("field 'on_busy' must be queue, reject or interrupt"));
    }
  }
  QuotaRefusal refused;
  Result<Idempotent<Run>> run =
      x.app.sessions().Send(x.Param("id"), **content, on_busy, IdempotencyKeyOf(x), &refused);
  if (!run.ok()) return SendRefusal(x, run.status(), refused);
  MarkReplay(x, run->replayed);
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("run_id", run->value.id);
  o->set("run", RenderRun(run->value));
  x.SendJson(202, o);
}

void Transcript(Exchange& x) {
  Result<std::vector<TranscriptEntry>> t = x.app.sessions().Transcript(x.Param("id"));
  if (!t.ok()) return x.SendError(t.status());
  Poco::JSON::Array::Ptr items = new Poco::JSON::Array();
  for (const TranscriptEntry& e : *t) items->add(RenderTranscriptEntry(e));
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object();
  o->set("messages", items);
  x.SendJson(200, o);
}

void ListRuns(Exchange& x) {
  if (Status s = x.CheckQuery({"limit"}); !s.ok()) return x.SendError(s);
  Result<std::int64_t> limit = x.QueryInt("limit", 100, 1, 1000);
  if (!limit.ok()) return x.SendError(limit.status());
  Result<std::vector<Run>> runs = x.app.sessions().Runs(x.Param("id"), static_cast<int>(*limit));
  if (!runs.ok()) return x.SendError(runs.status());
  Poco::JSON::Array::Ptr items = new Poco::JSON::Array();
  for (const Run& r : *runs) items->add(RenderRun(r));
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object();
  o->set("runs", items);
  x.SendJson(200, o);
}

void CancelRun(Exchange& x) {
  auto body = x.JsonBody(/*required=*/false);
  if (!body) return;
  if (Status s = CheckFields(*body, {}); !s.ok()) return x.SendError(s);
  Result<Run> run = x.app.sessions().CancelRun(x.Param("id"), x.Param("run_id"));
  if (!run.ok()) return x.SendError(run.status());
  x.SendJson(202, RenderRun(*run));
}

}  // namespace paddock::handlers
