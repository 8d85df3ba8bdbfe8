// Starting host processes: fork/exec with an explicit environment, optional privilege drop,
// and streamed, time-limited output collection.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock::plugins::sandbox_process {

struct Credentials {
  uid_t uid;
  gid_t gid;
};

struct SpawnSpec {
  std::vector<std::string> argv;                       // argv[0] is an absolute path
  std::vector<std::string> env;                        // "NAME=value", the whole environment
  std::optional<Credentials> drop_to;                  // setgroups/setgid/setuid before exec
  int stdout_fd = -1;                                  // -1: /dev/null
  int stderr_fd = -1;                                  // -1: /dev/null
  std::vector<std::pair<int, int>> extra_fds;          // (fd in parent, fd number in child)
  bool new_process_group = true;                       // so the whole tree can be signalled
  bool detach = false;                                 // double-fork: the child is not ours to reap
  std::vector<std::string> join_cgroups;               // cgroup.procs files the child joins before exec
  std::vector<std::pair<int, unsigned long>> rlimits;  // (RLIMIT_*, value) set before exec
};

// Starts the process and returns its pid (for detach: 0, the grandchild is not reported).
Result<pid_t> Spawn(const SpawnSpec& spec);

struct RunLimits {
  std::chrono::milliseconds timeout{0};  // 0: none
  std::function<bool()> cancelled;       // polled every 100 ms; may be empty
};

// Runs `spec` to completion, passing output chunks to `on_output` as they arrive. On timeout
// or cancellation the whole process group is killed.
Result<ExecResult> RunAndStream(SpawnSpec spec, const RunLimits& limits,
                                const std::function<void(ExecStream, std::string_view)>& on_output);

// Absolute path of `name` searched in $PATH (or `name` itself when it contains a slash).
std::optional<std::string> FindExecutable(const std::string& name);

}  // namespace paddock::plugins::sandbox_process
