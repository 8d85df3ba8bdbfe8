// TlsInterceptor: the egress proxy's path for hosts a vault entry is bound to. After the proxy
// has answered a CONNECT, it speaks TLS to the sandbox with a certificate from the install's
// CA, TLS to the real host (verified against the system's trust store and an optional extra
// CA file), and passes HTTP/1.1 through request by request: each request head goes through
// VaultHook::Substitute, bodies and responses are relayed as they come (chunked uploads,
// keep-alive, server-sent events, upgrades), never buffered whole.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "services/egress/vault_hook.h"

namespace paddock {

class TlsInterceptor {
 public:
  // `upstream_ca_file`: PEM certificates trusted for upstreams besides the system's ("":
  // none). kFailedPrecondition when it cannot be read.
  static Result<std::unique_ptr<TlsInterceptor>> Create(const std::string& upstream_ca_file,
                                                        std::chrono::milliseconds connect_timeout);
  ~TlsInterceptor();

  // Serves one connection whose CONNECT to host:port was answered; closes `client_fd`.
  // Returns when both directions are done. Runs on the calling thread.
  void Serve(int client_fd, const std::string& host, int port, const std::string& dir, VaultHook& hook);

 private:
  struct Impl;
  explicit TlsInterceptor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace paddock
