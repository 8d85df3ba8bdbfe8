#include "fake_kube.h"

#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/String.h>
#include <Poco/Timestamp.h>
#include <Poco/URI.h>

#include "jail.h"
#include "testing.h"

namespace paddock::testing {
namespace {

namespace fs = std::filesystem;
using paddock::plugins::sandbox_process::JailOptions;
using paddock::plugins::sandbox_process::JailProcess;
using paddock::plugins::sandbox_process::JailSpec;
using Poco::Dynamic::Var;
using Poco::JSON::Array;
using Poco::JSON::Object;

// Core kinds the plugin writes, with schemas as small as what the real API checks for them.
constexpr char kSecretSchema[] = R"(
type: object
properties:
  apiVersion: {type: string}
  kind: {type: string}
  metadata: {type: object}
  data: {type: object, additionalProperties: {type: string, format: byte}}
  stringData: {type: object, additionalProperties: {type: string}}
  type: {type: string}
  immutable: {type: boolean}
)";
constexpr char kPvcSchema[] = R"(
type: object
required: [spec]
properties:
  apiVersion: {type: string}
  kind: {type: string}
  metadata: {type: object}
  spec:
    type: object
    required: [accessModes, resources]
    properties:
      accessModes:
        type: array
        minItems: 1
        items: {type: string, enum: [ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod]}
      resources:
        type: object
        required: [requests]
        properties:
          requests:
            type: object
            required: [storage]
            properties:
              storage: {x-kubernetes-int-or-string: true, pattern: '^[0-9]+(\.[0-9]+)?([KMGTPE]i?|[mk])?$'}
          limits: {type: object, additionalProperties: {x-kubernetes-int-or-string: true}}
      storageClassName: {type: string}
      volumeMode: {type: string, enum: [Filesystem, Block]}
      volumeName: {type: string}
      selector: {type: object, x-kubernetes-preserve-unknown-fields: true}
  status: {type: object, x-kubernetes-preserve-unknown-fields: true}
)";

// networking.k8s.io/v1 NetworkPolicy as the API's OpenAPI document gives it (every field of the
// spec; the API's defaulting of policyTypes is not modelled: the manifests set them).
constexpr char kNetworkPolicySchema[] = R"(
type: object
properties:
  apiVersion: {type: string}
  kind: {type: string}
  metadata: {type: object}
  spec:
    type: object
    required: [podSelector]
    properties:
      podSelector: &selector
        type: object
        properties:
          matchLabels: {type: object, additionalProperties: {type: string}}
          matchExpressions:
            type: array
            items:
              type: object
              required: [key, operator]
              properties:
                key: {type: string}
                operator: {type: string, enum: [In, NotIn, Exists, DoesNotExist]}
                values: {type: array, items: {type: string}}
      policyTypes: {type: array, items: {type: string, enum: [Ingress, Egress]}}
      ingress:
        type: array
        items:
          type: object
          properties:
            from: {type: array, items: &peer {type: object, properties: {
              podSelector: *selector, namespaceSelector: *selector,
              ipBlock: {type: object, required: [cidr], properties: {
                cidr: {type: string}, except: {type: array, items: {type: string}}}}}}}
            ports: {type: array, items: &port {type: object, properties: {
              protocol: {type: string, enum: [TCP, UDP, SCTP]},
              port: {x-kubernetes-int-or-string: true}, endPort: {type: integer}}}}
      egress:
        type: array
        items:
          type: object
          properties:
            to: {type: array, items: *peer}
            ports: {type: array, items: *port}
)";

struct Kind {
  std::string group, version, plural, kind;
  bool has_status = false;
  YAML::Node schema;
  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
  std::string Qualified() const { return group.empty() ? plural : plural + "." + group; }
};

struct ApiError {
  int code = 0;
  std::string reason, message;
  Array::Ptr causes;
};

struct Event {
  std::uint64_t rv;
  std::string plural, ns, type;
  Object::Ptr object;
};

struct Pod {
  JailProcess jail;
  std::string ip;
  std::string dir;
};

Object::Ptr Clone(Object::Ptr o) {
  std::ostringstream ss;
  o->stringify(ss);
  Poco::JSON::Parser p;
  return p.parse(ss.str()).extract<Object::Ptr>();
}

std::string ToJson(Object::Ptr o) {
  std::ostringstream ss;
  o->stringify(ss);
  return ss.str();
}

Object::Ptr Obj(Object::Ptr o, const std::string& key) {
  if (!o || !o->has(key) || o->isNull(key)) return nullptr;
  try {
    return o->getObject(key);
  } catch (...) {
    return nullptr;
  }
}

Object::Ptr Ensure(Object::Ptr o, const std::string& key) {
  if (Object::Ptr got = Obj(o, key)) return got;
  Object::Ptr made = new Object;
  o->set(key, made);
  return made;
}

std::string Str(Object::Ptr o, const std::string& key) {
  if (!o || !o->has(key) || o->isNull(key)) return "";
  try {
    return o->getValue<std::string>(key);
  } catch (...) {
    return "";
  }
}

Array::Ptr Arr(Object::Ptr o, const std::string& key) {
  if (!o || !o->has(key) || o->isNull(key)) return nullptr;
  try {
    return o->getArray(key);
  } catch (...) {
    return nullptr;
  }
}

std::string Now() { return Poco::DateTimeFormatter::format(Poco::Timestamp(), "%Y-%m-%dT%H:%M:%SZ"); }

std::string RandomAlnum(size_t n) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* kChars = "bcdfghjklmnpqrstvwxz2456789";
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(kChars[rng() % 27]);
  return s;
}

std::string Uid() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-a%03x-%012llx", static_cast<unsigned>(rng()),
                static_cast<unsigned>(rng() & 0xffff), static_cast<unsigned>(rng() & 0xfff),
                static_cast<unsigned>(rng() & 0xfff),
                static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  return buf;
}

std::string Fnv32a(const std::string& s) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

bool DnsSubdomain(const std::string& s) {
  static const std::regex re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
  return !s.empty() && s.size() <= 253 && std::regex_match(s, re);
}

bool LabelValue(const std::string& s) {
  static const std::regex re("^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$");
  return s.size() <= 63 && std::regex_match(s, re);
}

bool LabelKey(const std::string& k) {
  auto slash = k.find('/');
  std::string name = slash == std::string::npos ? k : k.substr(slash + 1);
  if (slash != std::string::npos && !DnsSubdomain(k.substr(0, slash))) return false;
  return !name.empty() && LabelValue(name);
}

std::string Base64Decode(const std::string& s, bool* ok) {
  static const std::regex re("^[A-Za-z0-9+/]*={0,2}$");
  *ok = s.size() % 4 == 0 && std::regex_match(s, re);
  if (!*ok) return "";
  std::istringstream in(s);
  Poco::Base64Decoder d(in);
  return std::string((std::istreambuf_iterator<char>(d)), std::istreambuf_iterator<char>());
}

// ---- OpenAPI v3 validation (the structural-schema subset CRDs use) -------------------------

struct Validation {
  std::vector<std::pair<std::string, std::string>> errors;  // (reason, "field: message")
  Array::Ptr causes = new Array;
  std::vector<std::string> unknown;
  void Fail(const std::string& reason, const std::string& field, const std::string& message) {
    errors.emplace_back(reason, field + ": " + message);
    Object::Ptr c = new Object;
    c->set("reason", reason);
    c->set("message", message);
    c->set("field", field);
    causes->add(c);
  }
};

bool IsObject(const Var& v) { return v.type() == typeid(Object::Ptr); }
bool IsArray(const Var& v) { return v.type() == typeid(Array::Ptr); }

std::string TypeName(const Var& v) {
  if (v.isEmpty()) return "null";
  if (IsObject(v)) return "object";
  if (IsArray(v)) return "array";
  if (v.isString()) return "string";
  if (v.isBoolean()) return "boolean";
  if (v.isInteger()) return "integer";
  if (v.isNumeric()) return "number";
  return "unknown";
}

std::string Quote(const Var& v) {
  std::string s = v.isString() ? "\"" + v.toString() + "\"" : v.toString();
  return s;
}

void Validate(const YAML::Node& s, const Var& v, const std::string& path, Validation& out,
              bool root = false) {
  if (!s || !s.IsMap()) return;
  const bool int_or_string = s["x-kubernetes-int-or-string"] && s["x-kubernetes-int-or-string"].as<bool>();
  const std::string type = s["type"] ? s["type"].as<std::string>() : "";
  // The value's type against the schema's: (schema type, whether the value is of it).
  const std::pair<const char*, bool> checks[] = {{"integer,string", v.isString() || v.isInteger()},
                                                 {"object", IsObject(v)},
                                                 {"array", IsArray(v)},
                                                 {"string", v.isString()},
                                                 {"integer", v.isInteger()},
                                                 {"number", v.isNumeric()},
                                                 {"boolean", v.isBoolean()}};
  const std::string want = int_or_string ? "integer,string" : type;
  for (const auto& [name, ok] : checks) {
    if (want == name && !ok) {
      out.Fail("FieldValueTypeInvalid", path,
               "Invalid value: \"" + TypeName(v) + "\": " + path + " in body must be of type " + want +
                   ": \"" + TypeName(v) + "\"");
      return;
    }
  }
  if (s["enum"] && !IsObject(v) && !IsArray(v)) {
    bool found = false;
    std::string allowed;
    for (const auto& e : s["enum"]) {
      allowed += (allowed.empty() ? "\"" : ", \"") + e.as<std::string>() + "\"";
      if (v.toString() == e.as<std::string>()) found = true;
    }
    if (!found)
      out.Fail("FieldValueNotSupported", path,
               "Unsupported value: " + Quote(v) + ": supported values: " + allowed);
  }
  if (v.isString()) {
    std::string str = v.toString();
    if (s["maxLength"] && str.size() > s["maxLength"].as<size_t>()) {
      out.Fail("FieldValueTooLong", path,
               "Too long: may not be more than " + s["maxLength"].as<std::string>() + " bytes");
    }
    if (s["minLength"] && str.size() < s["minLength"].as<size_t>()) {
      out.Fail("FieldValueInvalid", path,
               "Invalid value: " + Quote(v) + ": " + path + " in body should be at least " +
                   s["minLength"].as<std::string>() + " chars long");
    }
    if (s["pattern"]) {
      try {
        if (!std::regex_search(str, std::regex(s["pattern"].as<std::string>()))) {
          out.Fail("FieldValueInvalid", path,
                   "Invalid value: " + Quote(v) + ": " + path + " in body should match '" +
                       s["pattern"].as<std::string>() + "'");
        }
      } catch (const std::regex_error&) {
      }
    }
    if (s["format"] && s["format"].as<std::string>() == "date-time") {
      static const std::regex dt(
          "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$");
      if (!std::regex_match(str, dt)) {
        out.Fail(
            "FieldValueInvalid", path,
            "Invalid value: " + Quote(v) + ": " + path + " in body must be of type date-time: " + Quote(v));
      }
    }
    if (s["format"] && s["format"].as<std::string>() == "byte") {
      bool ok = false;
      (void)Base64Decode(str, &ok);
      if (!ok) out.Fail("FieldValueInvalid", path, "Invalid value: " + Quote(v) + ": illegal base64 data");
    }
  }
  if (v.isNumeric() && !v.isString()) {
    double d = v.convert<double>();
    if (s["minimum"] && d < s["minimum"].as<double>()) {
      out.Fail("FieldValueInvalid", path,
               "Invalid value: " + v.toString() + ": " + path +
                   " in body should be greater than or equal to " + s["minimum"].as<std::string>());
    }
    if (s["maximum"] && d > s["maximum"].as<double>()) {
      out.Fail("FieldValueInvalid", path,
               "Invalid value: " + v.toString() + ": " + path + " in body should be less than or equal to " +
                   s["maximum"].as<std::string>());
    }
  }
  if (IsArray(v)) {
    Array::Ptr a = v.extract<Array::Ptr>();
    if (s["maxItems"] && a->size() > s["maxItems"].as<size_t>()) {
      out.Fail("FieldValueTooMany", path,
               "Too many: " + std::to_string(a->size()) + ": must have at most " +
                   s["maxItems"].as<std::string>() + " items");
    }
    if (s["minItems"] && a->size() < s["minItems"].as<size_t>()) {
      out.Fail("FieldValueInvalid", path,
               "Invalid value: " + std::to_string(a->size()) + ": " + path +
                   " in body should have at least " + s["minItems"].as<std::string>() + " items");
    }
    if (s["items"]) {
      for (size_t i = 0; i < a->size(); ++i)
        Validate(s["items"], a->get(static_cast<unsigned>(i)), path + "[" + std::to_string(i) + "]", out);
    }
  }
  if (IsObject(v)) {
    Object::Ptr o = v.extract<Object::Ptr>();
    const YAML::Node props = s["properties"];
    const YAML::Node additional = s["additionalProperties"];
    const bool preserve =
        s["x-kubernetes-preserve-unknown-fields"] && s["x-kubernetes-preserve-unknown-fields"].as<bool>();
    std::vector<std::string> keys;
    for (const auto& [k, unused] : *o) keys.push_back(k);
    for (const std::string& k : keys) {
      const std::string child = path.empty() ? k : path + "." + k;
      if (root && (k == "metadata" || k == "apiVersion" || k == "kind")) continue;
      Var value = o->get(k);
      YAML::Node cs;
      bool known = false;
      if (props && props[k]) {
        cs = props[k];
        known = true;
      } else if (additional && additional.IsMap()) {
        cs = additional;
        known = true;
      }
      if (!known) {
        if (!preserve) {
          out.unknown.push_back(child);
          o->remove(k);  // pruned, as the API server does
        }
        continue;
      }
      if (value.isEmpty()) {
        // null for a non-nullable field: dropped (as absent).
        if (!(cs["nullable"] && cs["nullable"].as<bool>())) o->remove(k);
        continue;
      }
      Validate(cs, value, child, out);
    }
    if (props) {
      for (const auto& p : props) {
        std::string k = p.first.as<std::string>();
        if (!o->has(k) && p.second["default"]) {
          // Defaults of the agent-sandbox CRDs are scalars.
          const YAML::Node& d = p.second["default"];
          std::string t = p.second["type"] ? p.second["type"].as<std::string>() : "";
          if (t == "integer")
            o->set(k, d.as<long long>());
          else if (t == "boolean")
            o->set(k, d.as<bool>());
          else if (d.IsScalar())
            o->set(k, d.as<std::string>());
        }
      }
    }
    if (s["required"]) {
      for (const auto& r : s["required"]) {
        std::string k = r.as<std::string>();
        if (!o->has(k)) out.Fail("FieldValueRequired", path.empty() ? k : path + "." + k, "Required value");
      }
    }
  }
}

}  // namespace

// ---- The server --------------------------------------------------------------------------

struct FakeKube::Impl {
  FakeKubeOptions opt;
  std::map<std::string, Kind> kinds;  // plural → kind
  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Object::Ptr> objects;  // "plural/ns/name"
  std::uint64_t rv = 1000;
  std::uint64_t compacted = 0;  // watches from before this get 410
  std::deque<Event> events;
  std::map<std::string, Pod> pods;  // "ns/sandbox"
  std::set<std::string> starting;   // pods being started
  std::set<std::string> killing;    // pods being stopped
  std::vector<std::string> requests, bodies;
  std::unique_ptr<Poco::Net::HTTPServer> http;
  int port = 0;
  std::atomic<bool> stopping{false};
  std::thread controller;
  std::vector<std::thread> pod_threads;
  std::uint32_t next_ip = 0;
  std::uint64_t watch_epoch = 0;  // DropWatches ends the streams of an older epoch
  std::map<std::string, std::chrono::steady_clock::time_point> claim_created;
  std::vector<double> claim_ready_ms;

  static std::string Key(const std::string& plural, const std::string& ns, const std::string& name) {
    return plural + "/" + ns + "/" + name;
  }

  // ---- store ----
  void Commit(const std::string& plural, const std::string& ns, const std::string& type, Object::Ptr obj) {
    ++rv;
    Ensure(obj, "metadata")->set("resourceVersion", std::to_string(rv));
    const std::string name = Str(Obj(obj, "metadata"), "name");
    if (type == "DELETED") {
      objects.erase(Key(plural, ns, name));
    } else {
      objects[Key(plural, ns, name)] = obj;
    }
    if (plural == "sandboxclaims" && type == "ADDED")
      claim_created[ns + "/" + name] = std::chrono::steady_clock::now();
    events.push_back(Event{rv, plural, ns, type, Clone(obj)});
    while (events.size() > opt.history) {
      compacted = events.front().rv;
      events.pop_front();
    }
    cv.notify_all();
  }

  Object::Ptr Find(const std::string& plural, const std::string& ns, const std::string& name) const {
    auto it = objects.find(Key(plural, ns, name));
    return it == objects.end() ? nullptr : it->second;
  }

  Object::Ptr FindUid(const std::string& uid) const {
    for (const auto& [k, o] : objects) {
      if (Str(Obj(o, "metadata"), "uid") == uid) return o;
    }
    return nullptr;
  }

  // ---- admission ----
  std::optional<ApiError> Admit(const Kind& kind, Object::Ptr body, const std::string& ns, bool strict,
                                std::vector<std::string>& warnings) {
    std::string api = Str(body, "apiVersion"), k = Str(body, "kind");
    if (api.empty() || k.empty()) {
      return ApiError{400, "BadRequest", "Object 'Kind' is missing in '" + ToJson(body).substr(0, 200) + "'",
                      nullptr};
    }
    if (api != kind.ApiVersion()) {
      return ApiError{400, "BadRequest",
                      "the API version in the data (" + api + ") does not match the expected API version (" +
                          kind.ApiVersion() + ")",
                      nullptr};
    }
    if (k != kind.kind) {
      return ApiError{400, "BadRequest",
                      k + " in version \"" + kind.version + "\" cannot be handled as a " + kind.kind +
                          ": the kind in the data does not match the URL",
                      nullptr};
    }
    Object::Ptr meta = Obj(body, "metadata");
    if (!meta)
      return ApiError{
          422, "Invalid",
          kind.kind + " is invalid: metadata.name: Required value: name or generateName is required",
          nullptr};
    if (!Str(meta, "namespace").empty() && Str(meta, "namespace") != ns) {
      return ApiError{400, "BadRequest",
                      "the namespace of the provided object does not match the namespace sent on the request",
                      nullptr};
    }
    meta->set("namespace", ns);
    static const std::set<std::string> kMetaFields = {"name",
                                                      "generateName",
                                                      "namespace",
                                                      "labels",
                                                      "annotations",
                                                      "ownerReferences",
                                                      "finalizers",
                                                      "resourceVersion",
                                                      "uid",
                                                      "creationTimestamp",
                                                      "deletionTimestamp",
                                                      "generation",
                                                      "managedFields",
                                                      "deletionGracePeriodSeconds",
                                                      "selfLink"};
    std::vector<std::string> meta_keys;
    for (const auto& [mk, unused] : *meta) meta_keys.push_back(mk);
    Validation v;
    for (const auto& mk : meta_keys) {
      if (!kMetaFields.count(mk)) {
        v.unknown.push_back("metadata." + mk);
        meta->remove(mk);
      }
    }
    std::string name = Str(meta, "name");
    if (name.empty() && !Str(meta, "generateName").empty()) {
      name = Str(meta, "generateName") + RandomAlnum(5);
      meta->set("name", name);
    }
    if (name.empty())
      v.Fail("FieldValueRequired", "metadata.name", "Required value: name or generateName is required");
    else if (!DnsSubdomain(name)) {
      v.Fail("FieldValueInvalid", "metadata.name",
             "Invalid value: \"" + name +
                 "\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character");
    }
    if (Object::Ptr labels = Obj(meta, "labels")) {
      for (const auto& [lk, lv] : *labels) {
        if (!LabelKey(lk))
          v.Fail("FieldValueInvalid", "metadata.labels",
                 "Invalid value: \"" + lk + "\": name part must be valid");
        if (!lv.isString() || !LabelValue(lv.toString())) {
          v.Fail("FieldValueInvalid", "metadata.labels",
                 "Invalid value: \"" + lv.toString() +
                     "\": a valid label must be an "
                     "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
                     "and end with an "
                     "alphanumeric character");
        }
      }
    }
    if (Array::Ptr owners = Arr(meta, "ownerReferences")) {
      for (size_t i = 0; i < owners->size(); ++i) {
        Object::Ptr o = owners->getObject(static_cast<unsigned>(i));
        for (const char* f : {"apiVersion", "kind", "name", "uid"}) {
          if (Str(o, f).empty()) {
            v.Fail("FieldValueRequired", "metadata.ownerReferences[" + std::to_string(i) + "]." + f,
                   "Required value");
          }
        }
      }
    }
    Validate(kind.schema, Var(body), "", v, /*root=*/true);
    if (kind.plural == "secrets" && v.errors.empty()) {
      // stringData is merged into data, as the API server does.
      if (Object::Ptr sd = Obj(body, "stringData")) {
        Object::Ptr data = Ensure(body, "data");
        for (const auto& [sk, sv] : *sd) {
          std::ostringstream enc;
          Poco::Base64Encoder e(enc);
          e.rdbuf()->setLineLength(0);
          e << sv.toString();
          e.close();
          data->set(sk, enc.str());
        }
        body->remove("stringData");
      }
    }
    if (!v.unknown.empty()) {
      if (strict) {
        std::string msg = "strict decoding error: ";
        for (size_t i = 0; i < v.unknown.size(); ++i)
          msg += (i ? ", " : "") + std::string("unknown field \"") + v.unknown[i] + "\"";
        return ApiError{400, "BadRequest", msg, nullptr};
      }
      for (const auto& u : v.unknown) warnings.push_back("unknown field \"" + u + "\"");
    }
    if (!v.errors.empty()) {
      std::string msg = kind.kind + "." + kind.group + " \"" + name + "\" is invalid: ";
      if (v.errors.size() > 1) msg += "[";
      for (size_t i = 0; i < v.errors.size(); ++i) msg += (i ? ", " : "") + v.errors[i].second;
      if (v.errors.size() > 1) msg += "]";
      return ApiError{422, "Invalid", msg, v.causes};
    }
    return std::nullopt;
  }

  // ---- HTTP ----
  static void SendJson(Poco::Net::HTTPServerResponse& resp, int code, Object::Ptr body) {
    std::string text = ToJson(body);
    resp.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(code));
    resp.setContentType("application/json");
    resp.setContentLength(static_cast<std::streamsize>(text.size()));
    resp.send() << text;
  }

  static void SendStatus(Poco::Net::HTTPServerResponse& resp, int code, const std::string& reason,
                         const std::string& message, const Kind* kind = nullptr, const std::string& name = "",
                         Array::Ptr causes = nullptr) {
    Object::Ptr s = new Object;
    s->set("kind", "Status");
    s->set("apiVersion", "v1");
    s->set("metadata", Object::Ptr(new Object));
    s->set("status", code < 300 ? "Success" : "Failure");
    s->set("message", message);
    s->set("reason", reason);
    Object::Ptr details = new Object;
    if (!name.empty()) details->set("name", name);
    if (kind) {
      details->set("group", kind->group);
      details->set("kind", kind->plural);
    }
    if (causes) details->set("causes", causes);
    s->set("details", details);
    s->set("code", code);
    SendJson(resp, code, s);
  }

  static void Conflict(Poco::Net::HTTPServerResponse& resp, const Kind& kind, const std::string& name) {
    SendStatus(
        resp, 409, "Conflict",
        "Operation cannot be fulfilled on " + kind.Qualified() + " \"" + name +
            "\": the object has been modified; please apply your changes to the latest version and try again",
        &kind, name);
  }

  static void NotFound(Poco::Net::HTTPServerResponse& resp, const Kind& kind, const std::string& name) {
    SendStatus(resp, 404, "NotFound", kind.Qualified() + " \"" + name + "\" not found", &kind, name);
  }

  bool MatchLabels(Object::Ptr o, const std::string& selector, std::string* error) const {
    Object::Ptr labels = Obj(Obj(o, "metadata"), "labels");
    std::stringstream ss(selector);
    for (std::string req; std::getline(ss, req, ',');) {
      if (req.empty()) continue;
      auto neq = req.find("!=");
      auto eq = req.find('=');
      if (neq != std::string::npos) {
        if (Str(labels, req.substr(0, neq)) == req.substr(neq + 2) && labels &&
            labels->has(req.substr(0, neq)))
          return false;
      } else if (eq != std::string::npos) {
        std::string k = req.substr(0, eq);
        std::string val = req.substr(req[eq + 1] == '=' ? eq + 2 : eq + 1);
        if (!labels || !labels->has(k) || Str(labels, k) != val) return false;
      } else if (req[0] == '!') {
        if (labels && labels->has(req.substr(1))) return false;
      } else if (req.find(' ') != std::string::npos) {
        *error =
            "unable to parse requirement: set-based requirements are not supported by this server: " + req;
        return false;
      } else {
        if (!labels || !labels->has(req)) return false;
      }
    }
    return true;
  }

  bool MatchFields(Object::Ptr o, const std::string& selector, std::string* error) const {
    std::stringstream ss(selector);
    for (std::string req; std::getline(ss, req, ',');) {
      if (req.empty()) continue;
      bool negate = req.find("!=") != std::string::npos;
      auto eq = req.find(negate ? "!=" : "=");
      if (eq == std::string::npos) {
        *error = "invalid field selector: '" + req + "'";
        return false;
      }
      std::string field = req.substr(0, eq);
      std::string val = req.substr(eq + (negate ? 2 : (req[eq + 1] == '=' ? 2 : 1)));
      std::string actual;
      if (field == "metadata.name")
        actual = Str(Obj(o, "metadata"), "name");
      else if (field == "metadata.namespace")
        actual = Str(Obj(o, "metadata"), "namespace");
      else {
        *error = "field label not supported: " + field;
        return false;
      }
      if ((actual == val) == negate) return false;
    }
    return true;
  }

  void Handle(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) {
    const std::string method = req.getMethod();
    Poco::URI uri(req.getURI());
    std::string body((std::istreambuf_iterator<char>(req.stream())), std::istreambuf_iterator<char>());
    {
      std::lock_guard lock(mu);
      requests.push_back(method + " " + req.getURI());
      if (!body.empty()) bodies.push_back(body);
    }
    if (req.get("Authorization", "") != "Bearer " + opt.token) {
      return SendStatus(resp, 401, "Unauthorized", "Unauthorized");
    }
    std::map<std::string, std::string> q;
    for (const auto& [k, v] : uri.getQueryParameters()) q[k] = v;
    std::vector<std::string> parts;
    {
      std::stringstream ss(uri.getPath());
      for (std::string p; std::getline(ss, p, '/');) {
        if (!p.empty()) parts.push_back(p);
      }
    }
    std::string group, version;
    size_t i = 0;
    if (parts.size() >= 2 && parts[0] == "api") {
      version = parts[1];
      i = 2;
    } else if (parts.size() >= 3 && parts[0] == "apis") {
      group = parts[1];
      version = parts[2];
      i = 3;
    } else {
      return SendStatus(resp, 404, "NotFound", "the server could not find the requested resource");
    }
    std::string ns, plural, name, sub;
    if (i < parts.size() && parts[i] == "namespaces" && i + 2 < parts.size()) {
      ns = parts[i + 1];
      i += 2;
    }
    if (i < parts.size()) plural = parts[i++];
    if (i < parts.size()) name = parts[i++];
    if (i < parts.size()) sub = parts[i++];
    if (group.empty() && version == "v1" && plural == "pods" && sub == "proxy" && !ns.empty()) {
      return ProxyToPod(req, resp, ns, name, uri, body);
    }
    auto kit = kinds.find(plural);
    if (kit == kinds.end() || kit->second.group != group || kit->second.version != version ||
        i < parts.size() || (!sub.empty() && (sub != "status" || !kit->second.has_status))) {
      return SendStatus(resp, 404, "NotFound", "the server could not find the requested resource");
    }
    const Kind& kind = kit->second;
    const bool strict = q["fieldValidation"] == "Strict";
    if (method == "GET" && name.empty()) {
      if (q["watch"] == "1" || q["watch"] == "true") return Watch(resp, kind, ns, q);
      return ListObjects(resp, kind, ns, q);
    }
    if (ns.empty())
      return SendStatus(resp, 405, "MethodNotAllowed",
                        "the server does not allow this method on the requested resource");
    if (method == "GET") {
      std::lock_guard lock(mu);
      Object::Ptr o = Find(plural, ns, name);
      if (!o) return NotFound(resp, kind, name);
      return SendJson(resp, 200, o);
    }
    if (method == "POST" && name.empty()) {
      if (!opt.namespaces.empty() &&
          std::find(opt.namespaces.begin(), opt.namespaces.end(), ns) == opt.namespaces.end()) {
        Kind namespaces{"", "v1", "namespaces", "Namespace", false, {}};
        return SendStatus(resp, 404, "NotFound", "namespaces \"" + ns + "\" not found", &namespaces, ns);
      }
      return CreateObject(resp, kind, ns, body, strict);
    }
    if (method == "PUT" && !name.empty()) return Replace(resp, kind, ns, name, sub, body, strict);
    if (method == "PATCH" && !name.empty()) {
      std::string ct = req.getContentType();
      if (ct.rfind("application/merge-patch+json", 0) != 0) {
        return SendStatus(
            resp, 415, "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/merge-patch+json (this server; strategic merge does not apply to custom resources)");
      }
      return Patch(resp, kind, ns, name, sub, body, strict);
    }
    if (method == "DELETE" && !name.empty()) return Delete(resp, kind, ns, name, q["propagationPolicy"]);
    SendStatus(resp, 405, "MethodNotAllowed",
               "the server does not allow this method on the requested resource");
  }

  // The pod proxy subresource, as kube-apiserver serves it: /api/v1/namespaces/NS/pods/
  // NAME[:PORT]/proxy/PATH?QUERY goes to the pod's IP and port with the caller's headers but
  // Authorization (the API server authenticated with it and strips it) and the hop-by-hop ones;
  // the answer streams back as the pod sends it. 404 for a pod that does not exist, 503 when
  // the pod's port does not answer.
  void ProxyToPod(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp,
                  const std::string& ns, const std::string& name_port, const Poco::URI& uri,
                  const std::string& body) {
    std::string name = name_port, port = "80";
    if (auto colon = name_port.find(':'); colon != std::string::npos) {
      name = name_port.substr(0, colon);
      port = name_port.substr(colon + 1);
    }
    std::string ip;
    {
      std::lock_guard lock(mu);
      auto it = pods.find(ns + "/" + name);
      if (it == pods.end() || !paddock::plugins::sandbox_process::JailAlive(it->second.jail)) {
        return SendStatus(resp, 404, "NotFound", "pods \"" + name + "\" not found");
      }
      ip = it->second.ip;
    }
    const std::string path = uri.getPath();
    std::string rest = path.substr(path.find("/proxy") + 6);
    if (rest.empty()) rest = "/";
    if (!uri.getRawQuery().empty()) rest += "?" + uri.getRawQuery();
    Poco::Net::HTTPClientSession pod(ip, static_cast<Poco::UInt16>(std::stoi(port)));
    pod.setTimeout(Poco::Timespan(3600, 0));
    Poco::Net::HTTPRequest out(req.getMethod(), rest, Poco::Net::HTTPMessage::HTTP_1_1);
    static const std::set<std::string> kDropped = {
        "authorization",     "host",    "connection", "keep-alive",         "content-length",
        "transfer-encoding", "upgrade", "te",         "proxy-authorization"};
    for (const auto& [k, v] : req) {
      if (!kDropped.count(Poco::toLower(k))) out.add(k, v);
    }
    out.set("X-Forwarded-For", req.clientAddress().host().toString());
    if (!body.empty() || req.getMethod() == "POST" || req.getMethod() == "PUT") {
      out.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    Poco::Net::HTTPResponse answer;
    std::istream* in = nullptr;
    try {
      pod.sendRequest(out) << body;
      in = &pod.receiveResponse(answer);
    } catch (const Poco::Exception& e) {
      return SendStatus(
          resp, 503, "ServiceUnavailable",
          "error trying to reach service: dial tcp " + ip + ":" + port + ": " + e.displayText());
    }
    resp.setStatus(answer.getStatus());
    for (const auto& [k, v] : answer) {
      if (!kDropped.count(Poco::toLower(k))) resp.add(k, v);
    }
    resp.setChunkedTransferEncoding(true);
    std::ostream& to = resp.send();
    char buf[16384];
    for (;;) {
      const int c = in->get();
      if (c == std::char_traits<char>::eof()) break;
      buf[0] = static_cast<char>(c);
      const std::streamsize more = in->readsome(buf + 1, sizeof buf - 1);
      to.write(buf, 1 + more);
      to.flush();
      if (!to) break;
    }
  }

  Result<Object::Ptr> ParseBody(Poco::Net::HTTPServerResponse& resp, const std::string& body) {
    try {
      Poco::JSON::Parser p;
      Var v = p.parse(body);
      if (!IsObject(v)) throw std::runtime_error("not an object");
      return v.extract<Object::Ptr>();
    } catch (const std::exception& e) {
      SendStatus(resp, 400, "BadRequest",
                 std::string("couldn't get version/kind; json parse error: ") + e.what());
      return Status::InvalidArgument("bad body");
    }
  }

  void ListObjects(Poco::Net::HTTPServerResponse& resp, const Kind& kind, const std::string& ns,
                   std::map<std::string, std::string>& q) {
    Object::Ptr list = new Object;
    Array::Ptr items = new Array;
    std::string error;
    {
      std::lock_guard lock(mu);
      for (const auto& [k, o] : objects) {
        if (k.rfind(kind.plural + "/", 0) != 0) continue;
        if (!ns.empty() && Str(Obj(o, "metadata"), "namespace") != ns) continue;
        if (!MatchLabels(o, q["labelSelector"], &error) || !MatchFields(o, q["fieldSelector"], &error)) {
          if (!error.empty()) break;
          continue;
        }
        items->add(Clone(o));
      }
      Object::Ptr meta = new Object;
      meta->set("resourceVersion", std::to_string(rv));
      list->set("metadata", meta);
    }
    if (!error.empty()) return SendStatus(resp, 400, "BadRequest", error);
    if (!q["limit"].empty()) {
      size_t limit = std::stoul(q["limit"]);
      if (limit > 0 && items->size() > limit) {
        Array::Ptr cut = new Array;
        for (size_t i = 0; i < limit; ++i) cut->add(items->get(static_cast<unsigned>(i)));
        Obj(list, "metadata")->set("remainingItemCount", static_cast<int>(items->size() - limit));
        items = cut;
      }
    }
    list->set("apiVersion", kind.ApiVersion());
    list->set("kind", kind.kind + "List");
    list->set("items", items);
    SendJson(resp, 200, list);
  }

  void Watch(Poco::Net::HTTPServerResponse& resp, const Kind& kind, const std::string& ns,
             std::map<std::string, std::string>& q) {
    std::string error;
    const bool bookmarks = q["allowWatchBookmarks"] == "true" || q["allowWatchBookmarks"] == "1";
    int timeout = q["timeoutSeconds"].empty() ? 300 : std::min(std::atoi(q["timeoutSeconds"].c_str()), 1800);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(std::max(timeout, 1));
    resp.setChunkedTransferEncoding(true);
    resp.setContentType("application/json");
    resp.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
    std::ostream& out = resp.send();
    auto send = [&](const std::string& type, Object::Ptr o) {
      Object::Ptr e = new Object;
      e->set("type", type);
      e->set("object", o);
      out << ToJson(e) << "\n";
      out.flush();
      return out.good();
    };
    auto matches = [&](Object::Ptr o) {
      if (!ns.empty() && Str(Obj(o, "metadata"), "namespace") != ns) return false;
      return MatchLabels(o, q["labelSelector"], &error) && MatchFields(o, q["fieldSelector"], &error);
    };
    std::unique_lock lock(mu);
    const std::uint64_t epoch = watch_epoch;
    std::uint64_t cursor = 0;
    const std::string from = q["resourceVersion"];
    if (from.empty() || from == "0") {
      std::vector<Object::Ptr> initial;
      for (const auto& [k, o] : objects) {
        if (k.rfind(kind.plural + "/", 0) == 0 && matches(o)) initial.push_back(Clone(o));
      }
      cursor = rv;
      lock.unlock();
      for (const auto& o : initial) {
        if (!send("ADDED", o)) return;
      }
      lock.lock();
    } else {
      cursor = std::strtoull(from.c_str(), nullptr, 10);
      if (cursor < compacted) {
        lock.unlock();
        Object::Ptr s = new Object;
        s->set("kind", "Status");
        s->set("apiVersion", "v1");
        s->set("status", "Failure");
        s->set("message", "too old resource version: " + from + " (" + std::to_string(compacted) + ")");
        s->set("reason", "Expired");
        s->set("code", 410);
        send("ERROR", s);
        return;
      }
    }
    auto next_bookmark = std::chrono::steady_clock::now() + opt.bookmark_interval;
    while (!stopping && epoch == watch_epoch) {
      std::vector<std::pair<std::string, Object::Ptr>> batch;
      for (const Event& e : events) {
        if (e.rv <= cursor) continue;
        cursor = e.rv;
        if (e.plural == kind.plural && matches(e.object)) batch.emplace_back(e.type, Clone(e.object));
      }
      lock.unlock();
      for (const auto& [type, o] : batch) {
        if (!send(type, o)) return;
      }
      auto now = std::chrono::steady_clock::now();
      if (now >= end) return;
      if (bookmarks && now >= next_bookmark) {
        Object::Ptr b = new Object;
        b->set("kind", kind.kind);
        b->set("apiVersion", kind.ApiVersion());
        Object::Ptr meta = new Object;
        meta->set("resourceVersion", std::to_string(cursor));
        b->set("metadata", meta);
        if (!send("BOOKMARK", b)) return;
        next_bookmark = now + opt.bookmark_interval;
      }
      lock.lock();
      cv.wait_until(lock, std::min(end, next_bookmark),
                    [&] { return stopping || rv > cursor || epoch != watch_epoch; });
    }
  }

  void CreateObject(Poco::Net::HTTPServerResponse& resp, const Kind& kind, const std::string& ns,
                    const std::string& text, bool strict) {
    auto body = ParseBody(resp, text);
    if (!body.ok()) return;
    Object::Ptr o = *body;
    std::vector<std::string> warnings;
    std::unique_lock lock(mu);
    if (auto err = Admit(kind, o, ns, strict, warnings)) {
      lock.unlock();
      return SendStatus(resp, err->code, err->reason, err->message, &kind, Str(Obj(o, "metadata"), "name"),
                        err->causes);
    }
    Object::Ptr meta = Obj(o, "metadata");
    std::string name = Str(meta, "name");
    if (Find(kind.plural, ns, name)) {
      lock.unlock();
      return SendStatus(resp, 409, "AlreadyExists", kind.Qualified() + " \"" + name + "\" already exists",
                        &kind, name);
    }
    meta->set("uid", Uid());
    meta->set("creationTimestamp", Now());
    meta->set("generation", 1);
    meta->remove("deletionTimestamp");
    if (kind.has_status) o->remove("status");
    Commit(kind.plural, ns, "ADDED", o);
    Object::Ptr out = Clone(o);
    lock.unlock();
    for (const auto& w : warnings) resp.add("Warning", "299 - \"" + w + "\"");
    SendJson(resp, 201, out);
  }

  // Applies the update rules of the main resource or /status to `next` (a full object).
  Object::Ptr Merge(const Kind& kind, Object::Ptr current, Object::Ptr next, const std::string& sub) {
    Object::Ptr merged = Clone(current);
    if (sub == "status") {
      if (next->has("status"))
        merged->set("status", next->get("status"));
      else
        merged->remove("status");
      return merged;
    }
    for (const auto& [k, v] : *next) {
      if (k == "status" && kind.has_status) continue;
      if (k == "metadata") continue;
      merged->set(k, v);
    }
    if (!kind.has_status && next->has("status")) merged->set("status", next->get("status"));
    std::vector<std::string> drop;
    for (const auto& [k, v] : *merged) {
      if (k != "metadata" && k != "status" && !next->has(k)) drop.push_back(k);
    }
    for (const auto& k : drop) merged->remove(k);
    Object::Ptr meta = Ensure(merged, "metadata");
    Object::Ptr nmeta = Obj(next, "metadata");
    for (const char* f : {"labels", "annotations", "ownerReferences", "finalizers"}) {
      if (nmeta && nmeta->has(f))
        meta->set(f, nmeta->get(f));
      else
        meta->remove(f);
    }
    if (ToJson(Obj(current, "spec") ? Obj(current, "spec") : Object::Ptr(new Object)) !=
        ToJson(Obj(merged, "spec") ? Obj(merged, "spec") : Object::Ptr(new Object))) {
      meta->set("generation", Obj(current, "metadata")->optValue<int>("generation", 1) + 1);
    }
    return merged;
  }

  void Finish(Poco::Net::HTTPServerResponse& resp, std::unique_lock<std::mutex>& lock, const Kind& kind,
              const std::string& ns, Object::Ptr current, Object::Ptr merged, bool strict) {
    std::vector<std::string> warnings;
    if (auto err = Admit(kind, merged, ns, strict, warnings)) {
      lock.unlock();
      return SendStatus(resp, err->code, err->reason, err->message, &kind,
                        Str(Obj(current, "metadata"), "name"), err->causes);
    }
    // Fields the server owns stay as they were.
    Object::Ptr meta = Obj(merged, "metadata");
    for (const char* f : {"uid", "creationTimestamp", "deletionTimestamp", "name", "namespace"}) {
      if (Obj(current, "metadata")->has(f)) meta->set(f, Obj(current, "metadata")->get(f));
    }
    if (ToJson(merged) == ToJson(current)) {
      Object::Ptr out = Clone(current);
      lock.unlock();
      return SendJson(resp, 200, out);
    }
    Commit(kind.plural, ns, "MODIFIED", merged);
    Object::Ptr out = Clone(merged);
    lock.unlock();
    for (const auto& w : warnings) resp.add("Warning", "299 - \"" + w + "\"");
    SendJson(resp, 200, out);
  }

  void Replace(Poco::Net::HTTPServerResponse& resp, const Kind& kind, const std::string& ns,
               const std::string& name, const std::string& sub, const std::string& text, bool strict) {
    auto body = ParseBody(resp, text);
    if (!body.ok()) return;
    std::unique_lock lock(mu);
    Object::Ptr current = Find(kind.plural, ns, name);
    if (!current) {
      lock.unlock();
      return NotFound(resp, kind, name);
    }
    std::string want = Str(Obj(*body, "metadata"), "resourceVersion");
    if (want.empty()) {
      lock.unlock();
      return SendStatus(
          resp, 422, "Invalid",
          kind.kind + "." + kind.group + " \"" + name +
              "\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
          &kind, name);
    }
    if (want != Str(Obj(current, "metadata"), "resourceVersion")) {
      lock.unlock();
      return Conflict(resp, kind, name);
    }
    Finish(resp, lock, kind, ns, current, Merge(kind, current, *body, sub), strict);
  }

  static void MergePatch(Object::Ptr target, Object::Ptr patch) {
    for (const auto& [k, v] : *patch) {
      if (v.isEmpty()) {
        target->remove(k);
      } else if (IsObject(v) && Obj(target, k)) {
        MergePatch(Obj(target, k), v.extract<Object::Ptr>());
      } else if (IsObject(v)) {
        Object::Ptr fresh = new Object;
        MergePatch(fresh, v.extract<Object::Ptr>());
        target->set(k, fresh);
      } else {
        target->set(k, v);
      }
    }
  }

  void Patch(Poco::Net::HTTPServerResponse& resp, const Kind& kind, const std::string& ns,
             const std::string& name, const std::string& sub, const std::string& text, bool strict) {
    auto body = ParseBody(resp, text);
    if (!body.ok()) return;
    std::unique_lock lock(mu);
    Object::Ptr current = Find(kind.plural, ns, name);
    if (!current) {
      lock.unlock();
      return NotFound(resp, kind, name);
    }
    std::string want = Str(Obj(*body, "metadata"), "resourceVersion");
    if (!want.empty() && want != Str(Obj(current, "metadata"), "resourceVersion")) {
      lock.unlock();
      return Conflict(resp, kind, name);
    }
    Object::Ptr patched = Clone(current);
    MergePatch(patched, *body);
    Finish(resp, lock, kind, ns, current, Merge(kind, current, patched, sub), strict);
  }

  void Delete(Poco::Net::HTTPServerResponse& resp, const Kind& kind, const std::string& ns,
              const std::string& name, const std::string& policy) {
    if (!policy.empty() && policy != "Foreground" && policy != "Background" && policy != "Orphan") {
      return SendStatus(
          resp, 422, "Invalid",
          "DeleteOptions.meta.k8s.io is invalid: propagationPolicy: Unsupported value: \"" + policy + "\"");
    }
    std::unique_lock lock(mu);
    Object::Ptr current = Find(kind.plural, ns, name);
    if (!current) {
      lock.unlock();
      return NotFound(resp, kind, name);
    }
    Object::Ptr obj = Clone(current);
    Object::Ptr meta = Obj(obj, "metadata");
    Array::Ptr finalizers = Arr(meta, "finalizers");
    if (policy == "Foreground" || (finalizers && finalizers->size() > 0)) {
      if (Str(meta, "deletionTimestamp").empty()) {
        meta->set("deletionTimestamp", Now());
        if (policy == "Foreground") {
          if (!finalizers) finalizers = new Array;
          finalizers->add("foregroundDeletion");
          meta->set("finalizers", finalizers);
        }
        Commit(kind.plural, ns, "MODIFIED", obj);
      }
      Object::Ptr out = Clone(objects[Key(kind.plural, ns, name)]);
      lock.unlock();
      return SendJson(resp, 200, out);
    }
    if (policy == "Orphan") {
      // Its dependents lose this owner and stay.
      const std::string uid = Str(meta, "uid");
      for (auto& [dplural, d] : Dependents(uid)) {
        Object::Ptr dd = Clone(d);
        Array::Ptr kept = new Array;
        Array::Ptr owners = Arr(Obj(dd, "metadata"), "ownerReferences");
        for (size_t i = 0; i < owners->size(); ++i) {
          if (Str(owners->getObject(static_cast<unsigned>(i)), "uid") != uid)
            kept->add(owners->get(static_cast<unsigned>(i)));
        }
        Obj(dd, "metadata")->set("ownerReferences", kept);
        Commit(dplural, Str(Obj(d, "metadata"), "namespace"), "MODIFIED", dd);
      }
    }
    Commit(kind.plural, ns, "DELETED", obj);
    Object::Ptr out = Clone(obj);
    lock.unlock();
    SendJson(resp, 200, out);
  }

  // ---- the simulated controller, garbage collector and kubelet --------------------------

  std::vector<Object::Ptr> All(const std::string& plural) const {
    std::vector<Object::Ptr> out;
    for (const auto& [k, o] : objects) {
      if (k.rfind(plural + "/", 0) == 0) out.push_back(o);
    }
    return out;
  }

  std::vector<std::pair<std::string, Object::Ptr>> Dependents(const std::string& uid) const {
    std::vector<std::pair<std::string, Object::Ptr>> out;
    for (const auto& [k, o] : objects) {
      Array::Ptr owners = Arr(Obj(o, "metadata"), "ownerReferences");
      for (size_t i = 0; owners && i < owners->size(); ++i) {
        if (Str(owners->getObject(static_cast<unsigned>(i)), "uid") == uid) {
          out.emplace_back(k.substr(0, k.find('/')), o);
          break;
        }
      }
    }
    return out;
  }

  static void SetCondition(Object::Ptr status, const std::string& type, const std::string& st,
                           const std::string& reason, const std::string& message, std::int64_t generation) {
    Array::Ptr conds = Arr(status, "conditions");
    if (!conds) {
      conds = new Array;
      status->set("conditions", conds);
    }
    for (size_t i = 0; i < conds->size(); ++i) {
      Object::Ptr c = conds->getObject(static_cast<unsigned>(i));
      if (Str(c, "type") == type) {
        if (Str(c, "status") != st) c->set("lastTransitionTime", Now());
        c->set("status", st);
        c->set("reason", reason);
        c->set("message", message);
        c->set("observedGeneration", generation);
        return;
      }
    }
    Object::Ptr c = new Object;
    c->set("type", type);
    c->set("status", st);
    c->set("reason", reason);
    c->set("message", message);
    c->set("lastTransitionTime", Now());
    c->set("observedGeneration", generation);
    conds->add(c);
  }

  static bool ReadyTrue(Object::Ptr status) {
    Array::Ptr conds = Arr(status, "conditions");
    for (size_t i = 0; conds && i < conds->size(); ++i) {
      Object::Ptr c = conds->getObject(static_cast<unsigned>(i));
      if (Str(c, "type") == "Ready") return Str(c, "status") == "True";
    }
    return false;
  }

  static bool HasCondition(Object::Ptr status, const std::string& type) {
    Array::Ptr conds = Arr(status, "conditions");
    for (size_t i = 0; conds && i < conds->size(); ++i) {
      if (Str(conds->getObject(static_cast<unsigned>(i)), "type") == type) return true;
    }
    return false;
  }

  // Writes `status` of the object when it changed.
  void UpdateStatus(const std::string& plural, Object::Ptr current, Object::Ptr status) {
    Object::Ptr old = Obj(current, "status");
    if (old && ToJson(old) == ToJson(status)) return;
    if (plural == "sandboxclaims" && ReadyTrue(status) && !ReadyTrue(old)) {
      auto it = claim_created.find(Str(Obj(current, "metadata"), "namespace") + "/" +
                                   Str(Obj(current, "metadata"), "name"));
      if (it != claim_created.end()) {
        claim_ready_ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - it->second).count());
        claim_created.erase(it);
      }
    }
    Object::Ptr next = Clone(current);
    next->set("status", status);
    Commit(plural, Str(Obj(current, "metadata"), "namespace"), "MODIFIED", next);
  }

  std::string NextIp() {
    ++next_ip;
    std::uint32_t n = next_ip;
    return "127." + std::to_string(20 + getpid() % 200) + "." + std::to_string((n / 250) % 250) + "." +
           std::to_string(n % 250 + 1);
  }

  Object::Ptr OwnerRef(Object::Ptr owner, bool controller) const {
    Object::Ptr r = new Object;
    r->set("apiVersion", Str(owner, "apiVersion"));
    r->set("kind", Str(owner, "kind"));
    r->set("name", Str(Obj(owner, "metadata"), "name"));
    r->set("uid", Str(Obj(owner, "metadata"), "uid"));
    r->set("controller", controller);
    r->set("blockOwnerDeletion", true);
    return r;
  }

  Object::Ptr SandboxFromTemplate(Object::Ptr tmpl, const std::string& ns) const {
    Object::Ptr sb = new Object;
    sb->set("apiVersion", "agents.x-k8s.io/v1beta1");
    sb->set("kind", "Sandbox");
    Object::Ptr meta = new Object;
    meta->set("namespace", ns);
    sb->set("metadata", meta);
    Object::Ptr spec = new Object;
    Object::Ptr tspec = Clone(Obj(tmpl, "spec"));
    for (const char* f : {"podTemplate", "volumeClaimTemplates", "service"}) {
      if (tspec->has(f)) spec->set(f, tspec->get(f));
    }
    spec->set("operatingMode", "Running");
    sb->set("spec", spec);
    return sb;
  }

  void Reconcile() {
    std::vector<std::tuple<std::string, std::string, Object::Ptr>> to_start;  // ns, name, sandbox
    std::vector<std::pair<std::string, Pod>> to_kill;
    {
      std::lock_guard lock(mu);
      // Garbage collection: dependents of owners that are gone.
      for (const auto& [k, o] : std::map<std::string, Object::Ptr>(objects)) {
        Array::Ptr owners = Arr(Obj(o, "metadata"), "ownerReferences");
        if (!owners || owners->size() == 0) continue;
        bool any = false;
        for (size_t i = 0; i < owners->size(); ++i) {
          if (FindUid(Str(owners->getObject(static_cast<unsigned>(i)), "uid"))) any = true;
        }
        if (!any && Str(Obj(o, "metadata"), "deletionTimestamp").empty()) {
          Object::Ptr d = Clone(o);
          Obj(d, "metadata")->set("deletionTimestamp", Now());
          Commit(k.substr(0, k.find('/')), Str(Obj(o, "metadata"), "namespace"), "MODIFIED", d);
        }
      }
      // Deletions in progress: dependents first (foreground), pods stopped before their Sandbox goes.
      for (const auto& [k, o] : std::map<std::string, Object::Ptr>(objects)) {
        Object::Ptr meta = Obj(o, "metadata");
        if (Str(meta, "deletionTimestamp").empty()) continue;
        const std::string plural = k.substr(0, k.find('/'));
        const std::string ns = Str(meta, "namespace"), name = Str(meta, "name");
        auto deps = Dependents(Str(meta, "uid"));
        bool foreground = false;
        if (Array::Ptr f = Arr(meta, "finalizers")) {
          for (size_t i = 0; i < f->size(); ++i)
            foreground |= f->getElement<std::string>(static_cast<unsigned>(i)) == "foregroundDeletion";
        }
        if (foreground && !deps.empty()) {
          for (auto& [dplural, d] : deps) {
            if (!Str(Obj(d, "metadata"), "deletionTimestamp").empty()) continue;
            Object::Ptr dd = Clone(d);
            Obj(dd, "metadata")->set("deletionTimestamp", Now());
            Array::Ptr df = new Array;
            df->add("foregroundDeletion");
            Obj(dd, "metadata")->set("finalizers", df);
            Commit(dplural, Str(Obj(d, "metadata"), "namespace"), "MODIFIED", dd);
          }
          continue;
        }
        if (plural == "sandboxes") {
          const std::string pk = ns + "/" + name;
          if (starting.count(pk)) continue;  // stopped once started
          if (auto p = pods.find(pk); p != pods.end()) {
            if (!killing.count(pk)) {
              killing.insert(pk);
              to_kill.emplace_back(pk, p->second);
            }
            continue;
          }
        }
        Commit(plural, ns, "DELETED", Clone(o));
      }
      // Warm pools: keep spec.replicas unclaimed sandboxes.
      for (Object::Ptr pool : All("sandboxwarmpools")) {
        Object::Ptr meta = Obj(pool, "metadata");
        if (!Str(meta, "deletionTimestamp").empty()) continue;
        const std::string ns = Str(meta, "namespace");
        Object::Ptr tmpl =
            Find("sandboxtemplates", ns, Str(Obj(Obj(pool, "spec"), "sandboxTemplateRef"), "name"));
        int want = Obj(pool, "spec")->optValue<int>("replicas", 1);
        int have = 0, ready = 0;
        for (auto& [dp, d] : Dependents(Str(meta, "uid"))) {
          if (dp != "sandboxes" || !Str(Obj(d, "metadata"), "deletionTimestamp").empty()) continue;
          ++have;
          auto c = Arr(Obj(d, "status"), "podIPs");
          if (c && c->size() > 0) ++ready;
        }
        for (; tmpl && have < want; ++have) {
          Object::Ptr sb = SandboxFromTemplate(tmpl, ns);
          Object::Ptr sm = Obj(sb, "metadata");
          std::string name = Str(meta, "name") + "-" + RandomAlnum(5);
          sm->set("name", name);
          sm->set("uid", Uid());
          sm->set("creationTimestamp", Now());
          sm->set("generation", 1);
          Object::Ptr labels = new Object;
          labels->set("agents.x-k8s.io/warm-pool-sandbox", Fnv32a(Str(meta, "name")));
          labels->set("agents.x-k8s.io/launch-type", "warm");
          labels->set("agents.x-k8s.io/created-by", "controller");
          sm->set("labels", labels);
          Array::Ptr owners = new Array;
          owners->add(OwnerRef(pool, true));
          sm->set("ownerReferences", owners);
          Commit("sandboxes", ns, "ADDED", sb);
        }
        Object::Ptr status = new Object;
        status->set("replicas", have);
        status->set("readyReplicas", ready);
        status->set("selector", "agents.x-k8s.io/warm-pool-sandbox=" + Fnv32a(Str(meta, "name")));
        status->set("observedGeneration", meta->optValue<int>("generation", 1));
        UpdateStatus("sandboxwarmpools", pool, status);
      }
      // Claims: adopt a ready warm Sandbox, or create a cold one; mirror its readiness.
      for (Object::Ptr claim : All("sandboxclaims")) {
        Object::Ptr meta = Obj(claim, "metadata");
        if (!Str(meta, "deletionTimestamp").empty()) continue;
        const std::string ns = Str(meta, "namespace"), name = Str(meta, "name");
        const std::int64_t gen = meta->optValue<int>("generation", 1);
        Object::Ptr status = Obj(claim, "status") ? Clone(Obj(claim, "status")) : Object::Ptr(new Object);
        std::string bound = Str(Obj(status, "sandbox"), "name");
        if (bound.empty()) {
          std::string pool_name = Str(Obj(Obj(claim, "spec"), "warmPoolRef"), "name");
          Object::Ptr pool = Find("sandboxwarmpools", ns, pool_name);
          if (!pool) {
            SetCondition(status, "Ready", "False", "WarmPoolNotFound",
                         "SandboxWarmPool \"" + pool_name + "\" not found", gen);
            UpdateStatus("sandboxclaims", claim, status);
            continue;
          }
          std::string tmpl_name = Str(Obj(Obj(pool, "spec"), "sandboxTemplateRef"), "name");
          Object::Ptr tmpl = Find("sandboxtemplates", ns, tmpl_name);
          if (!tmpl) {
            SetCondition(status, "Ready", "False", "TemplateNotFound",
                         "SandboxTemplate \"" + tmpl_name + "\" not found", gen);
            UpdateStatus("sandboxclaims", claim, status);
            continue;
          }
          Object::Ptr candidate;
          for (auto& [dp, d] : Dependents(Str(Obj(pool, "metadata"), "uid"))) {
            auto ready = Arr(Obj(d, "status"), "podIPs");
            if (dp == "sandboxes" && Str(Obj(d, "metadata"), "deletionTimestamp").empty() && ready &&
                ready->size() > 0) {
              candidate = d;
              break;
            }
          }
          if (candidate) {
            // Adoption: one patch of the Sandbox moves it from the pool to the claim.
            Object::Ptr sb = Clone(candidate);
            Object::Ptr sm = Obj(sb, "metadata");
            Array::Ptr owners = new Array;
            owners->add(OwnerRef(claim, true));
            sm->set("ownerReferences", owners);
            Object::Ptr labels = Ensure(sm, "labels");
            labels->remove("agents.x-k8s.io/warm-pool-sandbox");
            labels->set("agents.x-k8s.io/claim-uid", Str(meta, "uid"));
            labels->set("agents.x-k8s.io/launch-type", "warm");
            Commit("sandboxes", ns, "MODIFIED", sb);
            bound = Str(sm, "name");
          } else {
            Object::Ptr sb = SandboxFromTemplate(tmpl, ns);
            Object::Ptr sm = Obj(sb, "metadata");
            sm->set("name", name);
            if (Find("sandboxes", ns, name)) continue;  // an old one is still being deleted
            sm->set("uid", Uid());
            sm->set("creationTimestamp", Now());
            sm->set("generation", 1);
            Object::Ptr labels = new Object;
            labels->set("agents.x-k8s.io/claim-uid", Str(meta, "uid"));
            labels->set("agents.x-k8s.io/launch-type", "cold");
            sm->set("labels", labels);
            Array::Ptr owners = new Array;
            owners->add(OwnerRef(claim, true));
            sm->set("ownerReferences", owners);
            Commit("sandboxes", ns, "ADDED", sb);
            bound = name;
          }
          Object::Ptr sbref = new Object;
          sbref->set("name", bound);
          status->set("sandbox", sbref);
        }
        Object::Ptr sb = Find("sandboxes", ns, bound);
        if (!sb) {
          SetCondition(status, "Ready", "False", "SandboxMissing", "Sandbox \"" + bound + "\" not found",
                       gen);
        } else {
          Object::Ptr sbref = Ensure(status, "sandbox");
          Array::Ptr ips = Arr(Obj(sb, "status"), "podIPs");
          if (ips)
            sbref->set("podIPs", ips);
          else
            sbref->remove("podIPs");
          Array::Ptr conds = Arr(Obj(sb, "status"), "conditions");
          bool forwarded = false;
          for (size_t i = 0; conds && i < conds->size(); ++i) {
            Object::Ptr c = conds->getObject(static_cast<unsigned>(i));
            if (Str(c, "type") == "Ready") {
              SetCondition(status, "Ready", Str(c, "status"), Str(c, "reason"), Str(c, "message"), gen);
              forwarded = true;
            }
          }
          if (!forwarded)
            SetCondition(status, "Ready", "False", "SandboxNotReady", "Sandbox is not ready", gen);
        }
        UpdateStatus("sandboxclaims", claim, status);
      }
      // Sandboxes: the kubelet's part (volumes, the pod) and the status it reports.
      for (Object::Ptr sb : All("sandboxes")) {
        Object::Ptr meta = Obj(sb, "metadata");
        if (!Str(meta, "deletionTimestamp").empty()) continue;
        const std::string ns = Str(meta, "namespace"), name = Str(meta, "name"), pk = ns + "/" + name;
        const std::int64_t gen = meta->optValue<int>("generation", 1);
        Object::Ptr status = Obj(sb, "status") ? Clone(Obj(sb, "status")) : Object::Ptr(new Object);
        status->set("selector", "agents.x-k8s.io/sandbox-name-hash=" + Fnv32a(name));
        const bool suspended = Str(Obj(sb, "spec"), "operatingMode") == "Suspended";
        auto pod = pods.find(pk);
        if (suspended) {
          if (pod != pods.end()) {
            if (!killing.count(pk)) {
              killing.insert(pk);
              to_kill.emplace_back(pk, pod->second);
            }
            SetCondition(status, "Suspended", "False", "PodTerminating", "Pod is terminating", gen);
          } else if (!starting.count(pk)) {
            SetCondition(status, "Suspended", "True", "PodTerminated", "Pod is terminated", gen);
            status->remove("podIPs");
          }
          SetCondition(status, "Ready", "False", "SandboxSuspended", "Sandbox is suspended", gen);
          UpdateStatus("sandboxes", sb, status);
          continue;
        }
        SetCondition(status, "Suspended", "False", "NotSuspended", "Sandbox is running", gen);
        if (pod != pods.end()) {
          if (!killing.count(pk) && !paddock::plugins::sandbox_process::JailAlive(pod->second.jail)) {
            SetCondition(status, "Ready", "False", "PodFailed", "Pod failed: its processes ended", gen);
            SetCondition(status, "Finished", "True", "PodFailed", "Pod failed", gen);
            status->remove("podIPs");
          }
          UpdateStatus("sandboxes", sb, status);
          continue;
        }
        if (starting.count(pk) || killing.count(pk)) continue;
        if (HasCondition(status, "Finished")) continue;  // a failed pod stays failed (restartPolicy Never)
        // Volumes: PVCs of the volumeClaimTemplates, created or adopted; secrets must exist.
        std::string waiting;
        Object::Ptr spec = Obj(sb, "spec");
        if (Array::Ptr vcts = Arr(spec, "volumeClaimTemplates")) {
          for (size_t i = 0; i < vcts->size(); ++i) {
            Object::Ptr vct = vcts->getObject(static_cast<unsigned>(i));
            std::string pvc_name = Str(Obj(vct, "metadata"), "name") + "-" + name;
            Object::Ptr pvc = Find("persistentvolumeclaims", ns, pvc_name);
            if (!pvc) {
              pvc = new Object;
              pvc->set("apiVersion", "v1");
              pvc->set("kind", "PersistentVolumeClaim");
              Object::Ptr pm = new Object;
              pm->set("name", pvc_name);
              pm->set("namespace", ns);
              pm->set("uid", Uid());
              pm->set("creationTimestamp", Now());
              Object::Ptr labels = new Object;
              labels->set("agents.x-k8s.io/sandbox-name-hash", Fnv32a(name));
              pm->set("labels", labels);
              Array::Ptr owners = new Array;
              owners->add(OwnerRef(sb, true));
              pm->set("ownerReferences", owners);
              pvc->set("metadata", pm);
              pvc->set("spec", Clone(Obj(vct, "spec")));
              Commit("persistentvolumeclaims", ns, "ADDED", pvc);
            } else if (!Arr(Obj(pvc, "metadata"), "ownerReferences") ||
                       Arr(Obj(pvc, "metadata"), "ownerReferences")->size() == 0) {
              Object::Ptr labels = Obj(Obj(pvc, "metadata"), "labels");
              if (Str(labels, "agents.x-k8s.io/adoptable") == "true" ||
                  Str(labels, "agents.x-k8s.io/sandbox-name-hash") == Fnv32a(name)) {
                Object::Ptr adopted = Clone(pvc);
                Array::Ptr owners = new Array;
                owners->add(OwnerRef(sb, true));
                Obj(adopted, "metadata")->set("ownerReferences", owners);
                Commit("persistentvolumeclaims", ns, "MODIFIED", adopted);
              }
            }
          }
        }
        Object::Ptr pod_spec = Obj(Obj(spec, "podTemplate"), "spec");
        if (Array::Ptr vols = Arr(pod_spec, "volumes")) {
          for (size_t i = 0; i < vols->size(); ++i) {
            Object::Ptr v = vols->getObject(static_cast<unsigned>(i));
            if (Object::Ptr s = Obj(v, "secret"); s && !Find("secrets", ns, Str(s, "secretName"))) {
              waiting = "secret \"" + Str(s, "secretName") + "\" not found";
            }
            if (Object::Ptr c = Obj(v, "persistentVolumeClaim");
                c && !Find("persistentvolumeclaims", ns, Str(c, "claimName"))) {
              waiting = "persistentvolumeclaim \"" + Str(c, "claimName") + "\" not found";
            }
          }
        }
        SetCondition(status, "Ready", "False", "DependenciesNotReady",
                     waiting.empty() ? "Pod exists with phase: Pending" : "Pod is waiting: " + waiting, gen);
        UpdateStatus("sandboxes", sb, status);
        if (waiting.empty()) {
          starting.insert(pk);
          to_start.emplace_back(ns, name, Clone(objects[Key("sandboxes", ns, name)]));
        }
      }
    }
    for (auto& [pk, pod] : to_kill) {
      pod_threads.emplace_back([this, pk = pk, pod = pod] {
        (void)paddock::plugins::sandbox_process::KillJail(pod.jail);
        std::lock_guard lock(mu);
        pods.erase(pk);
        killing.erase(pk);
        cv.notify_all();
      });
    }
    for (auto& [ns, name, sb] : to_start) {
      pod_threads.emplace_back([this, ns = ns, name = name, sb = sb] { StartPod(ns, name, sb); });
    }
  }

  // The kubelet: runs the pod's paddock-runtime in a jail with the spec's volumes.
  void StartPod(const std::string& ns, const std::string& name, Object::Ptr sb) {
    const std::string pk = ns + "/" + name;
    std::string failure;
    Pod pod;
    try {
      Object::Ptr spec = Obj(sb, "spec");
      Object::Ptr pod_spec = Obj(Obj(spec, "podTemplate"), "spec");
      Array::Ptr containers = Arr(pod_spec, "containers");
      if (!containers || containers->size() == 0) throw std::runtime_error("pod has no containers");
      Object::Ptr c = containers->getObject(0);
      std::vector<std::string> argv;
      for (const char* f : {"command", "args"}) {
        if (Array::Ptr a = Arr(c, f)) {
          for (size_t i = 0; i < a->size(); ++i)
            argv.push_back(a->getElement<std::string>(static_cast<unsigned>(i)));
        }
      }
      if (argv.empty() || fs::path(argv[0]).filename() != "paddock-runtime") {
        throw std::runtime_error("the fake kubelet runs only paddock-runtime containers (command[0])");
      }
      static std::atomic<int> seq{0};
      pod.dir = opt.data_dir + "/pods/" + ns + "-" + name + "-" + std::to_string(++seq);
      fs::create_directories(pod.dir + "/run");
      const bool root = geteuid() == 0;
      auto own = [&](const std::string& dir) {
        if (root) (void)!chown(dir.c_str(), 65534, 65534);
      };
      JailSpec js;
      js.host_network = true;
      // The container's seccompProfile, else the pod's, else the kubelet's default
      // (Unconfined); RuntimeDefault is the container runtime's filter, here bubblewrap's.
      std::string seccomp = "Unconfined";
      for (Object::Ptr sc : {Obj(pod_spec, "securityContext"), Obj(c, "securityContext")}) {
        if (Object::Ptr profile = Obj(sc, "seccompProfile"); profile && !Str(profile, "type").empty())
          seccomp = Str(profile, "type");
      }
      if (seccomp != "RuntimeDefault" && seccomp != "Unconfined")
        throw std::runtime_error("seccompProfile " + seccomp + " is not simulated");
      js.hardening.seccomp = seccomp == "RuntimeDefault";
      js.run_dir = pod.dir + "/run";
      own(js.run_dir);
      std::map<std::string, Object::Ptr> volumes;
      if (Array::Ptr vols = Arr(pod_spec, "volumes")) {
        for (size_t i = 0; i < vols->size(); ++i)
          volumes[Str(vols->getObject(static_cast<unsigned>(i)), "name")] =
              vols->getObject(static_cast<unsigned>(i));
      }
      std::set<std::string> vct_names;
      if (Array::Ptr vcts = Arr(spec, "volumeClaimTemplates")) {
        for (size_t i = 0; i < vcts->size(); ++i)
          vct_names.insert(Str(Obj(vcts->getObject(static_cast<unsigned>(i)), "metadata"), "name"));
      }
      if (Array::Ptr mounts = Arr(c, "volumeMounts")) {
        for (size_t i = 0; i < mounts->size(); ++i) {
          Object::Ptr m = mounts->getObject(static_cast<unsigned>(i));
          std::string vname = Str(m, "name"), path = Str(m, "mountPath");
          std::string host;
          bool read_only = false;
          if (vct_names.count(vname)) {
            host = opt.data_dir + "/pvcs/" + ns + "/" + vname + "-" + name;
          } else if (volumes.count(vname)) {
            Object::Ptr v = volumes[vname];
            if (Object::Ptr s = Obj(v, "secret")) {
              host = pod.dir + "/vol-" + vname;
              fs::create_directories(host);
              Object::Ptr secret;
              {
                std::lock_guard lock(mu);
                secret = Find("secrets", ns, Str(s, "secretName"));
                if (secret) secret = Clone(secret);
              }
              if (!secret) throw std::runtime_error("secret " + Str(s, "secretName") + " vanished");
              if (Object::Ptr data = Obj(secret, "data")) {
                for (const auto& [k, val] : *data) {
                  bool ok = false;
                  std::ofstream(host + "/" + k) << Base64Decode(val.toString(), &ok);
                  chmod((host + "/" + k).c_str(), 0444);
                }
              }
              read_only = true;
            } else if (Object::Ptr pvc = Obj(v, "persistentVolumeClaim")) {
              host = opt.data_dir + "/pvcs/" + ns + "/" + Str(pvc, "claimName");
            } else if (v->has("emptyDir")) {
              host = pod.dir + "/vol-" + vname;
            } else {
              throw std::runtime_error("volume " + vname +
                                       ": only secret, persistentVolumeClaim and emptyDir are simulated");
            }
          } else {
            throw std::runtime_error("volumeMount " + vname + " names no volume");
          }
          fs::create_directories(host);
          if (!read_only) own(host);
          if (path == "/workspace")
            js.workspace = host;
          else if (read_only)
            js.ro_mounts.push_back({host, path});
          else
            js.rw_mounts.push_back({host, path});
        }
      }
      if (js.workspace.empty()) {
        js.workspace = pod.dir + "/workspace";
        fs::create_directories(js.workspace);
        own(js.workspace);
      }
      JailOptions jo;
      jo.bwrap = "/usr/bin/bwrap";
      jo.runtime = opt.runtime;
      jo.ro_binds = {"/usr", "/etc/alternatives", "/etc/ssl/certs", "/etc/ca-certificates"};
      jo.hostname = name.substr(0, 63);
      if (root) jo.host_creds = paddock::plugins::sandbox_process::Credentials{65534, 65534};
      Result<JailProcess> started = Status::Unavailable("not started");
      for (int attempt = 0; attempt < 3; ++attempt) {
        {
          std::lock_guard lock(mu);
          pod.ip = NextIp();
        }
        js.runtime_args.clear();
        for (size_t i = 1; i < argv.size(); ++i) {
          std::string a = argv[i];
          // Every fake pod shares the host's network: its "pod IP" is a loopback address.
          if (i > 1 && argv[i - 1] == "--listen" && a.rfind("tcp:0.0.0.0:", 0) == 0)
            a = "tcp:" + pod.ip + ":" + a.substr(12);
          js.runtime_args.push_back(a);
        }
        js.runtime_args.insert(js.runtime_args.end(), {"--ready-fd", "4"});
        started = paddock::plugins::sandbox_process::StartJail(jo, js, pod.dir + "/pod.log");
        if (started.ok()) break;
      }
      if (!started.ok()) throw std::runtime_error(started.status().message());
      pod.jail = *started;
    } catch (const std::exception& e) {
      failure = e.what();
    }
    std::lock_guard lock(mu);
    starting.erase(pk);
    Object::Ptr current = Find("sandboxes", ns, name);
    if (!failure.empty()) {
      if (current) {
        Object::Ptr status = Obj(current, "status") ? Clone(Obj(current, "status")) : Object::Ptr(new Object);
        SetCondition(status, "Ready", "False", "PodFailed", "Pod failed: " + failure, 1);
        SetCondition(status, "Finished", "True", "PodFailed", failure, 1);
        UpdateStatus("sandboxes", current, status);
      }
      return;
    }
    pods[pk] = pod;
    if (!current || !Str(Obj(current, "metadata"), "deletionTimestamp").empty() ||
        Str(Obj(current, "spec"), "operatingMode") == "Suspended") {
      cv.notify_all();  // the next reconcile stops it
      return;
    }
    Object::Ptr status = Obj(current, "status") ? Clone(Obj(current, "status")) : Object::Ptr(new Object);
    Array::Ptr ips = new Array;
    ips->add(pod.ip);
    status->set("podIPs", ips);
    status->set("nodeName", "fake-node");
    SetCondition(status, "Ready", "True", "DependenciesReady", "Pod is Ready",
                 Obj(current, "metadata")->optValue<int>("generation", 1));
    UpdateStatus("sandboxes", current, status);
    Object::Ptr annotated = Clone(objects[Key("sandboxes", ns, name)]);
    Ensure(Obj(annotated, "metadata"), "annotations")->set("agents.x-k8s.io/pod-name", name);
    if (ToJson(annotated) != ToJson(objects[Key("sandboxes", ns, name)]))
      Commit("sandboxes", ns, "MODIFIED", annotated);
  }

  void ControllerLoop() {
    std::uint64_t seen = 0;
    while (!stopping) {
      {
        std::unique_lock lock(mu);
        cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping || rv != seen; });
        seen = rv;
      }
      if (stopping) break;
      Reconcile();
    }
  }
};

namespace {

class Handler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(FakeKube::Impl& impl) : impl_(impl) {}
  void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override {
    try {
      impl_.Handle(req, resp);
    } catch (const std::exception& e) {
      if (!resp.sent())
        FakeKube::Impl::SendStatus(resp, 500, "InternalError", std::string("fake kube: ") + e.what());
    }
  }

 private:
  FakeKube::Impl& impl_;
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(FakeKube::Impl& impl) : impl_(impl) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new Handler(impl_);
  }

 private:
  FakeKube::Impl& impl_;
};

}  // namespace

FakeKube::FakeKube(FakeKubeOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
}

FakeKube::~FakeKube() { Stop(); }

Status FakeKube::Start() {
  Impl& m = *impl_;
  try {
    // The agent-sandbox CRDs: v1beta1's schema of each.
    for (const auto& entry : fs::directory_iterator(m.opt.crd_dir)) {
      const std::string file = entry.path().filename().string();
      if (file.find("_") == std::string::npos || entry.path().extension() != ".yaml") continue;
      YAML::Node crd = YAML::LoadFile(entry.path().string());
      if (!crd["kind"] || crd["kind"].as<std::string>() != "CustomResourceDefinition") continue;
      for (const auto& v : crd["spec"]["versions"]) {
        if (v["name"].as<std::string>() != "v1beta1") continue;
        Kind k;
        k.group = crd["spec"]["group"].as<std::string>();
        k.version = "v1beta1";
        k.plural = crd["spec"]["names"]["plural"].as<std::string>();
        k.kind = crd["spec"]["names"]["kind"].as<std::string>();
        k.has_status = v["subresources"] && v["subresources"]["status"];
        k.schema = v["schema"]["openAPIV3Schema"];
        m.kinds[k.plural] = k;
      }
    }
    if (m.kinds.size() != 4)
      return Status::FailedPrecondition("expected the four agent-sandbox CRDs in " + m.opt.crd_dir);
    m.kinds["secrets"] = Kind{"", "v1", "secrets", "Secret", false, YAML::Load(kSecretSchema)};
    m.kinds["persistentvolumeclaims"] =
        Kind{"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, YAML::Load(kPvcSchema)};
    m.kinds["networkpolicies"] = Kind{"networking.k8s.io", "v1",  "networkpolicies",
                                      "NetworkPolicy",     false, YAML::Load(kNetworkPolicySchema)};
    fs::create_directories(m.opt.data_dir);
    Poco::Net::ServerSocket socket;
    if (m.opt.tls) {
      const std::string key = m.opt.data_dir + "/server.key", cert = m.opt.data_dir + "/server.crt";
      if (RunCommand({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
                      cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                      "subjectAltName=IP:127.0.0.1,DNS:localhost"})
              .first != 0)
        return Status::Unavailable("openssl could not make the fake server's certificate");
      static std::once_flag once;
      std::call_once(once, [] { Poco::Net::initializeSSL(); });
      Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, key, cert, "",
                                                           Poco::Net::Context::VERIFY_NONE);
      socket = Poco::Net::SecureServerSocket(Poco::Net::SocketAddress("127.0.0.1", 0), 64, ctx);
    } else {
      socket = Poco::Net::ServerSocket(Poco::Net::SocketAddress("127.0.0.1", 0));
    }
    m.port = socket.address().port();
    Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(128);
    params->setMaxQueued(256);
    params->setKeepAlive(true);
    m.http = std::make_unique<Poco::Net::HTTPServer>(new Factory(m), socket, params);
    m.http->start();
    m.controller = std::thread([&m] { m.ControllerLoop(); });
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("fake kube: ") + e.what());
  }
}

void FakeKube::Stop() {
  Impl& m = *impl_;
  if (m.stopping.exchange(true)) return;
  m.cv.notify_all();
  if (m.controller.joinable()) m.controller.join();
  if (m.http) m.http->stopAll(true);
  for (auto& t : m.pod_threads) {
    if (t.joinable()) t.join();
  }
  for (auto& [k, pod] : m.pods) (void)paddock::plugins::sandbox_process::KillJail(pod.jail);
  m.pods.clear();
}

std::string FakeKube::server() const {
  return std::string(impl_->opt.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(impl_->port);
}

std::string FakeKube::ca_file() const { return impl_->opt.data_dir + "/server.crt"; }

std::string FakeKube::WriteKubeconfig(const std::string& path, const std::string& token) const {
  std::ofstream out(path);
  out << "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    "
         "server: "
      << server() << "\n";
  if (impl_->opt.tls) out << "    certificate-authority: " << ca_file() << "\n";
  out << "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: paddock\n"
      << "users:\n- name: tester\n  user:\n    token: " << (token.empty() ? impl_->opt.token : token) << "\n";
  return path;
}

Status FakeKube::Create(const std::string& json) {
  Impl& m = *impl_;
  Poco::JSON::Parser p;
  Object::Ptr o = p.parse(json).extract<Object::Ptr>();
  std::string api = Str(o, "apiVersion");
  std::string kind = Str(o, "kind");
  for (auto& [plural, k] : m.kinds) {
    if (k.kind != kind) continue;
    std::string ns = Str(Obj(o, "metadata"), "namespace");
    if (ns.empty()) ns = "paddock";
    std::vector<std::string> warnings;
    std::lock_guard lock(m.mu);
    if (auto err = m.Admit(k, o, ns, true, warnings)) return Status::InvalidArgument(err->message);
    Object::Ptr meta = Obj(o, "metadata");
    if (m.Find(plural, ns, Str(meta, "name"))) return Status::AlreadyExists(Str(meta, "name"));
    meta->set("uid", Uid());
    meta->set("creationTimestamp", Now());
    meta->set("generation", 1);
    m.Commit(plural, ns, "ADDED", o);
    return Status::Ok();
  }
  return Status::NotFound("no kind " + kind);
}

Poco::JSON::Object::Ptr FakeKube::Get(const std::string& plural, const std::string& ns,
                                      const std::string& name) const {
  std::lock_guard lock(impl_->mu);
  Object::Ptr o = impl_->Find(plural, ns, name);
  return o ? Clone(o) : nullptr;
}

std::vector<Poco::JSON::Object::Ptr> FakeKube::List(const std::string& plural, const std::string& ns) const {
  std::lock_guard lock(impl_->mu);
  std::vector<Object::Ptr> out;
  for (Object::Ptr o : impl_->All(plural)) {
    if (ns.empty() || Str(Obj(o, "metadata"), "namespace") == ns) out.push_back(Clone(o));
  }
  return out;
}

void FakeKube::Compact() {
  std::lock_guard lock(impl_->mu);
  impl_->compacted = impl_->rv;
  impl_->events.clear();
}

void FakeKube::DropWatches() {
  std::lock_guard lock(impl_->mu);
  ++impl_->watch_epoch;
  impl_->cv.notify_all();
}

namespace {

Var YamlToVar(const YAML::Node& n) {
  if (n.IsMap()) {
    Object::Ptr o = new Object;
    for (const auto& kv : n) o->set(kv.first.as<std::string>(), YamlToVar(kv.second));
    return o;
  }
  if (n.IsSequence()) {
    Array::Ptr a = new Array;
    for (const auto& item : n) a->add(YamlToVar(item));
    return a;
  }
  if (n.IsNull()) return Var();
  const std::string text = n.as<std::string>();
  if (n.Tag() == "!") return text;  // quoted: a string
  static const std::regex integer("^[-+]?(0|[1-9][0-9]*)$"),
      number("^[-+]?[0-9]*\\.[0-9]+([eE][-+]?[0-9]+)?$");
  if (text == "true" || text == "True") return true;
  if (text == "false" || text == "False") return false;
  if (std::regex_match(text, integer)) return std::stoll(text);
  if (std::regex_match(text, number)) return std::stod(text);
  return text;
}

}  // namespace

std::vector<std::string> YamlDocumentsAsJson(const std::string& path) {
  std::vector<std::string> out;
  for (const YAML::Node& doc : YAML::LoadAllFromFile(path)) {
    if (!doc || doc.IsNull()) continue;
    Var v = YamlToVar(doc);
    out.push_back(ToJson(v.extract<Object::Ptr>()));
  }
  return out;
}

void FakeKube::KillPod(const std::string& ns, const std::string& name) {
  JailProcess jail;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->pods.find(ns + "/" + name);
    if (it == impl_->pods.end()) return;
    jail = it->second.jail;
  }
  (void)paddock::plugins::sandbox_process::KillJail(jail);
  impl_->cv.notify_all();
}

int FakeKube::RunningPods() const {
  std::lock_guard lock(impl_->mu);
  int n = 0;
  for (const auto& [k, p] : impl_->pods) n += paddock::plugins::sandbox_process::JailAlive(p.jail) ? 1 : 0;
  return n;
}

std::vector<double> FakeKube::ClaimReadyMs() const {
  std::lock_guard lock(impl_->mu);
  return impl_->claim_ready_ms;
}

std::vector<std::string> FakeKube::Requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->requests;
}

std::vector<std::string> FakeKube::Bodies() const {
  std::lock_guard lock(impl_->mu);
  return impl_->bodies;
}

void FakeKube::ClearLog() {
  std::lock_guard lock(impl_->mu);
  impl_->requests.clear();
  impl_->bodies.clear();
}

}  // namespace paddock::testing
