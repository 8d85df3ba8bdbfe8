// The API's route table on any method and path: Match never fails, and what it matches is what
// the pattern says — as many segments, every literal segment equal, one capture per {name},
// and every capture an id. Input: one byte choosing the method, then the path.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/input.h"
#include "http/router.h"

namespace {

size_t Segments(std::string_view path) {
  size_t n = 0;
  for (char c : path) n += c == '/';
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const char* const kMethods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get"};
  const std::string method = kMethods[data[0] % 8];
  std::string_view path(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (const paddock::Router* router : {&paddock::ApiRouter(), &paddock::WorkerRouter()}) {
    paddock::RouteMatch m = router->Match(method, path);
    if (!m.route) continue;
    std::string_view pattern = m.route->pattern;
    std::string_view matched = path;
    if (matched.size() > 1 && matched.back() == '/') matched.remove_suffix(1);
    if (Segments(pattern) != Segments(matched)) __builtin_trap();
    size_t captures = 0;
    for (size_t at = pattern.find('{'); at != std::string_view::npos; at = pattern.find('{', at + 1))
      ++captures;
    if (m.params.size() != captures) __builtin_trap();
    for (const auto& [name, value] : m.params) {
      if (name.empty() || pattern.find("{" + name + "}") == std::string_view::npos) __builtin_trap();
      if (value.empty() || value.size() > paddock::kMaxIdLength) __builtin_trap();
      for (char c : value) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') __builtin_trap();
      }
    }
  }
  return 0;
}
