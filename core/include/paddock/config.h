// ConfigView: a plugin's config section after the host has validated it against the plugin's
// declared keys. Every declared key is present (explicitly set or defaulted) unless it is
// optional and has no default.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace paddock {

// int, bool, duration (milliseconds), size (bytes): integral; string; string list.
using ConfigValue = std::variant<std::int64_t, bool, std::string, std::vector<std::string>>;

class ConfigView {
 public:
  ConfigView() = default;
  explicit ConfigView(std::map<std::string, ConfigValue, std::less<>> values) : values_(std::move(values)) {}

  bool Has(std::string_view key) const { return values_.find(key) != values_.end(); }

  // Getters return the fallback when the key is absent or of another type; the host has
  // already checked types against the declaration, so that only happens for undeclared keys.
  std::string GetString(std::string_view key, std::string fallback = {}) const {
    return Get<std::string>(key, std::move(fallback));
  }
  std::int64_t GetInt(std::string_view key, std::int64_t fallback = 0) const {
    return Get<std::int64_t>(key, fallback);
  }
  bool GetBool(std::string_view key, bool fallback = false) const { return Get<bool>(key, fallback); }
  std::int64_t GetDurationMs(std::string_view key, std::int64_t fallback = 0) const {
    return Get<std::int64_t>(key, fallback);
  }
  std::int64_t GetSizeBytes(std::string_view key, std::int64_t fallback = 0) const {
    return Get<std::int64_t>(key, fallback);
  }
  std::vector<std::string> GetStringList(std::string_view key) const {
    return Get<std::vector<std::string>>(key, {});
  }

  const std::map<std::string, ConfigValue, std::less<>>& values() const { return values_; }

 private:
  template <class T>
  T Get(std::string_view key, T fallback) const {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    if (const T* v = std::get_if<T>(&it->second)) return *v;
    return fallback;
  }

  std::map<std::string, ConfigValue, std::less<>> values_;
};

}  // namespace paddock
