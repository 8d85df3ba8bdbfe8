// /api/agents
#include <Poco/JSON/Array.h>

#include "http/exchange.h"
#include "http/handlers.h"
#include "http/render.h"
#include "services/app.h"
#include "services/sessions/agent_service.h"

namespace paddock::handlers {
namespace {

// Reads the agent fields of a create or patch body.
Result<AgentFields> ParseAgentFields(const Poco::JSON::Object& body) {
  PADDOCK_RETURN_IF_ERROR(
      CheckFields(body, {"name", "harness", "model", "prompt", "env", "run_timeout_seconds",
                         "idle_timeout_seconds", "profile", "secrets"}));
  AgentFields f;
  PADDOCK_ASSIGN_OR_RETURN(f.name, StringField(body, "name", 200));
  PADDOCK_ASSIGN_OR_RETURN(f.harness, StringField(body, "harness", 100));
  PADDOCK_ASSIGN_OR_RETURN(f.model, StringField(body, "model", 200));
  PADDOCK_ASSIGN_OR_RETURN(f.prompt, StringField(body, "prompt", 65536));
  PADDOCK_ASSIGN_OR_RETURN(f.env, StringMapField(body, "env"));
  PADDOCK_ASSIGN_OR_RETURN(f.run_timeout_seconds, IntField(body, "run_timeout_seconds"));
  PADDOCK_ASSIGN_OR_RETURN(f.profile, StringField(body, "profile", 100));
  PADDOCK_ASSIGN_OR_RETURN(f.secrets, SecretRefsField(body, "secrets"));
  if (body.has("idle_timeout_seconds") && body.isNull("idle_timeout_seconds")) {
    f.idle_timeout_seconds.emplace(std::nullopt);  // back to the server's default
  } else {
    PADDOCK_ASSIGN_OR_RETURN(std::optional<std::int64_t> idle, IntField(body, "idle_timeout_seconds"));
    if (idle) f.idle_timeout_seconds.emplace(idle);
  }
  return f;
}

}  // namespace

void CreateAgent(Exchange& x) {
  auto body = x.JsonBody();
  if (!body) return;
  Result<AgentFields> fields = ParseAgentFields(*body);
  if (!fields.ok()) return x.SendError(fields.status());
  Result<Agent> agent = x.app.agents().Create(*fields, x.principal.team_id);
  if (!agent.ok()) return x.SendError(agent.status());
  x.resource_team = agent->team_id;
  x.response.Set("Location", "/api/agents/" + agent->id);
  x.SendJson(201, RenderAgent(*agent));
}

void ListAgents(Exchange& x) {
  if (Status s = x.CheckQuery({"limit", "cursor"}); !s.ok()) return x.SendError(s);
  Result<std::int64_t> limit = x.QueryInt("limit", 50, 1, 1000);
  if (!limit.ok()) return x.SendError(limit.status());
  Result<std::string> cursor = x.QueryCursor();
  if (!cursor.ok()) return x.SendError(cursor.status());
  PageRequest page{static_cast<int>(*limit), *cursor};
  Result<Page<Agent>> agents = x.app.agents().List(x.principal.ListTeam(), page);
  if (!agents.ok()) return x.SendError(agents.status());
  Poco::JSON::Array::Ptr items = new Poco::JSON::Array();
  for (const Agent& a : agents->items) items->add(RenderAgent(a));
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("agents", items);
  o->set("next_cursor",
         agents->next_cursor.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(agents->next_cursor));
  x.SendJson(200, o);
}

void GetAgent(Exchange& x) {
  Result<Agent> agent = x.app.agents().Get(x.Param("id"));
  if (!agent.ok()) return x.SendError(agent.status());
  x.SendJson(200, RenderAgent(*agent));
}

void UpdateAgent(Exchange& x) {
  auto body = x.JsonBody();
  if (!body) return;
  Result<AgentFields> fields = ParseAgentFields(*body);
  if (!fields.ok()) return x.SendError(fields.status());
  Result<Agent> agent = x.app.agents().Update(x.Param("id"), *fields);
  if (!agent.ok()) return x.SendError(agent.status());
  x.SendJson(200, RenderAgent(*agent));
}

void DeleteAgent(Exchange& x) {
  Status s = x.app.agents().Delete(x.Param("id"));
  if (!s.ok()) return x.SendError(s);
  x.SendEmpty(204);
}

}  // namespace paddock::handlers
