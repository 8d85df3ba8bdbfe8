// Resource limits for sandboxes through cgroups: v2 where the host has it, v1 otherwise.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock::plugins::sandbox_process {

enum class CgroupMode { kNone, kV1, kV2 };

class Cgroups {
 public:
  // Finds what the host offers; `none_reason` says why there is nothing (rlimits then).
  static Cgroups Detect();

  CgroupMode mode() const { return mode_; }
  std::string Label() const {
    return mode_ == CgroupMode::kV2 ? "cgroup v2" : mode_ == CgroupMode::kV1 ? "cgroup v1" : "none";
  }
  const std::string& none_reason() const { return none_reason_; }

  // Creates the sandbox's cgroup(s) with the limits; returns the cgroup.procs files a process
  // writes "0" to in order to join, and fills `in_force` with what is enforced.
  Result<std::vector<std::string>> Create(const std::string& id, const SandboxLimits& limits,
                                          std::vector<std::pair<std::string, std::string>>& in_force) const;

  // Removes the sandbox's cgroups (their processes must be gone). Idempotent.
  void Remove(const std::string& id) const;

  // How many processes the kernel killed for the sandbox's memory limit so far.
  long OomKills(const std::string& id) const;

 private:
  CgroupMode mode_ = CgroupMode::kNone;
  std::string none_reason_;
  std::string v2_parent_;                                        // cgroup dir holding sandboxes
  std::vector<std::pair<std::string, std::string>> v1_parents_;  // controller -> dir
};

}  // namespace paddock::plugins::sandbox_process
