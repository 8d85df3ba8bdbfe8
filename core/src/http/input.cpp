#include "http/input.h"

#include <Poco/JSON/Parser.h>

#include <charconv>

#include "util/money.h"

namespace paddock {

Result<Poco::JSON::Object::Ptr> ParseBodyObject(std::string_view body) {
  try {
    Poco::JSON::Parser parser;
    parser.setDepth(kMaxBodyDepth);
    Poco::Dynamic::Var v = parser.parse(std::string(body));
    if (v.type() != typeid(Poco::JSON::Object::Ptr)) {
      return Status::InvalidArgument("request body must be a JSON object");
    }
    return v.extract<Poco::JSON::Object::Ptr>();
  } catch (const Poco::Exception& e) {
    return Status::InvalidArgument("request body is not valid JSON: " + e.message());
  }
}

std::string Excerpt(std::string_view text, size_t max) {
  return text.size() > max ? std::string(text.substr(0, max)) + "..." : std::string(text);
}

Result<std::int64_t> ParseLastEventId(std::string_view value) {
  std::optional<std::int64_t> n = ParseInt64(value);
  if (!n || *n < 0) {
    return Status::InvalidArgument("Last-Event-ID must be a non-negative integer (an event seq), not '" +
                                   Excerpt(value, 64) + "'");
  }
  return *n;
}

// ---- fields -----------------------------------------------------------------------------

Status CheckFields(const Poco::JSON::Object& obj, std::initializer_list<std::string_view> allowed) {
  for (const auto& key : obj.getNames()) {
    bool ok = false;
    for (auto a : allowed) ok = ok || a == key;
    if (!ok) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return Status::InvalidArgument("unknown field '" + key + "'; allowed: " + list);
    }
  }
  return Status::Ok();
}

namespace {
std::string JsonTypeName(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return "null";
  if (v.type() == typeid(Poco::JSON::Object::Ptr)) return "an object";
  if (v.type() == typeid(Poco::JSON::Array::Ptr)) return "an array";
  if (v.isString()) return "a string";
  if (v.isBoolean()) return "a boolean";
  if (v.isNumeric()) return "a number";
  return "another type";
}
}  // namespace

Result<std::optional<std::string>> StringField(const Poco::JSON::Object& obj, const std::string& name,
                                               size_t max_bytes) {
  if (!obj.has(name)) return std::optional<std::string>();
  Poco::Dynamic::Var v = obj.get(name);
  if (!v.isString())
    return Status::InvalidArgument("field '" + name + "' must be a string, not " + JsonTypeName(v));
  std::string s = v.extract<std::string>();
  if (s.size() > max_bytes) {
    return Status::InvalidArgument("field '" + name + "' is longer than " + std::to_string(max_bytes) +
                                   " bytes");
  }
  return std::optional<std::string>(std::move(s));
}

Result<std::optional<std::int64_t>> IntField(const Poco::JSON::Object& obj, const std::string& name) {
  if (!obj.has(name)) return std::optional<std::int64_t>();
  Poco::Dynamic::Var v = obj.get(name);
  if (!v.isInteger() || v.isBoolean()) {
    return Status::InvalidArgument("field '" + name + "' must be an integer, not " + JsonTypeName(v));
  }
  try {
    return std::optional<std::int64_t>(v.convert<std::int64_t>());
  } catch (const Poco::Exception&) {
    return Status::InvalidArgument("field '" + name + "' is out of range");
  }
}

Result<std::optional<QuotaChanges>> QuotasField(const Poco::JSON::Object& obj, const std::string& name) {
  if (!obj.has(name)) return std::optional<QuotaChanges>();
  Poco::Dynamic::Var v = obj.get(name);
  if (v.type() != typeid(Poco::JSON::Object::Ptr)) {
    return Status::InvalidArgument("field '" + name + "' must be an object of quotas, not " +
                                   JsonTypeName(v));
  }
  static constexpr std::string_view kNames[] = {"sandboxes", "open_sessions", "runs_per_minute",
                                                "tokens_per_day", "cost_per_day_usd"};
  static constexpr std::int64_t kMax[] = {1'000'000, 100'000'000, 1'000'000, 1'000'000'000'000'000LL, 0};
  auto o = v.extract<Poco::JSON::Object::Ptr>();
  QuotaChanges out;
  for (const auto& key : o->getNames()) {
    const std::string field = name + "." + key;
    size_t i = 0;
    while (i < std::size(kNames) && kNames[i] != key) ++i;
    if (i == std::size(kNames)) {
      return Status::InvalidArgument("field '" + name + "' has no quota '" + Excerpt(key, 64) +
                                     "'; quotas: sandboxes, open_sessions, runs_per_minute, tokens_per_day, "
                                     "cost_per_day_usd");
    }
    Poco::Dynamic::Var item = o->get(key);
    if (item.isEmpty()) {
      out.emplace_back(key, std::nullopt);
      continue;
    }
    if (key == "cost_per_day_usd") {
      if (!item.isNumeric() || item.isBoolean() || item.isString()) {
        return Status::InvalidArgument("field '" + field + "' must be a number of US dollars or null, not " +
                                       JsonTypeName(item));
      }
      std::optional<std::int64_t> micros = UsdToMicros(item.convert<double>());
      if (!micros) {
        return Status::InvalidArgument("field '" + field +
                                       "' must be 0 to 1000000000 (US dollars; 0: no limit)");
      }
      out.emplace_back(key, micros);
      continue;
    }
    if (!item.isInteger() || item.isBoolean()) {
      return Status::InvalidArgument("field '" + field + "' must be a whole number or null, not " +
                                     JsonTypeName(item));
    }
    std::int64_t n = 0;
    try {
      n = item.convert<std::int64_t>();
    } catch (const Poco::Exception&) {
      n = -1;
    }
    if (n < 0 || n > kMax[i]) {
      return Status::InvalidArgument("field '" + field + "' must be 0 to " + std::to_string(kMax[i]) +
                                     " (0: no limit; null: the install's default)");
    }
    out.emplace_back(key, n);
  }
  return std::optional<QuotaChanges>(std::move(out));
}

Result<std::optional<EnvMap>> StringMapField(const Poco::JSON::Object& obj, const std::string& name) {
  if (!obj.has(name)) return std::optional<EnvMap>();
  Poco::Dynamic::Var v = obj.get(name);
  if (v.type() != typeid(Poco::JSON::Object::Ptr)) {
    return Status::InvalidArgument("field '" + name + "' must be an object of strings, not " +
                                   JsonTypeName(v));
  }
  auto o = v.extract<Poco::JSON::Object::Ptr>();
  EnvMap out;
  for (const auto& key : o->getNames()) {
    Poco::Dynamic::Var item = o->get(key);
    if (!item.isString()) {
      return Status::InvalidArgument("field '" + name + "." + key + "' must be a string, not " +
                                     JsonTypeName(item));
    }
    out[key] = item.extract<std::string>();
  }
  return std::optional<EnvMap>(std::move(out));
}

Result<std::optional<std::vector<std::string>>> StringListField(const Poco::JSON::Object& obj,
                                                                const std::string& name, size_t max_items,
                                                                size_t max_bytes) {
  using Out = std::optional<std::vector<std::string>>;
  if (!obj.has(name)) return Out();
  Poco::Dynamic::Var v = obj.get(name);
  if (v.type() != typeid(Poco::JSON::Array::Ptr)) {
    return Status::InvalidArgument("field '" + name + "' must be an array of strings, not " +
                                   JsonTypeName(v));
  }
  auto a = v.extract<Poco::JSON::Array::Ptr>();
  if (a->size() > max_items) {
    return Status::InvalidArgument("field '" + name + "' may hold at most " + std::to_string(max_items) +
                                   " items");
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < a->size(); ++i) {
    Poco::Dynamic::Var item = a->get(static_cast<unsigned>(i));
    if (!item.isString()) {
      return Status::InvalidArgument("field '" + name + "[" + std::to_string(i) +
                                     "]' must be a string, not " + JsonTypeName(item));
    }
    std::string text = item.extract<std::string>();
    if (text.size() > max_bytes) {
      return Status::InvalidArgument("field '" + name + "[" + std::to_string(i) + "]' is longer than " +
                                     std::to_string(max_bytes) + " bytes");
    }
    out.push_back(std::move(text));
  }
  return Out(std::move(out));
}

Result<std::optional<std::vector<SecretRef>>> SecretRefsField(const Poco::JSON::Object& obj,
                                                              const std::string& name) {
  using Out = std::optional<std::vector<SecretRef>>;
  if (!obj.has(name)) return Out();
  Poco::Dynamic::Var v = obj.get(name);
  if (v.type() != typeid(Poco::JSON::Array::Ptr)) {
    return Status::InvalidArgument("field '" + name + "' must be an array of secret names, not " +
                                   JsonTypeName(v));
  }
  auto a = v.extract<Poco::JSON::Array::Ptr>();
  if (a->size() > 50) return Status::InvalidArgument("field '" + name + "' may name at most 50 secrets");
  std::vector<SecretRef> out;
  for (size_t i = 0; i < a->size(); ++i) {
    const std::string at = "field '" + name + "[" + std::to_string(i) + "]'";
    Poco::Dynamic::Var item = a->get(static_cast<unsigned>(i));
    SecretRef ref;
    if (item.isString()) {
      ref.name = item.extract<std::string>();
    } else if (item.type() == typeid(Poco::JSON::Object::Ptr)) {
      auto o = item.extract<Poco::JSON::Object::Ptr>();
      for (const auto& key : o->getNames()) {
        if (key != "name" && key != "as") {
          return Status::InvalidArgument(at + " has an unknown key '" + Excerpt(key, 64) +
                                         "'; allowed: name, as");
        }
      }
      Poco::Dynamic::Var n = o->get("name");
      if (!n.isString()) return Status::InvalidArgument(at + " needs \"name\", a string");
      ref.name = n.extract<std::string>();
      if (o->has("as")) {
        Poco::Dynamic::Var as = o->get("as");
        std::string form = as.isString() ? as.extract<std::string>() : "";
        if (form != "env" && form != "file") {
          return Status::InvalidArgument(at + ": \"as\" must be \"env\" or \"file\"");
        }
        ref.file = form == "file";
      }
    } else {
      return Status::InvalidArgument(
          at + " must be a secret name or {\"name\": ..., \"as\": \"env\"|\"file\"}, not " +
          JsonTypeName(item));
    }
    if (ref.name.size() > 128) return Status::InvalidArgument(at + " is longer than 128 bytes");
    out.push_back(std::move(ref));
  }
  return Out(std::move(out));
}

std::optional<std::int64_t> ParseInt64(std::string_view text) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

}  // namespace paddock

namespace paddock {

Result<std::optional<VaultBinding>> VaultField(const Poco::JSON::Object& obj, const std::string& name) {
  using Out = std::optional<VaultBinding>;
  if (!obj.has(name)) return Out();
  Poco::Dynamic::Var v = obj.get(name);
  if (v.isEmpty()) return Out(VaultBinding{});
  if (v.type() != typeid(Poco::JSON::Object::Ptr)) {
    return Status::InvalidArgument("field '" + name +
                                   "' must be an object (hosts, header|basic|query, agents) or null, not " +
                                   JsonTypeName(v));
  }
  auto o = v.extract<Poco::JSON::Object::Ptr>();
  for (const auto& key : o->getNames()) {
    if (key != "hosts" && key != "header" && key != "format" && key != "basic" && key != "query" &&
        key != "agents") {
      return Status::InvalidArgument("field '" + name + "' has no member '" + Excerpt(key, 64) +
                                     "'; members: hosts, header, format, basic, query, agents");
    }
  }
  VaultBinding b;
  PADDOCK_ASSIGN_OR_RETURN(std::optional<std::vector<std::string>> hosts,
                           StringListField(*o, "hosts", 64, 256));
  if (!hosts || hosts->empty()) {
    return Status::InvalidArgument("field '" + name +
                                   ".hosts' must name at least one host the value may go to");
  }
  b.hosts = std::move(*hosts);
  PADDOCK_ASSIGN_OR_RETURN(std::optional<std::vector<std::string>> agents,
                           StringListField(*o, "agents", 256, 128));
  if (agents) b.agents = std::move(*agents);
  PADDOCK_ASSIGN_OR_RETURN(std::optional<std::string> header, StringField(*o, "header", 128));
  PADDOCK_ASSIGN_OR_RETURN(std::optional<std::string> format, StringField(*o, "format", 1024));
  PADDOCK_ASSIGN_OR_RETURN(std::optional<std::string> query, StringField(*o, "query", 128));
  bool basic = false;
  if (o->has("basic")) {
    Poco::Dynamic::Var item = o->get("basic");
    if (!item.isBoolean()) {
      return Status::InvalidArgument("field '" + name + ".basic' must be true or false, not " +
                                     JsonTypeName(item));
    }
    basic = item.convert<bool>();
  }
  int forms = (header ? 1 : 0) + (basic ? 1 : 0) + (query ? 1 : 0);
  if (forms != 1) {
    return Status::InvalidArgument(
        "field '" + name +
        "' must say how the value goes in, in exactly one way: \"header\": NAME (with "
        "\"format\", e.g. \"Bearer {}\"), \"basic\": true, or \"query\": NAME");
  }
  if (format && !header) {
    return Status::InvalidArgument("field '" + name + ".format' goes with \"header\" only");
  }
  if (header) {
    b.form = VaultForm::kHeader;
    b.field = std::move(*header);
    if (format) b.format = std::move(*format);
  } else if (basic) {
    b.form = VaultForm::kBasic;
  } else {
    b.form = VaultForm::kQuery;
    b.field = std::move(*query);
  }
  return Out(std::move(b));
}

}  // namespace paddock
