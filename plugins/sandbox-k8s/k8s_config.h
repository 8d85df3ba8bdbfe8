// The [sandbox.config] keys sandbox.k8s and sandbox.kind share: everything but how the
// cluster's credentials are found.
#pragma once

#include <vector>

#include "k8s_sandbox_provider.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugins::sandbox_k8s {

// The shared keys, with `runtime_access` defaulting to `access_default`.
std::vector<paddock_config_key> SharedConfigKeys(const char* access_default);

// Reads them; a message naming the key when a value is out of range.
// The rules of the shared keys, for the plugin's ConfigSchema next to its own.
std::vector<paddock_config_rule> SharedConfigRules();

Result<K8sConfig> ParseK8sConfig(const ConfigView& config);

}  // namespace paddock::plugins::sandbox_k8s
