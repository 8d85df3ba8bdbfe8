// CertificateAuthority: the install's own CA, from which the egress proxy will present a
// certificate for each host whose requests it must read to put a vault value in (issue
// "credential vault"). The CA key is made the first time it is asked for, in a directory
// outside every sandbox (0700, key 0600), and never leaves this process; sandboxes get only
// the certificate.
//
// Certificates are what strict clients accept, OpenSSL, GnuTLS and Node alike: the leaf's
// issuer is the CA's subject byte for byte (GnuTLS matches names by their encoding), it names
// its CA's key (authority key id = the CA's subject key id), carries the host as a
// subjectAltName (DNS or IP; no CN-only names), serverAuth only, and is valid from an hour ago
// (clock skew) for `leaf_days`.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "paddock/status.h"

namespace paddock {

struct IssuedCertificate {
  std::string certificate_pem;   // the leaf, then the CA: the chain a server sends
  std::string key_pem;           // the leaf's private key
  std::int64_t not_after_s = 0;  // seconds since the epoch
};

class CertificateAuthority {
 public:
  ~CertificateAuthority();
  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;

  // The CA in `dir` (ca.key, ca.crt), made there when absent. `name` goes in its subject.
  // kFailedPrecondition naming the file when one is unreadable, of another CA's key, or the
  // key file is readable by others.
  static Result<std::unique_ptr<CertificateAuthority>> LoadOrCreate(const std::string& dir,
                                                                    const std::string& name);

  // A new CA key and certificate in place of the old (ca.key, ca.crt rewritten atomically);
  // certificates issued before are forgotten.
  Status Rotate();
  // Loads the CA again when another process rotated it (ca.key is another file than the one
  // loaded); true when it did. Certificates issued before are then forgotten.
  Result<bool> ReloadIfChanged();

  // The CA certificate, PEM: what a sandbox trusts.
  std::string certificate_pem() const;
  std::string certificate_file() const;  // <dir>/ca.crt
  // SHA-256 of the certificate's DER, hex.
  std::string fingerprint() const;

  // A certificate for `host` (a DNS name or an IP address), made once and kept until it is
  // within a day of its end. kInvalidArgument for an empty or malformed host.
  Result<IssuedCertificate> Issue(const std::string& host);

  static constexpr int kCaDays = 3650;
  static constexpr int kLeafDays = 30;

 private:
  struct Keys;
  CertificateAuthority(std::string dir, std::string name);
  Status MakeNew();
  Status Load();

  const std::string dir_;
  const std::string name_;
  mutable std::mutex mu_;
  std::unique_ptr<Keys> keys_;
  std::map<std::string, IssuedCertificate> issued_;
  std::string loaded_;  // what identifies the ca.key loaded: inode, size, change time
};

}  // namespace paddock
