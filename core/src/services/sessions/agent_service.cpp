#include "services/sessions/agent_service.h"

#include <cctype>

#include "services/teams/team_service.h"
#include "util/ids.h"

namespace paddock {

AgentService::AgentService(SessionStore& store, std::set<std::string, std::less<>> harnesses,
                           std::set<std::string, std::less<>> profiles)
    : store_(store), harnesses_(std::move(harnesses)), profiles_(std::move(profiles)) {}

Status AgentService::Validate(const Agent& a) const {
  if (a.name.empty() || a.name.size() > 200) {
    return Status::InvalidArgument("field 'name' must be 1-200 characters");
  }
  if (!harnesses_.count(a.harness)) {
    std::string loaded;
    for (const auto& h : harnesses_) loaded += (loaded.empty() ? "" : ", ") + h;
    return Status::InvalidArgument("field 'harness': '" + a.harness +
                                   "' is not a loaded harness; loaded: " + loaded);
  }
  if (a.model.size() > 200) return Status::InvalidArgument("field 'model' must be at most 200 characters");
  if (a.prompt.size() > 65536) return Status::InvalidArgument("field 'prompt' must be at most 64KiB");
  if (a.env.size() > 100) return Status::InvalidArgument("field 'env' may hold at most 100 variables");
  for (const auto& [k, v] : a.env) {
    if (!IsEnvName(k)) {
      return Status::InvalidArgument("field 'env': '" + k +
                                     "' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
    }
    if (v.size() > 32768) return Status::InvalidArgument("field 'env': value of '" + k + "' is over 32KiB");
    if (v.find('\0') != std::string::npos) {
      return Status::InvalidArgument("field 'env': value of '" + k + "' contains a NUL character");
    }
  }
  if (a.run_timeout_seconds < 1 || a.run_timeout_seconds > 86400) {
    return Status::InvalidArgument("field 'run_timeout_seconds' must be between 1 and 86400");
  }
  if (!profiles_.count(a.profile)) {
    std::string known;
    for (const auto& p : profiles_) known += (known.empty() ? "" : ", ") + p;
    return Status::InvalidArgument("field 'profile': '" + a.profile +
                                   "' is not a configured profile; configured: " + known);
  }
  if (a.secrets.size() > 50) return Status::InvalidArgument("field 'secrets' may name at most 50 secrets");
  for (size_t i = 0; i < a.secrets.size(); ++i) {
    const std::string& n = a.secrets[i].name;
    if (!IsEnvName(n)) {
      return Status::InvalidArgument("field 'secrets': '" + n +
                                     "' is not a valid secret name ([A-Za-z_][A-Za-z0-9_]*, at most 128)");
    }
    for (size_t j = 0; j < i; ++j) {
      if (a.secrets[j].name == n) return Status::InvalidArgument("field 'secrets' names '" + n + "' twice");
    }
    if (a.env.count(n)) {
      return Status::InvalidArgument("field 'secrets': '" + n + "' is also a variable of field 'env'");
    }
  }
  if (a.idle_timeout_seconds && (*a.idle_timeout_seconds < 0 || *a.idle_timeout_seconds > 30 * 86400)) {
    return Status::InvalidArgument(
        "field 'idle_timeout_seconds' must be between 0 (never suspend) and 2592000 (30 days), or null for "
        "the "
        "server's default");
  }
  return Status::Ok();
}

Result<Agent> AgentService::Create(const AgentFields& f, const std::string& team_id) {
  if (!f.name) return Status::InvalidArgument("field 'name' is required");
  if (!f.harness) return Status::InvalidArgument("field 'harness' is required");
  Agent a;
  a.id = NewId("agt");
  a.team_id = team_id;
  a.name = *f.name;
  a.harness = *f.harness;
  a.model = f.model.value_or("");
  a.prompt = f.prompt.value_or("");
  a.env = f.env.value_or(EnvMap{});
  a.run_timeout_seconds = f.run_timeout_seconds.value_or(600);
  if (f.idle_timeout_seconds) a.idle_timeout_seconds = *f.idle_timeout_seconds;
  a.profile = f.profile.value_or("default");
  a.secrets = f.secrets.value_or(std::vector<SecretRef>{});
  a.created_at = a.updated_at = NowMs();
  PADDOCK_RETURN_IF_ERROR(Validate(a));
  PADDOCK_ASSIGN_OR_RETURN(Team team, store_.GetTeam(team_id));
  PADDOCK_RETURN_IF_ERROR(CheckProfileAllowed(team, a.profile));
  PADDOCK_RETURN_IF_ERROR(store_.CreateAgent(a));
  return a;
}

Result<Agent> AgentService::Get(const std::string& id) { return store_.GetAgent(id); }

Result<Page<Agent>> AgentService::List(const std::string& team_id, const PageRequest& page) {
  return store_.ListAgents(team_id, page);
}

Result<Agent> AgentService::Update(const std::string& id, const AgentFields& f) {
  PADDOCK_ASSIGN_OR_RETURN(Agent a, store_.GetAgent(id));
  if (f.name) a.name = *f.name;
  if (f.harness) a.harness = *f.harness;
  if (f.model) a.model = *f.model;
  if (f.prompt) a.prompt = *f.prompt;
  if (f.env) a.env = *f.env;
  if (f.run_timeout_seconds) a.run_timeout_seconds = *f.run_timeout_seconds;
  if (f.idle_timeout_seconds) a.idle_timeout_seconds = *f.idle_timeout_seconds;
  if (f.profile) a.profile = *f.profile;
  if (f.secrets) a.secrets = *f.secrets;
  a.updated_at = NowMs();
  PADDOCK_RETURN_IF_ERROR(Validate(a));
  if (f.profile) {
    PADDOCK_ASSIGN_OR_RETURN(Team team, store_.GetTeam(a.team_id));
    PADDOCK_RETURN_IF_ERROR(CheckProfileAllowed(team, a.profile));
  }
  PADDOCK_RETURN_IF_ERROR(store_.UpdateAgent(a));
  return a;
}

Status AgentService::Delete(const std::string& id) { return store_.DeleteAgent(id); }

}  // namespace paddock
