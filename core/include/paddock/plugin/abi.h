/* The plugin ABI: plain C data the host reads before it calls anything in a plugin.
 * Every field is owned by the plugin and lives as long as the library is loaded.
 * Fields are only ever appended; struct_size tells the host which ones a plugin has. */
#ifndef PADDOCK_PLUGIN_ABI_H_
#define PADDOCK_PLUGIN_ABI_H_

#include <stddef.h>
#include <stdint.h>

#define PADDOCK_PLUGIN_ABI_MAJOR 1u /* the host refuses any other major */
#define PADDOCK_PLUGIN_ABI_MINOR 1u /* bumped when fields are appended; 1: config_rules */

#define PADDOCK_PLUGIN_EXPORT __attribute__((visibility("default")))

/* The symbols a plugin exports, and nothing else. */
#define PADDOCK_PLUGIN_MANIFEST_SYMBOL "paddock_plugin_manifest_v1"
#define PADDOCK_PLUGIN_CREATE_SYMBOL "paddock_plugin_create_v1"

/* Config value types. Durations are strings such as "250ms", "5s", "2m", "1h"; sizes are
 * byte counts or strings such as "512KiB", "1MiB", "2GiB". */
enum paddock_config_type {
  PADDOCK_CONFIG_STRING = 1,
  PADDOCK_CONFIG_INT = 2,
  PADDOCK_CONFIG_BOOL = 3,
  PADDOCK_CONFIG_DURATION = 4,
  PADDOCK_CONFIG_SIZE = 5,
  PADDOCK_CONFIG_STRING_LIST = 6
};

#define PADDOCK_CONFIG_REQUIRED 1u /* the section must set it; default_value is ignored */
#define PADDOCK_CONFIG_SECRET 2u   /* never logged, shown as "[secret]" in dumps */

typedef struct paddock_config_key {
  const char* name;          /* lower snake case */
  uint32_t type;             /* enum paddock_config_type */
  uint32_t flags;            /* PADDOCK_CONFIG_* bits */
  const char* default_value; /* as it would be written in TOML, lists comma-separated; may be NULL */
  const char* description;   /* one line */
} paddock_config_key;

/* Bounds of a declared key (ABI 1.1). The host refuses a value outside them, naming the key,
 * the bounds and the value, before the plugin sees it; a plugin checks nothing the rule says. */
#define PADDOCK_RULE_ZERO_OK 1u   /* 0 ("none", "off", "never") is allowed besides min..max */
#define PADDOCK_RULE_NOT_EMPTY 2u /* a string or list must not be empty */

typedef struct paddock_config_rule {
  const char* name;    /* a declared key */
  int64_t min;         /* int, duration (ms) and size (bytes) keys: smallest allowed */
  int64_t max;         /* largest allowed */
  uint32_t flags;      /* PADDOCK_RULE_* bits */
  const char* allowed; /* string keys and list items: the allowed values, comma-separated; NULL: any */
} paddock_config_rule;

typedef struct paddock_plugin_manifest {
  uint32_t struct_size; /* sizeof(paddock_plugin_manifest) as the plugin was built */
  uint32_t abi_major;
  uint32_t abi_minor;
  const char* sdk_hash;    /* PADDOCK_SDK_HASH of the headers the plugin was built against */
  const char* toolchain;   /* PADDOCK_TOOLCHAIN: compiler and C++ ABI */
  const char* kind;        /* "store" | "sandbox" | "harness" | "secrets" */
  const char* name;        /* e.g. "sqlite"; with kind, the file is paddock-<kind>-<name>.so */
  const char* version;     /* the plugin's own semver */
  const char* description; /* one line */
  const paddock_config_key* config_keys;
  uint32_t config_key_count;
  /* ABI 1.1 */
  const paddock_config_rule* config_rules;
  uint32_t config_rule_count;
} paddock_plugin_manifest;

/* struct_size of a manifest built against ABI 1.0 (no rules); the host still loads those. */
#define PADDOCK_PLUGIN_MANIFEST_SIZE_1_0 offsetof(paddock_plugin_manifest, config_rules)

#endif /* PADDOCK_PLUGIN_ABI_H_ */
