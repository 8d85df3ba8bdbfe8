#include "k8s_sandbox_provider.h"

#include "wire.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/DateTimeParser.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Timestamp.h>

namespace paddock::plugins::sandbox_k8s {
namespace {

using Clock = std::chrono::steady_clock;
using Poco::JSON::Array;
using Poco::JSON::Object;

constexpr char kClaimApi[] = "extensions.agents.x-k8s.io/v1beta1";
constexpr char kSandboxApi[] = "agents.x-k8s.io/v1beta1";
constexpr char kManagedBy[] = "app.kubernetes.io/managed-by";
constexpr char kInstanceLabel[] = "paddock.dev/instance";
constexpr char kSessionLabel[] = "paddock.dev/session";
constexpr char kProfileLabel[] = "paddock.dev/profile";
constexpr char kAgentLabel[] = "paddock.dev/agent";
constexpr char kSandboxLabel[] = "paddock.dev/sandbox";
constexpr char kTeamLabel[] = "paddock.dev/team";
constexpr char kCopyLabel[] = "paddock.dev/copy-to-team-namespaces";
constexpr char kNetworkApi[] = "networking.k8s.io/v1";

// Ready=False reasons that will not turn into Ready=True by waiting (the agent-sandbox SDKs'
// terminal set, plus a pod that ended).
constexpr const char* kTerminalReasons[] = {"TemplateNotFound",
                                            "WarmPoolNotFound",
                                            "InvalidMetadata",
                                            "EnvVarsInjectionRejected",
                                            "VolumeClaimTemplatesError",
                                            "ClaimExpired",
                                            "SandboxExpired",
                                            "PodFailed",
                                            "PodSucceeded",
                                            "SandboxMissing"};

std::string RandomHex(size_t bytes) {
  std::ifstream in("/dev/urandom", std::ios::binary);
  std::string raw(bytes, '\0');
  in.read(raw.data(), static_cast<std::streamsize>(bytes));
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

using wire::ToJson;

using wire::Base64;

// A Secret's data; what is not base64 reads as nothing (no token).
std::string Unbase64(const std::string& s) { return wire::Unbase64(s).value_or(""); }

Object::Ptr Obj(const Object::Ptr& o, const char* key) { return o ? o->getObject(key) : nullptr; }

std::string Str(const Object::Ptr& o, const char* key) {
  if (!o || !o->has(key) || o->isNull(key)) return "";
  return o->getValue<std::string>(key);
}

std::string Label(const Object::Ptr& object, const char* key) {
  return Str(Obj(Obj(object, "metadata"), "labels"), key);
}

struct Condition {
  std::string status, reason, message;
};

std::optional<Condition> FindCondition(const Object::Ptr& object, const std::string& type) {
  Object::Ptr status = Obj(object, "status");
  if (!status || !status->has("conditions")) return std::nullopt;
  Array::Ptr conditions = status->getArray("conditions");
  if (!conditions) return std::nullopt;
  for (size_t i = 0; i < conditions->size(); ++i) {
    Object::Ptr c = conditions->getObject(static_cast<unsigned>(i));
    if (c && Str(c, "type") == type) return Condition{Str(c, "status"), Str(c, "reason"), Str(c, "message")};
  }
  return std::nullopt;
}

bool IsTerminal(const std::string& reason) {
  return std::find(std::begin(kTerminalReasons), std::end(kTerminalReasons), reason) !=
         std::end(kTerminalReasons);
}

// The pod IP of a claim (status.sandbox.podIPs) or a Sandbox (status.podIPs); IPv4 first.
std::string PodIp(const Object::Ptr& object) {
  Object::Ptr status = Obj(object, "status");
  Array::Ptr ips;
  if (Object::Ptr sb = Obj(status, "sandbox"); sb && sb->has("podIPs")) {
    ips = sb->getArray("podIPs");
  } else if (status && status->has("podIPs")) {
    ips = status->getArray("podIPs");
  }
  if (!ips || ips->size() == 0) return "";
  std::string first;
  for (size_t i = 0; i < ips->size(); ++i) {
    std::string ip = ips->getElement<std::string>(static_cast<unsigned>(i));
    if (first.empty()) first = ip;
    if (ip.find(':') == std::string::npos) return ip;
  }
  return first;
}

std::string Address(const std::string& ip, int port) {
  if (ip.find(':') != std::string::npos) return "tcp:[" + ip + "]:" + std::to_string(port);
  return "tcp:" + ip + ":" + std::to_string(port);
}

bool ValidLabelValue(std::string_view v) {
  if (v.size() > 63) return false;
  if (v.empty()) return true;
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (!alnum(v.front()) || !alnum(v.back())) return false;
  return std::all_of(v.begin(), v.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool ValidDnsLabel(std::string_view v) {
  if (v.empty() || v.size() > 63) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  return std::all_of(v.begin(), v.end(), ok) && v.front() != '-' && v.back() != '-';
}

std::string Replace(std::string s, const std::string& what, const std::string& with) {
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + with.size()))
    s.replace(p, what.size(), with);
  return s;
}

TimestampMs ParseTime(const std::string& rfc3339) {
  if (rfc3339.empty()) return 0;
  try {
    int tz = 0;
    Poco::DateTime dt = Poco::DateTimeParser::parse(Poco::DateTimeFormat::ISO8601_FORMAT, rfc3339, tz);
    return dt.timestamp().epochMicroseconds() / 1000;
  } catch (const std::exception&) {
    return 0;
  }
}

std::string Now() {
  return Poco::DateTimeFormatter::format(Poco::Timestamp(), Poco::DateTimeFormat::ISO8601_FORMAT);
}

Object::Ptr Metadata(const std::string& name, const std::string& ns,
                     const std::map<std::string, std::string>& labels) {
  Object::Ptr meta = new Object;
  meta->set("name", name);
  meta->set("namespace", ns);
  Object::Ptr l = new Object;
  for (const auto& [k, v] : labels) l->set(k, v);
  meta->set("labels", l);
  return meta;
}

// One call to the sandbox's runtime (plain HTTP on the pod network).
Result<int> RuntimeCall(const std::string& address, const std::string& method, const std::string& path,
                        const std::string& token, const std::string& body) {
  // "tcp:HOST:PORT" / "tcp:[V6]:PORT"
  std::string hostport = address.substr(4);
  auto colon = hostport.rfind(':');
  std::string host = hostport.substr(0, colon);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  unsigned short port = static_cast<unsigned short>(std::stoi(hostport.substr(colon + 1)));
  try {
    Poco::Net::HTTPClientSession s(host, port);
    s.setTimeout(Poco::Timespan(5, 0));
    Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    req.set("Authorization", "Bearer " + token);
    if (!body.empty()) {
      req.setContentType("application/json");
      req.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    s.sendRequest(req) << body;
    Poco::Net::HTTPResponse resp;
    std::istream& in = s.receiveResponse(resp);
    std::string ignored((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return static_cast<int>(resp.getStatus());
  } catch (const std::exception& e) {
    return Status::Unavailable("the sandbox's runtime at " + address + " does not answer: " + e.what());
  }
}

}  // namespace

K8sSandboxProvider::K8sSandboxProvider(K8sConfig config, KubeCredentials credentials, Logger& logger)
    : config_(std::move(config)), logger_(logger) {
  default_namespace_ = !config_.namespace_.empty()       ? config_.namespace_
                       : !credentials.namespace_.empty() ? credentials.namespace_
                                                         : "default";
  client_ = std::make_unique<KubeClient>(std::move(credentials));
  if (config_.runtime_access == "apiserver") relay_ = std::make_unique<ApiServerRelay>(*client_);
}

K8sSandboxProvider::~K8sSandboxProvider() = default;

Status K8sSandboxProvider::Start() noexcept {
  try {
    // One read that needs the CRDs and our RBAC: fails early with what to fix.
    auto reply = client_->Call(
        "GET", ResourcePath(default_namespace_) + "?limit=1&labelSelector=" + QueryEscape(Selector()));
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) return ApiError(*reply, "listing sandboxes in namespace " + default_namespace_);
    if (config_.mode == "claim") {
      if (auto token = PoolToken(default_namespace_); !token.ok()) return token.status();
    }
    if (relay_) {
      PADDOCK_RETURN_IF_ERROR(relay_->Start());
    }
    logger_.Info("sandbox.k8s: " + client_->credentials().source + ", namespace " + default_namespace_ +
                 ", mode " + config_.mode + ", runtimes reached " +
                 (relay_ ? "through the API server (relay " + relay_->address() + ")" : "at their pod IPs"));
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("sandbox.k8s start: ") + e.what());
  }
}

std::string K8sSandboxProvider::Namespace(const std::string& team) const {
  if (!config_.namespace_per_team || team.empty()) return default_namespace_;
  return default_namespace_ + "-" + team;
}

std::string K8sSandboxProvider::PoliciesPath(const std::string& ns, const std::string& name) const {
  return std::string("/apis/") + kNetworkApi + "/namespaces/" + ns + "/networkpolicies" +
         (name.empty() ? "" : "/" + name);
}

Object::Ptr K8sSandboxProvider::IsolationPolicy(const std::string& ns, const std::string& team) const {
  auto match = [](const std::string& key, const std::string& value) {
    Object::Ptr selector = new Object;
    Object::Ptr labels = new Object;
    labels->set(key, value);
    selector->set("matchLabels", labels);
    return selector;
  };
  auto port = [](const char* protocol, int number) {
    Object::Ptr p = new Object;
    p->set("protocol", std::string(protocol));
    p->set("port", number);
    return p;
  };
  Object::Ptr policy = new Object;
  policy->set("apiVersion", std::string(kNetworkApi));
  policy->set("kind", "NetworkPolicy");
  policy->set("metadata",
              Metadata(config_.instance + "-team-isolation", ns,
                       {{kManagedBy, "paddock"}, {kInstanceLabel, config_.instance}, {kTeamLabel, team}}));
  Object::Ptr spec = new Object;
  spec->set("podSelector", Object::Ptr(new Object));  // every pod of the namespace
  Array::Ptr types = new Array;
  types->add(std::string("Ingress"));
  types->add(std::string("Egress"));
  spec->set("policyTypes", types);
  // In: only the control plane's runtime clients, from its own namespace, on the runtime port.
  Object::Ptr client = new Object;
  client->set("namespaceSelector", match("kubernetes.io/metadata.name", default_namespace_));
  client->set("podSelector", match("paddock.dev/sandbox-client", "true"));
  Array::Ptr from = new Array;
  from->add(client);
  Array::Ptr in_ports = new Array;
  in_ports->add(port("TCP", config_.runtime_port));
  Object::Ptr in = new Object;
  in->set("from", from);
  in->set("ports", in_ports);
  Array::Ptr ingress = new Array;
  ingress->add(in);
  spec->set("ingress", ingress);
  // Out: nowhere (Egress in policyTypes and no egress rules, which the API leaves out as
  // empty); the copied policies add the way out, the egress proxy's pods (no DNS).
  policy->set("spec", spec);
  return policy;
}

Status K8sSandboxProvider::ApplyPolicy(const std::string& ns, const Object::Ptr& policy) {
  const std::string name = Str(Obj(policy, "metadata"), "name");
  for (int attempt = 0; attempt < 3; ++attempt) {
    PADDOCK_ASSIGN_OR_RETURN(KubeReply got, client_->Call("GET", PoliciesPath(ns, name)));
    if (got.status == 404) {
      PADDOCK_ASSIGN_OR_RETURN(
          KubeReply made,
          client_->Call("POST", PoliciesPath(ns) + "?fieldValidation=Strict", ToJson(policy)));
      if (made.status == 201) return Status::Ok();
      if (made.status == 409) continue;  // another process made it first: compare with theirs
      return ApiError(made, "creating NetworkPolicy " + ns + "/" + name);
    }
    if (got.status != 200) return ApiError(got, "reading NetworkPolicy " + ns + "/" + name);
    auto json = [](const Object::Ptr& o) { return o ? ToJson(o) : std::string(); };
    if (json(Obj(got.body, "spec")) == json(Obj(policy, "spec")) &&
        json(Obj(Obj(got.body, "metadata"), "labels")) == json(Obj(Obj(policy, "metadata"), "labels"))) {
      return Status::Ok();
    }
    // Changed (or edited by hand): put it back as it should be, against the version read.
    Obj(policy, "metadata")->set("resourceVersion", Str(Obj(got.body, "metadata"), "resourceVersion"));
    PADDOCK_ASSIGN_OR_RETURN(
        KubeReply put,
        client_->Call("PUT", PoliciesPath(ns, name) + "?fieldValidation=Strict", ToJson(policy)));
    Obj(policy, "metadata")->remove("resourceVersion");
    if (put.status == 200) return Status::Ok();
    if (put.status == 409) continue;
    return ApiError(put, "replacing NetworkPolicy " + ns + "/" + name);
  }
  return Status::Unavailable("NetworkPolicy " + ns + "/" + name + " kept changing while it was written");
}

Status K8sSandboxProvider::EnsureTeamNamespace(const std::string& ns, const std::string& team) {
  {
    std::lock_guard lock(mu_);
    if (ready_namespaces_.count(ns)) return Status::Ok();
  }
  auto fail = [&](const Status& why) {
    return Status(
        why.code() == StatusCode::kUnavailable ? StatusCode::kUnavailable : StatusCode::kFailedPrecondition,
        "team '" + team + "' gets no sandbox until namespace " + ns +
            " has its NetworkPolicies: " + why.message() +
            ". Create the namespace with the "
            "profiles' SandboxTemplate and SandboxWarmPool, and give the service account "
            "networkpolicies get, list, create and update there "
            "(deploy/components/namespace-per-team)");
  };
  std::vector<Object::Ptr> wanted = {IsolationPolicy(ns, team)};
  // The control plane's own namespace holds the allow list; policies labelled for it are copied.
  PADDOCK_ASSIGN_OR_RETURN(KubeReply listed,
                           client_->Call("GET", PoliciesPath(default_namespace_) + "?labelSelector=" +
                                                    QueryEscape(std::string(kCopyLabel) + "=true")));
  if (listed.status != 200) {
    return fail(ApiError(listed, "listing the NetworkPolicies labelled " + std::string(kCopyLabel) +
                                     "=true in " + default_namespace_));
  }
  if (Array::Ptr items = listed.body->getArray("items")) {
    for (size_t i = 0; i < items->size(); ++i) {
      Object::Ptr original = items->getObject(static_cast<unsigned>(i));
      std::map<std::string, std::string> labels;
      if (Object::Ptr l = Obj(Obj(original, "metadata"), "labels")) {
        for (const auto& [k, v] : *l) {
          if (k != kCopyLabel) labels[k] = v.toString();
        }
      }
      labels[kManagedBy] = "paddock";
      labels[kInstanceLabel] = config_.instance;
      labels[kTeamLabel] = team;
      Object::Ptr copy = new Object;
      copy->set("apiVersion", std::string(kNetworkApi));
      copy->set("kind", "NetworkPolicy");
      copy->set("metadata", Metadata(Str(Obj(original, "metadata"), "name"), ns, labels));
      copy->set("spec", Obj(original, "spec"));
      wanted.push_back(copy);
    }
  }
  for (const Object::Ptr& policy : wanted) {
    if (Status s = ApplyPolicy(ns, policy); !s.ok()) return fail(s);
  }
  logger_.Info("sandbox.k8s: namespace " + ns + " of team " + team + " has its " +
               std::to_string(wanted.size()) + " NetworkPolicies");
  std::lock_guard lock(mu_);
  ready_namespaces_.insert(ns);
  return Status::Ok();
}

std::string K8sSandboxProvider::SandboxesPath(const std::string& ns, const std::string& name) const {
  return std::string("/apis/") + kSandboxApi + "/namespaces/" + ns + "/sandboxes" +
         (name.empty() ? "" : "/" + name);
}

std::string K8sSandboxProvider::ResourcePath(const std::string& ns, const std::string& name) const {
  if (config_.mode == "sandbox") return SandboxesPath(ns, name);
  return std::string("/apis/") + kClaimApi + "/namespaces/" + ns + "/sandboxclaims" +
         (name.empty() ? "" : "/" + name);
}

std::string K8sSandboxProvider::CorePath(const std::string& ns, const std::string& resource,
                                         const std::string& name) const {
  return "/api/v1/namespaces/" + ns + "/" + resource + (name.empty() ? "" : "/" + name);
}

std::string K8sSandboxProvider::Selector() const {
  return std::string(kManagedBy) + "=paddock," + kInstanceLabel + "=" + config_.instance;
}

std::optional<K8sSandboxProvider::Ref> K8sSandboxProvider::ParseId(std::string_view id) const {
  auto dot = id.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  Ref r{std::string(id.substr(0, dot)), std::string(id.substr(dot + 1))};
  if (!ValidDnsLabel(r.name) || !ValidDnsLabel(r.ns)) return std::nullopt;
  return r;
}

Status K8sSandboxProvider::ApiError(const KubeReply& reply, const std::string& what) const {
  std::string msg = what + ": " + reply.Message() + " (HTTP " + std::to_string(reply.status) + ")";
  switch (reply.status) {
    case 401:
      return Status::PermissionDenied(msg + "; the credentials from " + client_->credentials().source +
                                      " were refused");
    case 403:
      return Status::PermissionDenied(msg + "; grant the verbs in deploy/base/rbac.yaml");
    case 404:
      return Status::NotFound(msg);
    case 409:
      return Status::AlreadyExists(msg);
    case 400:
    case 422:
      return Status::InvalidArgument(msg);
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return Status::Unavailable(msg);
    default:
      return Status::Internal(msg);
  }
}

Result<std::string> K8sSandboxProvider::PoolToken(const std::string& ns) {
  {
    std::lock_guard lock(mu_);
    if (auto it = pool_tokens_.find(ns); it != pool_tokens_.end()) return it->second;
  }
  const std::string path = CorePath(ns, "secrets", config_.pool_token_secret);
  for (int attempt = 0; attempt < 3; ++attempt) {
    PADDOCK_ASSIGN_OR_RETURN(KubeReply got, client_->Call("GET", path));
    if (got.status == 200) {
      std::string token = Unbase64(Str(Obj(got.body, "data"), "token"));
      while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
      if (token.size() < 16) {
        return Status::FailedPrecondition("Secret " + ns + "/" + config_.pool_token_secret +
                                          " has no 'token' of at least 16 characters");
      }
      std::lock_guard lock(mu_);
      pool_tokens_[ns] = token;
      return token;
    }
    if (got.status != 404) return ApiError(got, "reading Secret " + ns + "/" + config_.pool_token_secret);
    // None yet: this is the first Paddock process here; make one (a racing one may win).
    Object::Ptr secret = new Object;
    secret->set("apiVersion", "v1");
    secret->set("kind", "Secret");
    secret->set("metadata", Metadata(config_.pool_token_secret, ns,
                                     {{kManagedBy, "paddock"}, {kInstanceLabel, config_.instance}}));
    secret->set("type", "Opaque");
    Object::Ptr data = new Object;
    data->set("token", Base64(RandomHex(24)));
    secret->set("data", data);
    PADDOCK_ASSIGN_OR_RETURN(
        KubeReply made,
        client_->Call("POST", CorePath(ns, "secrets") + "?fieldValidation=Strict", ToJson(secret)));
    if (made.status != 201 && made.status != 409) {
      return ApiError(made, "creating Secret " + ns + "/" + config_.pool_token_secret);
    }
  }
  return Status::Unavailable("Secret " + ns + "/" + config_.pool_token_secret +
                             " could not be read or created");
}

Result<std::string> K8sSandboxProvider::SandboxToken(const Ref& ref) {
  const std::string id = ref.name + "." + ref.ns;
  {
    std::lock_guard lock(mu_);
    if (auto it = tokens_.find(id); it != tokens_.end()) return it->second;
  }
  PADDOCK_ASSIGN_OR_RETURN(KubeReply got,
                           client_->Call("GET", CorePath(ref.ns, "secrets", ref.name + "-runtime")));
  if (got.status == 404) return std::string();  // not handed over (yet)
  if (got.status != 200) return ApiError(got, "reading the runtime token of " + id);
  std::string token = Unbase64(Str(Obj(got.body, "data"), "token"));
  std::lock_guard lock(mu_);
  tokens_[id] = token;
  return token;
}

Status K8sSandboxProvider::CreateTokenSecret(const Ref& ref, const Object::Ptr& owner,
                                             const std::string& token,
                                             const std::map<std::string, std::string>& labels) {
  Object::Ptr secret = new Object;
  secret->set("apiVersion", "v1");
  secret->set("kind", "Secret");
  Object::Ptr meta = Metadata(ref.name + "-runtime", ref.ns, labels);
  // Owned by the claim (or Sandbox): the garbage collector deletes it with it, whatever
  // happens to this process.
  Object::Ptr owner_ref = new Object;
  owner_ref->set("apiVersion", Str(owner, "apiVersion"));
  owner_ref->set("kind", Str(owner, "kind"));
  owner_ref->set("name", ref.name);
  owner_ref->set("uid", Str(Obj(owner, "metadata"), "uid"));
  Array::Ptr owners = new Array;
  owners->add(owner_ref);
  meta->set("ownerReferences", owners);
  secret->set("metadata", meta);
  secret->set("type", "Opaque");
  Object::Ptr data = new Object;
  data->set("token", Base64(token));
  secret->set("data", data);
  PADDOCK_ASSIGN_OR_RETURN(
      KubeReply made,
      client_->Call("POST", CorePath(ref.ns, "secrets") + "?fieldValidation=Strict", ToJson(secret)));
  if (made.status != 201) return ApiError(made, "creating the runtime token Secret of " + ref.name);
  return Status::Ok();
}

Result<int> K8sSandboxProvider::CallRuntime(const std::string& address, const RelayTarget& pod,
                                            const std::string& method, const std::string& path,
                                            const std::string& token, const std::string& body) {
  if (!relay_) return RuntimeCall(address, method, path, token, body);
  std::istringstream in(body);
  ForwardRequest f;
  f.method = method;
  f.path_and_query = PodProxyPath(pod, path);
  f.headers = {{"X-Paddock-Runtime-Token", token}, {"Content-Type", "application/json"}};
  f.body = &in;
  f.content_length = static_cast<std::int64_t>(body.size());
  int status = 0;
  Status sent = client_->Forward(f, [&](const Poco::Net::HTTPResponse& resp, std::istream& answer) {
    status = static_cast<int>(resp.getStatus());
    std::string ignored((std::istreambuf_iterator<char>(answer)), std::istreambuf_iterator<char>());
  });
  if (!sent.ok()) return sent;
  // The API server's own answers when it cannot reach the pod (503) are not the runtime's.
  if (status == 502 || status == 503) {
    return Status::Unavailable("the API server cannot reach pod " + pod.ns + "/" + pod.pod + " (HTTP " +
                               std::to_string(status) + ")");
  }
  return status;
}

Result<RelayTarget> K8sSandboxProvider::PodOf(const Ref& ref, const Object::Ptr& object) {
  RelayTarget t{ref.ns, "", config_.runtime_port};
  auto annotated = [](const Object::Ptr& o) {
    Object::Ptr a = Obj(Obj(o, "metadata"), "annotations");
    return Str(a, "agents.x-k8s.io/pod-name");
  };
  if (config_.mode == "sandbox") {
    t.pod = annotated(object);
    if (t.pod.empty()) t.pod = ref.name;
    return t;
  }
  const std::string id = ref.name + "." + ref.ns;
  {
    std::lock_guard lock(mu_);
    if (auto it = pods_.find(id); it != pods_.end()) {
      t.pod = it->second;
      return t;
    }
  }
  const std::string sandbox = Str(Obj(Obj(object, "status"), "sandbox"), "name");
  if (sandbox.empty()) return Status::Unavailable("claim " + ref.name + " names no Sandbox yet");
  PADDOCK_ASSIGN_OR_RETURN(KubeReply got, client_->Call("GET", SandboxesPath(ref.ns, sandbox)));
  if (got.status != 200) return ApiError(got, "reading sandbox " + sandbox);
  t.pod = annotated(got.body);
  if (t.pod.empty()) t.pod = sandbox;
  std::lock_guard lock(mu_);
  pods_[id] = t.pod;
  return t;
}

Status K8sSandboxProvider::Route(SandboxInfo& info, const Ref& ref, const Object::Ptr& object) {
  if (!relay_ || info.runtime.address.empty()) return Status::Ok();
  PADDOCK_ASSIGN_OR_RETURN(RelayTarget pod, PodOf(ref, object));
  {
    std::lock_guard lock(mu_);
    tokens_[info.id] = info.runtime.token;  // Destroy forgets the relay's route with it
  }
  relay_->Register(info.runtime.token, pod);
  info.runtime.address = relay_->address();
  return Status::Ok();
}

Status K8sSandboxProvider::HandOverToken(const std::string& address, const RelayTarget& pod,
                                         const std::string& pool_token, const std::string& token,
                                         Clock::time_point deadline) {
  Object::Ptr body = new Object;
  body->set("token", token);
  const std::string text = ToJson(body);
  Status last = Status::Unavailable("no attempt");
  do {
    Result<int> r = CallRuntime(address, pod, "POST", "/v1/claim", pool_token, text);
    if (r.ok() && *r == 200) return Status::Ok();
    if (r.ok()) {
      // 401: it has its own token already — a retry after a lost answer finds it set.
      if (Result<int> h = CallRuntime(address, pod, "GET", "/v1/health", token, ""); h.ok() && *h == 200) {
        return Status::Ok();
      }
      return Status::Unavailable("the runtime at " + address + " refused its token (HTTP " +
                                 std::to_string(*r) +
                                 "); is the template's runtime started --claimable with the pool token?");
    }
    last = r.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (Clock::now() < deadline);
  return last;
}

Result<std::string> K8sSandboxProvider::SessionVolume(const std::string& ns, const std::string& session) {
  if (session.empty()) return std::string();
  PADDOCK_ASSIGN_OR_RETURN(
      KubeReply got, client_->Call("GET", CorePath(ns, "persistentvolumeclaims") + "?labelSelector=" +
                                              QueryEscape(Selector() + "," + kSessionLabel + "=" + session)));
  if (got.status != 200) return ApiError(got, "listing the workspace volumes of session " + session);
  Array::Ptr items = got.body->getArray("items");
  if (!items || items->size() == 0) return std::string();
  return Str(Obj(items->getObject(0), "metadata"), "name");
}

Result<Object::Ptr> K8sSandboxProvider::BuildSandbox(const SandboxSpec& spec, const Ref& ref,
                                                     const std::map<std::string, std::string>& labels,
                                                     const std::string& pvc) {
  const std::string tmpl_name = Replace(config_.template_, "{profile}", spec.profile);
  PADDOCK_ASSIGN_OR_RETURN(KubeReply got,
                           client_->Call("GET", std::string("/apis/") + kClaimApi + "/namespaces/" + ref.ns +
                                                    "/sandboxtemplates/" + tmpl_name));
  if (got.status == 404) {
    return Status::FailedPrecondition("SandboxTemplate " + ref.ns + "/" + tmpl_name + " for profile '" +
                                      spec.profile +
                                      "' does not exist (deploy/base/templates.yaml has one per profile)");
  }
  if (got.status != 200) return ApiError(got, "reading SandboxTemplate " + tmpl_name);
  Object::Ptr pod_template = Obj(Obj(got.body, "spec"), "podTemplate");
  Object::Ptr pod_spec = Obj(pod_template, "spec");
  if (!pod_spec)
    return Status::FailedPrecondition("SandboxTemplate " + tmpl_name + " has no podTemplate.spec");
  // The sandbox's own token replaces the pool's, and the session's volume its workspace.
  Array::Ptr volumes = pod_spec->has("volumes") ? pod_spec->getArray("volumes") : Array::Ptr(new Array);
  Array::Ptr out_volumes = new Array;
  for (size_t i = 0; i < volumes->size(); ++i) {
    Object::Ptr v = volumes->getObject(static_cast<unsigned>(i));
    std::string name = Str(v, "name");
    if (name != config_.token_volume && name != config_.workspace_volume) out_volumes->add(v);
  }
  Object::Ptr token_volume = new Object;
  token_volume->set("name", config_.token_volume);
  Object::Ptr secret = new Object;
  secret->set("secretName", ref.name + "-runtime");
  secret->set("defaultMode", 0440);  // readable by the pod's fsGroup
  token_volume->set("secret", secret);
  out_volumes->add(token_volume);
  Object::Ptr ws = new Object;
  ws->set("name", config_.workspace_volume);
  Object::Ptr claim = new Object;
  claim->set("claimName", pvc);
  ws->set("persistentVolumeClaim", claim);
  out_volumes->add(ws);
  pod_spec->set("volumes", out_volumes);
  // The profile's hardening: its runtime class, and the container runtime's default syscall
  // filter unless the profile turned filtering off (seccomp_allow needs a Localhost profile,
  // which is the operator's to install: docs/architecture.md).
  if (!spec.hardening.runtime_class.empty()) pod_spec->set("runtimeClassName", spec.hardening.runtime_class);
  Object::Ptr pod_security =
      pod_spec->has("securityContext") ? pod_spec->getObject("securityContext") : Object::Ptr(new Object);
  Object::Ptr seccomp = new Object;
  seccomp->set("type", spec.hardening.seccomp ? "RuntimeDefault" : "Unconfined");
  pod_security->set("seccompProfile", seccomp);
  pod_spec->set("securityContext", pod_security);
  // Its runtime holds its own token from the start: no hand-over.
  if (Array::Ptr containers = pod_spec->getArray("containers")) {
    for (size_t i = 0; i < containers->size(); ++i) {
      Object::Ptr c = containers->getObject(static_cast<unsigned>(i));
      if (!c->has("args")) continue;
      Array::Ptr args = c->getArray("args");
      Array::Ptr kept = new Array;
      for (size_t j = 0; j < args->size(); ++j) {
        std::string a = args->getElement<std::string>(static_cast<unsigned>(j));
        if (a != "--claimable") kept->add(a);
      }
      c->set("args", kept);
      if (i == 0 && (spec.limits.memory_bytes > 0 || spec.limits.cpus > 0)) {
        Object::Ptr resources = c->has("resources") ? c->getObject("resources") : Object::Ptr(new Object);
        Object::Ptr limits = new Object;
        if (spec.limits.memory_bytes > 0) limits->set("memory", std::to_string(spec.limits.memory_bytes));
        if (spec.limits.cpus > 0)
          limits->set("cpu", std::to_string(static_cast<long>(spec.limits.cpus * 1000)) + "m");
        resources->set("limits", limits);
        c->set("resources", resources);
      }
    }
  }
  Object::Ptr tmpl_meta = new Object;
  Object::Ptr pod_labels = new Object;
  if (Object::Ptr m = Obj(pod_template, "metadata"); m && m->has("labels"))
    pod_labels = m->getObject("labels");
  for (const auto& [k, v] : labels) pod_labels->set(k, v);
  tmpl_meta->set("labels", pod_labels);
  Object::Ptr new_template = new Object;
  new_template->set("metadata", tmpl_meta);
  new_template->set("spec", pod_spec);
  Object::Ptr sb_spec = new Object;
  sb_spec->set("podTemplate", new_template);
  sb_spec->set("operatingMode", "Running");
  Object::Ptr sandbox = new Object;
  sandbox->set("apiVersion", kSandboxApi);
  sandbox->set("kind", "Sandbox");
  sandbox->set("metadata", Metadata(ref.name, ref.ns, labels));
  sandbox->set("spec", sb_spec);
  return sandbox;
}

Result<SandboxInfo> K8sSandboxProvider::Create(const SandboxSpec& spec) noexcept {
  try {
    return CreateImpl(spec);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("sandbox.k8s create: ") + e.what());
  }
}

Result<SandboxInfo> K8sSandboxProvider::CreateImpl(const SandboxSpec& spec) {
  if (!ValidLabelValue(spec.session_id) || !ValidLabelValue(spec.agent_id) ||
      !ValidLabelValue(spec.profile)) {
    return Status::InvalidArgument(
        "session, agent and profile ids must be at most 63 letters, digits, '-', '_' "
        "or '.', starting and ending with a letter or digit");
  }
  if (spec.limits.memory_bytes < 0 || spec.limits.cpus < 0 || spec.limits.pids < 0 ||
      spec.limits.disk_bytes < 0) {
    return Status::InvalidArgument("sandbox limits must not be negative");
  }
  if (spec.host_network) {
    return Status::InvalidArgument(
        "sandbox.k8s cannot share the host's network; remove host_network from the profile");
  }
  if (!spec.team_id.empty() && config_.namespace_per_team && !ValidDnsLabel(Namespace(spec.team_id))) {
    return Status::InvalidArgument("team id '" + spec.team_id + "' does not make a valid namespace name");
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(config_.ready_timeout_ms);
  Ref ref{"psb-" + RandomHex(6), Namespace(spec.team_id)};
  if (!spec.team_id.empty() && config_.namespace_per_team && config_.team_network_policies) {
    PADDOCK_RETURN_IF_ERROR(EnsureTeamNamespace(ref.ns, spec.team_id));
  }
  if (config_.mode == "claim") {
    // The pool's pods in a team's namespace start with that namespace's pool token: it must be
    // there before they can (once per namespace and process; cached after).
    PADDOCK_RETURN_IF_ERROR(PoolToken(ref.ns).status());
  }
  std::map<std::string, std::string> labels = {{kManagedBy, "paddock"},
                                               {kInstanceLabel, config_.instance},
                                               {kSessionLabel, spec.session_id},
                                               {kProfileLabel, spec.profile},
                                               {kAgentLabel, spec.agent_id}};
  Object::Ptr body;
  std::string pvc;
  if (config_.mode == "sandbox") {
    PADDOCK_ASSIGN_OR_RETURN(pvc, SessionVolume(ref.ns, spec.session_id));
    if (pvc.empty()) {
      // A new workspace volume: the session's (or, for a warm sandbox, its own until claimed).
      pvc = "ws-" + ref.name;
      Object::Ptr claim = new Object;
      claim->set("apiVersion", "v1");
      claim->set("kind", "PersistentVolumeClaim");
      auto pvc_labels = labels;
      pvc_labels[kSandboxLabel] = ref.name;
      claim->set("metadata", Metadata(pvc, ref.ns, pvc_labels));
      Object::Ptr pvc_spec = new Object;
      Array::Ptr modes = new Array;
      modes->add("ReadWriteOnce");
      pvc_spec->set("accessModes", modes);
      Object::Ptr req = new Object;
      Object::Ptr storage = new Object;
      storage->set("storage", spec.limits.disk_bytes > 0 ? std::to_string(spec.limits.disk_bytes)
                                                         : config_.workspace_size);
      req->set("requests", storage);
      pvc_spec->set("resources", req);
      if (!config_.storage_class.empty()) pvc_spec->set("storageClassName", config_.storage_class);
      claim->set("spec", pvc_spec);
      PADDOCK_ASSIGN_OR_RETURN(
          KubeReply made,
          client_->Call("POST", CorePath(ref.ns, "persistentvolumeclaims") + "?fieldValidation=Strict",
                        ToJson(claim)));
      if (made.status != 201) return ApiError(made, "creating workspace volume " + pvc);
    }
    PADDOCK_ASSIGN_OR_RETURN(body, BuildSandbox(spec, ref, labels, pvc));
  } else {
    body = new Object;
    body->set("apiVersion", kClaimApi);
    body->set("kind", "SandboxClaim");
    Object::Ptr meta = Metadata(ref.name, ref.ns, labels);
    Object::Ptr annotations = new Object;
    annotations->set("agents.x-k8s.io/client-first-requested-at", Now());
    meta->set("annotations", annotations);
    body->set("metadata", meta);
    Object::Ptr claim_spec = new Object;
    Object::Ptr pool = new Object;
    pool->set("name", Replace(config_.warm_pool, "{profile}", spec.profile));
    claim_spec->set("warmPoolRef", pool);
    body->set("spec", claim_spec);
  }
  PADDOCK_ASSIGN_OR_RETURN(
      KubeReply created,
      client_->Call("POST", ResourcePath(ref.ns) + "?fieldValidation=Strict", ToJson(body)));
  if (created.status != 201) {
    Status s = ApiError(created, "creating " +
                                     std::string(config_.mode == "sandbox" ? "Sandbox " : "SandboxClaim ") +
                                     ref.ns + "/" + ref.name);
    // Nothing there means the CRDs are missing: no retry will help.
    if (created.status == 404)
      return Status::FailedPrecondition(s.message() + "; are the agent-sandbox CRDs installed?");
    if (s.code() == StatusCode::kInvalidArgument) return Status::FailedPrecondition(s.message());
    return s;
  }
  auto fail = [&](Status why) -> Status {
    (void)DestroyImpl(ref);
    return why;
  };
  std::string token = RandomHex(24);
  if (config_.mode == "sandbox") {
    // The pod waits for its token Secret to exist before it starts.
    if (Status s = CreateTokenSecret(ref, created.body, token, labels); !s.ok()) return fail(s);
  }
  const std::string rv = Str(Obj(created.body, "metadata"), "resourceVersion");
  Result<Object::Ptr> ready = WaitReady(ref, rv, deadline);
  if (!ready.ok()) return fail(ready.status());
  std::string ip = PodIp(*ready);
  if (ip.empty() && config_.mode == "claim") {
    // Older controllers do not mirror the pod IPs onto the claim: read the Sandbox.
    std::string sb = Str(Obj(Obj(*ready, "status"), "sandbox"), "name");
    PADDOCK_ASSIGN_OR_RETURN(KubeReply s, client_->Call("GET", SandboxesPath(ref.ns, sb)));
    if (s.status == 200) ip = PodIp(s.body);
  }
  if (ip.empty()) return fail(Status::Unavailable("sandbox " + ref.name + " is Ready but has no pod IP"));
  const std::string address = Address(ip, config_.runtime_port);
  if (config_.mode == "claim") {
    if (Status s = CreateTokenSecret(ref, *ready, token, labels); !s.ok()) return fail(s);
    Result<std::string> pool_token = PoolToken(ref.ns);
    if (!pool_token.ok()) return fail(pool_token.status());
    RelayTarget pod;
    if (relay_) {
      Result<RelayTarget> found = PodOf(ref, *ready);
      if (!found.ok()) return fail(found.status());
      pod = *found;
    }
    if (Status s = HandOverToken(address, pod, *pool_token, token, deadline); !s.ok()) return fail(s);
  }
  {
    std::lock_guard lock(mu_);
    tokens_[ref.name + "." + ref.ns] = token;
  }
  SandboxInfo info = InfoOf(ref, *ready);
  info.runtime.token = token;
  if (Status s = Route(info, ref, *ready); !s.ok()) return fail(s);
  return info;
}

std::string K8sSandboxProvider::WatchQuery(const std::string& collection, const std::string& name,
                                           const std::string& rv, Clock::time_point deadline) const {
  auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now()).count();
  return collection +
         "?watch=1&allowWatchBookmarks=true&fieldSelector=" + QueryEscape("metadata.name=" + name) +
         "&resourceVersion=" + QueryEscape(rv) + "&timeoutSeconds=" + std::to_string(std::max<long>(1, left));
}

Result<Object::Ptr> K8sSandboxProvider::WaitReady(const Ref& ref, std::string rv,
                                                  Clock::time_point deadline) {
  Object::Ptr last_seen;
  std::string last_reason;
  std::optional<Status> outcome;
  Object::Ptr ready;
  const std::string collection = ResourcePath(ref.ns);
  while (!outcome && !ready) {
    if (Clock::now() >= deadline) break;
    bool gone = false;
    Result<int> watched = client_->Watch(
        WatchQuery(collection, ref.name, rv, deadline), deadline,
        [&](const std::string& type, const Object::Ptr& o) {
          if (type == "BOOKMARK") {
            rv = Str(Obj(o, "metadata"), "resourceVersion");
            return true;
          }
          if (type == "ERROR") {
            if (o->optValue<int>("code", 0) == 410)
              gone = true;
            else
              outcome = Status::Unavailable("watching " + ref.name + ": " + Str(o, "message"));
            return false;
          }
          rv = Str(Obj(o, "metadata"), "resourceVersion");
          if (type == "DELETED") {
            outcome = Status::Unavailable("sandbox " + ref.name + " was deleted before it became Ready");
            return false;
          }
          last_seen = o;
          auto c = FindCondition(o, "Ready");
          if (c && c->status == "True" &&
              (config_.mode == "sandbox" || !Str(Obj(Obj(o, "status"), "sandbox"), "name").empty())) {
            ready = o;
            return false;
          }
          if (c) last_reason = c->reason + (c->message.empty() ? "" : ": " + c->message);
          if (c && c->status == "False" && IsTerminal(c->reason)) {
            outcome =
                Status::FailedPrecondition("sandbox " + ref.name + " cannot become Ready: " + last_reason);
            return false;
          }
          return true;
        });
    if (watched.ok() && *watched == 410) gone = true;
    if (watched.ok() && *watched != 200 && *watched != 410 && !outcome) {
      outcome = Status::Unavailable("watching " + ref.name + " failed with HTTP " + std::to_string(*watched));
    }
    if (!watched.ok() && watched.status().code() != StatusCode::kDeadlineExceeded) {
      // A dropped stream: watch again from the last resourceVersion.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (gone) {
      // Our resourceVersion is too old: list (the current state and a fresh version), then watch.
      auto listed =
          client_->Call("GET", collection + "?fieldSelector=" + QueryEscape("metadata.name=" + ref.name));
      if (!listed.ok()) return listed.status();
      if (listed->status != 200) return ApiError(*listed, "listing " + ref.name);
      rv = Str(Obj(listed->body, "metadata"), "resourceVersion");
      Array::Ptr items = listed->body->getArray("items");
      if (!items || items->size() == 0) return Status::Unavailable("sandbox " + ref.name + " disappeared");
      Object::Ptr o = items->getObject(0);
      auto c = FindCondition(o, "Ready");
      if (c && c->status == "True" &&
          (config_.mode == "sandbox" || !Str(Obj(Obj(o, "status"), "sandbox"), "name").empty())) {
        ready = o;
      }
    }
  }
  if (outcome) return *outcome;
  if (ready) return ready;
  return Status::Unavailable("sandbox " + ref.name + " was not Ready within " +
                             std::to_string(config_.ready_timeout_ms / 1000) + " s" +
                             (last_reason.empty() ? "" : " (last: " + last_reason + ")"));
}

Status K8sSandboxProvider::WaitGone(const std::string& collection, const std::string& name,
                                    Clock::time_point deadline) {
  while (Clock::now() < deadline) {
    // Read, then watch from what was read: a deletion between the two is still seen.
    PADDOCK_ASSIGN_OR_RETURN(KubeReply got, client_->Call("GET", collection + "/" + name));
    if (got.status == 404) return Status::Ok();
    if (got.status != 200) return ApiError(got, "reading " + name);
    std::string rv = Str(Obj(got.body, "metadata"), "resourceVersion");
    bool deleted = false;
    Result<int> watched = client_->Watch(WatchQuery(collection, name, rv, deadline), deadline,
                                         [&](const std::string& type, const Object::Ptr&) {
                                           deleted = type == "DELETED";
                                           return !deleted && type != "ERROR";
                                         });
    if (deleted) return Status::Ok();
    if (!watched.ok() && watched.status().code() != StatusCode::kDeadlineExceeded) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return Status::Unavailable(name + " was not gone within " +
                             std::to_string(config_.destroy_timeout_ms / 1000) + " s");
}

Status K8sSandboxProvider::WaitSuspended(const Ref& sandbox, std::string rv, Clock::time_point deadline) {
  std::optional<Status> outcome;
  while (!outcome && Clock::now() < deadline) {
    Result<int> watched =
        client_->Watch(WatchQuery(SandboxesPath(sandbox.ns), sandbox.name, rv, deadline), deadline,
                       [&](const std::string& type, const Object::Ptr& o) {
                         if (type == "ERROR" || type == "DELETED") {
                           outcome = type == "DELETED" ? Status::NotFound("sandbox deleted while suspending")
                                                       : Status::Unavailable(Str(o, "message"));
                           return false;
                         }
                         rv = Str(Obj(o, "metadata"), "resourceVersion");
                         if (type == "BOOKMARK") return true;
                         auto c = FindCondition(o, "Suspended");
                         if (c && c->status == "True") {
                           outcome = Status::Ok();
                           return false;
                         }
                         return true;
                       });
    if (!watched.ok() && watched.status().code() != StatusCode::kDeadlineExceeded) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (outcome) return *outcome;
  return Status::Unavailable("sandbox " + sandbox.name + " did not suspend in time");
}

SandboxInfo K8sSandboxProvider::InfoOf(const Ref& ref, const Object::Ptr& object) const {
  SandboxInfo info;
  info.id = ref.name + "." + ref.ns;
  info.session_id = Label(object, kSessionLabel);
  info.profile = Label(object, kProfileLabel);
  Object::Ptr meta = Obj(object, "metadata");
  info.created_at = ParseTime(Str(meta, "creationTimestamp"));
  auto ready = FindCondition(object, "Ready");
  std::string ip = PodIp(object);
  std::string sandbox_name =
      config_.mode == "claim" ? Str(Obj(Obj(object, "status"), "sandbox"), "name") : ref.name;
  if (!Str(meta, "deletionTimestamp").empty()) {
    info.state = SandboxState::kGone;
    info.detail = "being deleted";
  } else if (ready && ready->status == "True" && !ip.empty()) {
    info.state = SandboxState::kRunning;
    info.detail = (config_.mode == "claim" ? "claim " + ref.name + ", sandbox " + sandbox_name
                                           : "sandbox " + ref.name) +
                  ", pod IP " + ip;
  } else {
    std::string reason = ready ? ready->reason : "";
    bool ended = IsTerminal(reason) || reason == "SandboxSuspended";
    info.state = ended ? SandboxState::kGone : SandboxState::kStarting;
    info.detail =
        reason.empty() ? "not Ready yet" : reason + (ready->message.empty() ? "" : ": " + ready->message);
  }
  if (!ip.empty()) info.runtime.address = Address(ip, config_.runtime_port);
  if (config_.mode == "claim") {
    info.limits.emplace_back(
        "all", "from SandboxTemplate of warm pool " + Replace(config_.warm_pool, "{profile}", info.profile));
  } else {
    info.limits.emplace_back("all", "container resources of sandbox " + ref.name);
  }
  return info;
}

Result<SandboxInfo> K8sSandboxProvider::Inspect(std::string_view id) noexcept {
  try {
    auto ref = ParseId(id);
    if (!ref) return Status::NotFound("no sandbox '" + std::string(id) + "'");
    return InspectImpl(*ref);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("sandbox.k8s inspect: ") + e.what());
  }
}

Result<SandboxInfo> K8sSandboxProvider::InspectImpl(const Ref& ref) {
  PADDOCK_ASSIGN_OR_RETURN(KubeReply got, client_->Call("GET", ResourcePath(ref.ns, ref.name)));
  if (got.status == 404) return Status::NotFound("no sandbox '" + ref.name + "." + ref.ns + "'");
  if (got.status != 200) return ApiError(got, "reading sandbox " + ref.name);
  if (Label(got.body, kInstanceLabel) != config_.instance || Label(got.body, kManagedBy) != "paddock") {
    return Status::NotFound("no sandbox '" + ref.name + "." + ref.ns + "' of this Paddock");
  }
  SandboxInfo info = InfoOf(ref, got.body);
  PADDOCK_ASSIGN_OR_RETURN(info.runtime.token, SandboxToken(ref));
  if (info.runtime.token.empty() && info.state == SandboxState::kRunning) {
    info.state = SandboxState::kStarting;  // its runtime has not been handed its token
    info.detail = "runtime token not handed over";
  }
  if (info.state == SandboxState::kRunning) {
    PADDOCK_RETURN_IF_ERROR(Route(info, ref, got.body));
  }
  return info;
}

Result<SandboxInfo> K8sSandboxProvider::Claim(std::string_view id, std::string_view session_id) noexcept {
  try {
    auto ref = ParseId(id);
    if (!ref) return Status::NotFound("no sandbox '" + std::string(id) + "'");
    if (session_id.empty() || !ValidLabelValue(session_id))
      return Status::InvalidArgument("invalid session id");
    PADDOCK_ASSIGN_OR_RETURN(KubeReply got, client_->Call("GET", ResourcePath(ref->ns, ref->name)));
    if (got.status == 404) return Status::NotFound("no sandbox '" + std::string(id) + "'");
    if (got.status != 200) return ApiError(got, "reading sandbox " + ref->name);
    if (!Label(got.body, kSessionLabel).empty()) {
      return Status::FailedPrecondition("sandbox '" + std::string(id) + "' is bound to a session already");
    }
    const std::string session(session_id);
    std::string own_pvc;
    if (config_.mode == "sandbox") {
      PADDOCK_ASSIGN_OR_RETURN(std::string existing, SessionVolume(ref->ns, session));
      if (!existing.empty()) {
        return Status::FailedPrecondition("session '" + session + "' has a workspace volume (" + existing +
                                          "); it cannot take over a warm sandbox's");
      }
      own_pvc = "ws-" + ref->name;
    }
    // Bind with the resourceVersion read above: of two racing claims, one gets 409.
    Object::Ptr patch = new Object;
    Object::Ptr meta = new Object;
    Object::Ptr labels = new Object;
    labels->set(kSessionLabel, session);
    meta->set("labels", labels);
    meta->set("resourceVersion", Str(Obj(got.body, "metadata"), "resourceVersion"));
    patch->set("metadata", meta);
    PADDOCK_ASSIGN_OR_RETURN(KubeReply patched, client_->Call("PATCH", ResourcePath(ref->ns, ref->name),
                                                              ToJson(patch), "application/merge-patch+json"));
    if (patched.status == 409)
      return Status::FailedPrecondition("sandbox '" + std::string(id) + "' was claimed concurrently");
    if (patched.status != 200) return ApiError(patched, "binding sandbox " + ref->name);
    if (!own_pvc.empty()) {
      Object::Ptr pvc_patch = new Object;
      Object::Ptr pvc_meta = new Object;
      pvc_meta->set("labels", labels);
      pvc_patch->set("metadata", pvc_meta);
      PADDOCK_ASSIGN_OR_RETURN(KubeReply p,
                               client_->Call("PATCH", CorePath(ref->ns, "persistentvolumeclaims", own_pvc),
                                             ToJson(pvc_patch), "application/merge-patch+json"));
      if (p.status != 200) return ApiError(p, "binding workspace volume " + own_pvc);
    }
    return InspectImpl(*ref);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("sandbox.k8s claim: ") + e.what());
  }
}

Status K8sSandboxProvider::Destroy(std::string_view id) noexcept {
  try {
    auto ref = ParseId(id);
    if (!ref) return Status::Ok();
    return DestroyImpl(*ref);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("sandbox.k8s destroy: ") + e.what());
  }
}

Status K8sSandboxProvider::DestroyImpl(const Ref& ref) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(config_.destroy_timeout_ms);
  {
    std::lock_guard lock(mu_);
    auto it = tokens_.find(ref.name + "." + ref.ns);
    if (it != tokens_.end()) {
      if (relay_) relay_->Forget(it->second);
      tokens_.erase(it);
    }
    pods_.erase(ref.name + "." + ref.ns);
  }
  // Foreground: the claim stays until the Sandbox and its pod are gone, so "gone" means the
  // sandbox's processes ended.
  PADDOCK_ASSIGN_OR_RETURN(KubeReply del, client_->Call("DELETE", ResourcePath(ref.ns, ref.name) +
                                                                      "?propagationPolicy=Foreground"));
  if (del.status != 404) {
    if (del.status != 200 && del.status != 202) return ApiError(del, "deleting sandbox " + ref.name);
    PADDOCK_RETURN_IF_ERROR(WaitGone(ResourcePath(ref.ns), ref.name, deadline));
  }
  // Owned by the claim, so collected with it; deleted here too so it never outlives it.
  PADDOCK_ASSIGN_OR_RETURN(KubeReply secret,
                           client_->Call("DELETE", CorePath(ref.ns, "secrets", ref.name + "-runtime")));
  if (secret.status != 200 && secret.status != 404)
    return ApiError(secret, "deleting the token of " + ref.name);
  if (config_.mode == "sandbox") {
    // A warm sandbox's volume was its own: it goes with it unless a session took it.
    PADDOCK_ASSIGN_OR_RETURN(
        KubeReply pvc, client_->Call("GET", CorePath(ref.ns, "persistentvolumeclaims", "ws-" + ref.name)));
    if (pvc.status == 200 && Label(pvc.body, kSessionLabel).empty()) {
      PADDOCK_ASSIGN_OR_RETURN(
          KubeReply gone,
          client_->Call("DELETE", CorePath(ref.ns, "persistentvolumeclaims", "ws-" + ref.name)));
      if (gone.status != 200 && gone.status != 404)
        return ApiError(gone, "deleting the volume of " + ref.name);
    }
  }
  return Status::Ok();
}

Result<std::vector<SandboxInfo>> K8sSandboxProvider::List() noexcept {
  try {
    return ListImpl();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("sandbox.k8s list: ") + e.what());
  }
}

Result<std::vector<SandboxInfo>> K8sSandboxProvider::ListImpl() {
  // With a namespace per team, sandboxes are found across namespaces (a cluster-wide list).
  auto collection = [&](const std::string& ns_path, const std::string& resource) {
    return ns_path + resource + "?labelSelector=" + QueryEscape(Selector());
  };
  std::string base =
      config_.mode == "sandbox" ? std::string("/apis/") + kSandboxApi : std::string("/apis/") + kClaimApi;
  std::string resource = config_.mode == "sandbox" ? "sandboxes" : "sandboxclaims";
  std::string objects_path = config_.namespace_per_team
                                 ? collection(base + "/", resource)
                                 : collection(base + "/namespaces/" + default_namespace_ + "/", resource);
  PADDOCK_ASSIGN_OR_RETURN(KubeReply got, client_->Call("GET", objects_path));
  if (got.status != 200) return ApiError(got, "listing sandboxes");
  std::string secrets_path = config_.namespace_per_team
                                 ? collection("/api/v1/", "secrets")
                                 : collection("/api/v1/namespaces/" + default_namespace_ + "/", "secrets");
  PADDOCK_ASSIGN_OR_RETURN(KubeReply secrets, client_->Call("GET", secrets_path));
  if (secrets.status != 200) return ApiError(secrets, "listing runtime tokens");
  std::map<std::string, std::string> token_of;  // "<name>.<ns>" → token
  if (Array::Ptr items = secrets.body->getArray("items")) {
    for (size_t i = 0; i < items->size(); ++i) {
      Object::Ptr s = items->getObject(static_cast<unsigned>(i));
      std::string name = Str(Obj(s, "metadata"), "name");
      if (name.size() > 8 && name.substr(name.size() - 8) == "-runtime") {
        token_of[name.substr(0, name.size() - 8) + "." + Str(Obj(s, "metadata"), "namespace")] =
            Unbase64(Str(Obj(s, "data"), "token"));
      }
    }
  }
  std::vector<SandboxInfo> out;
  if (Array::Ptr items = got.body->getArray("items")) {
    for (size_t i = 0; i < items->size(); ++i) {
      Object::Ptr o = items->getObject(static_cast<unsigned>(i));
      Ref ref{Str(Obj(o, "metadata"), "name"), Str(Obj(o, "metadata"), "namespace")};
      SandboxInfo info = InfoOf(ref, o);
      info.runtime.token = token_of[info.id];
      if (info.state == SandboxState::kRunning && !info.runtime.token.empty()) {
        if (Status routed = Route(info, ref, o); !routed.ok()) {
          info.state = SandboxState::kStarting;
          info.detail = routed.message();
        }
      }
      out.push_back(std::move(info));
    }
  }
  return out;
}

Status K8sSandboxProvider::Suspend(std::string_view id) noexcept {
  try {
    auto ref = ParseId(id);
    if (!ref) return Status::NotFound("no sandbox '" + std::string(id) + "'");
    PADDOCK_ASSIGN_OR_RETURN(KubeReply got, client_->Call("GET", ResourcePath(ref->ns, ref->name)));
    if (got.status == 404) return Status::NotFound("no sandbox '" + std::string(id) + "'");
    if (got.status != 200) return ApiError(got, "reading sandbox " + ref->name);
    Ref sandbox{config_.mode == "claim" ? Str(Obj(Obj(got.body, "status"), "sandbox"), "name") : ref->name,
                ref->ns};
    if (sandbox.name.empty())
      return Status::FailedPrecondition("sandbox '" + std::string(id) + "' has no pod yet");
    PADDOCK_ASSIGN_OR_RETURN(
        KubeReply patched,
        client_->Call("PATCH", SandboxesPath(sandbox.ns, sandbox.name),
                      "{\"spec\":{\"operatingMode\":\"Suspended\"}}", "application/merge-patch+json"));
    if (patched.status != 200) return ApiError(patched, "suspending sandbox " + sandbox.name);
    return WaitSuspended(sandbox, Str(Obj(patched.body, "metadata"), "resourceVersion"),
                         Clock::now() + std::chrono::milliseconds(config_.destroy_timeout_ms));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("sandbox.k8s suspend: ") + e.what());
  }
}

Result<SandboxInfo> K8sSandboxProvider::Resume(std::string_view id) noexcept {
  try {
    auto ref = ParseId(id);
    if (!ref) return Status::NotFound("no sandbox '" + std::string(id) + "'");
    return ResumeImpl(*ref);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("sandbox.k8s resume: ") + e.what());
  }
}

Result<SandboxInfo> K8sSandboxProvider::ResumeImpl(const Ref& ref) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(config_.ready_timeout_ms);
  PADDOCK_ASSIGN_OR_RETURN(KubeReply got, client_->Call("GET", ResourcePath(ref.ns, ref.name)));
  if (got.status == 404) return Status::NotFound("no sandbox '" + ref.name + "." + ref.ns + "'");
  if (got.status != 200) return ApiError(got, "reading sandbox " + ref.name);
  std::string sandbox =
      config_.mode == "claim" ? Str(Obj(Obj(got.body, "status"), "sandbox"), "name") : ref.name;
  PADDOCK_ASSIGN_OR_RETURN(KubeReply patched, client_->Call("PATCH", SandboxesPath(ref.ns, sandbox),
                                                            "{\"spec\":{\"operatingMode\":\"Running\"}}",
                                                            "application/merge-patch+json"));
  if (patched.status != 200) return ApiError(patched, "resuming sandbox " + sandbox);
  // Watched from before the patch: suspended, it was Ready=False, so the next Ready=True is the
  // new pod's (the claim mirrors its Sandbox).
  PADDOCK_ASSIGN_OR_RETURN(Object::Ptr ready,
                           WaitReady(ref, Str(Obj(got.body, "metadata"), "resourceVersion"), deadline));
  PADDOCK_ASSIGN_OR_RETURN(std::string token, SandboxToken(ref));
  std::string ip = PodIp(ready);
  if (ip.empty()) return Status::Unavailable("sandbox " + ref.name + " resumed without a pod IP");
  if (config_.mode == "claim") {
    // A new pod from the template: its runtime starts with the pool's token again.
    PADDOCK_ASSIGN_OR_RETURN(std::string pool_token, PoolToken(ref.ns));
    {
      std::lock_guard lock(mu_);
      pods_.erase(ref.name + "." + ref.ns);  // a new pod
    }
    RelayTarget pod;
    if (relay_) {
      PADDOCK_ASSIGN_OR_RETURN(pod, PodOf(ref, ready));
    }
    PADDOCK_RETURN_IF_ERROR(
        HandOverToken(Address(ip, config_.runtime_port), pod, pool_token, token, deadline));
  }
  SandboxInfo info = InfoOf(ref, ready);
  info.runtime.token = token;
  PADDOCK_RETURN_IF_ERROR(Route(info, ref, ready));
  return info;
}

Status K8sSandboxProvider::DeleteSessionData(std::string_view session_id) noexcept {
  try {
    if (config_.mode != "sandbox" || session_id.empty() || !ValidLabelValue(session_id)) return Status::Ok();
    const std::string session(session_id);
    const std::string& ns = default_namespace_;
    PADDOCK_ASSIGN_OR_RETURN(
        KubeReply got,
        client_->Call("GET", CorePath(ns, "persistentvolumeclaims") + "?labelSelector=" +
                                 QueryEscape(Selector() + "," + kSessionLabel + "=" + session)));
    if (got.status != 200) return ApiError(got, "listing the volumes of session " + session);
    Array::Ptr items = got.body->getArray("items");
    for (size_t i = 0; items && i < items->size(); ++i) {
      std::string name = Str(Obj(items->getObject(static_cast<unsigned>(i)), "metadata"), "name");
      PADDOCK_ASSIGN_OR_RETURN(KubeReply del,
                               client_->Call("DELETE", CorePath(ns, "persistentvolumeclaims", name)));
      if (del.status != 200 && del.status != 404) return ApiError(del, "deleting volume " + name);
    }
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("sandbox.k8s delete session data: ") + e.what());
  }
}

}  // namespace paddock::plugins::sandbox_k8s
