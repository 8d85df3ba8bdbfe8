#include "config/schema.h"

#include <cctype>
#include <charconv>
#include <iterator>
#include <limits>
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

namespace {

bool Numeric(std::uint32_t type) {
  return type == PADDOCK_CONFIG_INT || type == PADDOCK_CONFIG_DURATION || type == PADDOCK_CONFIG_SIZE;
}

// A bound as it is written in the config: "250ms", "2s", "16MiB", "8".
std::string Written(std::uint32_t type, std::int64_t n) {
  const std::pair<const char*, std::int64_t>* units = nullptr;
  size_t count = 0;
  static const std::pair<const char*, std::int64_t> kDurations[] = {
      {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
  static const std::pair<const char*, std::int64_t> kSizes[] = {
      {"GiB", 1LL << 30}, {"MiB", 1LL << 20}, {"KiB", 1LL << 10}};
  if (type == PADDOCK_CONFIG_DURATION) units = kDurations, count = std::size(kDurations);
  if (type == PADDOCK_CONFIG_SIZE) units = kSizes, count = std::size(kSizes);
  for (size_t i = 0; i < count && n != 0; ++i) {
    if (n % units[i].second == 0) return std::to_string(n / units[i].second) + units[i].first;
  }
  return std::to_string(n);
}

// What a rule allows, as a person reads it: "1..256", "at least 100ms", "0 or at least 16MiB".
std::string Allowed(std::uint32_t type, const paddock_config_rule& r) {
  std::string range;
  if (r.max == config::kNoMax) {
    range = "at least " + Written(type, r.min);
  } else if (r.min == std::numeric_limits<std::int64_t>::min()) {
    range = "at most " + Written(type, r.max);
  } else {
    range = Written(type, r.min) + ".." + Written(type, r.max);
  }
  return (r.flags & PADDOCK_RULE_ZERO_OK) ? "0 or " + range : range;
}

std::vector<std::string_view> SplitAllowed(std::string_view allowed) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= allowed.size()) {
    size_t comma = allowed.find(',', start);
    if (comma == std::string_view::npos) comma = allowed.size();
    out.push_back(allowed.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

std::string OneOfText(std::string_view allowed) {
  std::vector<std::string_view> v = SplitAllowed(allowed);
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == v.size() ? " or " : ", ") + ("\"" + std::string(v[i]) + "\"");
  }
  return out;
}

// The value obeys the rule; otherwise why not, naming the key and the value.
Status Obeys(const paddock_config_key& key, const paddock_config_rule& r, const ConfigValue& value) {
  const std::string name = "key '" + std::string(key.name) + "'";
  if (const std::int64_t* n = std::get_if<std::int64_t>(&value)) {
    if ((*n == 0 && (r.flags & PADDOCK_RULE_ZERO_OK)) || (*n >= r.min && *n <= r.max)) return Status::Ok();
    return Status::InvalidArgument(name + " must be " + Allowed(key.type, r) + ", not " +
                                   Written(key.type, *n));
  }
  auto one_of = [&](const std::string& s) -> Status {
    if (!r.allowed) return Status::Ok();
    for (std::string_view a : SplitAllowed(r.allowed)) {
      if (a == s) return Status::Ok();
    }
    return Status::InvalidArgument(name + " must be " + OneOfText(r.allowed) + ", not \"" + s + "\"");
  };
  if (const std::string* s = std::get_if<std::string>(&value)) {
    if (s->empty() && (r.flags & PADDOCK_RULE_NOT_EMPTY))
      return Status::InvalidArgument(name + " must not be empty");
    return one_of(*s);
  }
  if (const auto* list = std::get_if<std::vector<std::string>>(&value)) {
    if (list->empty() && (r.flags & PADDOCK_RULE_NOT_EMPTY))
      return Status::InvalidArgument(name + " must not be empty");
    for (const std::string& item : *list) PADDOCK_RETURN_IF_ERROR(one_of(item));
  }
  return Status::Ok();
}

const paddock_config_rule* RuleOf(ConfigRules rules, std::string_view key) {
  for (const auto& r : rules) {
    if (r.name && key == r.name) return &r;
  }
  return nullptr;
}

}  // namespace

Status CheckSchema(ConfigSchema schema) {
  for (const auto& r : schema.rules) {
    const paddock_config_key* key = nullptr;
    for (const auto& k : schema.keys) {
      if (r.name && std::string_view(k.name) == r.name) key = &k;
    }
    const std::string name = r.name ? r.name : "";
    if (!key) return Status::InvalidArgument("config rule for undeclared key '" + name + "'");
    if (r.allowed && key->type != PADDOCK_CONFIG_STRING && key->type != PADDOCK_CONFIG_STRING_LIST)
      return Status::InvalidArgument("config rule of key '" + name + "' lists allowed values of a " +
                                     ConfigTypeName(key->type));
    if (r.min > r.max) return Status::InvalidArgument("config rule of key '" + name + "' has min above max");
    if (key->default_value && !(key->flags & PADDOCK_CONFIG_REQUIRED)) {
      Result<ConfigValue> d = ConvertDefault(*key);
      PADDOCK_RETURN_IF_ERROR(d.status());
      Status ok = Obeys(*key, r, *d);
      if (!ok.ok()) return Status::InvalidArgument("the default of " + ok.message());
    }
  }
  return Status::Ok();
}

Result<ConfigView> ValidateSection(ConfigSchema schema, const RawSection& section) {
  const ConfigKeys keys = schema.keys;
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
      if (const paddock_config_rule* rule = RuleOf(schema.rules, k.name)) {
        Status ok = Obeys(k, *rule, *v);
        if (!ok.ok()) return Status::InvalidArgument(Where(section, it->second.line) + " " + ok.message());
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

std::string KeysJson(ConfigSchema schema) {
  std::string out = "[";
  for (const auto& k : schema.keys) {
    std::string bounds;
    if (const paddock_config_rule* r = RuleOf(schema.rules, k.name)) {
      if (r->allowed) {
        std::string list;
        for (std::string_view a : SplitAllowed(r->allowed)) list += (list.empty() ? "" : ",") + JsonQuote(a);
        bounds += ",\"allowed\":[" + list + "]";
      }
      if (Numeric(k.type) && (r->min != std::numeric_limits<std::int64_t>::min() || r->max != config::kNoMax))
        bounds += ",\"bounds\":" + JsonQuote(Allowed(k.type, *r));
      if (r->flags & PADDOCK_RULE_NOT_EMPTY) bounds += ",\"not_empty\":true";
    }
    if (out.size() > 1) out += ",";
    out += "{\"name\":" + JsonQuote(k.name) + ",\"type\":" + JsonQuote(ConfigTypeName(k.type)) +
           ",\"required\":" + ((k.flags & PADDOCK_CONFIG_REQUIRED) ? "true" : "false") +
           ",\"secret\":" + ((k.flags & PADDOCK_CONFIG_SECRET) ? "true" : "false") + ",\"default\":" +
           (k.default_value && !(k.flags & PADDOCK_CONFIG_REQUIRED) ? JsonQuote(k.default_value)
                                                                    : std::string("null")) +
           ",\"description\":" + JsonQuote(k.description ? k.description : "") + bounds + "}";
  }
  return out + "]";
}

}  // namespace paddock
