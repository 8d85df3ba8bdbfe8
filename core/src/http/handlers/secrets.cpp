// /api/secrets: a team's secrets. Values go in and are never shown again.
#include <Poco/JSON/Array.h>

#include "http/exchange.h"
#include "http/handlers.h"
#include "http/render.h"
#include "services/app.h"
#include "services/secrets/secret_service.h"
#include "services/teams/team_service.h"

namespace paddock::handlers {
namespace {

// The team of the request: the caller's, or an operator's ?team_id=.
Result<std::string> TeamOfRequest(Exchange& x) {
  PADDOCK_RETURN_IF_ERROR(x.CheckQuery({"team_id"}));
  PADDOCK_ASSIGN_OR_RETURN(std::optional<std::string> team, x.QueryId("team_id"));
  if (!team) return x.principal.team_id;
  // Another team is, to anyone but an operator, a team that does not exist.
  return x.app.teams().CheckVisible(x.principal, Owner::kTeam, *team);
}

}  // namespace

void SetSecret(Exchange& x) {
  Result<std::string> team = TeamOfRequest(x);
  if (!team.ok()) return x.SendError(team.status());
  auto body = x.JsonBody();
  if (!body) return;
  if (Status s = CheckFields(*body, {"value", "vault"}); !s.ok()) return x.SendError(s);
  Result<std::optional<std::string>> value = StringField(*body, "value", kMaxSecretBytes);
  if (!value.ok()) return x.SendError(value.status());
  if (!value->has_value()) return x.SendError(Status::InvalidArgument("field 'value' is required"));
  Result<std::optional<VaultBinding>> vault = VaultField(*body, "vault");
  if (!vault.ok()) return x.SendError(vault.status());
  Result<SecretInfo> info =
      x.app.secrets().Set(*team, x.Param("name"), **value, vault->value_or(VaultBinding{}));
  if (!info.ok()) return x.SendError(info.status());
  x.resource_team = info->team_id;
  x.response.Set("Cache-Control", "no-store");
  x.SendJson(200, RenderSecret(*info));
}

void ListSecrets(Exchange& x) {
  Result<std::string> team = TeamOfRequest(x);
  if (!team.ok()) return x.SendError(team.status());
  Result<std::vector<SecretInfo>> list = x.app.secrets().List(*team);
  if (!list.ok()) return x.SendError(list.status());
  Poco::JSON::Array::Ptr items = new Poco::JSON::Array();
  for (const SecretInfo& s : *list) items->add(RenderSecret(s));
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("secrets", items);
  x.SendJson(200, o);
}

void DeleteSecret(Exchange& x) {
  Result<std::string> team = TeamOfRequest(x);
  if (!team.ok()) return x.SendError(team.status());
  if (Status s = x.app.secrets().Delete(*team, x.Param("name")); !s.ok()) return x.SendError(s);
  x.resource_team = *team;
  x.SendEmpty(204);
}

}  // namespace paddock::handlers
