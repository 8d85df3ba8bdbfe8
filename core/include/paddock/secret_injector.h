// SecretInjector: resolves the secrets a sandbox receives, as environment variables or files.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "paddock/lifecycle.h"
#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock {

class SessionStore;

// The secrets a team manages through the API (/api/secrets), kept by an injector that offers
// them (SecretInjector::team_secrets). Values go in and never come out but through Resolve.
// Thread safety: every method may be called concurrently from any thread.
class TeamSecrets {
 public:
  virtual ~TeamSecrets() = default;
  // Sets (creates or replaces) the team's secret `name` and its vault binding (unbound: a
  // plain secret); returns its new version and dates. The binding must come back with the
  // value from Resolve unaltered, or not at all: the host trusts it to decide where the value
  // may go.
  [[nodiscard]] virtual Result<SecretInfo> Set(std::string_view team_id, std::string_view name,
                                               std::string_view value,
                                               const VaultBinding& vault) noexcept = 0;
  // The team's secrets, ordered by name: names, versions, dates and bindings, never values.
  [[nodiscard]] virtual Result<std::vector<SecretInfo>> List(std::string_view team_id) noexcept = 0;
  // kNotFound when the team has no secret `name`.
  [[nodiscard]] virtual Status Delete(std::string_view team_id, std::string_view name) noexcept = 0;
  // Re-encrypts every value of every team that is not under the current key yet; returns
  // how many it re-encrypted. Safe beside running servers and repeatable after a failure.
  [[nodiscard]] virtual Result<std::int64_t> Rotate() noexcept = 0;
};

// The host redacts every value it receives from Resolve out of events, logs and API
// responses, so a plugin must return each secret it injects, and only secrets.
// Several injectors may be configured ([[secrets]], in order): the host asks each and, when
// two give the same name, the later one wins. At most one offers team_secrets().
// Thread safety: Resolve may be called concurrently from any thread.
class SecretInjector : public Lifecycle {
 public:
  // The secrets for `scope`: (name, value) pairs with valid environment variable names.
  // A team secret is given only to the sandboxes of its team (scope.team_id) whose agent
  // names it (scope.wanted), in the form the agent asks for (Secret::file). An injector that
  // keeps no team secrets may ignore `wanted`. kUnavailable when the backing secret store
  // cannot be reached.
  [[nodiscard]] virtual Result<std::vector<Secret>> Resolve(const SecretScope& scope) noexcept = 0;

  // Non-null when this injector keeps team secrets the API manages.
  virtual TeamSecrets* team_secrets() noexcept { return nullptr; }

  // Called once, before Start, with the host's store (not started yet), for an injector that
  // keeps its sealed values there (SessionStore::PutSealedSecret and the rest). The store
  // outlives the injector's Stop.
  virtual void UseStore(SessionStore& store) noexcept { (void)store; }
};

using SecretInjectorPtr = std::unique_ptr<SecretInjector>;

}  // namespace paddock
