// AgentService: validation and bookkeeping for agent definitions.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "paddock/session_store.h"

namespace paddock {

// A create (every required field set) or a partial update (only the set fields change).
struct AgentFields {
  std::optional<std::string> name;
  std::optional<std::string> harness;
  std::optional<std::string> model;
  std::optional<std::string> prompt;
  std::optional<EnvMap> env;
  std::optional<std::int64_t> run_timeout_seconds;
  // Outer: the field was sent; inner nullopt: null, back to the server's [sessions] idle_timeout.
  std::optional<std::optional<std::int64_t>> idle_timeout_seconds;
  std::optional<std::string> profile;
  std::optional<std::vector<SecretRef>> secrets;
};

class AgentService {
 public:
  // `profiles`: the configured sandbox profiles ([profiles.<name>]).
  AgentService(SessionStore& store, std::set<std::string, std::less<>> harnesses,
               std::set<std::string, std::less<>> profiles);

  // kInvalidArgument naming the field for a missing or out-of-range value; kPermissionDenied
  // for a profile the agent's team may not use.
  // In team `team_id` (the caller's).
  Result<Agent> Create(const AgentFields& fields, const std::string& team_id);
  Result<Agent> Get(const std::string& id);
  // team_id empty: every team's.
  Result<Page<Agent>> List(const std::string& team_id, const PageRequest& page);
  Result<Agent> Update(const std::string& id, const AgentFields& fields);
  Status Delete(const std::string& id);

 private:
  Status Validate(const Agent& agent) const;

  SessionStore& store_;
  std::set<std::string, std::less<>> harnesses_;
  std::set<std::string, std::less<>> profiles_;
};

}  // namespace paddock
