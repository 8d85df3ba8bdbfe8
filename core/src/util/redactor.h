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
  // The length of the longest end of `text` that is the beginning (not the whole) of a value:
  // what a stream must hold back until more text shows whether a value is being written.
  size_t PartialAtEnd(std::string_view text) const;
  bool empty() const;

 private:
  mutable std::shared_mutex mu_;
  std::vector<std::string> values_;  // sorted by length, longest first
};

// Redaction of a stream that arrives in chunks (a command's stdout and stderr): a value split
// across two chunks is caught, because the end of a chunk that could be the beginning of a
// value is held back and put before the next chunk of the same stream. Not thread-safe: one
// per turn.
class StreamRedactor {
 public:
  explicit StreamRedactor(const Redactor& redactor) : redactor_(redactor) {}
  // What may be shown of `stream` now that `chunk` came: redacted, possibly empty.
  std::string Feed(const std::string& stream, std::string_view chunk);
  // What is held back of `stream` (the stream ended, or something else is shown first).
  std::string Flush(const std::string& stream);
  // The streams with something held back, in the order they were first fed.
  std::vector<std::string> Pending() const;

 private:
  const Redactor& redactor_;
  std::vector<std::pair<std::string, std::string>> held_;  // (stream, text not yet shown)
};

}  // namespace paddock
