// SandboxManager: binds sandboxes to sessions. It provisions a sandbox when a session is
// created (in the background) — from the profile's warm pool when one is ready, else cold —,
// re-creates one when the bound sandbox is gone and restores the session's snapshot into it,
// releases it when the session closes or is suspended, and on start reattaches the sandboxes an
// earlier process left behind. The other jobs are rooms of their own that it wires: WarmPool
// (ready sandboxes), IdleWatch (when a session is idle), Reconciler (sandboxes nobody is bound
// to), SessionLocks, and EgressBook (which session an egress socket serves).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "paddock/sandbox_provider.h"
#include "paddock/secret_injector.h"
#include "paddock/session_store.h"
#include "runtime/runtime_client.h"
#include "services/egress/egress_book.h"
#include "services/sandboxes/idle_watch.h"
#include "services/sandboxes/reconciler.h"
#include "services/sandboxes/session_locks.h"
#include "services/sandboxes/warm_pool.h"

namespace paddock {

class VaultService;
class EgressPass;

class AuditLog;
class EgressProxy;
class EventService;
class Metrics;
class Redactor;
class RuntimeClient;
class SnapshotService;

struct SandboxSettings {
  std::vector<ProfileSettings> profiles;  // "default" first
  bool egress = true;                     // give sandboxes the egress proxy
  int egress_port = 3128;
  int provision_threads = 2;
  std::chrono::milliseconds warm_refill_interval{1000};
  // Sessions whose sandbox ran nothing this long are suspended (0: never); an agent's
  // idle_timeout_seconds overrides it.
  std::chrono::milliseconds idle_timeout{0};
  // Given to every sandbox's commands under the agent's own env (which wins): where models are.
  EnvMap model_env;
  // Host directory mounted read-only at kSandboxTools in every sandbox (ToolCache::root()).
  std::string tools_root;
  // [egress] remote: sandboxes reach the network through this `paddock egress` service, with a
  // pass (egress_pass.h), instead of a socket of this process's proxy.
  std::string egress_remote;
};

// A sandbox bound to a session, as Ensure leaves it.
struct EnsuredSandbox {
  SandboxInfo info;
  bool fresh = false;  // created or claimed by this call (the one bound before was gone, or none was)
  // The snapshot restored into it by this call (a fresh sandbox, or a rollback); nullopt when
  // none was (the session has none).
  std::optional<SnapshotInfo> restored;
};

// Thread safety: every method may be called concurrently; calls for one session are
// serialised.
class SandboxManager {
 public:
  // `snapshots` may be null (snapshots disabled): sandboxes then start with what the provider
  // kept of the session (its workspace on this host), nothing more.
  SandboxManager(SessionStore& store, SandboxProvider& provider, SecretInjector& secrets, Redactor& redactor,
                 EventService& events, Metrics& metrics, EgressProxy* egress, SnapshotService* snapshots,
                 SandboxSettings settings, AuditLog* audit = nullptr);
  ~SandboxManager();

  // Reattaches the provider's sandboxes that are still bound to an open session, destroys the
  // rest, and starts the warm-pool and provisioning threads.
  Status Start();

  // Returns a running sandbox bound to the session, claiming a warm one or creating one when
  // none is bound or the bound one is gone (event "sandbox.lost", then "sandbox.ready"); a new
  // one gets the session's newest snapshot restored. With `rollback` (the harness's native
  // paths), any sandbox is rolled back to the last durable point — the newest snapshot, or,
  // when there is none, an empty workspace and native state — so an interrupted run starts
  // again from there. Its runtime has the session's current env and secrets. Marks the session
  // active.
  Result<EnsuredSandbox> Ensure(const std::string& session_id,
                                const std::vector<std::string>* rollback = nullptr);

  // How a session's native state paths are found (the agent's harness); set once, before Start.
  void SetNativePaths(std::function<std::vector<std::string>(const Agent&)> native_paths) {
    native_paths_ = std::move(native_paths);
  }

  // True when the sandbox still runs and its runtime answers; otherwise records the loss
  // (event "sandbox.lost" with `context`), destroys what is left and unbinds it, so the next
  // Ensure creates another.
  bool CheckAlive(const std::string& session_id, const SandboxInfo& sandbox, const std::string& context);

  // The session did something just now (a run ended): its idle clock starts again.
  void Touch(const std::string& session_id);

  // Releases the sandbox of a session that is ready, bound to a sandbox of this process and has
  // no queued or running run: status suspended, event "sandbox.released" with `reason`. The
  // workspace's disk copy goes too when the newest snapshot holds it. Ok and nothing done when
  // the session is not in that state.
  Status Suspend(const std::string& session_id, const std::string& reason);

  // The provider's view of a sandbox.
  Result<SandboxInfo> Inspect(const std::string& sandbox_id) { return provider_.Inspect(sandbox_id); }

  // What the commands of `session` get: the environment (model endpoints, the agent's env,
  // the secrets it gets as variables) and the secrets it gets as files (kSandboxSecrets).
  // Every value is registered for redaction here. Secrets come from the session's team only.
  struct Delivery {
    EnvMap env;
    std::vector<Secret> files;
    std::vector<Secret> secrets;  // all of them, for the audit log
  };
  Result<Delivery> Environment(const Agent& agent, const Session& session);
  // With [egress] remote: the proxy variables with the sandbox's pass, and the vault's trust
  // files, into `env` and the sandbox.
  Status RemoteEgress(const SandboxInfo& info, const Session& session, RuntimeClient& runtime, EnvMap& env);

  // Runs a command in the session's sandbox outside any run (creating the sandbox if needed,
  // and restoring the session's snapshot into it). Unless a run is under way, what the command
  // changed is snapshotted afterwards: it is part of the session's state from then on.
  Result<ExecResult> Exec(const std::string& session_id, ExecRequest request, ExecObserver& observer);

  // Ensure() on a background thread; a failure marks a still-provisioning session failed.
  void ProvisionInBackground(const std::string& session_id);

  // Destroys the session's sandbox (if any) and unbinds it; with delete_data, also removes the
  // session's durable sandbox data. Idempotent.
  Status Release(const std::string& session_id, bool delete_data);

  // Destroys this provider's sandboxes that no open session is bound to (any more) — say, one a
  // session left behind when another worker re-created its sandbox — sparing ones younger than
  // `min_age`, which may be about to be bound, and the warm pool. Returns how many it destroyed.
  Result<int> Reconcile(std::chrono::milliseconds min_age);

  // A connection from a sandbox was refused by the egress proxy: event "egress.refused" on the
  // session the sandbox serves.
  void EgressRefused(const std::string& egress_dir, const std::string& host, int port);
  // The session an egress directory serves ("" for none: a warm sandbox, or one gone).
  std::string SessionOfEgress(const std::string& egress_dir) { return egress_book_.SessionOf(egress_dir); }
  // Set once, before Start: vault entries reach sandboxes as its placeholders. Without it
  // they are refused to sandboxes.
  void SetVault(VaultService* vault) { vault_ = vault; }
  // With [egress] remote: what sandboxes' passes are made with. Set before the first Ensure.
  void SetEgressPass(const EgressPass* pass) { pass_ = pass; }

  // Ready sandboxes in a profile's warm pool.
  int WarmCount(const std::string& profile);

  // Stops the background threads; queued provisioning is dropped. Warm sandboxes are destroyed.
  void Stop();

 private:
  void ProvisionLoop();
  // Destroys, unbinds and records a bound sandbox found dead. REQUIRES: the session lock.
  void RecordLost(const std::string& session_id, const std::string& sandbox_id, const SandboxInfo* info,
                  const std::string& detail);
  const ProfileSettings& Profile(const std::string& name) const;
  // The profile the session's agent names, if its team may use it and it is configured.
  Result<const ProfileSettings*> ProfileOf(const Session& session);
  // Audit entry "secret.injected" when the session's sandbox gets secrets other than last time.
  void AuditInjected(const Session& session, const SandboxInfo& info, const std::vector<Secret>& secrets);
  // A new sandbox: for a session, or warm (empty session_id).
  Result<SandboxInfo> CreateSandbox(const ProfileSettings& profile, const std::string& session_id,
                                    const std::string& agent_id);
  // Binds a warm sandbox of the profile to the session, or returns nullopt when none is ready.
  std::optional<SandboxInfo> ClaimWarm(const ProfileSettings& profile, const std::string& session_id);
  // Destroys a sandbox and closes its egress socket.
  Status DestroySandbox(const SandboxInfo& info);
  // After a claim or a create: the session's env and secrets go to the runtime.
  Status Bind(const SandboxInfo& info, const Session& session);

  SessionStore& store_;
  SandboxProvider& provider_;
  SecretInjector& secrets_;
  Redactor& redactor_;
  EventService& events_;
  Metrics& metrics_;
  EgressProxy* egress_;
  SnapshotService* snapshots_;
  SandboxSettings settings_;
  AuditLog* audit_;
  std::mutex injected_mu_;
  std::map<std::string, std::string> injected_;  // session → what its sandbox got last (a digest)
  std::function<std::vector<std::string>(const Agent&)> native_paths_;

  SessionLocks locks_;
  EgressBook egress_book_;
  VaultService* vault_ = nullptr;
  const EgressPass* pass_ = nullptr;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::string> queue_;  // sessions to provision
  bool stopping_ = false;
  std::vector<std::thread> threads_;

  WarmPool warm_;
  IdleWatch idle_;
  Reconciler reconciler_;
};

}  // namespace paddock
