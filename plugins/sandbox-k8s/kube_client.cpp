#include "kube_client.h"

#include "wire.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <Poco/Crypto/EVPPKey.h>
#include <Poco/Crypto/X509Certificate.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

namespace paddock::plugins::sandbox_k8s {
namespace {

namespace fs = std::filesystem;
using Poco::JSON::Object;

Result<std::string> ReadFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FailedPrecondition("cannot read " + what + " '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// A named entry ("clusters", "users", "contexts") of a kubeconfig.
YAML::Node Named(const YAML::Node& root, const char* list, const std::string& name, const char* field) {
  for (const auto& item : root[list]) {
    if (item["name"] && item["name"].as<std::string>() == name) return item[field];
  }
  return YAML::Node();
}

// `data` (base64) or `file` (relative to `dir`) of a kubeconfig entry.
Result<std::string> DataOrFile(const YAML::Node& node, const std::string& data_key,
                               const std::string& file_key, const fs::path& dir) {
  if (node[data_key]) return wire::Unbase64(node[data_key].as<std::string>()).value_or("");
  if (node[file_key]) {
    fs::path p = node[file_key].as<std::string>();
    if (p.is_relative()) p = dir / p;
    return ReadFile(p.string(), file_key);
  }
  return std::string();
}

// Each certificate of a PEM bundle.
std::vector<std::string> PemCertificates(const std::string& bundle) {
  std::vector<std::string> out;
  const std::string end = "-----END CERTIFICATE-----";
  size_t pos = 0;
  for (;;) {
    size_t begin = bundle.find("-----BEGIN CERTIFICATE-----", pos);
    if (begin == std::string::npos) break;
    size_t stop = bundle.find(end, begin);
    if (stop == std::string::npos) break;
    out.push_back(bundle.substr(begin, stop + end.size() - begin) + "\n");
    pos = stop + end.size();
  }
  return out;
}

// `path` names the kubeconfig in messages; file references are relative to `dir`.
Result<KubeCredentials> FromKubeconfig(const YAML::Node& root, const std::string& path, const fs::path& dir,
                                       const std::string& context) {
  try {
    std::string ctx_name = context;
    if (ctx_name.empty() && root["current-context"]) ctx_name = root["current-context"].as<std::string>();
    if (ctx_name.empty()) {
      return Status::InvalidArgument("kubeconfig '" + path +
                                     "' has no current-context; name one with [sandbox.config] context");
    }
    YAML::Node ctx = Named(root, "contexts", ctx_name, "context");
    if (!ctx) return Status::InvalidArgument("kubeconfig '" + path + "' has no context '" + ctx_name + "'");
    std::string cluster_name = ctx["cluster"] ? ctx["cluster"].as<std::string>() : "";
    std::string user_name = ctx["user"] ? ctx["user"].as<std::string>() : "";
    YAML::Node cluster = Named(root, "clusters", cluster_name, "cluster");
    if (!cluster || !cluster["server"]) {
      return Status::InvalidArgument("kubeconfig '" + path + "': context '" + ctx_name + "' names cluster '" +
                                     cluster_name + "', which has no server");
    }
    YAML::Node user = Named(root, "users", user_name, "user");
    KubeCredentials c;
    c.source = "kubeconfig " + path + ", context " + ctx_name;
    c.server = cluster["server"].as<std::string>();
    while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
    c.insecure = cluster["insecure-skip-tls-verify"] && cluster["insecure-skip-tls-verify"].as<bool>();
    PADDOCK_ASSIGN_OR_RETURN(c.ca_pem,
                             DataOrFile(cluster, "certificate-authority-data", "certificate-authority", dir));
    if (ctx["namespace"]) c.namespace_ = ctx["namespace"].as<std::string>();
    if (user) {
      if (user["exec"] || user["auth-provider"]) {
        return Status::InvalidArgument(
            "kubeconfig '" + path + "': user '" + user_name +
            "' authenticates through an exec or auth-provider plugin, which Paddock "
            "does not run; give it a token, a token file or a client certificate");
      }
      if (user["token"]) c.token = user["token"].as<std::string>();
      if (user["tokenFile"]) {
        fs::path p = user["tokenFile"].as<std::string>();
        c.token_file = (p.is_relative() ? dir / p : p).string();
      }
      PADDOCK_ASSIGN_OR_RETURN(c.cert_pem,
                               DataOrFile(user, "client-certificate-data", "client-certificate", dir));
      PADDOCK_ASSIGN_OR_RETURN(c.key_pem, DataOrFile(user, "client-key-data", "client-key", dir));
      if (c.cert_pem.empty() != c.key_pem.empty()) {
        return Status::InvalidArgument("kubeconfig '" + path + "': user '" + user_name +
                                       "' has a client certificate without its key (or a key without its "
                                       "certificate)");
      }
    }
    return c;
  } catch (const std::exception& e) {
    return Status::InvalidArgument("kubeconfig '" + path + "' is malformed: " + e.what());
  }
}

}  // namespace

Result<KubeCredentials> LoadKubeconfig(const std::string& path, const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return Status::FailedPrecondition("cannot read kubeconfig '" + path + "'");
  } catch (const std::exception& e) {
    return Status::InvalidArgument("kubeconfig '" + path + "' is not valid YAML: " + e.what());
  }
  return FromKubeconfig(root, path, fs::path(path).parent_path(), context);
}

Result<KubeCredentials> ParseKubeconfig(const std::string& text, const std::string& source,
                                        const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("kubeconfig from " + source + " is not valid YAML: " + e.what());
  }
  if (!root.IsMap()) return Status::InvalidArgument("kubeconfig from " + source + " is not a YAML mapping");
  return FromKubeconfig(root, source, fs::current_path(), context);
}

Result<KubeCredentials> InClusterCredentials(const std::string& dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port) {
    return Status::FailedPrecondition(
        "not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT unset); set [sandbox.config] "
        "kubeconfig");
  }
  KubeCredentials c;
  c.source = "in-cluster service account";
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6
  c.server = "https://" + h + ":" + port;
  c.token_file = dir + "/token";
  PADDOCK_ASSIGN_OR_RETURN(c.ca_pem, ReadFile(dir + "/ca.crt", "service-account CA"));
  if (auto ns = ReadFile(dir + "/namespace", "service-account namespace"); ns.ok()) c.namespace_ = Trim(*ns);
  return c;
}

std::string KubeReply::Message() const {
  if (body && body->has("message")) return body->getValue<std::string>("message");
  return "HTTP " + std::to_string(status);
}

std::string KubeReply::Reason() const {
  if (body && body->has("reason")) return body->getValue<std::string>("reason");
  return "";
}

struct KubeClient::Tls {
  Poco::Net::Context::Ptr context;
};

KubeClient::KubeClient(KubeCredentials credentials) : credentials_(std::move(credentials)) {
  Poco::URI uri(credentials_.server);
  tls_ = uri.getScheme() != "http";
  host_ = uri.getHost();
  port_ = uri.getPort();
  token_ = credentials_.token;
  if (tls_) {
    static std::once_flag once;
    std::call_once(once, [] { Poco::Net::initializeSSL(); });
    Poco::Net::Context::Params params;
    params.verificationMode =
        credentials_.insecure ? Poco::Net::Context::VERIFY_NONE : Poco::Net::Context::VERIFY_RELAXED;
    params.loadDefaultCAs = credentials_.ca_pem.empty();
    params.cipherList = "HIGH:!aNULL:!MD5";
    tls_context_ = std::make_unique<Tls>();
    tls_context_->context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
    for (const std::string& pem : PemCertificates(credentials_.ca_pem)) {
      std::istringstream in(pem);
      tls_context_->context->addCertificateAuthority(Poco::Crypto::X509Certificate(in));
    }
    if (!credentials_.cert_pem.empty()) {
      std::istringstream cert(credentials_.cert_pem);
      tls_context_->context->useCertificate(Poco::Crypto::X509Certificate(cert));
      std::istringstream key(credentials_.key_pem);
      tls_context_->context->usePrivateKey(Poco::Crypto::EVPPKey(nullptr, &key));
    }
  }
}

KubeClient::~KubeClient() = default;

std::unique_ptr<Poco::Net::HTTPClientSession> KubeClient::NewSession(std::chrono::milliseconds timeout) {
  std::unique_ptr<Poco::Net::HTTPClientSession> s;
  if (tls_) {
    s = std::make_unique<Poco::Net::HTTPSClientSession>(host_, port_, tls_context_->context);
  } else {
    s = std::make_unique<Poco::Net::HTTPClientSession>(host_, port_);
  }
  s->setTimeout(Poco::Timespan(timeout.count() * 1000));
  s->setKeepAlive(true);
  return s;
}

std::unique_ptr<Poco::Net::HTTPClientSession> KubeClient::TakeSession() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto s = std::move(idle_.back());
      idle_.pop_back();
      return s;
    }
  }
  return NewSession(std::chrono::seconds(30));
}

void KubeClient::ReturnSession(std::unique_ptr<Poco::Net::HTTPClientSession> session) {
  std::lock_guard lock(mu_);
  if (idle_.size() < 8) idle_.push_back(std::move(session));
}

std::string KubeClient::Token() {
  std::lock_guard lock(mu_);
  if (!credentials_.token_file.empty() &&
      std::chrono::steady_clock::now() - token_read_ > std::chrono::minutes(1)) {
    std::ifstream in(credentials_.token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    if (in) token_ = Trim(ss.str());
    token_read_ = std::chrono::steady_clock::now();
  }
  return token_;
}

Result<KubeReply> KubeClient::Call(const std::string& method, const std::string& path_and_query,
                                   const std::string& body, const std::string& content_type) {
  std::string token = Token();
  // A pooled connection the server closed in the meantime fails on first use: one retry on a
  // fresh connection (safe: the request never reached the server).
  for (int attempt = 0;; ++attempt) {
    auto session = attempt == 0 ? TakeSession() : NewSession(std::chrono::seconds(30));
    try {
      Poco::Net::HTTPRequest req(method, path_and_query, Poco::Net::HTTPMessage::HTTP_1_1);
      req.set("Accept", "application/json");
      req.set("User-Agent", "paddock-sandbox-k8s");
      if (!token.empty()) req.set("Authorization", "Bearer " + token);
      if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
        req.setContentType(content_type);
        req.setContentLength(static_cast<std::streamsize>(body.size()));
      }
      std::ostream& out = session->sendRequest(req);
      out << body;
      Poco::Net::HTTPResponse resp;
      std::istream& in = session->receiveResponse(resp);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      KubeReply reply;
      reply.status = static_cast<int>(resp.getStatus());
      try {
        Poco::JSON::Parser parser;
        reply.body = parser.parse(text).extract<Object::Ptr>();
      } catch (const std::exception&) {
        reply.body = new Object;
        reply.body->set("message", text.substr(0, 300));
      }
      if (resp.getKeepAlive()) ReturnSession(std::move(session));
      return reply;
    } catch (const Poco::Net::NoMessageException&) {
      if (attempt == 0) continue;
      return Status::Unavailable("the Kubernetes API server (" + credentials_.server +
                                 ") closed the connection");
    } catch (const Poco::Net::SSLException& e) {
      return Status::Unavailable("TLS with the Kubernetes API server (" + credentials_.server +
                                 ") failed: " + e.displayText());
    } catch (const Poco::Exception& e) {
      if (attempt == 0 && dynamic_cast<const Poco::Net::ConnectionResetException*>(&e)) continue;
      return Status::Unavailable("the Kubernetes API server (" + credentials_.server +
                                 ") cannot be reached: " + e.displayText());
    } catch (const std::exception& e) {
      return Status::Unavailable("the Kubernetes API server (" + credentials_.server +
                                 ") cannot be reached: " + e.what());
    }
  }
}

Status KubeClient::Forward(const ForwardRequest& request, const ForwardHandler& on_response) {
  std::string token = Token();
  auto session = TakeSession();
  bool answered = false;
  try {
    Poco::Net::HTTPRequest req(request.method, request.path_and_query, Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [name, value] : request.headers) req.set(name, value);
    req.set("User-Agent", "paddock-sandbox-k8s");
    if (!token.empty()) req.set("Authorization", "Bearer " + token);
    if (request.content_length < 0) {
      req.setChunkedTransferEncoding(true);
    } else if (request.content_length > 0 || request.method == "POST" || request.method == "PUT") {
      req.setContentLength64(request.content_length);
    }
    std::ostream& out = session->sendRequest(req);
    if (request.body && request.content_length != 0) Poco::StreamCopier::copyStream64(*request.body, out);
    Poco::Net::HTTPResponse resp;
    std::istream& in = session->receiveResponse(resp);
    answered = true;
    on_response(resp, in);
    if (resp.getKeepAlive() && in.eof()) ReturnSession(std::move(session));
    return Status::Ok();
  } catch (const Poco::Net::SSLException& e) {
    if (answered) throw;
    return Status::Unavailable("TLS with the Kubernetes API server (" + credentials_.server +
                               ") failed: " + e.displayText());
  } catch (const Poco::Exception& e) {
    if (answered) throw;
    return Status::Unavailable("the Kubernetes API server (" + credentials_.server +
                               ") cannot be reached: " + e.displayText());
  }
}

Result<int> KubeClient::Watch(const std::string& path_and_query,
                              std::chrono::steady_clock::time_point deadline, const WatchHandler& on_event) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return Status::DeadlineExceeded("deadline passed before the watch started");
  // The socket timeout bounds each read; bookmarks and the server's timeoutSeconds keep reads
  // coming well within it.
  auto session = NewSession(std::max(left, std::chrono::milliseconds(100)));
  try {
    Poco::Net::HTTPRequest req("GET", path_and_query, Poco::Net::HTTPMessage::HTTP_1_1);
    req.set("Accept", "application/json");
    req.set("User-Agent", "paddock-sandbox-k8s");
    if (std::string token = Token(); !token.empty()) req.set("Authorization", "Bearer " + token);
    session->sendRequest(req);
    Poco::Net::HTTPResponse resp;
    std::istream& in = session->receiveResponse(resp);
    int status = static_cast<int>(resp.getStatus());
    if (status != 200) {
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      Object::Ptr o;
      try {
        Poco::JSON::Parser parser;
        o = parser.parse(text).extract<Object::Ptr>();
      } catch (const std::exception&) {
        o = new Object;
        o->set("message", text.substr(0, 300));
      }
      on_event("ERROR", o);
      return status;
    }
    // One JSON object per line (the API server's watch framing for application/json).
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line == "\r") continue;
      Object::Ptr event;
      try {
        Poco::JSON::Parser parser;
        event = parser.parse(line).extract<Object::Ptr>();
      } catch (const std::exception&) {
        return Status::Unavailable("the Kubernetes API server sent a watch event that is not JSON");
      }
      std::string type = event->optValue<std::string>("type", "");
      Object::Ptr object = event->getObject("object");
      if (!object) object = new Object;
      if (!on_event(type, object)) return status;
      if (std::chrono::steady_clock::now() >= deadline)
        return Status::DeadlineExceeded("watch deadline passed");
    }
    return status;
  } catch (const Poco::TimeoutException&) {
    return Status::DeadlineExceeded("no watch event before the deadline");
  } catch (const Poco::Exception& e) {
    if (std::chrono::steady_clock::now() >= deadline)
      return Status::DeadlineExceeded("watch deadline passed");
    return Status::Unavailable("watching the Kubernetes API server (" + credentials_.server +
                               ") failed: " + e.displayText());
  } catch (const std::exception& e) {
    return Status::Unavailable("watching the Kubernetes API server failed: " + std::string(e.what()));
  }
}

std::string QueryEscape(const std::string& s) {
  std::string out;
  Poco::URI::encode(s, "!#$&'()*+,/:;=?@[]% ", out);
  return out;
}

}  // namespace paddock::plugins::sandbox_k8s
