// VaultService: the credential vault. A team secret with a vault binding reaches a sandbox as
// a placeholder, "pdk_ph_" + 48 hex digits of HMAC-SHA256(placeholder key, session, name):
// unique to the session and the secret, the same after a restart or a resume (so an agent
// CLI that saved it in its own state still holds a good one), and meaningless without the
// key, which like the CA key stays outside every sandbox. The egress proxy asks this service
// (VaultHook) which connections to read and what to put in; the value is looked up for every
// request, so deleting or re-binding an entry takes effect on the next one.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "paddock/secret_injector.h"
#include "paddock/session_store.h"
#include "services/egress/vault_hook.h"
#include "services/vault/certificate_authority.h"

namespace paddock {

class EventService;
class Metrics;

class VaultService final : public VaultHook {
 public:
  // The session an egress directory serves ("" for none).
  using SessionOf = std::function<std::string(const std::string& egress_dir)>;

  // Loads (or makes) the CA and the placeholder key in `dir`.
  static Result<std::unique_ptr<VaultService>> Create(const std::string& dir, SessionStore& store,
                                                      SecretInjector& secrets, EventService& events,
                                                      Metrics& metrics);
  void SetSessionOf(SessionOf session_of) { session_of_ = std::move(session_of); }
  // Bindings for secrets of these names that have none of their own (ModelKeyBindings).
  void SetDefaultBindings(std::map<std::string, VaultBinding> bindings) { defaults_ = std::move(bindings); }
  // [vault] inspect = "all": every TLS connection of every sandbox is read (and a placeholder
  // to any host its entry is not bound to refused), not only those to bound hosts.
  void SetInspectAll(bool all) { inspect_all_ = all; }

  // The placeholder of secret `name` in session `session_id`.
  std::string Placeholder(const std::string& session_id, const std::string& name) const;

  // Puts each vault entry's placeholder in place of its value in `secrets` (what a sandbox
  // of `session` is given). kFailedPrecondition for an entry the agent may not use.
  Status Conceal(const Session& session, std::vector<Secret>& secrets) const;

  CertificateAuthority& ca() { return *ca_; }

  // VaultHook
  bool Intercepts(const std::string& dir, const std::string& host, int port) override;
  Result<HostCertificate> CertificateFor(const std::string& host) override;
  std::string TrustPem() override;
  std::string Substitute(const std::string& dir, const std::string& host, int port, bool tls,
                         HttpHead& head) override;

 private:
  VaultService(std::unique_ptr<CertificateAuthority> ca, std::string key, SessionStore& store,
               SecretInjector& secrets, EventService& events, Metrics& metrics);
  // Loads the CA again when another process rotated it; checks the file at most once a second.
  void FollowRotation();
  // The binding `s` goes out under: its own, else a default one; unbound when neither.
  VaultBinding BindingOf(const Secret& s) const;
  std::string Refuse(const std::string& session_id, const std::string& secret, const std::string& host,
                     int port, const std::string& reason);

  std::unique_ptr<CertificateAuthority> ca_;
  const std::string key_;  // 32 bytes
  SessionStore& store_;
  SecretInjector& secrets_;
  EventService& events_;
  Metrics& metrics_;
  SessionOf session_of_;
  std::map<std::string, VaultBinding> defaults_;
  bool inspect_all_ = false;
  std::atomic<std::int64_t> checked_ms_{0};  // when FollowRotation last looked (steady clock)
};

// Every placeholder in `text` (kVaultPlaceholderPrefix and 48 lowercase hex digits).
std::vector<std::string> FindPlaceholders(std::string_view text);

}  // namespace paddock
