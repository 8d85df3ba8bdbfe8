// secrets.env: CONTAINER_ENV_<NAME>=<value> in the server's environment becomes <NAME>=<value>
// inside every sandbox.
#include <unistd.h>

#include "env_secret_injector.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugins::secrets_env {
namespace {

constexpr paddock_config_key kConfigKeys[] = {
    {"prefix", PADDOCK_CONFIG_STRING, 0, "CONTAINER_ENV_",
     "Server environment variables with this prefix are passed in, prefix stripped."},
};

constexpr paddock_config_rule kConfigRules[] = {config::NotEmpty("prefix")};

Result<SecretInjectorPtr> Create(const PluginContext& ctx, const ConfigView& config) {
  std::string prefix = config.GetString("prefix");
  std::vector<std::string> entries;
  for (char** e = environ; e && *e; ++e) entries.emplace_back(*e);
  auto injector = std::make_unique<EnvSecretInjector>(prefix, entries);
  for (const std::string& name : injector->skipped()) {
    ctx.logger->Warn("ignoring " + name + ": not a valid variable name after the prefix");
  }
  return SecretInjectorPtr(std::move(injector));
}

}  // namespace
}  // namespace paddock::plugins::secrets_env

PADDOCK_DEFINE_PLUGIN(secrets, env, "0.1.0", "Secrets from the server's environment (CONTAINER_ENV_<NAME>).",
                      paddock::ConfigSchema(paddock::plugins::secrets_env::kConfigKeys,
                                            paddock::plugins::secrets_env::kConfigRules),
                      paddock::plugins::secrets_env::Create)
