// SecretChain: the configured secret injectors ([[secrets]]) asked in order, as one. Later
// injectors win when two give the same name; every secret an agent names must come from one
// of them, or the sandbox is not bound (a run fails with a message naming the secret).
#pragma once

#include <memory>
#include <vector>

#include "paddock/secret_injector.h"

namespace paddock {

class SecretChain final : public SecretInjector {
 public:
  explicit SecretChain(std::vector<std::shared_ptr<SecretInjector>> injectors);

  // kFailedPrecondition when a secret of scope.wanted comes from none of them.
  Result<std::vector<Secret>> Resolve(const SecretScope& scope) noexcept override;
  // The first injector's that keeps team secrets; null when none does.
  TeamSecrets* team_secrets() noexcept override { return team_secrets_; }

 private:
  std::vector<std::shared_ptr<SecretInjector>> injectors_;
  TeamSecrets* team_secrets_ = nullptr;
};

}  // namespace paddock
