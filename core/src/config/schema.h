// Validation of a config section against declared keys (paddock_config_key): unknown keys,
// types, required keys and defaults. Used for plugin sections and the core's own sections.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/raw.h"
#include "paddock/config.h"
#include "paddock/plugin/abi.h"
#include "paddock/status.h"

namespace paddock {

using KeySpan = std::span<const paddock_config_key>;

// Checks `section` against `keys` and returns the typed view, defaults applied.
// kInvalidArgument with "<file>:<line>: [section] ..." naming the key and what was expected.
Result<ConfigView> ValidateSection(KeySpan keys, const RawSection& section);

// "250ms", "5s", "2m", "1h", "1d" -> milliseconds.
std::optional<std::int64_t> ParseDurationMs(std::string_view s);
// "1024", "512KiB", "1MiB", "2GiB", "1KB", "1MB" -> bytes.
std::optional<std::int64_t> ParseSizeBytes(std::string_view s);

const char* ConfigTypeName(std::uint32_t type);

// The keys as a JSON array (for `paddock plugins` and /api/plugins).
std::string KeysJson(KeySpan keys);

}  // namespace paddock
