// SandboxManager: binds sandboxes to sessions. It provisions a sandbox when a session is
// created (in the background), re-creates one when the bound sandbox is gone, and releases
// it when the session closes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "paddock/sandbox_provider.h"
#include "paddock/secret_injector.h"
#include "paddock/session_store.h"

namespace paddock {

class EventService;
class Metrics;
class Redactor;

// Thread safety: every method may be called concurrently; calls for one session are
// serialised.
class SandboxManager {
 public:
  SandboxManager(SessionStore& store, SandboxProvider& provider, SecretInjector& secrets, Redactor& redactor,
                 EventService& events, Metrics& metrics, int provision_threads);
  ~SandboxManager();

  // Returns the id of a running sandbox bound to the session, creating one when none is bound
  // or the bound one is gone (event "sandbox.lost", then "sandbox.ready").
  Result<std::string> Ensure(const std::string& session_id);

  // The provider's view of a sandbox.
  Result<SandboxInfo> Inspect(const std::string& sandbox_id) { return provider_.Inspect(sandbox_id); }

  // The environment commands of `session` get: the agent's env and the resolved secrets (whose
  // values are registered for redaction here).
  Result<EnvMap> Environment(const Agent& agent, const Session& session);

  // Runs a command in the session's sandbox outside any run (creating the sandbox if needed),
  // with Environment() added to the request's own env.
  Result<ExecResult> Exec(const std::string& session_id, ExecRequest request, ExecObserver& observer);

  // Ensure() on a background thread; a failure marks a still-provisioning session failed.
  void ProvisionInBackground(const std::string& session_id);

  // Destroys the session's sandbox (if any) and unbinds it; with delete_data, also removes the
  // session's durable sandbox data. Idempotent.
  Status Release(const std::string& session_id, bool delete_data);

  // Destroys this provider's sandboxes that no open session is bound to (any more) — say, one a
  // session left behind when another worker re-created its sandbox — sparing ones younger than
  // `min_age`, which may be about to be bound. Returns how many it destroyed.
  Result<int> Reconcile(std::chrono::milliseconds min_age);

  // Stops the background threads; queued provisioning is dropped.
  void Stop();

 private:
  std::shared_ptr<std::mutex> SessionLock(const std::string& session_id);
  void ProvisionLoop();

  SessionStore& store_;
  SandboxProvider& provider_;
  SecretInjector& secrets_;
  Redactor& redactor_;
  EventService& events_;
  Metrics& metrics_;

  std::mutex locks_mu_;
  std::map<std::string, std::weak_ptr<std::mutex>> locks_;
  size_t prune_at_ = 64;  // sweep expired entries when the map reaches this size

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace paddock
