// SandboxManager: binds sandboxes to sessions. It provisions a sandbox when a session is
// created (in the background), re-creates one when the bound sandbox is gone, and releases
// it when the session closes.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "paddock/sandbox_provider.h"
#include "paddock/session_store.h"

namespace paddock {

class EventService;
class Metrics;

// Thread safety: every method may be called concurrently; calls for one session are
// serialised.
class SandboxManager {
 public:
  SandboxManager(SessionStore& store, SandboxProvider& provider, EventService& events, Metrics& metrics,
                 int provision_threads);
  ~SandboxManager();

  // Returns the id of a running sandbox bound to the session, creating one when none is bound
  // or the bound one is gone (event "sandbox.lost", then "sandbox.ready").
  Result<std::string> Ensure(const std::string& session_id);

  // Ensure() on a background thread; a failure marks a still-provisioning session failed.
  void ProvisionInBackground(const std::string& session_id);

  // Destroys the session's sandbox (if any) and unbinds it; with delete_data, also removes the
  // session's durable sandbox data. Idempotent.
  Status Release(const std::string& session_id, bool delete_data);

  // Stops the background threads; queued provisioning is dropped.
  void Stop();

 private:
  std::shared_ptr<std::mutex> SessionLock(const std::string& session_id);
  void ProvisionLoop();

  SessionStore& store_;
  SandboxProvider& provider_;
  EventService& events_;
  Metrics& metrics_;

  std::mutex locks_mu_;
  std::map<std::string, std::weak_ptr<std::mutex>> locks_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace paddock
