#include "services/secrets/secret_service.h"

#include <algorithm>

#include "util/ids.h"
#include "util/redactor.h"

namespace paddock {

Result<TeamSecrets*> SecretService::Backend() {
  TeamSecrets* backend = injector_.team_secrets();
  if (!backend) {
    return Status::FailedPrecondition(
        "no configured secrets plugin keeps team secrets; add [[secrets]] type = \"store\" to the config");
  }
  return backend;
}

Result<SecretInfo> SecretService::Set(const std::string& team_id, const std::string& name,
                                      const std::string& value) {
  if (!IsEnvName(name)) {
    return Status::InvalidArgument("secret name '" + name +
                                   "' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*, at most 128)");
  }
  if (value.size() < kMinSecretBytes) {
    // Every occurrence of a value is redacted from all output, so a short one would hide
    // ordinary text everywhere.
    return Status::InvalidArgument(
        "field 'value' must be at least 8 bytes: every occurrence of a secret is "
        "redacted from output, logs and responses");
  }
  if (value.size() > kMaxSecretBytes) return Status::InvalidArgument("field 'value' is over 64KiB");
  if (value.find('\0') != std::string::npos) {
    return Status::InvalidArgument(
        "field 'value' contains a NUL character (an environment variable cannot hold it)");
  }
  PADDOCK_ASSIGN_OR_RETURN(TeamSecrets * backend, Backend());
  PADDOCK_ASSIGN_OR_RETURN(std::vector<SecretInfo> existing, backend->List(team_id));
  bool replacing =
      std::any_of(existing.begin(), existing.end(), [&](const SecretInfo& s) { return s.name == name; });
  if (!replacing && existing.size() >= kMaxSecretsPerTeam) {
    return Status::FailedPrecondition("team '" + team_id + "' has " + std::to_string(existing.size()) +
                                      " secrets, the most a team may have; delete one first");
  }
  // Hidden before anyone could see it, in this process; other processes learn it when they
  // resolve it for a sandbox.
  redactor_.Add(value);
  return backend->Set(team_id, name, value);
}

Result<std::vector<SecretInfo>> SecretService::List(const std::string& team_id) {
  PADDOCK_ASSIGN_OR_RETURN(TeamSecrets * backend, Backend());
  return backend->List(team_id);
}

Status SecretService::Delete(const std::string& team_id, const std::string& name) {
  PADDOCK_ASSIGN_OR_RETURN(TeamSecrets * backend, Backend());
  return backend->Delete(team_id, name);
}

}  // namespace paddock
