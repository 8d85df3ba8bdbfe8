// /api/me, /api/teams and /api/keys
#include <Poco/JSON/Array.h>

#include "http/exchange.h"
#include "http/handlers.h"
#include "http/render.h"
#include "services/app.h"
#include "services/teams/audit_log.h"
#include "services/teams/browser_sessions.h"
#include "services/teams/quota_service.h"
#include "services/teams/team_service.h"

namespace paddock::handlers {
namespace {

// ?limit= and ?cursor= of a list, after CheckQuery.
Result<PageRequest> PageOf(Exchange& x) {
  PADDOCK_ASSIGN_OR_RETURN(std::int64_t limit, x.QueryInt("limit", 50, 1, 1000));
  PADDOCK_ASSIGN_OR_RETURN(std::string cursor, x.QueryCursor());
  return PageRequest{static_cast<int>(limit), cursor};
}

template <class T, class R>
void SendPage(Exchange& x, const char* name, const Page<T>& page, R render) {
  Poco::JSON::Array::Ptr items = new Poco::JSON::Array();
  for (const T& item : page.items) items->add(render(item));
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set(name, items);
  o->set("next_cursor",
         page.next_cursor.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(page.next_cursor));
  x.SendJson(200, o);
}

}  // namespace

void Me(Exchange& x) {
  if (Status s = x.CheckQuery({}); !s.ok()) return x.SendError(s);
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("key_id", x.principal.key_id);
  o->set("key_name", x.principal.key_name);
  o->set("team_id", x.principal.team_id);
  o->set("role", std::string(ToString(x.principal.role)));
  // Signed in with a session cookie: the token its writes carry (a page reloaded asks again).
  o->set("csrf_token", x.session_cookie.empty()
                           ? Poco::Dynamic::Var()
                           : Poco::Dynamic::Var(x.app.browser_sessions().CsrfOf(x.session_cookie)));
  x.SendJson(200, o);
}

void CreateTeam(Exchange& x) {
  auto body = x.JsonBody();
  if (!body) return;
  if (Status s = CheckFields(*body, {"id", "name"}); !s.ok()) return x.SendError(s);
  Result<std::optional<std::string>> id = StringField(*body, "id", 100);
  if (!id.ok()) return x.SendError(id.status());
  if (!id->has_value()) return x.SendError(Status::InvalidArgument("field 'id' is required"));
  Result<std::optional<std::string>> name = StringField(*body, "name", 200);
  if (!name.ok()) return x.SendError(name.status());
  Result<Team> team = x.app.teams().CreateTeam(**id, name->value_or(""));
  if (!team.ok()) return x.SendError(team.status());
  x.resource_team = team->id;
  x.response.Set("Location", "/api/teams/" + team->id);
  x.SendJson(201, RenderTeam(*team));
}

void ListTeams(Exchange& x) {
  if (Status s = x.CheckQuery({"limit", "cursor"}); !s.ok()) return x.SendError(s);
  Result<PageRequest> page = PageOf(x);
  if (!page.ok()) return x.SendError(page.status());
  Result<Page<Team>> teams = x.app.teams().ListTeams(x.principal, *page);
  if (!teams.ok()) return x.SendError(teams.status());
  SendPage(x, "teams", *teams, RenderTeam);
}

void GetTeam(Exchange& x) {
  if (Status s = x.CheckQuery({}); !s.ok()) return x.SendError(s);
  Result<Team> team = x.app.teams().GetTeam(x.principal, x.Param("id"));
  if (!team.ok()) return x.SendError(team.status());
  x.SendJson(200, RenderTeam(*team));
}

void UpdateTeam(Exchange& x) {
  if (Status s = x.CheckQuery({}); !s.ok()) return x.SendError(s);
  auto body = x.JsonBody();
  if (!body) return;
  if (Status s = CheckFields(*body, {"name", "profiles", "quotas"}); !s.ok()) return x.SendError(s);
  TeamPatch patch;
  Result<std::optional<std::string>> name = StringField(*body, "name", 200);
  if (!name.ok()) return x.SendError(name.status());
  patch.name = *name;
  Result<std::optional<std::vector<std::string>>> profiles = StringListField(*body, "profiles", 100, 100);
  if (!profiles.ok()) return x.SendError(profiles.status());
  patch.profiles = *profiles;
  Result<std::optional<QuotaChanges>> quotas = QuotasField(*body, "quotas");
  if (!quotas.ok()) return x.SendError(quotas.status());
  if (*quotas) patch.quotas = std::move(**quotas);
  std::set<std::string, std::less<>> configured;
  for (const ProfileSettings& p : x.app.config().profiles) configured.insert(p.name);
  Result<Team> team = x.app.teams().UpdateTeam(x.Param("id"), patch, configured);
  if (!team.ok()) return x.SendError(team.status());
  x.SendJson(200, RenderTeam(*team));
}

void GetTeamQuotas(Exchange& x) {
  if (Status s = x.CheckQuery({}); !s.ok()) return x.SendError(s);
  Result<std::vector<QuotaLine>> lines = x.app.quotas().Report(x.Param("id"));
  if (!lines.ok()) return x.SendError(lines.status());
  Poco::JSON::Array::Ptr items = new Poco::JSON::Array();
  for (const QuotaLine& l : *lines) items->add(RenderQuota(l));
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("team_id", x.Param("id"));
  o->set("quotas", items);
  x.SendJson(200, o);
}

void CreateKey(Exchange& x) {
  auto body = x.JsonBody();
  if (!body) return;
  if (Status s = CheckFields(*body, {"name", "role", "team_id", "expires_in_seconds"}); !s.ok())
    return x.SendError(s);
  NewKeyRequest req;
  Result<std::optional<std::string>> name = StringField(*body, "name", 200);
  if (!name.ok()) return x.SendError(name.status());
  req.name = name->value_or("");
  Result<std::optional<std::string>> role = StringField(*body, "role", 32);
  if (!role.ok()) return x.SendError(role.status());
  if (role->has_value()) {
    std::optional<Role> r = ParseRole(**role);
    if (!r)
      return x.SendError(Status::InvalidArgument("field 'role' must be viewer, member, admin or operator"));
    req.role = *r;
  }
  Result<std::optional<std::string>> team = StringField(*body, "team_id", 64);
  if (!team.ok()) return x.SendError(team.status());
  req.team_id = team->value_or("");
  Result<std::optional<std::int64_t>> expires = IntField(*body, "expires_in_seconds");
  if (!expires.ok()) return x.SendError(expires.status());
  if (expires->has_value()) {
    if (**expires < 60 || **expires > 10LL * 366 * 86400)
      return x.SendError(
          Status::InvalidArgument("field 'expires_in_seconds' must be 60..316224000 (10 years)"));
    req.expires_at = NowMs() + **expires * 1000;
  }
  Result<CreatedKey> made = x.app.teams().CreateKey(x.principal, req);
  if (!made.ok()) return x.SendError(made.status());
  Poco::JSON::Object::Ptr o = RenderKey(made->record);
  o->set("key", made->key);  // this once
  x.resource_team = made->record.team_id;
  x.response.Set("Location", "/api/keys/" + made->record.id);
  x.response.Set("Cache-Control", "no-store");
  x.SendJson(201, o);
}

void ListKeys(Exchange& x) {
  if (Status s = x.CheckQuery({"team_id", "limit", "cursor"}); !s.ok()) return x.SendError(s);
  Result<PageRequest> page = PageOf(x);
  if (!page.ok()) return x.SendError(page.status());
  Result<std::optional<std::string>> team = x.QueryId("team_id");
  if (!team.ok()) return x.SendError(team.status());
  Result<Page<ApiKey>> keys = x.app.teams().ListKeys(x.principal, team->value_or(""), *page);
  if (!keys.ok()) return x.SendError(keys.status());
  SendPage(x, "keys", *keys, RenderKey);
}

void GetKey(Exchange& x) {
  if (Status s = x.CheckQuery({}); !s.ok()) return x.SendError(s);
  Result<ApiKey> key = x.app.teams().GetKey(x.principal, x.Param("id"));
  if (!key.ok()) return x.SendError(key.status());
  x.SendJson(200, RenderKey(*key));
}

void RevokeKey(Exchange& x) {
  if (Status s = x.CheckQuery({}); !s.ok()) return x.SendError(s);
  Result<ApiKey> key = x.app.teams().RevokeKey(x.principal, x.Param("id"));
  if (!key.ok()) return x.SendError(key.status());
  x.SendJson(200, RenderKey(*key));
}

void ListAudit(Exchange& x) {
  if (Status s = x.CheckQuery({"team_id", "limit", "cursor"}); !s.ok()) return x.SendError(s);
  Result<PageRequest> page = PageOf(x);
  if (!page.ok()) return x.SendError(page.status());
  Result<std::optional<std::string>> team = x.QueryId("team_id");
  if (!team.ok()) return x.SendError(team.status());
  Result<Page<AuditEvent>> entries = x.app.audit().List(x.principal, team->value_or(""), *page);
  if (!entries.ok()) return x.SendError(entries.status());
  SendPage(x, "entries", *entries, RenderAudit);
}

}  // namespace paddock::handlers
