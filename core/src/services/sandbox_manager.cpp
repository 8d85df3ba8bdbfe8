#include "services/sandbox_manager.h"

#include <algorithm>
#include <chrono>

#include "metrics/metrics.h"
#include "paddock/json.h"
#include "services/event_service.h"
#include "util/log.h"
#include "util/redactor.h"

namespace paddock {

SandboxManager::SandboxManager(SessionStore& store, SandboxProvider& provider, SecretInjector& secrets,
                               Redactor& redactor, EventService& events, Metrics& metrics,
                               int provision_threads)
    : store_(store),
      provider_(provider),
      secrets_(secrets),
      redactor_(redactor),
      events_(events),
      metrics_(metrics) {
  for (int i = 0; i < provision_threads; ++i) threads_.emplace_back([this] { ProvisionLoop(); });
}

SandboxManager::~SandboxManager() { Stop(); }

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
}

std::shared_ptr<std::mutex> SandboxManager::SessionLock(const std::string& session_id) {
  std::lock_guard lock(locks_mu_);
  // Drop entries nobody holds any more, so the map does not grow with every session ever seen;
  // only when it has doubled since the last sweep, so a call costs O(1) amortized.
  if (locks_.size() >= prune_at_) {
    for (auto it = locks_.begin(); it != locks_.end();) {
      it = it->second.expired() ? locks_.erase(it) : std::next(it);
    }
    prune_at_ = std::max<size_t>(64, 2 * locks_.size());
  }
  auto& weak = locks_[session_id];
  auto strong = weak.lock();
  if (!strong) {
    strong = std::make_shared<std::mutex>();
    weak = strong;
  }
  return strong;
}

Result<std::string> SandboxManager::Ensure(const std::string& session_id) {
  auto session_lock = SessionLock(session_id);
  std::lock_guard guard(*session_lock);
  PADDOCK_ASSIGN_OR_RETURN(Session session, store_.GetSession(session_id));
  if (session.status == SessionStatus::kClosed) {
    return Status::FailedPrecondition("session '" + session_id + "' is closed");
  }
  if (!session.sandbox_id.empty()) {
    Result<SandboxInfo> info = provider_.Inspect(session.sandbox_id);
    if (info.ok() && info->state == SandboxState::kRunning) return session.sandbox_id;
    if (!info.ok() && info.status().code() != StatusCode::kNotFound) return info.status();
    (void)provider_.Destroy(session.sandbox_id);
    (void)events_.Append(session_id, "", "sandbox.lost",
                         "{\"sandbox_id\":" + JsonQuote(session.sandbox_id) + "}");
    LogWarn("session " + session_id + ": sandbox " + session.sandbox_id + " is gone; re-creating");
  }
  SandboxSpec spec;
  spec.session_id = session_id;
  spec.agent_id = session.agent_id;
  auto started = std::chrono::steady_clock::now();
  Result<SandboxInfo> created = provider_.Create(spec);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  metrics_.SandboxProvisioned(seconds, created.ok());
  if (!created.ok()) {
    (void)events_.Append(session_id, "", "sandbox.failed",
                         "{\"error\":" + JsonQuote(created.status().message()) + "}");
    return created.status().Annotate("creating a sandbox");
  }
  Status bound = store_.SetSessionSandbox(session_id, created->id);
  if (!bound.ok()) {
    (void)provider_.Destroy(created->id);
    return bound;
  }
  if (session.status == SessionStatus::kProvisioning || session.status == SessionStatus::kSuspended) {
    Status ready = store_.TransitionSession(session_id, session.status, SessionStatus::kReady, "");
    if (!ready.ok() && ready.code() != StatusCode::kFailedPrecondition) return ready;
  }
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.3f", seconds * 1000);
  (void)events_.Append(session_id, "", "sandbox.ready",
                       "{\"sandbox_id\":" + JsonQuote(created->id) + ",\"provision_ms\":" + ms + "}");
  return created->id;
}

Result<EnvMap> SandboxManager::Environment(const Agent& agent, const Session& session) {
  PADDOCK_ASSIGN_OR_RETURN(std::vector<Secret> secrets,
                           secrets_.Resolve(SecretScope{"", agent.id, session.id}));
  EnvMap env = agent.env;
  for (const Secret& s : secrets) {
    redactor_.Add(s.value);
    env[s.name] = s.value;
  }
  return env;
}

Result<ExecResult> SandboxManager::Exec(const std::string& session_id, ExecRequest request,
                                        ExecObserver& observer) {
  PADDOCK_ASSIGN_OR_RETURN(std::string sandbox_id, Ensure(session_id));
  PADDOCK_ASSIGN_OR_RETURN(Session session, store_.GetSession(session_id));
  PADDOCK_ASSIGN_OR_RETURN(Agent agent, store_.GetAgent(session.agent_id));
  PADDOCK_ASSIGN_OR_RETURN(EnvMap env, Environment(agent, session));
  for (const auto& [k, v] : env) request.env.emplace(k, v);
  return provider_.Exec(sandbox_id, request, observer);
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
    Result<std::string> sandbox = Ensure(session_id);
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

Status SandboxManager::Release(const std::string& session_id, bool delete_data) {
  auto session_lock = SessionLock(session_id);
  std::lock_guard guard(*session_lock);
  PADDOCK_ASSIGN_OR_RETURN(Session session, store_.GetSession(session_id));
  if (!session.sandbox_id.empty()) {
    PADDOCK_RETURN_IF_ERROR(provider_.Destroy(session.sandbox_id));
    PADDOCK_RETURN_IF_ERROR(store_.SetSessionSandbox(session_id, ""));
    (void)events_.Append(session_id, "", "sandbox.released",
                         "{\"sandbox_id\":" + JsonQuote(session.sandbox_id) + "}");
  }
  if (delete_data) PADDOCK_RETURN_IF_ERROR(provider_.DeleteSessionData(session_id));
  return Status::Ok();
}

Result<int> SandboxManager::Reconcile(std::chrono::milliseconds min_age) {
  PADDOCK_ASSIGN_OR_RETURN(std::vector<SandboxInfo> all, provider_.List());
  int destroyed = 0;
  for (const SandboxInfo& info : all) {
    if (NowMs() - info.created_at < min_age.count()) continue;  // may be about to be bound
    Result<Session> session = store_.GetSession(info.session_id);
    if (!session.ok() && session.status().code() != StatusCode::kNotFound) return session.status();
    if (session.ok() && session->sandbox_id == info.id && session->status != SessionStatus::kClosed) continue;
    auto session_lock = SessionLock(info.session_id);
    std::lock_guard guard(*session_lock);
    LogInfo("destroying sandbox " + info.id + ": session " + info.session_id + " no longer uses it");
    PADDOCK_RETURN_IF_ERROR(provider_.Destroy(info.id));
    if (!session.ok() || session->status == SessionStatus::kClosed) {
      PADDOCK_RETURN_IF_ERROR(provider_.DeleteSessionData(info.session_id));
    }
    ++destroyed;
  }
  return destroyed;
}

}  // namespace paddock
