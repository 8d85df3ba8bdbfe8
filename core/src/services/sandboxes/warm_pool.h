// WarmPool: ready sandboxes per profile, bound to no session, kept filled by a thread of its own
// so that a new session claims one instead of waiting for a sandbox to start.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "paddock/types.h"

namespace paddock {

// Thread safety: every method may be called concurrently.
class WarmPool {
 public:
  // `create` makes one warm sandbox of a profile; `destroy` disposes of one the pool no longer
  // keeps (at Stop).
  using CreateFn = std::function<Result<SandboxInfo>(const ProfileSettings&)>;
  using DestroyFn = std::function<void(const SandboxInfo&)>;
  WarmPool(std::vector<ProfileSettings> profiles, std::chrono::milliseconds refill_interval, CreateFn create,
           DestroyFn destroy);
  ~WarmPool();

  // Starts the refill thread when some profile keeps warm sandboxes.
  void Start();
  // Stops the refill thread and destroys every sandbox still in the pool.
  void Stop();

  // The oldest ready sandbox of the profile, taken out of the pool; nullopt when none is ready.
  std::optional<SandboxInfo> Take(const std::string& profile);
  // A sandbox taken but not used goes back to the front.
  void PutBack(const std::string& profile, SandboxInfo sandbox);
  int Count(const std::string& profile);
  // Ids of every sandbox in the pool (so a reconcile spares them).
  std::set<std::string> Ids();

 private:
  void Loop();

  const std::vector<ProfileSettings> profiles_;
  const std::chrono::milliseconds refill_interval_;
  CreateFn create_;
  DestroyFn destroy_;

  std::mutex mu_;
  std::condition_variable cv_;  // a sandbox was taken, or the pool stops
  std::map<std::string, std::deque<SandboxInfo>> pools_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace paddock
