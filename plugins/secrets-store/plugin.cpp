// secrets.store: team secrets set through the API, sealed with AES-256-GCM in Paddock's store.
#include <cstdlib>

#include "paddock/plugin/sdk.h"
#include "store_secret_injector.h"

namespace paddock::plugins::secrets_store {
namespace {

constexpr paddock_config_key kConfigKeys[] = {
    {"key_file", PADDOCK_CONFIG_STRING, 0, "",
     "A file of keys (base64, one per line, the first current). Empty: the variable key_env, else "
     "secrets.key in the plugin's data directory, made at the first start."},
    {"key_env", PADDOCK_CONFIG_STRING, 0, "PADDOCK_SECRETS_KEY",
     "The environment variable holding the keys (base64, ',' between them, the first current) when "
     "key_file is empty."},
    {"generate_key", PADDOCK_CONFIG_BOOL, 0, "true",
     "With neither key_file nor the variable: make secrets.key in the plugin's data directory at the "
     "first start (one machine); false: refuse to start (several processes must share one key)."},
};

constexpr paddock_config_rule kConfigRules[] = {config::NotEmpty("key_env")};

Result<SecretInjectorPtr> Create(const PluginContext& ctx, const ConfigView& config) {
  KeySource source;
  source.file = config.GetString("key_file");
  source.env_name = config.GetString("key_env");
  if (source.file.empty()) {
    const char* env = std::getenv(source.env_name.c_str());
    if (env && *env) {
      source.env_text = env;
    } else if (!config.GetBool("generate_key")) {
      source.env_name = config.GetString("key_env");  // Start says what is missing
    } else {
      source.file = ctx.data_dir + "/secrets.key";
      source.generate = true;
      ctx.logger->Info("team secrets are sealed with the key in " + source.file +
                       " (made at the first start; every process of this install needs the same one)");
    }
  }
  return SecretInjectorPtr(std::make_unique<StoreSecretInjector>(std::move(source)));
}

}  // namespace
}  // namespace paddock::plugins::secrets_store

PADDOCK_DEFINE_PLUGIN(secrets, store, "0.1.0",
                      "Team secrets set through the API, sealed with AES-256-GCM in Paddock's store.",
                      paddock::ConfigSchema(paddock::plugins::secrets_store::kConfigKeys,
                                            paddock::plugins::secrets_store::kConfigRules),
                      paddock::plugins::secrets_store::Create)
