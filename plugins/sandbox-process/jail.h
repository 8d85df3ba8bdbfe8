// One bubblewrap jail: a long-lived init in fresh user, pid, mount, ipc, uts, network and
// cgroup namespaces, into which commands are started with nsenter.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "paddock/status.h"
#include "paddock/types.h"
#include "spawn.h"

namespace paddock::plugins::sandbox_process {

struct JailOptions {
  std::string bwrap;                  // absolute path
  std::string nsenter;                // absolute path
  std::vector<std::string> ro_binds;  // host paths mounted read-only at the same place
  std::string hostname = "sandbox";
  uid_t sandbox_uid = 1000;  // uid/gid seen inside
  gid_t sandbox_gid = 1000;
  std::optional<Credentials> host_creds;  // host uid/gid the jail runs as (when we are root)
  std::int64_t start_timeout_ms = 10000;
};

// What identifies a running jail on the host: the pid of its init and that process's start
// time, so that a recycled pid is never mistaken for the jail.
struct JailProcess {
  pid_t pid = 0;
  std::uint64_t start_time = 0;
};

// Starts a jail with `workspace` mounted read-write at /workspace. bwrap's stderr goes to
// `log_path`. Returns once commands can be started in it.
Result<JailProcess> StartJail(const JailOptions& options, const std::string& workspace,
                              const std::string& log_path);

// True when the jail's init is still the process it was.
bool JailAlive(const JailProcess& jail);

// Kills every process of the jail (its pid namespace dies with its init) and waits briefly
// for it to go away.
Status KillJail(const JailProcess& jail);

// The argv that runs `request` inside the jail through nsenter.
std::vector<std::string> JailExecArgv(const JailOptions& options, const JailProcess& jail,
                                      const ExecRequest& request);

// Start time of `pid` from /proc (clock ticks since boot), or nullopt when it does not exist.
std::optional<std::uint64_t> ProcessStartTime(pid_t pid);

}  // namespace paddock::plugins::sandbox_process
