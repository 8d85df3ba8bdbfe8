#include "services/sandboxes/warm_pool.h"

#include <algorithm>

#include "util/log.h"

namespace paddock {

WarmPool::WarmPool(std::vector<ProfileSettings> profiles, std::chrono::milliseconds refill_interval,
                   CreateFn create, DestroyFn destroy)
    : profiles_(std::move(profiles)),
      refill_interval_(refill_interval),
      create_(std::move(create)),
      destroy_(std::move(destroy)) {}

WarmPool::~WarmPool() { Stop(); }

void WarmPool::Start() {
  const bool any =
      std::any_of(profiles_.begin(), profiles_.end(), [](const ProfileSettings& p) { return p.warm > 0; });
  if (!any || thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void WarmPool::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::map<std::string, std::deque<SandboxInfo>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(pools_);
  }
  for (auto& [profile, pool] : left) {
    for (const SandboxInfo& info : pool) destroy_(info);
  }
}

std::optional<SandboxInfo> WarmPool::Take(const std::string& profile) {
  std::optional<SandboxInfo> out;
  {
    std::lock_guard lock(mu_);
    auto& pool = pools_[profile];
    if (pool.empty()) return std::nullopt;
    out = std::move(pool.front());
    pool.pop_front();
  }
  cv_.notify_all();
  return out;
}

void WarmPool::PutBack(const std::string& profile, SandboxInfo sandbox) {
  std::lock_guard lock(mu_);
  pools_[profile].push_front(std::move(sandbox));
}

int WarmPool::Count(const std::string& profile) {
  std::lock_guard lock(mu_);
  auto it = pools_.find(profile);
  return it == pools_.end() ? 0 : static_cast<int>(it->second.size());
}

std::set<std::string> WarmPool::Ids() {
  std::set<std::string> out;
  std::lock_guard lock(mu_);
  for (const auto& [profile, pool] : pools_) {
    for (const SandboxInfo& s : pool) out.insert(s.id);
  }
  return out;
}

void WarmPool::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    bool created_any = false;
    for (const ProfileSettings& profile : profiles_) {
      if (stopping_) return;
      if (profile.warm <= 0 || static_cast<int>(pools_[profile.name].size()) >= profile.warm) continue;
      lock.unlock();
      Result<SandboxInfo> created = create_(profile);
      lock.lock();
      if (!created.ok()) {
        LogWarn("warm pool '" + profile.name + "': " + created.status().ToString());
        continue;
      }
      created_any = true;
      pools_[profile.name].push_back(*created);
    }
    // A full pool waits to be taken from; a failing one retries after the interval.
    if (!created_any) cv_.wait_for(lock, refill_interval_);
  }
}

}  // namespace paddock
