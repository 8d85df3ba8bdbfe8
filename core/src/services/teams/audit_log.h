// AuditLog: who did what, from where, in which request, and how it ended: every create, change
// and delete through the API, every refused authentication or role, and a key's first use from
// an address. Entries are appended to the store and never changed; those older than
// [auth] audit_retention are pruned (at most once an hour, on an append).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "paddock/session_store.h"
#include "services/teams/principal.h"

namespace paddock {

class AuditLog {
 public:
  // retention 0: keep every entry.
  AuditLog(SessionStore& store, std::chrono::milliseconds retention);

  // Appends `event` (its `at` set now). A store that cannot take it is logged, never thrown at
  // the request: the change it describes has happened either way.
  void Record(AuditEvent event);
  // Records "key.new_address" the first time this process sees `who`'s key from `source`.
  void KeyUsed(const Principal& who, const std::string& source, const std::string& request_id);

  // A team admin reads its team's entries; an operator every team's (or `team_filter`'s).
  Result<Page<AuditEvent>> List(const Principal& who, const std::string& team_filter,
                                const PageRequest& page);

 private:
  SessionStore& store_;
  std::chrono::milliseconds retention_;
  std::mutex mu_;
  std::set<std::pair<std::string, std::string>> seen_;  // (key id, address) used from
  std::chrono::steady_clock::time_point pruned_{};
};

}  // namespace paddock
