// Resource ids: "<prefix>_<12 hex: ms timestamp><4 hex: counter><8 hex: random>", so ids made
// by one process sort by creation
// order and can serve as pagination cursors.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace paddock {

std::string NewId(std::string_view prefix);

// True when `id` has the shape NewId produces for `prefix`.
bool LooksLikeId(std::string_view id, std::string_view prefix);

// An id as the API makes them ("ses_0190..."): 1-64 of A-Z a-z 0-9 _ -. Path captures and id
// query values must be one.
inline constexpr size_t kMaxIdLength = 64;
bool IsId(std::string_view s);

// True for names usable as environment variables: [A-Za-z_][A-Za-z0-9_]*, at most 128.
bool IsEnvName(std::string_view name);

}  // namespace paddock
