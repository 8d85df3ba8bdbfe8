// Validation of a config section against a schema (declared keys and their rules): unknown
// keys, types, required keys, defaults and bounds. Used for plugin sections and the core's own.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/raw.h"
#include "paddock/config.h"
#include "paddock/plugin/abi.h"
#include "paddock/plugin/config_schema.h"
#include "paddock/status.h"

namespace paddock {

using KeySpan = std::span<const paddock_config_key>;

// Checks `section` against `schema` and returns the typed view, defaults applied.
// kInvalidArgument with "<file>:<line>: [section] ..." naming the key and what was expected.
Result<ConfigView> ValidateSection(ConfigSchema schema, const RawSection& section);

// A schema is sound: every rule names a declared key of a type it can bound, min <= max, and
// every default obeys its rule. The loader refuses a plugin whose schema is not; a message
// naming the key otherwise.
Status CheckSchema(ConfigSchema schema);

// "250ms", "5s", "2m", "1h", "1d" -> milliseconds.
std::optional<std::int64_t> ParseDurationMs(std::string_view s);
// "1024", "512KiB", "1MiB", "2GiB", "1KB", "1MB" -> bytes.
std::optional<std::int64_t> ParseSizeBytes(std::string_view s);

const char* ConfigTypeName(std::uint32_t type);

// The keys as a JSON array, each with its bounds (for `paddock plugins` and /api/plugins).
std::string KeysJson(ConfigSchema schema);

}  // namespace paddock
