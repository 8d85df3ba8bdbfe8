// A plugin's (or a core section's) config schema: the declared keys and the rules that bound
// them. Rules are written with the helpers below, next to the key table:
//
//   constexpr paddock_config_rule kConfigRules[] = {
//       config::Range("pool_size", 1, 256),
//       config::AtLeast("connect_timeout", 100),       // ms
//       config::OneOf("mode", "claim,direct"),
//       config::ZeroOrAtLeast("disk", 16LL << 20),     // bytes; 0: none
//   };
//   PADDOCK_DEFINE_PLUGIN(..., paddock::ConfigSchema(kConfigKeys, kConfigRules), Create)
#pragma once

#include <cstdint>
#include <limits>
#include <span>

#include "paddock/plugin/abi.h"

namespace paddock {

using ConfigKeys = std::span<const paddock_config_key>;
using ConfigRules = std::span<const paddock_config_rule>;

struct ConfigSchema {
  ConfigKeys keys;
  ConfigRules rules;
  constexpr ConfigSchema(ConfigKeys k) : keys(k) {}  // NOLINT: a key table alone is a schema
  constexpr ConfigSchema(ConfigKeys k, ConfigRules r) : keys(k), rules(r) {}
};

namespace config {

inline constexpr std::int64_t kNoMax = std::numeric_limits<std::int64_t>::max();

constexpr paddock_config_rule Range(const char* key, std::int64_t min, std::int64_t max) {
  return {key, min, max, 0, nullptr};
}
constexpr paddock_config_rule AtLeast(const char* key, std::int64_t min) {
  return {key, min, kNoMax, 0, nullptr};
}
// 0 ("none", "off") or min..max.
constexpr paddock_config_rule ZeroOr(const char* key, std::int64_t min, std::int64_t max = kNoMax) {
  return {key, min, max, PADDOCK_RULE_ZERO_OK, nullptr};
}
// One of the comma-separated `allowed` (for a list: every item).
constexpr paddock_config_rule OneOf(const char* key, const char* allowed) {
  return {key, std::numeric_limits<std::int64_t>::min(), kNoMax, 0, allowed};
}
constexpr paddock_config_rule NotEmpty(const char* key) {
  return {key, std::numeric_limits<std::int64_t>::min(), kNoMax, PADDOCK_RULE_NOT_EMPTY, nullptr};
}

}  // namespace config
}  // namespace paddock
