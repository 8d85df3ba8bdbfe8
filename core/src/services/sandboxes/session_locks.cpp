#include "services/sandboxes/session_locks.h"

#include <algorithm>
#include <iterator>

namespace paddock {

std::shared_ptr<std::mutex> SessionLocks::For(const std::string& session_id) {
  std::lock_guard lock(mu_);
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

}  // namespace paddock
