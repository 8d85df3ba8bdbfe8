// EnvSecretInjector: every <prefix><NAME>=<value> in the server's environment becomes
// <NAME>=<value> in every sandbox. The environment is read once, at construction.
#pragma once

#include <string>
#include <vector>

#include "paddock/secret_injector.h"

namespace paddock::plugins::secrets_env {

class EnvSecretInjector final : public SecretInjector {
 public:
  // `environ_entries` are "NAME=value" strings, as in `environ`.
  EnvSecretInjector(std::string prefix, const std::vector<std::string>& environ_entries);

  Result<std::vector<Secret>> Resolve(const SecretScope& scope) noexcept override;

  // Entries that carried the prefix but no valid variable name after it.
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  std::vector<Secret> secrets_;
  std::vector<std::string> skipped_;
};

}  // namespace paddock::plugins::secrets_env
