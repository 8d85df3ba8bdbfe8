#include "http/input.h"

#include <Poco/JSON/Parser.h>

#include <charconv>

namespace paddock {

bool IsId(std::string_view s) {
  if (s.empty() || s.size() > kMaxIdLength) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

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

std::optional<std::int64_t> ParseInt64(std::string_view text) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

}  // namespace paddock
