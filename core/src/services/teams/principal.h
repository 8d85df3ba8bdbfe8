// Principal: who a request is, as its API key says: the key, its team and its role.
#pragma once

#include <string>
#include <string_view>

#include "paddock/types.h"

namespace paddock {

struct Principal {
  std::string key_id;
  std::string key_name;
  std::string team_id;
  Role role = Role::kViewer;

  bool IsOperator() const { return role == Role::kOperator; }
  // Whether resources of `team` are visible to this key (operators see every team's).
  bool Sees(std::string_view team) const { return IsOperator() || team == team_id; }
  // The team a list is restricted to: "" (every team) for operators.
  std::string ListTeam() const { return IsOperator() ? std::string() : team_id; }
  // Whether the role is at least `least`.
  bool AtLeast(Role least) const { return static_cast<int>(role) >= static_cast<int>(least); }
};

}  // namespace paddock
