#include "services/app.h"

#include <filesystem>

#include "metrics/metrics.h"
#include "paddock/json.h"
#include "services/dashboard/assets.h"
#include "services/egress/egress_pass.h"
#include "services/egress/egress_proxy.h"
#include "services/events/catalogue.h"
#include "services/events/event_service.h"
#include "services/runs/lease_sweeper.h"
#include "services/sandboxes/sandbox_manager.h"
#include "services/sandboxes/tool_cache.h"
#include "services/secrets/secret_chain.h"
#include "services/secrets/secret_service.h"
#include "services/sessions/agent_service.h"
#include "services/sessions/session_service.h"
#include "services/snapshots/snapshot_service.h"
#include "services/teams/audit_log.h"
#include "services/teams/authenticator.h"
#include "services/teams/browser_sessions.h"
#include "services/teams/failed_auth.h"
#include "services/teams/team_service.h"
#include "services/vault/model_keys.h"
#include "services/vault/vault_service.h"
#include "util/log.h"
#include "util/redactor.h"

namespace paddock {

namespace {

std::string PassKeyFile(const Config& config) {
  return config.egress.pass_key_file.empty() ? config.server.data_dir + "/egress-pass.key"
                                             : config.egress.pass_key_file;
}

// The identity a remote sandbox's requests go under (EgressProxy::RemoteSandbox), and back.
constexpr char kRemoteIdentity[] = "session:";
std::string SessionOfRemote(const std::string& identity) {
  return identity.rfind(kRemoteIdentity, 0) == 0 ? identity.substr(sizeof kRemoteIdentity - 1) : "";
}

}  // namespace

Result<std::unique_ptr<App>> App::Create(const Config& config, const std::string& plugin_dir,
                                         std::shared_ptr<Redactor> redactor) {
  std::unique_ptr<App> app(new App());
  app->config_ = config;
  app->redactor_ = std::move(redactor);
  app->metrics_ = std::make_unique<Metrics>();
  std::vector<std::shared_ptr<SecretInjector>> injectors;
  for (const PluginChoice& choice : config.plugins) {
    // A process that runs no worker runs no sandboxes either: they live where runs execute.
    if (choice.kind == "sandbox" && !config.worker.enabled) continue;
    PADDOCK_ASSIGN_OR_RETURN(PluginObjects p, CreatePlugin(plugin_dir, choice, config.server.data_dir));
    if (p.store) app->store_ = p.store;
    if (p.sandbox) app->sandbox_ = p.sandbox;
    if (p.secrets) injectors.push_back(p.secrets);
    if (p.harness) app->harnesses_.by_name.emplace(choice.name, p.harness);
    app->metrics_->PluginLoaded(p.summary.kind, p.summary.name, p.summary.version);
    LogInfo("loaded plugin " + p.summary.kind + "." + p.summary.name + " " + p.summary.version + " from " +
            p.summary.path);
    app->plugins_.push_back(std::move(p));
  }
  App& a = *app;
  size_t keepers = 0;
  for (const auto& injector : injectors) {
    injector->UseStore(*a.store_);
    if (injector->team_secrets()) ++keepers;
  }
  if (keepers > 1) {
    return Status::InvalidArgument(
        "more than one [[secrets]] plugin keeps team secrets; configure one of them");
  }
  a.secrets_ = std::make_shared<SecretChain>(std::move(injectors));
  a.audit_ = std::make_unique<AuditLog>(*a.store_, std::chrono::milliseconds(config.auth.audit_retention_ms));
  a.events_ = std::make_unique<EventService>(*a.store_, *a.redactor_, *a.metrics_,
                                             static_cast<double>(config.sessions.append_rate),
                                             static_cast<double>(config.sessions.append_bytes_rate));
  if (config.worker.enabled) {
    const WorkerSettings& w = config.worker;
    LeaseSettings lease{std::chrono::milliseconds(w.lease_ttl_ms),
                        std::chrono::milliseconds(w.heartbeat_interval_ms)};
    SandboxSettings sandbox;
    sandbox.profiles = config.profiles;
    sandbox.egress = config.egress.enabled;
    sandbox.egress_port = config.egress.port;
    sandbox.idle_timeout = std::chrono::milliseconds(config.sessions.idle_timeout_ms);
    const ModelSettings& m = config.models;
    if (!m.gateway.empty()) sandbox.model_env["LITELLM_API_BASE"] = m.gateway;
    const auto [anthropic, openai] = ModelUrls(m.gateway, m.anthropic_base_url, m.openai_base_url);
    if (!anthropic.empty()) sandbox.model_env["ANTHROPIC_BASE_URL"] = anthropic;
    if (!openai.empty()) sandbox.model_env["OPENAI_BASE_URL"] = openai;
    a.tools_ = std::make_unique<ToolCache>(
        config.tools.dir.empty() ? config.server.data_dir + "/tools" : config.tools.dir, config.tools.npm,
        std::chrono::milliseconds(config.tools.install_timeout_ms));
    sandbox.tools_root = a.tools_->root();
    std::error_code ec;
    std::filesystem::create_directories(sandbox.tools_root, ec);
    if (ec) return Status::FailedPrecondition("cannot create " + sandbox.tools_root + ": " + ec.message());
    std::filesystem::permissions(sandbox.tools_root, std::filesystem::perms(0755), ec);
    if (config.egress.enabled) {
      // [egress] remote: sandboxes go through a `paddock egress` service; this process only
      // makes their passes (and their placeholders, with the vault on).
      if (config.egress.remote.empty()) {
        a.egress_ = std::make_unique<EgressProxy>(config.egress, config.server.data_dir + "/egress");
      } else {
        PADDOCK_ASSIGN_OR_RETURN(a.pass_, EgressPass::Load(PassKeyFile(config)));
        sandbox.egress = false;  // no socket of this process's
        sandbox.egress_remote = config.egress.remote;
      }
      PADDOCK_RETURN_IF_ERROR(a.MakeVault(config));
    }
    if (config.snapshots.enabled) {
      a.snapshots_ = std::make_unique<SnapshotService>(*a.store_, *a.events_, *a.metrics_, config.snapshots);
    }
    a.sandboxes_ = std::make_unique<SandboxManager>(*a.store_, *a.sandbox_, *a.secrets_, *a.redactor_,
                                                    *a.events_, *a.metrics_, a.egress_.get(),
                                                    a.snapshots_.get(), sandbox, a.audit_.get());
    if (a.egress_) {
      SandboxManager* manager = a.sandboxes_.get();
      a.egress_->SetOnRefused([manager](const std::string& dir, const std::string& host, int port) {
        manager->EgressRefused(dir, host, port);
      });
    }
    if (a.vault_) {
      SandboxManager* manager = a.sandboxes_.get();
      a.vault_->SetSessionOf([manager](const std::string& dir) { return manager->SessionOfEgress(dir); });
      a.sandboxes_->SetVault(a.vault_.get());
    }
    a.sandboxes_->SetEgressPass(a.pass_.get());
    const Harnesses* harnesses = &a.harnesses_;
    a.sandboxes_->SetNativePaths([harnesses](const Agent& agent) {
      auto h = harnesses->by_name.find(agent.harness);
      return h == harnesses->by_name.end() ? std::vector<std::string>() : h->second->NativeStatePaths(agent);
    });
    a.executor_ =
        std::make_unique<RunExecutor>(*a.store_, *a.events_, *a.sandboxes_, a.snapshots_.get(), a.harnesses_,
                                      *a.redactor_, *a.metrics_, lease, a.tools_.get());
    a.workers_ = std::make_unique<WorkerPool>(*a.store_, *a.executor_, NewWorkerId(), w.threads,
                                              std::chrono::milliseconds(w.poll_interval_ms), lease);
  }
  if (config.egress_role) PADDOCK_RETURN_IF_ERROR(a.MakeEgressRole(config));
  SweepOptions sweep;
  sweep.max_attempts = config.worker.max_attempts;
  WorkerPool* pool = a.workers_.get();
  a.sweeper_ = std::make_unique<LeaseSweeper>(
      *a.store_, *a.metrics_, sweep, std::chrono::milliseconds(config.worker.sweep_interval_ms),
      [pool] {
        if (pool) pool->Wake();
      },
      a.sandboxes_.get(), std::chrono::milliseconds(config.worker.reconcile_interval_ms));
  std::set<std::string, std::less<>> harness_names;
  for (const auto& [name, h] : a.harnesses_.by_name) harness_names.insert(name);
  std::set<std::string, std::less<>> profile_names;
  for (const ProfileSettings& p : config.profiles) profile_names.insert(p.name);
  a.agents_ = std::make_unique<AgentService>(*a.store_, std::move(harness_names), std::move(profile_names));
  a.secret_service_ = std::make_unique<SecretService>(*a.secrets_, *a.redactor_);
  a.quotas_ = std::make_unique<QuotaService>(*a.store_, config.quotas, *a.metrics_);
  a.sessions_ = std::make_unique<SessionService>(*a.store_, *a.events_, a.sandboxes_.get(), *a.metrics_,
                                                 a.executor_.get(), a.workers_.get(), a.quotas_.get());
  a.teams_ = std::make_unique<TeamService>(*a.store_);
  a.auth_ = std::make_unique<Authenticator>(*a.store_, std::chrono::milliseconds(config.auth.cache_ttl_ms));
  a.failed_auth_ = std::make_unique<FailedAuthLimiter>(config.auth.failed_per_minute);
  PADDOCK_ASSIGN_OR_RETURN(a.dashboard_,
                           DashboardAssets::Load(ResolveDashboardDir(config.server.dashboard_dir)));
  LogInfo(a.dashboard_->installed() ? "dashboard: " + a.dashboard_->dir()
                                    : "dashboard: " + a.dashboard_->why());
  PADDOCK_ASSIGN_OR_RETURN(
      a.browser_sessions_,
      BrowserSessions::Load(config.auth.session_key_file.empty() ? config.server.data_dir + "/session.key"
                                                                 : config.auth.session_key_file,
                            config.auth.session_ttl_ms / 1000));
  a.events_->AttachAuthenticator(a.auth_.get());
  return app;
}

Status App::MakeVault(const Config& config) {
  if (!config.vault.enabled) return Status::Ok();
  const std::string dir = config.vault.dir.empty() ? config.server.data_dir + "/vault" : config.vault.dir;
  PADDOCK_ASSIGN_OR_RETURN(vault_, VaultService::Create(dir, *store_, *secrets_, *events_, *metrics_));
  vault_->SetInspectAll(config.vault.inspect_all);
  if (egress_) {
    PADDOCK_RETURN_IF_ERROR(
        egress_->EnableVault(*vault_, vault_->ca().certificate_pem(), config.vault.upstream_ca_file));
  }
  if (config.vault.model_keys) {
    const ModelSettings& m = config.models;
    const auto [anthropic, openai] = ModelUrls(m.gateway, m.anthropic_base_url, m.openai_base_url);
    ModelKeys keys = ModelKeyBindings(anthropic, openai);
    for (const std::string& warning : keys.warnings) LogWarn("vault: " + warning);
    vault_->SetDefaultBindings(std::move(keys.bindings));
  }
  return Status::Ok();
}

Status App::MakeEgressRole(const Config& config) {
  if (!config.egress.enabled)
    return Status::FailedPrecondition("`paddock egress` with [egress] enabled = false");
  egress_ = std::make_unique<EgressProxy>(config.egress, config.server.data_dir + "/egress");
  PADDOCK_ASSIGN_OR_RETURN(pass_, EgressPass::Load(PassKeyFile(config)));
  PADDOCK_RETURN_IF_ERROR(MakeVault(config));
  if (vault_) vault_->SetSessionOf(&SessionOfRemote);
  EventService* events = events_.get();
  Metrics* metrics = metrics_.get();
  egress_->SetOnRefused([events, metrics](const std::string& identity, const std::string& host, int port) {
    metrics->EgressRefused();
    const std::string session = SessionOfRemote(identity);
    LogWarn("egress refused: " + host + ":" + std::to_string(port) + " from session " + session);
    if (!session.empty()) (void)events->Append(session, "", event::EgressRefused(host, port));
  });
  return Status::Ok();
}

Result<EgressProxy::RemoteSandbox> App::CheckPass(const std::string& proxy_authorization) {
  std::optional<EgressClaim> claim = EgressPass::Parse(proxy_authorization);
  if (!claim) {
    return Status::PermissionDenied(
        "no sandbox pass: a sandbox's proxy URL carries it (http://<session>:<pass>@host:port)");
  }
  Result<Session> session = store_->GetSession(claim->session_id);
  if (!session.ok() || !pass_->Verify(*claim, session->sandbox_id)) {
    return Status::PermissionDenied(
        "this pass opens nothing: not of this install, or of a sandbox "
        "that is no longer its session's");
  }
  for (const ProfileSettings& p : config_.profiles) {
    if (p.name == claim->profile) return EgressProxy::RemoteSandbox{kRemoteIdentity + session->id, p.allow};
  }
  return Status::PermissionDenied("the pass names the profile '" + claim->profile +
                                  "', which this egress process's config does not have");
}

App::~App() { Stop(); }

Status App::Start() {
  for (; started_ < plugins_.size(); ++started_) {
    const PluginObjects& p = plugins_[started_];
    Status s = p.lifecycle->Start();
    if (!s.ok()) {
      Status failed = s.Annotate("starting plugin " + p.summary.kind + "." + p.summary.name);
      Stop();
      return failed;
    }
  }
  // Secrets known at start are redacted from everything, even before any sandbox uses them.
  if (auto known = secrets_->Resolve(SecretScope{}); known.ok()) {
    for (const Secret& s : *known) {
      redactor_->Add(s.value);
      if (s.value.size() < 4) {
        LogWarn("secret " + s.name + " is only " + std::to_string(s.value.size()) +
                " character(s) long; every occurrence of it in output, logs and responses will be redacted");
      }
    }
  }
  if (config_.migrate_on_start) {
    PADDOCK_ASSIGN_OR_RETURN(std::vector<std::string> applied, store_->Migrate());
    for (const std::string& m : applied) LogInfo("applied migration " + m);
  } else {
    PADDOCK_ASSIGN_OR_RETURN(std::vector<std::string> pending, store_->PendingMigrations());
    if (!pending.empty()) {
      std::string names;
      for (const std::string& m : pending) names += (names.empty() ? "" : ", ") + m;
      return Status::FailedPrecondition("the database schema is behind this version (pending: " + names +
                                        "); run `paddock migrate` first, or set [store] migrate = true");
    }
  }
  store_->SetEventFeed(events_.get());
  if (workers_ && store_->SingleProcess()) {
    // Nobody else uses this store, so a run still marked running was cut off when an earlier
    // process stopped: interrupt it now (re-queued, attempt counted) rather than after its lease.
    SweepOptions now;
    now.all = true;
    now.max_attempts = config_.worker.max_attempts;
    now.reason = "the server stopped during the run";
    PADDOCK_RETURN_IF_ERROR(sweeper_->Sweep(now).status());
  }
  if (sandboxes_) PADDOCK_RETURN_IF_ERROR(sandboxes_->Start().Annotate("reattaching sandboxes"));
  if (tools_) {
    if (config_.tools.preinstall) {
      // In the background: a run that needs a set meanwhile waits for the same install.
      std::vector<SandboxNeeds> sets;
      for (const auto& [name, h] : harnesses_.by_name) sets.push_back(h->Needs(Agent{}));
      preinstall_ = std::thread([tools = tools_.get(), sets] {
        for (const SandboxNeeds& needs : sets) {
          if (Result<std::string> dir = tools->Ensure(needs); !dir.ok()) {
            LogWarn("installing sandbox tools: " + dir.status().ToString());
          }
        }
      });
    }
  }
  if (workers_) workers_->Start();
  if (config_.egress_role) {
    // Only the proxy: leases and runs are the workers' and the API's.
    PADDOCK_ASSIGN_OR_RETURN(egress_port_, egress_->ListenRemote(config_.egress.listen, config_.egress.port,
                                                                 [this](const std::string& authorization) {
                                                                   return CheckPass(authorization);
                                                                 }));
    LogInfo("egress: serving sandboxes on " + config_.egress.listen + ":" + std::to_string(egress_port_) +
            (vault_ ? " with the credential vault" : ""));
    return Status::Ok();
  }
  sweeper_->Start();
  if (auto counts = store_->CountSessions(); counts.ok()) metrics_->SetSessionCounts(*counts);
  return Status::Ok();
}

void App::Stop() {
  if (sweeper_) sweeper_->Stop();
  if (workers_) workers_->Stop();
  if (sandboxes_) sandboxes_->Stop();
  if (egress_) egress_->Stop();
  if (tools_) tools_->Stop();
  if (preinstall_.joinable()) preinstall_.join();
  if (store_ && started_ > 0) store_->SetEventFeed(nullptr);
  while (started_ > 0) {
    --started_;
    plugins_[started_].lifecycle->Stop();
  }
}

std::vector<ReadinessCheck> App::Readiness() const {
  std::vector<ReadinessCheck> out;
  for (const PluginObjects& p : plugins_) {
    out.push_back({p.summary.kind + "." + p.summary.name, p.lifecycle->GetHealth()});
  }
  return out;
}

}  // namespace paddock
