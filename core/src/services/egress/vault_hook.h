// VaultHook: what the egress proxy asks of the credential vault. The proxy knows connections
// and requests; the vault knows which sandbox holds which placeholders and where each may go.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "paddock/status.h"

namespace paddock {

// A request's head as it goes upstream: what a substitution may change.
struct HttpHead {
  std::string method;
  std::string target;                                       // origin form: /path?query
  std::vector<std::pair<std::string, std::string>> fields;  // in order, names as sent
};

struct HostCertificate {
  std::string chain_pem;  // the leaf, then the CA
  std::string key_pem;
};

// Thread safety: every method may be called concurrently, from connection threads.
class VaultHook {
 public:
  virtual ~VaultHook() = default;
  // True when the proxy must read the requests of the sandbox served at `dir` to host:port
  // (a vault entry its agent names is bound there): TLS is terminated instead of tunnelled.
  virtual bool Intercepts(const std::string& dir, const std::string& host, int port) = 0;
  // The certificate the proxy presents for `host`, from the install's CA.
  virtual Result<HostCertificate> CertificateFor(const std::string& host) = 0;
  // The CA certificate (PEM) sandboxes must trust now. It changes when the CA is rotated
  // (`paddock rotate-ca`); the proxy asks about once a second and rewrites the sandboxes'
  // trust files when it did.
  virtual std::string TrustPem() = 0;
  // Puts the values in for every placeholder `head` carries, where their bindings say. ""
  // when the request may go (with or without placeholders); otherwise why it may not, for a
  // 403: the request is not sent, and the refusal is recorded. `tls`: the request goes on
  // over TLS; a value never goes out in plain HTTP.
  virtual std::string Substitute(const std::string& dir, const std::string& host, int port, bool tls,
                                 HttpHead& head) = 0;
};

}  // namespace paddock
