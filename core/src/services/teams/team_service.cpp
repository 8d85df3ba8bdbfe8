#include "services/teams/team_service.h"

#include "services/teams/api_key.h"
#include "util/ids.h"

namespace paddock {
namespace {

Status Missing(std::string_view what, const std::string& id) {
  return Status::NotFound(std::string(what) + " '" + id + "' does not exist");
}

}  // namespace

bool IsTeamId(std::string_view id) {
  if (id.empty() || id.size() > 63 || !(id[0] >= 'a' && id[0] <= 'z')) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return id.back() != '-';
}

Result<std::string> TeamService::CheckVisible(const Principal& who, Owner owner, const std::string& id) {
  auto visible = [&](const std::string& team, std::string_view what) -> Result<std::string> {
    if (!who.Sees(team)) return Missing(what, id);
    return team;
  };
  switch (owner) {
    case Owner::kNone:
      return who.team_id;
    case Owner::kAgent: {
      PADDOCK_ASSIGN_OR_RETURN(Agent a, store_.GetAgent(id));
      return visible(a.team_id, "agent");
    }
    case Owner::kSession: {
      PADDOCK_ASSIGN_OR_RETURN(Session s, store_.GetSession(id));
      return visible(s.team_id, "session");
    }
    case Owner::kKey: {
      PADDOCK_ASSIGN_OR_RETURN(ApiKey k, store_.GetApiKey(id));
      return visible(k.team_id, "key");
    }
    case Owner::kTeam:
      if (!who.Sees(id)) return Missing("team", id);
      PADDOCK_RETURN_IF_ERROR(store_.GetTeam(id).status());
      return id;
  }
  return who.team_id;
}

Status CheckProfileAllowed(const Team& team, const std::string& profile) {
  if (team.profiles.empty()) return Status::Ok();
  for (const std::string& p : team.profiles) {
    if (p == profile) return Status::Ok();
  }
  std::string allowed;
  for (const std::string& p : team.profiles) allowed += (allowed.empty() ? "" : ", ") + p;
  return Status::PermissionDenied("team '" + team.id + "' may not use the sandbox profile '" + profile +
                                  "'; its profiles: " + allowed);
}

Result<Team> TeamService::CreateTeam(const std::string& id, const std::string& name) {
  if (!IsTeamId(id)) {
    return Status::InvalidArgument(
        "field 'id' must be 1-63 of a-z, 0-9 and '-', starting with a letter and not "
        "ending with '-' (it names Kubernetes namespaces and metric labels)");
  }
  if (name.size() > 200) return Status::InvalidArgument("field 'name' must be at most 200 characters");
  Team t{id, name.empty() ? id : name, NowMs(), {}, {}};
  PADDOCK_RETURN_IF_ERROR(store_.CreateTeam(t));
  return t;
}

Result<Team> TeamService::UpdateTeam(const std::string& id, const TeamPatch& patch,
                                     const std::set<std::string, std::less<>>& configured) {
  PADDOCK_ASSIGN_OR_RETURN(Team t, store_.GetTeam(id));
  if (patch.name) {
    if (patch.name->empty() || patch.name->size() > 200)
      return Status::InvalidArgument("field 'name' must be 1-200 characters");
    t.name = *patch.name;
  }
  if (patch.profiles) {
    std::set<std::string, std::less<>> seen;
    for (const std::string& p : *patch.profiles) {
      if (!configured.count(p)) {
        std::string known;
        for (const auto& c : configured) known += (known.empty() ? "" : ", ") + c;
        return Status::InvalidArgument("field 'profiles': '" + p +
                                       "' is not a configured profile; configured: " + known);
      }
      if (!seen.insert(p).second) return Status::InvalidArgument("field 'profiles' names '" + p + "' twice");
    }
    t.profiles = *patch.profiles;
  }
  for (const auto& [name, value] : patch.quotas) {
    std::optional<std::int64_t>* field = name == "sandboxes"          ? &t.quotas.sandboxes
                                         : name == "open_sessions"    ? &t.quotas.open_sessions
                                         : name == "runs_per_minute"  ? &t.quotas.runs_per_minute
                                         : name == "tokens_per_day"   ? &t.quotas.tokens_per_day
                                         : name == "cost_per_day_usd" ? &t.quotas.cost_per_day_microusd
                                                                      : nullptr;
    if (!field || (value && *value < 0))
      return Status::InvalidArgument("field 'quotas': no quota '" + name + "'");
    *field = value;
  }
  PADDOCK_RETURN_IF_ERROR(store_.UpdateTeam(t));
  return t;
}

Result<Team> TeamService::GetTeam(const Principal& who, const std::string& id) {
  if (!who.Sees(id)) return Missing("team", id);
  return store_.GetTeam(id);
}

Result<Page<Team>> TeamService::ListTeams(const Principal& who, const PageRequest& page) {
  if (who.IsOperator()) return store_.ListTeams(page);
  Page<Team> own;
  if (page.cursor.empty() || who.team_id < page.cursor) {
    PADDOCK_ASSIGN_OR_RETURN(Team t, store_.GetTeam(who.team_id));
    own.items.push_back(std::move(t));
  }
  return own;
}

Result<CreatedKey> TeamService::CreateKey(const Principal& who, const NewKeyRequest& request) {
  const std::string team = request.team_id.empty() ? who.team_id : request.team_id;
  if (!who.Sees(team)) return Missing("team", team);
  if (!who.AtLeast(Role::kAdmin)) return Status::PermissionDenied("only a team's admins make its keys");
  if (request.role == Role::kOperator && !who.IsOperator())
    return Status::PermissionDenied("only an operator makes operator keys");
  if (request.name.empty() || request.name.size() > 200)
    return Status::InvalidArgument("field 'name' must be 1-200 characters (whose key it is, or what for)");
  if (request.expires_at != 0 && request.expires_at <= NowMs())
    return Status::InvalidArgument("field 'expires_at' must be in the future");
  NewKeyText text = GenerateKey();
  CreatedKey out;
  out.key = std::move(text.key);
  ApiKey& k = out.record;
  k.id = NewId("key");
  k.team_id = team;
  k.name = request.name;
  k.role = request.role;
  k.prefix = text.prefix;
  k.hash = text.hash;
  k.created_at = NowMs();
  k.expires_at = request.expires_at;
  PADDOCK_RETURN_IF_ERROR(store_.CreateApiKey(k));
  return out;
}

Result<ApiKey> TeamService::GetKey(const Principal& who, const std::string& id) {
  PADDOCK_ASSIGN_OR_RETURN(ApiKey k, store_.GetApiKey(id));
  if (!who.Sees(k.team_id)) return Missing("key", id);
  return k;
}

Result<Page<ApiKey>> TeamService::ListKeys(const Principal& who, const std::string& team_filter,
                                           const PageRequest& page) {
  std::string team = who.ListTeam();
  if (!team_filter.empty()) {
    if (!who.Sees(team_filter)) return Missing("team", team_filter);
    team = team_filter;
  }
  return store_.ListApiKeys(team, page);
}

Result<ApiKey> TeamService::RevokeKey(const Principal& who, const std::string& id) {
  PADDOCK_ASSIGN_OR_RETURN(ApiKey k, GetKey(who, id));
  if (k.role == Role::kOperator && !who.IsOperator())
    return Status::PermissionDenied("only an operator revokes an operator key");
  PADDOCK_RETURN_IF_ERROR(store_.RevokeApiKey(id, NowMs()));
  return store_.GetApiKey(id);
}

}  // namespace paddock
