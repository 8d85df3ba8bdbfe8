// Key files: 32 random bytes as 64 hex digits, made 0600 the first time they are asked for,
// refused when others may read them (group-read is allowed, for Secrets mounted with fsGroup). Several
// processes of an install share one (the first to make it wins); on Kubernetes it is a Secret mounted
// read-only. Plus the HMAC used with them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "paddock/status.h"

namespace paddock {

// The key in `path` (raw bytes), made there when absent. `what` names it in messages ("the
// placeholder key"). kFailedPrecondition naming the file when it is unreadable, open to others
// or not 64 hex digits.
Result<std::string> LoadOrCreateKeyFile(const std::string& path, const std::string& what);

// `n` bytes as lower-case hex.
std::string HexOf(const unsigned char* p, size_t n);

// Lower-case hex HMAC-SHA256 of `message` under `key`.
std::string HmacSha256Hex(std::string_view key, std::string_view message);

}  // namespace paddock
