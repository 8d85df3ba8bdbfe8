// SecretService: a team's secrets through the API — set, list (names, versions and dates),
// delete — kept by the injector that offers team secrets ([[secrets]] type = "store"). A value
// is redacted from everything from the moment it is set, and never read back.
#pragma once

#include <string>
#include <vector>

#include "paddock/secret_injector.h"
#include "paddock/session_store.h"
#include "services/teams/principal.h"

namespace paddock {

class Redactor;

inline constexpr size_t kMinSecretBytes = 8;
inline constexpr size_t kMaxSecretBytes = 64 * 1024;
inline constexpr size_t kMaxSecretsPerTeam = 500;

class SecretService {
 public:
  SecretService(SecretInjector& injector, Redactor& redactor) : injector_(injector), redactor_(redactor) {}

  // kInvalidArgument for a bad name, value or vault binding; kFailedPrecondition when no
  // configured injector keeps team secrets, or the team has kMaxSecretsPerTeam already.
  Result<SecretInfo> Set(const std::string& team_id, const std::string& name, const std::string& value,
                         const VaultBinding& vault = {});
  // kInvalidArgument naming what is wrong with `vault` (for a secret holding `value`).
  static Status CheckBinding(const VaultBinding& vault, const std::string& value);
  Result<std::vector<SecretInfo>> List(const std::string& team_id);
  Status Delete(const std::string& team_id, const std::string& name);

 private:
  Result<TeamSecrets*> Backend();

  SecretInjector& injector_;
  Redactor& redactor_;
};

}  // namespace paddock
