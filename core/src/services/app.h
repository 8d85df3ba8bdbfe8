// App: the configured plugins and the core services wired together, with their start and stop
// order. One per process.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/config.h"
#include "plugins/plugin_host.h"
#include "services/egress/egress_proxy.h"
#include "services/runs/worker.h"
#include "services/sandboxes/tool_cache.h"

namespace paddock {

class AgentService;
class EventService;
class LeaseSweeper;
class Metrics;
class Redactor;
class EgressPass;
class SandboxManager;
class SessionService;
class SnapshotService;
class Authenticator;
class FailedAuthLimiter;
class BrowserSessions;
class DashboardAssets;
class AuditLog;
class TeamService;
class SecretService;
class QuotaService;
class VaultService;

struct ReadinessCheck {
  std::string component;  // "store.sqlite"
  Health health;
};

class App {
 public:
  // Loads and creates every configured plugin (fails closed on the first refusal).
  static Result<std::unique_ptr<App>> Create(const Config& config, const std::string& plugin_dir,
                                             std::shared_ptr<Redactor> redactor);
  ~App();

  // Starts plugins in order (secrets, store, sandbox, harnesses), applies migrations (or checks
  // that none is pending), interrupts runs left running by an earlier process of a
  // single-process store, and starts the worker (when the config enables it) and the sweeper.
  Status Start();
  // Stops the worker (cancelling runs in progress), then the plugins in reverse order.
  void Stop();

  std::vector<ReadinessCheck> Readiness() const;

  const Config& config() const { return config_; }
  const std::vector<PluginObjects>& plugins() const { return plugins_; }
  SessionStore& store() { return *store_; }
  // Null in a process that runs no worker (it has no sandboxes).
  SandboxProvider* sandbox_provider() { return sandbox_.get(); }
  Metrics& metrics() { return *metrics_; }
  EventService& events() { return *events_; }
  AgentService& agents() { return *agents_; }
  SessionService& sessions() { return *sessions_; }
  TeamService& teams() { return *teams_; }
  QuotaService& quotas() { return *quotas_; }
  Authenticator& auth() { return *auth_; }
  FailedAuthLimiter& failed_auth() { return *failed_auth_; }
  BrowserSessions& browser_sessions() { return *browser_sessions_; }
  const DashboardAssets& dashboard() const { return *dashboard_; }
  AuditLog& audit() { return *audit_; }
  SecretService& secrets() { return *secret_service_; }
  // Null when the vault or the egress proxy is off.
  VaultService* vault() { return vault_.get(); }
  const Redactor& redactor() const { return *redactor_; }
  bool runs_worker() const { return workers_ != nullptr; }
  // The `paddock egress` role: the port it serves sandboxes on, once started.
  int egress_port() const { return egress_port_; }

 private:
  App() = default;
  // The vault (with [vault] enabled), on the egress proxy when this process has one.
  Status MakeVault(const Config& config);
  // `paddock egress`: the proxy for remote sandboxes, their passes, the vault.
  Status MakeEgressRole(const Config& config);
  // What a remote sandbox's Proxy-Authorization opens (EgressProxy::PassCheck).
  Result<EgressProxy::RemoteSandbox> CheckPass(const std::string& proxy_authorization);

  Config config_;
  std::shared_ptr<Redactor> redactor_;
  // Plugin instances, in start order; declared before the services so that they are
  // destroyed after them.
  std::vector<PluginObjects> plugins_;
  std::shared_ptr<SessionStore> store_;
  std::shared_ptr<SandboxProvider> sandbox_;
  std::shared_ptr<SecretInjector> secrets_;
  Harnesses harnesses_;
  size_t started_ = 0;
  int egress_port_ = 0;

  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<EventService> events_;
  std::unique_ptr<AuditLog> audit_;      // before the sandboxes, which record secret access in it
  std::unique_ptr<VaultService> vault_;  // before the proxy, which asks it
  std::unique_ptr<EgressProxy> egress_;
  std::unique_ptr<EgressPass> pass_;  // [egress] remote, or the egress role
  std::unique_ptr<SnapshotService> snapshots_;
  std::unique_ptr<ToolCache> tools_;
  std::thread preinstall_;
  std::unique_ptr<SandboxManager> sandboxes_;
  std::unique_ptr<RunExecutor> executor_;
  std::unique_ptr<WorkerPool> workers_;
  std::unique_ptr<LeaseSweeper> sweeper_;
  std::unique_ptr<AgentService> agents_;
  std::unique_ptr<QuotaService> quotas_;
  std::unique_ptr<SessionService> sessions_;
  std::unique_ptr<TeamService> teams_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<FailedAuthLimiter> failed_auth_;
  std::unique_ptr<BrowserSessions> browser_sessions_;
  std::unique_ptr<DashboardAssets> dashboard_;
  std::unique_ptr<SecretService> secret_service_;
};

}  // namespace paddock
