#include "util/ids.h"

#include <cstdio>
#include <random>

#include "paddock/types.h"

namespace paddock {

std::string NewId(std::string_view prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[32];
  std::snprintf(buf, sizeof buf, "_%012llx%012llx",
                static_cast<unsigned long long>(NowMs()) & 0xffffffffffffULL,
                static_cast<unsigned long long>(rng()) & 0xffffffffffffULL);
  return std::string(prefix) + buf;
}

bool LooksLikeId(std::string_view id, std::string_view prefix) {
  if (id.size() != prefix.size() + 25 || id.substr(0, prefix.size()) != prefix ||
      id[prefix.size()] != '_') {
    return false;
  }
  for (char c : id.substr(prefix.size() + 1)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace paddock
