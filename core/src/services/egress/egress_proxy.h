// EgressProxy: the only way out of a sandbox. Each sandbox gets a unix socket (in a directory
// of its own that the provider mounts inside); paddock-runtime serves it inside the sandbox as
// 127.0.0.1:<port>. The proxy speaks HTTP CONNECT (TLS) and forwards plain HTTP requests, to
// the hosts on the sandbox's allow list only; every refusal is reported.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "paddock/status.h"
#include "paddock/types.h"
#include "services/egress/vault_hook.h"

namespace paddock {

class TlsInterceptor;

// This host's trust store (Debian's or Red Hat's bundle) with `ca_pem` after it: what a sandbox
// trusts with the credential vault on.
std::string TrustBundleWith(const std::string& ca_pem);

class EgressProxy {
 public:
  // Called for every refused connection, from a connection thread.
  using RefusedFn = std::function<void(const std::string& dir, const std::string& host, int port)>;

  EgressProxy(EgressSettings settings, std::string root);

  // Set once, before the first Open.
  void SetOnRefused(RefusedFn on_refused) { on_refused_ = std::move(on_refused); }
  // Turns the vault on, before the first Open: connections to hosts `hook` intercepts are
  // terminated with certificates of the CA `ca_pem`, verified upstream against the system's
  // trust and `upstream_ca_file`.
  Status EnableVault(VaultHook& hook, const std::string& ca_pem, const std::string& upstream_ca_file);
  ~EgressProxy();

  // Creates <root>/<key>/egress.sock and serves it with `allow` (plus [egress] allow and the
  // model gateway). Returns the directory.
  Result<std::string> Open(const std::string& key, const std::vector<std::string>& allow);

  // Serves a directory created by an earlier process again (a reattached sandbox): the socket
  // is re-created in place, which the sandbox sees through its directory mount.
  Status Reopen(const std::string& dir, const std::vector<std::string>& allow);

  // Replaces a directory's allow list (after a warm sandbox is claimed).
  void SetAllow(const std::string& dir, const std::vector<std::string>& allow);

  // What a remote sandbox's pass opens: the identity its requests go under (for the vault and
  // the refused-hook, as a directory would) and its profile's allow list.
  struct RemoteSandbox {
    std::string identity;
    std::vector<std::string> allow;
  };
  // Checks a request's Proxy-Authorization; an error (its message for the 407) when it opens
  // nothing.
  using PassCheck = std::function<Result<RemoteSandbox>(const std::string& proxy_authorization)>;
  // The `paddock egress` role: serves sandboxes of other hosts (Kubernetes pods) on TCP
  // `listen`:`port`, every connection's first request naming its sandbox by its pass
  // (egress_pass.h). Call once. Returns the port bound (`port` 0: an ephemeral one).
  Result<int> ListenRemote(const std::string& listen, int port, PassCheck check);

  // Stops serving the directory and removes it. Idempotent.
  void Close(const std::string& dir);

  // Directories under root that are not served (left by an earlier process).
  std::vector<std::string> Unserved() const;

  // True when `host`:`port` matches an allow-list entry ("example.com": ports 80 and 443;
  // "*.example.com": its subdomains, ports 80 and 443; "host:port"; "host:*").
  static bool Allowed(const std::vector<std::string>& allow, const std::string& host, int port);

  void Stop();

 private:
  struct Listener {
    int fd = -1;
    std::vector<std::string> allow;  // complete list
  };
  void AcceptLoop();
  // Rewrites every served directory's trust files when the vault's CA changed.
  void FollowCa();
  // `remote`: a connection of the remote listener, whose allow list and identity its pass gives.
  void Serve(int client, std::vector<std::string> allow, std::string dir, bool remote = false);
  std::vector<std::string> FullAllow(const std::vector<std::string>& allow) const;
  Status Listen(const std::string& dir, const std::vector<std::string>& allow);
  Status WriteTrust(const std::string& dir) const;

  EgressSettings settings_;
  std::string root_;
  RefusedFn on_refused_;
  VaultHook* vault_ = nullptr;
  std::string ca_pem_;  // guarded by mu_
  std::unique_ptr<TlsInterceptor> interceptor_;
  mutable std::mutex mu_;
  std::map<std::string, Listener> listeners_;  // by directory
  int remote_fd_ = -1;                         // ListenRemote's, guarded by mu_
  PassCheck pass_check_;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
};

}  // namespace paddock
