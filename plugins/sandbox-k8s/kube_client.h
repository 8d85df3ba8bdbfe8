// A small Kubernetes REST client: credentials from a kubeconfig or the in-cluster service
// account, JSON requests over HTTPS (Poco NetSSL), and watches read as a stream of JSON events.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <Poco/JSON/Object.h>

#include "paddock/status.h"

namespace Poco::Net {
class HTTPClientSession;
class HTTPResponse;
}  // namespace Poco::Net

namespace paddock::plugins::sandbox_k8s {

// Where the API server is and how to prove who we are. Secret fields are never logged.
struct KubeCredentials {
  std::string server;      // "https://host:port" (or http:// for a plain test server)
  std::string token;       // bearer token; may be empty with a client certificate
  std::string token_file;  // re-read now and then (projected service-account tokens rotate)
  std::string ca_pem;      // the cluster's CA bundle; empty: the system's roots
  std::string cert_pem;    // client certificate and key (PEM), both or neither
  std::string key_pem;
  bool insecure = false;   // insecure-skip-tls-verify
  std::string namespace_;  // the context's namespace (kubeconfig) or the pod's (in cluster)
  std::string source;      // where these came from, for messages: "kubeconfig PATH, context C"
};

// Reads a kubeconfig (YAML or JSON). `context` empty: the current-context. File references
// are relative to the kubeconfig's directory. Exec and auth-provider plugins are refused with
// a message saying what to use instead.
Result<KubeCredentials> LoadKubeconfig(const std::string& path, const std::string& context);
// The same from kubeconfig text (what `kind get kubeconfig` prints); `source` names it in
// messages. Its file references, if any, are relative to the working directory.
Result<KubeCredentials> ParseKubeconfig(const std::string& text, const std::string& source,
                                        const std::string& context);

// The pod's service account: KUBERNETES_SERVICE_HOST/PORT and `dir`/{token,ca.crt,namespace}.
Result<KubeCredentials> InClusterCredentials(
    const std::string& dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// One answer of the API server. `body` is the parsed JSON (an object, or null when the answer
// was not JSON).
struct KubeReply {
  int status = 0;
  Poco::JSON::Object::Ptr body;
  // The API's own explanation of a failure (a Status object's message), or the raw body.
  std::string Message() const;
  std::string Reason() const;  // a Status object's reason ("NotFound", "AlreadyExists", ...)
};

// A request passed through to a subresource that answers with a stream (a pod's proxy): the
// body comes from `body` (`content_length` bytes; -1: chunked until its end), the answer is
// handed to `on_response` to read as it arrives.
struct ForwardRequest {
  std::string method;
  std::string path_and_query;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Authorization and Host
  std::istream* body = nullptr;
  std::int64_t content_length = 0;
};
using ForwardHandler = std::function<void(const Poco::Net::HTTPResponse& response, std::istream& body)>;

// A watch event: type ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (object: a Status).
using WatchHandler = std::function<bool(const std::string& type, const Poco::JSON::Object::Ptr& object)>;

// Thread safety: every method may be called from any thread.
class KubeClient {
 public:
  explicit KubeClient(KubeCredentials credentials);
  ~KubeClient();

  const KubeCredentials& credentials() const { return credentials_; }

  // One request. Transport failures are kUnavailable; any HTTP answer is a KubeReply.
  Result<KubeReply> Call(const std::string& method, const std::string& path_and_query,
                         const std::string& body = "", const std::string& content_type = "application/json");

  // One request through to a subresource. Transport failures before an answer are
  // kUnavailable; any answer goes to `on_response`. The connection is reused only when
  // `on_response` read the answer to its end.
  Status Forward(const ForwardRequest& request, const ForwardHandler& on_response);

  // A watch request (`path_and_query` must include watch=1). Calls `on_event` for each event
  // until it returns false, the server ends the stream, or `deadline` passes. Returns the
  // HTTP status of the answer (200 for a stream) or kUnavailable / kDeadlineExceeded.
  Result<int> Watch(const std::string& path_and_query, std::chrono::steady_clock::time_point deadline,
                    const WatchHandler& on_event);

 private:
  std::unique_ptr<Poco::Net::HTTPClientSession> NewSession(std::chrono::milliseconds timeout);
  std::unique_ptr<Poco::Net::HTTPClientSession> TakeSession();
  void ReturnSession(std::unique_ptr<Poco::Net::HTTPClientSession> session);
  std::string Token();

  KubeCredentials credentials_;
  std::string host_;
  unsigned short port_ = 443;
  bool tls_ = true;
  struct Tls;
  std::unique_ptr<Tls> tls_context_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Poco::Net::HTTPClientSession>> idle_;
  std::string token_;
  std::chrono::steady_clock::time_point token_read_{};
};

// "a-b" → "a-b"; anything else percent-encoded for a query value.
std::string QueryEscape(const std::string& s);

}  // namespace paddock::plugins::sandbox_k8s
