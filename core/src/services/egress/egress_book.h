// EgressBook: which session each sandbox's egress socket serves, so that a connection the
// proxy refused is recorded on the session it came from.
#pragma once

#include <map>
#include <mutex>
#include <string>

namespace paddock {

// Thread safety: every method may be called concurrently.
class EgressBook {
 public:
  void Serve(const std::string& egress_dir, const std::string& session_id) {
    if (egress_dir.empty()) return;
    std::lock_guard lock(mu_);
    sessions_[egress_dir] = session_id;
  }
  void Forget(const std::string& egress_dir) {
    std::lock_guard lock(mu_);
    sessions_.erase(egress_dir);
  }
  // The session the socket serves; "" when none (a warm sandbox, or one already gone).
  std::string SessionOf(const std::string& egress_dir) {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(egress_dir);
    return it == sessions_.end() ? std::string() : it->second;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> sessions_;  // egress dir -> session id
};

}  // namespace paddock
