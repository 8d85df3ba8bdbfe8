#include "util/ids.h"

#include <cctype>
#include <cstdio>
#include <mutex>
#include <random>

#include "paddock/types.h"

namespace paddock {

std::string NewId(std::string_view prefix) {
  // 12 hex digits of milliseconds, 4 of a counter that orders ids made in the same
  // millisecond by this process, 8 random ones that keep processes apart.
  static std::mutex mu;
  static std::uint64_t last_ms = 0;
  static std::uint64_t counter = 0;
  static thread_local std::mt19937_64 rng(std::random_device{}());
  std::uint64_t ms = static_cast<std::uint64_t>(NowMs());
  std::uint64_t seq;
  {
    std::lock_guard lock(mu);
    if (ms <= last_ms) {
      ms = last_ms;
      if (++counter > 0xffff) {  // more than 65536 ids in one millisecond: borrow the next one
        ++ms;
        counter = 0;
      }
    } else {
      counter = 0;
    }
    last_ms = ms;
    seq = counter;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "_%012llx%04llx%08llx",
                static_cast<unsigned long long>(ms) & 0xffffffffffffULL, static_cast<unsigned long long>(seq),
                static_cast<unsigned long long>(rng()) & 0xffffffffULL);
  return std::string(prefix) + buf;
}

bool LooksLikeId(std::string_view id, std::string_view prefix) {
  if (id.size() != prefix.size() + 25 || id.substr(0, prefix.size()) != prefix || id[prefix.size()] != '_') {
    return false;
  }
  for (char c : id.substr(prefix.size() + 1)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsId(std::string_view s) {
  if (s.empty() || s.size() > kMaxIdLength) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

bool IsEnvName(std::string_view name) {
  if (name.empty() || name.size() > 128 || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

}  // namespace paddock
