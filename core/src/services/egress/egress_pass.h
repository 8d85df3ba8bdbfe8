// EgressPass: how a sandbox that cannot be handed a socket of its own (a Kubernetes pod) tells a
// `paddock egress` process which sandbox it is. The worker gives the sandbox proxy credentials
// (HTTPS_PROXY=http://<user>:<password>@egress:3128, sent as Proxy-Authorization: Basic):
// user = the session id, password = "<profile>.<48 hex digits of HMAC-SHA256(pass key,
// session, sandbox id, profile)>". The egress process recomputes the HMAC with the session's
// current sandbox from the store, so the pass of a sandbox since replaced, or of a session
// since deleted, opens nothing. The key is shared by the workers and the egress processes of
// an install ([egress] pass_key_file) and never enters a sandbox.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "paddock/status.h"

namespace paddock {

struct EgressCredentials {
  std::string user;
  std::string password;
};

// What a pass claims; true only after Verify.
struct EgressClaim {
  std::string session_id;
  std::string profile;
  std::string mac;
};

class EgressPass {
 public:
  static Result<std::unique_ptr<EgressPass>> Load(const std::string& key_file);

  EgressCredentials Mint(const std::string& session_id, const std::string& sandbox_id,
                         const std::string& profile) const;

  // The claim in a Proxy-Authorization value ("Basic base64(user:password)"); nullopt when it is
  // not one.
  static std::optional<EgressClaim> Parse(const std::string& proxy_authorization);

  // True when `claim` was minted for `sandbox_id` (the session's sandbox now).
  bool Verify(const EgressClaim& claim, const std::string& sandbox_id) const;

 private:
  explicit EgressPass(std::string key) : key_(std::move(key)) {}
  std::string Mac(const std::string& session_id, const std::string& sandbox_id,
                  const std::string& profile) const;
  const std::string key_;
};

}  // namespace paddock
