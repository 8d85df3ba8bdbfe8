// Small measuring helpers shared by the services: a SHA-256 in hex, and elapsed seconds.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace paddock {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

inline double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace paddock
