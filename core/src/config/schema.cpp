#include "config/schema.h"

#include <cctype>
#include <charconv>
#include <set>

#include "paddock/json.h"

namespace paddock {

const char* TypeName(RawValue::Type t) {
  switch (t) {
    case RawValue::Type::kString:
      return "string";
    case RawValue::Type::kInt:
      return "integer";
    case RawValue::Type::kFloat:
      return "float";
    case RawValue::Type::kBool:
      return "boolean";
    case RawValue::Type::kArray:
      return "array";
    case RawValue::Type::kTable:
      return "table";
    case RawValue::Type::kOther:
      return "date/time";
  }
  return "value";
}

const char* ConfigTypeName(std::uint32_t type) {
  switch (type) {
    case PADDOCK_CONFIG_STRING:
      return "string";
    case PADDOCK_CONFIG_INT:
      return "int";
    case PADDOCK_CONFIG_BOOL:
      return "bool";
    case PADDOCK_CONFIG_DURATION:
      return "duration";
    case PADDOCK_CONFIG_SIZE:
      return "size";
    case PADDOCK_CONFIG_STRING_LIST:
      return "string_list";
  }
  return "unknown";
}

namespace {

std::optional<std::int64_t> ParseNumberWithUnit(
    std::string_view s, std::initializer_list<std::pair<std::string_view, std::int64_t>> units,
    bool unit_required) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) return std::nullopt;
  std::int64_t n = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + i, n);
  if (ec != std::errc() || ptr != s.data() + i) return std::nullopt;
  std::string_view unit = s.substr(i);
  if (unit.empty()) {
    if (unit_required) return std::nullopt;
    return n;
  }
  for (const auto& [name, factor] : units) {
    if (unit == name) {
      if (n > INT64_MAX / factor) return std::nullopt;
      return n * factor;
    }
  }
  return std::nullopt;
}

std::string Where(const RawSection& section, int line) {
  return section.source + ":" + std::to_string(line > 0 ? line : section.line) + ": [" + section.name + "]";
}

// Converts one raw value to the declared type, or explains why it cannot be.
Result<ConfigValue> Convert(const paddock_config_key& key, const RawValue& v) {
  auto mismatch = [&](const char* want) -> Status {
    return Status::InvalidArgument("key '" + std::string(key.name) + "' must be " + want + ", not " +
                                   (v.type == RawValue::Type::kString
                                        ? "the string \"" + v.str + "\""
                                        : std::string("a ") + TypeName(v.type)));
  };
  switch (key.type) {
    case PADDOCK_CONFIG_STRING:
      if (v.type != RawValue::Type::kString) return mismatch("a string");
      return ConfigValue(v.str);
    case PADDOCK_CONFIG_INT:
      if (v.type != RawValue::Type::kInt) return mismatch("an integer");
      return ConfigValue(v.i);
    case PADDOCK_CONFIG_BOOL:
      if (v.type != RawValue::Type::kBool) return mismatch("true or false");
      return ConfigValue(v.b);
    case PADDOCK_CONFIG_DURATION: {
      if (v.type != RawValue::Type::kString) return mismatch("a duration such as \"5s\"");
      auto ms = ParseDurationMs(v.str);
      if (!ms) return mismatch("a duration such as \"250ms\", \"5s\", \"2m\" or \"1h\"");
      return ConfigValue(*ms);
    }
    case PADDOCK_CONFIG_SIZE: {
      if (v.type == RawValue::Type::kInt) {
        if (v.i < 0) return mismatch("a non-negative size");
        return ConfigValue(v.i);
      }
      if (v.type != RawValue::Type::kString) return mismatch("a size such as \"1MiB\"");
      auto bytes = ParseSizeBytes(v.str);
      if (!bytes) return mismatch("a size such as 1024, \"512KiB\", \"1MiB\" or \"2GiB\"");
      return ConfigValue(*bytes);
    }
    case PADDOCK_CONFIG_STRING_LIST: {
      if (v.type != RawValue::Type::kArray) return mismatch("an array of strings");
      std::vector<std::string> out;
      for (const RawValue& item : v.items) {
        if (item.type != RawValue::Type::kString) return mismatch("an array of strings");
        out.push_back(item.str);
      }
      return ConfigValue(std::move(out));
    }
  }
  return Status::Internal("key '" + std::string(key.name) + "' has an unknown declared type");
}

// A declared default, written as in TOML ("5s", "8", "true", "a,b").
Result<ConfigValue> ConvertDefault(const paddock_config_key& key) {
  RawValue v;
  std::string_view text = key.default_value;
  switch (key.type) {
    case PADDOCK_CONFIG_INT: {
      v.type = RawValue::Type::kInt;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v.i);
      if (ec != std::errc() || p != text.data() + text.size()) break;
      return Convert(key, v);
    }
    case PADDOCK_CONFIG_BOOL:
      if (text != "true" && text != "false") break;
      v.type = RawValue::Type::kBool;
      v.b = text == "true";
      return Convert(key, v);
    case PADDOCK_CONFIG_STRING_LIST: {
      v.type = RawValue::Type::kArray;
      size_t start = 0;
      while (start <= text.size() && !text.empty()) {
        size_t comma = text.find(',', start);
        RawValue item;
        item.type = RawValue::Type::kString;
        item.str =
            std::string(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
        v.items.push_back(item);
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
      return Convert(key, v);
    }
    default:
      v.type = RawValue::Type::kString;
      v.str = std::string(text);
      if (key.type == PADDOCK_CONFIG_STRING) return Convert(key, v);
      if (text.empty()) return ConfigValue(std::int64_t{0});
      return Convert(key, v);
  }
  return Status::Internal("declared default '" + std::string(text) + "' of key '" + key.name +
                          "' is not a valid " + ConfigTypeName(key.type));
}

}  // namespace

std::optional<std::int64_t> ParseDurationMs(std::string_view s) {
  return ParseNumberWithUnit(s, {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}},
                             /*unit_required=*/true);
}

std::optional<std::int64_t> ParseSizeBytes(std::string_view s) {
  return ParseNumberWithUnit(s,
                             {{"B", 1},
                              {"KiB", 1024},
                              {"MiB", 1024 * 1024},
                              {"GiB", 1024LL * 1024 * 1024},
                              {"KB", 1000},
                              {"MB", 1000 * 1000},
                              {"GB", 1000LL * 1000 * 1000}},
                             /*unit_required=*/false);
}

Result<ConfigView> ValidateSection(KeySpan keys, const RawSection& section) {
  std::set<std::string, std::less<>> declared;
  for (const auto& k : keys) declared.insert(k.name);
  for (const auto& [name, value] : section.values) {
    if (declared.count(name)) continue;
    std::string allowed;
    for (const auto& k : keys) allowed += (allowed.empty() ? "" : ", ") + std::string(k.name);
    return Status::InvalidArgument(Where(section, value.line) + " unknown key '" + name +
                                   "'; allowed: " + (allowed.empty() ? "(none)" : allowed));
  }
  std::map<std::string, ConfigValue, std::less<>> values;
  for (const auto& k : keys) {
    auto it = section.values.find(k.name);
    if (it != section.values.end()) {
      Result<ConfigValue> v = Convert(k, it->second);
      if (!v.ok()) {
        return Status::InvalidArgument(Where(section, it->second.line) + " " + v.status().message());
      }
      values.emplace(k.name, std::move(v).value());
    } else if (k.flags & PADDOCK_CONFIG_REQUIRED) {
      return Status::InvalidArgument(Where(section, 0) + " missing required key '" + k.name + "' (" +
                                     ConfigTypeName(k.type) + ": " + k.description + ")");
    } else if (k.default_value) {
      Result<ConfigValue> v = ConvertDefault(k);
      if (!v.ok()) return Status::Internal(Where(section, 0) + " " + v.status().message());
      values.emplace(k.name, std::move(v).value());
    }
  }
  return ConfigView(std::move(values));
}

std::string KeysJson(KeySpan keys) {
  std::string out = "[";
  for (const auto& k : keys) {
    if (out.size() > 1) out += ",";
    out += "{\"name\":" + JsonQuote(k.name) + ",\"type\":" + JsonQuote(ConfigTypeName(k.type)) +
           ",\"required\":" + ((k.flags & PADDOCK_CONFIG_REQUIRED) ? "true" : "false") +
           ",\"secret\":" + ((k.flags & PADDOCK_CONFIG_SECRET) ? "true" : "false") + ",\"default\":" +
           (k.default_value && !(k.flags & PADDOCK_CONFIG_REQUIRED) ? JsonQuote(k.default_value)
                                                                    : std::string("null")) +
           ",\"description\":" + JsonQuote(k.description ? k.description : "") + "}";
  }
  return out + "]";
}

}  // namespace paddock
