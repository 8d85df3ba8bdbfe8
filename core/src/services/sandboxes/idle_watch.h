// IdleWatch: the idle clock of every session bound to a sandbox of this process, and the
// thread that hands sessions idle past their timeout to `suspend` (the server's
// [sessions] idle_timeout, or the agent's idle_timeout_seconds).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "paddock/session_store.h"

namespace paddock {

// Thread safety: every method may be called concurrently.
class IdleWatch {
 public:
  using SuspendFn = std::function<void(const std::string& session_id)>;
  // `idle_timeout` 0: only agents with their own timeout are suspended.
  IdleWatch(SessionStore& store, std::chrono::milliseconds idle_timeout, SuspendFn suspend);
  ~IdleWatch();

  void Start();
  void Stop();

  // The session did something just now: its clock starts again.
  void Touch(const std::string& session_id);
  // The session has no sandbox here any more: it is not watched.
  void Forget(const std::string& session_id);

  // Sessions idle longer than their timeout now.
  std::vector<std::string> Idle();

 private:
  void Loop();

  SessionStore& store_;
  const std::chrono::milliseconds idle_timeout_;
  SuspendFn suspend_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_active_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace paddock
