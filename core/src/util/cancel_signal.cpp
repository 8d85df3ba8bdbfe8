#include "util/cancel_signal.h"

namespace paddock {

void CancelSignal::Set() {
  std::lock_guard lock(mu_);
  if (set_) return;
  set_ = true;
  for (auto& [id, fn] : subs_) fn();
  subs_.clear();
}

CancelSignal::Id CancelSignal::Subscribe(std::function<void()> fn) const {
  std::lock_guard lock(mu_);
  const Id id = next_++;
  if (set_) {
    fn();
  } else {
    subs_.emplace(id, std::move(fn));
  }
  return id;
}

void CancelSignal::Unsubscribe(Id id) const {
  std::lock_guard lock(mu_);
  subs_.erase(id);
}

}  // namespace paddock
