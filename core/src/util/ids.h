// Resource ids: "<prefix>_<12 hex: ms timestamp><12 hex: random>", so ids sort by creation
// time and can serve as pagination cursors.
#pragma once

#include <string>
#include <string_view>

namespace paddock {

std::string NewId(std::string_view prefix);

// True when `id` has the shape NewId produces for `prefix`.
bool LooksLikeId(std::string_view id, std::string_view prefix);

}  // namespace paddock
