// Redactor: replaces every known secret value in text with "[redacted]". Values are added as
// secrets are resolved and are never removed while the process runs.
#pragma once

#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace paddock {

inline constexpr std::string_view kRedacted = "[redacted]";

// Thread safety: all methods may be called concurrently.
class Redactor {
 public:
  // Adds a value to redact; empty values are ignored.
  void Add(std::string_view value);
  // `text` with every occurrence of every value replaced, longest values first.
  std::string Redact(std::string_view text) const;
  bool empty() const;

 private:
  mutable std::shared_mutex mu_;
  std::vector<std::string> values_;  // sorted by length, longest first
};

}  // namespace paddock
