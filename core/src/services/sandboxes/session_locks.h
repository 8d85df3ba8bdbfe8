// SessionLocks: one mutex per session, so that whatever binds, suspends, releases or reconciles
// a session's sandbox does it one at a time, while other sessions go on.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace paddock {

// Thread safety: For may be called concurrently.
class SessionLocks {
 public:
  // The session's mutex; it lives as long as someone holds the pointer.
  std::shared_ptr<std::mutex> For(const std::string& session_id);

 private:
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<std::mutex>> locks_;
  size_t prune_at_ = 64;  // sweep expired entries when the map reaches this size
};

}  // namespace paddock
