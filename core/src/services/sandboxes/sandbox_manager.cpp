#include "services/sandboxes/sandbox_manager.h"

#include <Poco/Net/DNS.h>
#include <Poco/Net/HostEntry.h>
#include <Poco/URI.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include "metrics/metrics.h"
#include "paddock/json.h"
#include "services/egress/egress_pass.h"
#include "services/egress/egress_proxy.h"
#include "services/events/event_service.h"
#include "services/snapshots/snapshot_service.h"
#include "services/teams/audit_log.h"
#include "services/teams/team_service.h"
#include "services/vault/vault_service.h"
#include "util/digest.h"
#include "util/log.h"
#include "util/redactor.h"

namespace paddock {
namespace {

std::string EgressKey() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[24];
  std::snprintf(buf, sizeof buf, "eg_%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

SandboxManager::SandboxManager(SessionStore& store, SandboxProvider& provider, SecretInjector& secrets,
                               Redactor& redactor, EventService& events, Metrics& metrics,
                               EgressProxy* egress, SnapshotService* snapshots, SandboxSettings settings,
                               AuditLog* audit)
    : store_(store),
      provider_(provider),
      secrets_(secrets),
      redactor_(redactor),
      events_(events),
      metrics_(metrics),
      egress_(egress),
      snapshots_(snapshots),
      settings_(std::move(settings)),
      audit_(audit),
      warm_(
          settings_.profiles, settings_.warm_refill_interval,
          [this](const ProfileSettings& profile) {
            auto started = std::chrono::steady_clock::now();
            Result<SandboxInfo> created = CreateSandbox(profile, "", "");
            metrics_.SandboxProvisioned(SecondsSince(started), created.ok(), "pool");
            return created;
          },
          [this](const SandboxInfo& info) { (void)DestroySandbox(info); }),
      idle_(store_, settings_.idle_timeout,
            [this](const std::string& session_id) {
              if (Status s = Suspend(session_id, "idle"); !s.ok())
                LogWarn("suspending idle session " + session_id + ": " + s.ToString());
            }),
      reconciler_(store_, provider_, locks_, warm_,
                  [this](const SandboxInfo& info) { return DestroySandbox(info); }) {
  if (settings_.profiles.empty())
    settings_.profiles.push_back(ProfileSettings{"default", {}, 0, {}, false, {}});
}

SandboxManager::~SandboxManager() { Stop(); }

Status SandboxManager::Start() {
  for (const ProfileSettings& p : settings_.profiles) {
    const std::string line =
        "profile " + p.name + ": sandbox syscall filter " + Describe(p.hardening) +
        (p.hardening.runtime_class.empty() ? "" : ", runtime class " + p.hardening.runtime_class);
    if (!p.hardening.seccomp || !p.hardening.seccomp_allow.empty()) {
      LogWarn(line + " (relaxed by the profile)");
    } else {
      LogInfo(line);
    }
  }
  // Sandboxes of an earlier process: reattach the ones an open session is still bound to.
  PADDOCK_ASSIGN_OR_RETURN(std::vector<SandboxInfo> all, provider_.List());
  int reattached = 0;
  for (const SandboxInfo& info : all) {
    bool keep = false;
    if (!info.session_id.empty()) {
      Result<Session> session = store_.GetSession(info.session_id);
      if (!session.ok() && session.status().code() != StatusCode::kNotFound) return session.status();
      const bool bound =
          session.ok() && session->sandbox_id == info.id && session->status != SessionStatus::kClosed;
      keep = bound && info.state == SandboxState::kRunning;
      if (bound && !keep) {
        // It died while no process watched it: that is a loss, recorded as such.
        RecordLost(info.session_id, info.id, &info,
                   (info.detail.empty() ? "gone" : info.detail) + " (found at start)");
        continue;
      }
    }
    if (keep && egress_ && !info.egress_dir.empty()) {
      Status reopened = egress_->Reopen(info.egress_dir, Profile(info.profile).allow);
      if (!reopened.ok()) {
        LogWarn("sandbox " + info.id + ": cannot serve its egress again: " + reopened.ToString());
        keep = false;
      }
    }
    if (keep) {
      ++reattached;
      Touch(info.session_id);
      egress_book_.Serve(info.egress_dir, info.session_id);
      LogInfo("reattached sandbox " + info.id + " of session " + info.session_id);
      continue;
    }
    LogInfo("destroying sandbox " + info.id + " left by an earlier process");
    PADDOCK_RETURN_IF_ERROR(DestroySandbox(info));
  }
  if (egress_) {
    for (const std::string& dir : egress_->Unserved()) egress_->Close(dir);
  }
  if (!all.empty())
    LogInfo("sandboxes of an earlier process: " + std::to_string(reattached) + " reattached, " +
            std::to_string(all.size() - static_cast<size_t>(reattached)) + " destroyed");
  for (int i = 0; i < settings_.provision_threads; ++i) threads_.emplace_back([this] { ProvisionLoop(); });
  warm_.Start();
  idle_.Start();
  return Status::Ok();
}

void SandboxManager::Stop() {
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    queue_.clear();
  }
  queue_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  idle_.Stop();
  warm_.Stop();
}

const ProfileSettings& SandboxManager::Profile(const std::string& name) const {
  for (const auto& p : settings_.profiles) {
    if (p.name == name) return p;
  }
  return settings_.profiles.front();
}

Result<SandboxInfo> SandboxManager::CreateSandbox(const ProfileSettings& profile,
                                                  const std::string& session_id,
                                                  const std::string& agent_id) {
  SandboxSpec spec;
  spec.session_id = session_id;
  spec.agent_id = agent_id;
  spec.profile = profile.name;
  spec.limits = profile.limits;
  spec.host_network = profile.host_network;
  spec.hardening = profile.hardening;
  spec.egress_port = settings_.egress_port;
  if (!settings_.tools_root.empty()) spec.ro_mounts.push_back({settings_.tools_root, kSandboxTools});
  if (egress_ && settings_.egress && !profile.host_network) {
    PADDOCK_ASSIGN_OR_RETURN(spec.egress_dir, egress_->Open(EgressKey(), profile.allow));
  }
  Result<SandboxInfo> created = provider_.Create(spec);
  if (!created.ok() && egress_) egress_->Close(spec.egress_dir);
  return created;
}

std::optional<SandboxInfo> SandboxManager::ClaimWarm(const ProfileSettings& profile,
                                                     const std::string& session_id) {
  for (;;) {
    std::optional<SandboxInfo> taken = warm_.Take(profile.name);
    if (!taken) return std::nullopt;
    SandboxInfo warm = std::move(*taken);
    Result<SandboxInfo> claimed = provider_.Claim(warm.id, session_id);
    if (claimed.ok()) return *claimed;
    if (claimed.status().code() == StatusCode::kFailedPrecondition) {
      Result<SandboxInfo> again = provider_.Inspect(warm.id);
      if (again.ok() && again->state == SandboxState::kRunning && again->session_id.empty()) {
        // The session cannot take a warm sandbox (it has a workspace already): keep it warm.
        warm_.PutBack(profile.name, std::move(warm));
        return std::nullopt;
      }
    }
    LogWarn("warm sandbox " + warm.id + " could not be claimed: " + claimed.status().ToString());
    (void)DestroySandbox(warm);
  }
}

Status SandboxManager::DestroySandbox(const SandboxInfo& info) {
  Status destroyed = provider_.Destroy(info.id);
  if (destroyed.ok() && egress_ && !info.egress_dir.empty()) {
    egress_->Close(info.egress_dir);
    egress_book_.Forget(info.egress_dir);
  }
  return destroyed;
}

void SandboxManager::EgressRefused(const std::string& egress_dir, const std::string& host, int port) {
  metrics_.EgressRefused();
  const std::string session = egress_book_.SessionOf(egress_dir);
  LogWarn("egress refused: " + host + ":" + std::to_string(port) +
          (session.empty() ? std::string(" (no session)") : " from session " + session));
  if (session.empty()) return;
  (void)events_.Append(session, "", event::EgressRefused(host, port));
}

Status SandboxManager::RemoteEgress(const SandboxInfo& info, const Session& session, RuntimeClient& runtime,
                                    EnvMap& env) {
  if (settings_.egress_remote.empty() || !pass_ || Profile(info.profile).host_network) return Status::Ok();
  // The service's address, resolved here: the sandbox needs no DNS (its NetworkPolicy lets it
  // reach the egress pods only).
  std::string address = settings_.egress_remote;
  const auto colon = address.rfind(':');
  try {
    Poco::Net::HostEntry host = Poco::Net::DNS::hostByName(address.substr(0, colon));
    for (const Poco::Net::IPAddress& ip : host.addresses()) {
      if (ip.family() != Poco::Net::AddressFamily::IPv4) continue;
      address = ip.toString() + address.substr(colon);
      break;
    }
  } catch (const Poco::Exception& e) {
    LogWarn("egress: resolving " + settings_.egress_remote + ": " + e.displayText() +
            "; sandboxes get the name");
  }
  const EgressCredentials pass = pass_->Mint(session.id, info.id, info.profile);
  redactor_.Add(pass.password);
  std::string user, password;
  Poco::URI::encode(pass.user, ":@/?#[]%", user);
  Poco::URI::encode(pass.password, ":@/?#[]%", password);
  const std::string proxy = "http://" + user + ":" + password + "@" + address;
  for (const char* name : {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"}) env[name] = proxy;
  env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1";
  if (!vault_) return Status::Ok();
  const std::string ca = vault_->TrustPem();  // follows a rotation of the CA
  const std::string dir = kSandboxEgressTrust;
  PADDOCK_RETURN_IF_ERROR(runtime.PutFile(dir + "/" + kEgressCaFile, ca, "0444")
                              .Annotate("writing the vault's CA into the sandbox"));
  PADDOCK_RETURN_IF_ERROR(runtime.PutFile(dir + "/" + kEgressCaBundle, TrustBundleWith(ca), "0444")
                              .Annotate("writing the trust bundle into the sandbox"));
  for (const char* name : {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"})
    env[name] = dir + "/" + kEgressCaBundle;
  env["NODE_EXTRA_CA_CERTS"] = dir + "/" + kEgressCaFile;
  return Status::Ok();
}

Status SandboxManager::Bind(const SandboxInfo& info, const Session& session) {
  PADDOCK_ASSIGN_OR_RETURN(Agent agent, store_.GetAgent(session.agent_id));
  PADDOCK_ASSIGN_OR_RETURN(Delivery d, Environment(agent, session));
  RuntimeClient runtime(info.runtime);
  PADDOCK_RETURN_IF_ERROR(RemoteEgress(info, session, runtime, d.env));
  PADDOCK_RETURN_IF_ERROR(runtime.SetEnv(d.env).Annotate("sending the session's environment to its sandbox"));
  // The directory holds exactly the secrets the agent gets as files now.
  if (Status gone = runtime.Remove(kSandboxSecrets, /*recursive=*/true);
      !gone.ok() && gone.code() != StatusCode::kNotFound) {
    return gone.Annotate("clearing " + std::string(kSandboxSecrets) + " in the sandbox");
  }
  for (const Secret& f : d.files) {
    PADDOCK_RETURN_IF_ERROR(runtime.PutFile(std::string(kSandboxSecrets) + "/" + f.name, f.value, "0400")
                                .Annotate("writing the secret file " + f.name + " into the sandbox"));
  }
  AuditInjected(session, info, d.secrets);
  return Status::Ok();
}

void SandboxManager::AuditInjected(const Session& session, const SandboxInfo& info,
                                   const std::vector<Secret>& secrets) {
  if (!audit_ || secrets.empty()) return;
  std::string names;
  std::string seen = info.id;
  for (const Secret& s : secrets) {
    names += (names.empty() ? "" : ", ") + s.name + (s.version > 0 ? " v" + std::to_string(s.version) : "") +
             (s.file ? " (file)" : "") + (s.vault.bound() ? " (vault placeholder)" : "");
    seen += "\n" + s.name + "\n" + Sha256Hex(s.value);
  }
  {
    std::lock_guard lock(injected_mu_);
    if (injected_.size() > 10000) injected_.clear();
    std::string& last = injected_[session.id];
    if (last == seen) return;
    last = seen;
  }
  AuditEvent e;
  e.team_id = session.team_id;
  e.source = "sandbox " + info.id;
  e.action = "secret.injected";
  e.resource = session.id;
  e.status = 200;
  e.outcome = "ok";
  e.detail = names.size() > 500 ? names.substr(0, 497) + "..." : names;
  audit_->Record(std::move(e));
}

void SandboxManager::RecordLost(const std::string& session_id, const std::string& sandbox_id,
                                const SandboxInfo* info, const std::string& detail) {
  if (info) {
    (void)DestroySandbox(*info);
  } else {
    (void)provider_.Destroy(sandbox_id);
  }
  (void)store_.SetSessionSandbox(session_id, "");
  metrics_.SandboxLost();
  (void)events_.Append(session_id, "", event::SandboxLost(sandbox_id, detail));
  LogWarn("session " + session_id + ": sandbox " + sandbox_id + " is gone (" + detail + ")");
}

bool SandboxManager::CheckAlive(const std::string& session_id, const SandboxInfo& sandbox,
                                const std::string& context) {
  Result<SandboxInfo> info = provider_.Inspect(sandbox.id);
  std::string detail;
  if (!info.ok()) {
    if (info.status().code() != StatusCode::kNotFound) return true;  // cannot tell: assume it lives
    detail = "the provider does not know it";
  } else if (info->state != SandboxState::kRunning) {
    detail = info->detail.empty() ? std::string(ToString(info->state)) : info->detail;
  } else if (Result<RuntimeHealth> health = RuntimeClient(sandbox.runtime).Health(); !health.ok()) {
    if (health.status().code() != StatusCode::kUnavailable) return true;
    detail = "its runtime does not answer: " + health.status().message();
  } else {
    return true;
  }
  auto session_lock = locks_.For(session_id);
  std::lock_guard guard(*session_lock);
  Result<Session> session = store_.GetSession(session_id);
  if (session.ok() && session->sandbox_id == sandbox.id) {
    RecordLost(session_id, sandbox.id, info.ok() ? &*info : nullptr, detail + " (" + context + ")");
  } else {
    (void)provider_.Destroy(sandbox.id);
  }
  return false;
}

void SandboxManager::Touch(const std::string& session_id) { idle_.Touch(session_id); }

Result<EnsuredSandbox> SandboxManager::Ensure(const std::string& session_id,
                                              const std::vector<std::string>* rollback) {
  auto session_lock = locks_.For(session_id);
  std::lock_guard guard(*session_lock);
  PADDOCK_ASSIGN_OR_RETURN(Session session, store_.GetSession(session_id));
  if (session.status == SessionStatus::kClosed) {
    return Status::FailedPrecondition("session '" + session_id + "' is closed");
  }
  EnsuredSandbox out;
  if (!session.sandbox_id.empty()) {
    Result<SandboxInfo> info = provider_.Inspect(session.sandbox_id);
    if (info.ok() && info->state == SandboxState::kRunning) {
      // The current env and secrets every time, so a rotated secret reaches the next command.
      Status bound = Bind(*info, session);
      if (bound.ok()) {
        out.info = *info;
        if (rollback && snapshots_) {
          PADDOCK_ASSIGN_OR_RETURN(out.restored, snapshots_->RestoreLatest(RuntimeClient(info->runtime),
                                                                           session_id, info->id, rollback));
        }
        Touch(session_id);
        return out;
      }
      if (bound.code() != StatusCode::kUnavailable) return bound;
      RecordLost(session_id, session.sandbox_id, &*info, "its runtime does not answer: " + bound.message());
    } else {
      if (!info.ok() && info.status().code() != StatusCode::kNotFound) return info.status();
      if (info.ok()) {
        RecordLost(session_id, session.sandbox_id, &*info, info->detail);
      } else {
        // Not this process's: another worker's (the session's runs moved here), or destroyed
        // with the process that had it. Replaced, not lost.
        (void)store_.SetSessionSandbox(session_id, "");
        (void)events_.Append(session_id, "",
                             event::SandboxReplaced(session.sandbox_id,
                                                    "not a sandbox of this worker (another worker's, or "
                                                    "gone with an earlier process)"));
      }
    }
  }
  Result<const ProfileSettings*> chosen = ProfileOf(session);
  if (!chosen.ok()) {
    (void)events_.Append(session_id, "", event::SandboxFailed(chosen.status().message()));
    return chosen.status();
  }
  const ProfileSettings& profile = **chosen;
  auto started = std::chrono::steady_clock::now();
  std::string source = "warm";
  std::optional<SandboxInfo> sandbox = ClaimWarm(profile, session_id);
  if (sandbox) {
    if (egress_ && !sandbox->egress_dir.empty()) egress_->SetAllow(sandbox->egress_dir, profile.allow);
  } else {
    source = "cold";
    Result<SandboxInfo> created = CreateSandbox(profile, session_id, session.agent_id);
    if (!created.ok()) {
      metrics_.SandboxProvisioned(SecondsSince(started), false, source);
      (void)events_.Append(session_id, "", event::SandboxFailed(created.status().message()));
      return created.status().Annotate("creating a sandbox");
    }
    sandbox = *created;
  }
  Status bound = Bind(*sandbox, session);
  if (bound.ok()) bound = store_.SetSessionSandbox(session_id, sandbox->id);
  if (!bound.ok()) {
    (void)DestroySandbox(*sandbox);
    return bound;
  }
  egress_book_.Serve(sandbox->egress_dir, session_id);
  double seconds = SecondsSince(started);
  metrics_.SandboxProvisioned(seconds, true, source);
  out.info = *sandbox;
  out.fresh = true;
  // The session's state comes back before anyone may use the sandbox.
  if (snapshots_) {
    Result<std::optional<SnapshotInfo>> restored =
        snapshots_->RestoreLatest(RuntimeClient(sandbox->runtime), session_id, sandbox->id, rollback);
    if (!restored.ok()) {
      RecordLost(session_id, sandbox->id, &*sandbox, "restoring the session's snapshot failed");
      return restored.status();
    }
    out.restored = *restored;
  }
  if (session.status == SessionStatus::kProvisioning || session.status == SessionStatus::kSuspended) {
    Status ready = store_.TransitionSession(session_id, session.status, SessionStatus::kReady, "");
    if (!ready.ok() && ready.code() != StatusCode::kFailedPrecondition) return ready;
  }
  // Announced last: whoever hears of it finds the state restored and the session ready.
  (void)events_.Append(session_id, "",
                       event::SandboxReady(sandbox->id, seconds * 1000, source, profile.name));
  Touch(session_id);
  return out;
}

Result<SandboxManager::Delivery> SandboxManager::Environment(const Agent& agent, const Session& session) {
  PADDOCK_ASSIGN_OR_RETURN(
      std::vector<Secret> secrets,
      secrets_.Resolve(SecretScope{session.team_id, agent.id, session.id, agent.secrets}));
  for (const Secret& s : secrets) redactor_.Add(s.value);  // real values, before any placeholder
  if (vault_) {
    PADDOCK_RETURN_IF_ERROR(vault_->Conceal(session, secrets));
  } else {
    for (const Secret& s : secrets) {
      if (!s.vault.bound()) continue;
      return Status::FailedPrecondition(
          "agent '" + agent.id + "' names the vault entry '" + s.name +
          "', and this server has no vault ([vault] enabled = false, or [egress] "
          "enabled = false); a vault entry never reaches a sandbox as its value");
    }
  }
  Delivery d;
  d.env = settings_.model_env;
  for (const auto& [name, value] : agent.env) d.env[name] = value;
  for (const Secret& s : secrets) {
    if (s.file) {
      d.env.erase(s.name);
      d.files.push_back(s);
    } else {
      d.env[s.name] = s.value;
    }
  }
  d.secrets = std::move(secrets);
  return d;
}

Result<const ProfileSettings*> SandboxManager::ProfileOf(const Session& session) {
  PADDOCK_ASSIGN_OR_RETURN(Agent agent, store_.GetAgent(session.agent_id));
  const ProfileSettings* found = nullptr;
  for (const auto& p : settings_.profiles) {
    if (p.name == agent.profile) found = &p;
  }
  if (!found) {
    return Status::FailedPrecondition("agent '" + agent.id + "' names the sandbox profile '" + agent.profile +
                                      "', which this server's config does not have ([profiles." +
                                      agent.profile + "])");
  }
  PADDOCK_ASSIGN_OR_RETURN(Team team, store_.GetTeam(session.team_id));
  PADDOCK_RETURN_IF_ERROR(CheckProfileAllowed(team, agent.profile));
  return found;
}

Result<ExecResult> SandboxManager::Exec(const std::string& session_id, ExecRequest request,
                                        ExecObserver& observer) {
  PADDOCK_ASSIGN_OR_RETURN(EnsuredSandbox sandbox, Ensure(session_id));
  RuntimeClient runtime(sandbox.info.runtime);
  Result<ExecResult> result = runtime.Exec(request, observer);
  Touch(session_id);
  if (!result.ok() || !snapshots_ || !snapshots_->enabled()) return result;
  // What an operator changed becomes part of the session's state — unless a run is under way,
  // whose own snapshot (or rollback) decides.
  Result<std::int64_t> active = store_.CountActiveRuns(session_id);
  Result<Session> session = store_.GetSession(session_id);
  if (!active.ok() || *active > 0 || !session.ok()) return result;
  std::vector<std::string> native;
  if (Result<Agent> agent = store_.GetAgent(session->agent_id); agent.ok() && native_paths_) {
    native = native_paths_(*agent);
  }
  if (Result<SnapshotInfo> snap = snapshots_->Take(runtime, session_id, native, nullptr); !snap.ok()) {
    LogWarn("session " + session_id + ": snapshot after exec failed: " + snap.status().ToString());
    (void)events_.Append(session_id, "", event::SnapshotFailed(snap.status().message()));
  }
  return result;
}

void SandboxManager::ProvisionInBackground(const std::string& session_id) {
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_) return;
    queue_.push_back(session_id);
  }
  queue_cv_.notify_one();
}

void SandboxManager::ProvisionLoop() {
  for (;;) {
    std::string session_id;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      session_id = std::move(queue_.front());
      queue_.pop_front();
    }
    Result<EnsuredSandbox> sandbox = Ensure(session_id);
    if (!sandbox.ok()) {
      LogError("session " + session_id + ": " + sandbox.status().ToString());
      Result<Session> s = store_.GetSession(session_id);
      if (s.ok() && s->status == SessionStatus::kProvisioning) {
        (void)store_.TransitionSession(session_id, SessionStatus::kProvisioning, SessionStatus::kFailed,
                                       sandbox.status().message());
      }
    }
  }
}

int SandboxManager::WarmCount(const std::string& profile) { return warm_.Count(profile); }

Status SandboxManager::Release(const std::string& session_id, bool delete_data) {
  auto session_lock = locks_.For(session_id);
  std::lock_guard guard(*session_lock);
  PADDOCK_ASSIGN_OR_RETURN(Session session, store_.GetSession(session_id));
  if (!session.sandbox_id.empty()) {
    Result<SandboxInfo> info = provider_.Inspect(session.sandbox_id);
    if (info.ok()) {
      PADDOCK_RETURN_IF_ERROR(DestroySandbox(*info));
    } else {
      PADDOCK_RETURN_IF_ERROR(provider_.Destroy(session.sandbox_id));
    }
    PADDOCK_RETURN_IF_ERROR(store_.SetSessionSandbox(session_id, ""));
    (void)events_.Append(session_id, "",
                         event::SandboxReleased(session.sandbox_id, delete_data ? "closed" : "restart"));
  }
  idle_.Forget(session_id);
  if (delete_data) PADDOCK_RETURN_IF_ERROR(provider_.DeleteSessionData(session_id));
  return Status::Ok();
}

Status SandboxManager::Suspend(const std::string& session_id, const std::string& reason) {
  auto session_lock = locks_.For(session_id);
  std::lock_guard guard(*session_lock);
  auto forget = [&] { idle_.Forget(session_id); };
  PADDOCK_ASSIGN_OR_RETURN(Session session, store_.GetSession(session_id));
  if (session.status != SessionStatus::kReady || session.sandbox_id.empty()) {
    if (session.status != SessionStatus::kRunning) forget();
    return Status::Ok();
  }
  PADDOCK_ASSIGN_OR_RETURN(std::int64_t active, store_.CountActiveRuns(session_id));
  if (active > 0) return Status::Ok();  // a run is about to take the sandbox
  Result<SandboxInfo> info = provider_.Inspect(session.sandbox_id);
  if (!info.ok() && info.status().code() == StatusCode::kNotFound) {
    forget();  // another worker's sandbox: it decides
    return Status::Ok();
  }
  // Released first, so that whoever sees `suspended` sees a session without a sandbox. A run of
  // this process waits for the session lock; one of another process uses a sandbox of its own.
  if (info.ok()) {
    PADDOCK_RETURN_IF_ERROR(DestroySandbox(*info));
  } else {
    PADDOCK_RETURN_IF_ERROR(provider_.Destroy(session.sandbox_id));
  }
  if (Result<Session> now = store_.GetSession(session_id);
      now.ok() && now->sandbox_id == session.sandbox_id) {
    PADDOCK_RETURN_IF_ERROR(store_.SetSessionSandbox(session_id, ""));
  }
  forget();
  // The disk copy of the workspace is only worth keeping when the snapshot does not hold it.
  bool in_snapshot = false;
  if (snapshots_) {
    Result<std::optional<SnapshotInfo>> latest = snapshots_->store().LatestSnapshot(session_id);
    in_snapshot = latest.ok() && latest->has_value() && (*latest)->workspace;
  }
  if (in_snapshot) (void)provider_.DeleteSessionData(session_id);
  (void)events_.Append(session_id, "", event::SandboxReleased(session.sandbox_id, reason, !in_snapshot));
  // Compare and set: a session another process started a run in meanwhile stays as it is.
  Status suspended =
      store_.TransitionSession(session_id, SessionStatus::kReady, SessionStatus::kSuspended, reason);
  if (suspended.code() == StatusCode::kFailedPrecondition) return Status::Ok();
  PADDOCK_RETURN_IF_ERROR(suspended);
  metrics_.SessionSuspended();
  LogInfo("session " + session_id + ": suspended (" + reason + ")");
  return Status::Ok();
}

Result<int> SandboxManager::Reconcile(std::chrono::milliseconds min_age) { return reconciler_.Run(min_age); }

}  // namespace paddock
