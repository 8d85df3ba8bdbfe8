// ApiServerRelay: reaches sandboxes' runtimes through the Kubernetes API server (the pod
// `proxy` subresource), for a control plane that cannot route to the pod network (a laptop
// next to kind, a control plane outside the cluster).
//
// The core talks to one loopback listener as if it were the runtime. Each request's runtime
// token says which sandbox it is for; the relay passes it through as
// `X-Paddock-Runtime-Token` (the API server authenticates with, and then strips,
// `Authorization`) to
//   /api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/<path>
// with the provider's own API credentials, and streams the answer back as it arrives (an
// exec's output). A request whose token names no sandbox gets 401 without reaching the API
// server, so the listener is no open door to the cluster; a destroyed sandbox's token gets 503
// (gone), as its pod IP would refuse the connection.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "kube_client.h"
#include "paddock/status.h"

namespace Poco {
class ThreadPool;
}
namespace Poco::Net {
class HTTPServer;
}

namespace paddock::plugins::sandbox_k8s {

struct RelayTarget {
  std::string ns;
  std::string pod;
  int port = 0;
};

// The API server path of `path_and_query` on the pod's port.
std::string PodProxyPath(const RelayTarget& target, const std::string& path_and_query);

class ApiServerRelay {
 public:
  explicit ApiServerRelay(KubeClient& client);
  ~ApiServerRelay();
  ApiServerRelay(const ApiServerRelay&) = delete;
  ApiServerRelay& operator=(const ApiServerRelay&) = delete;

  // Listens on 127.0.0.1 (an ephemeral port).
  Status Start();
  // "tcp:127.0.0.1:PORT": what SandboxInfo.runtime.address says.
  std::string address() const;

  // Requests with `token` go to `target`.
  void Register(const std::string& token, RelayTarget target);
  void Forget(const std::string& token);

  struct Handler;

 private:
  bool Lookup(const std::string& token, RelayTarget* target) const;
  bool Retired(const std::string& token) const;  // a destroyed sandbox's
  static constexpr size_t kRetiredKept = 4096;

  KubeClient& client_;
  std::unique_ptr<Poco::ThreadPool> threads_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  int port_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, RelayTarget> targets_;  // runtime token → pod
  std::set<std::string> retired_;
  std::deque<std::string> retired_order_;
};

}  // namespace paddock::plugins::sandbox_k8s
