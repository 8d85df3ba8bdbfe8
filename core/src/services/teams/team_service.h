// TeamService: teams and their API keys, with who may do what to them; and the one check of
// whether a resource named in a path is visible to a principal (another team's answers
// kNotFound, worded exactly as for an id that does not exist).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "paddock/session_store.h"
#include "services/teams/principal.h"

namespace paddock {

// What a {capture} of a route names, for the visibility check before its handler runs.
enum class Owner { kNone, kAgent, kSession, kKey, kTeam };

struct TeamPatch {
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> profiles;  // empty: every profile
  // Quotas by name (as QuotaLine::name) to a limit, or nullopt: back to the default. Those
  // not named are kept.
  std::vector<std::pair<std::string, std::optional<std::int64_t>>> quotas;
};

struct NewKeyRequest {
  std::string name;
  Role role = Role::kMember;
  std::string team_id;         // empty: the caller's team
  TimestampMs expires_at = 0;  // 0: never
};

// A key just made: the stored record and the key itself, which is shown this once.
struct CreatedKey {
  ApiKey record;
  std::string key;
};

class TeamService {
 public:
  explicit TeamService(SessionStore& store) : store_(store) {}

  // The team of the `owner` named `id`; kNotFound (as for a missing id) unless it is a team
  // `who` sees.
  Result<std::string> CheckVisible(const Principal& who, Owner owner, const std::string& id);

  // Operators only (the route says so): kInvalidArgument for a bad id or name.
  Result<Team> CreateTeam(const std::string& id, const std::string& name);
  // Operators only: replaces what is set. Each profile must be one of `configured`.
  Result<Team> UpdateTeam(const std::string& id, const TeamPatch& patch,
                          const std::set<std::string, std::less<>>& configured);
  Result<Team> GetTeam(const Principal& who, const std::string& id);
  Result<Page<Team>> ListTeams(const Principal& who, const PageRequest& page);

  // A team admin makes keys of its own team up to admin; an operator of any team and role.
  // kPermissionDenied otherwise; kNotFound for a team the caller does not see.
  Result<CreatedKey> CreateKey(const Principal& who, const NewKeyRequest& request);
  Result<ApiKey> GetKey(const Principal& who, const std::string& id);
  // team_filter: only operators may name a team other than their own.
  Result<Page<ApiKey>> ListKeys(const Principal& who, const std::string& team_filter,
                                const PageRequest& page);
  // Revokes at once, on every process. Revoking a revoked key is Ok.
  Result<ApiKey> RevokeKey(const Principal& who, const std::string& id);

 private:
  SessionStore& store_;
};

// kPermissionDenied unless `team` may use the sandbox profile `profile`.
Status CheckProfileAllowed(const Team& team, const std::string& profile);

// A team id: 1-64 of a-z, 0-9 and '-', starting with a letter (it names namespaces and labels).
bool IsTeamId(std::string_view id);

}  // namespace paddock
