// One bubblewrap jail: paddock-runtime as PID 1 in fresh user, pid, mount, ipc, uts, network and
// cgroup namespaces, serving its API on a unix socket that the host reaches through a bind
// mount.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "paddock/hardening.h"
#include "paddock/status.h"
#include "paddock/types.h"
#include "spawn.h"

namespace paddock::plugins::sandbox_process {

struct JailOptions {
  std::string bwrap;                  // absolute path
  std::string runtime;                // absolute path of paddock-runtime on the host
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

// What differs between jails.
struct JailSpec {
  std::string workspace;   // host dir mounted read-write at /workspace
  std::string run_dir;     // host dir mounted at /run/paddock; the runtime's socket goes there
  std::string egress_dir;  // host dir with the proxy's egress.sock, mounted read-only; may be empty
  int egress_port = 3128;
  bool host_network = false;
  std::int64_t tmp_bytes = 0;           // size of the /tmp tmpfs; 0: the kernel's default
  std::string token;                    // the runtime's bearer token, passed through a pipe
  std::vector<SandboxMount> ro_mounts;  // host dirs seen read-only inside
  std::vector<std::string> join_cgroups;
  std::vector<std::pair<int, unsigned long>> rlimits;
  // The syscall filter (installed by bwrap right before it starts the runtime) and, with it,
  // no nested user namespaces.
  SandboxHardening hardening;
  // Extra host dirs seen read-write inside (after the fixed mounts).
  std::vector<SandboxMount> rw_mounts;
  // When set, the runtime's arguments instead of the defaults (listen on run_dir's socket,
  // token from a pipe); they must include --ready-fd 4.
  std::vector<std::string> runtime_args;
};

// Starts a jail. bwrap's and the runtime's stderr go to `log_path`. Returns once the runtime
// listens on run_dir/runtime.sock.
Result<JailProcess> StartJail(const JailOptions& options, const JailSpec& spec, const std::string& log_path);

// True when the jail's init is still the process it was.
bool JailAlive(const JailProcess& jail);

// Kills every process of the jail (its pid namespace dies with its init) and waits briefly
// for it to go away.
Status KillJail(const JailProcess& jail);

// Start time of `pid` from /proc (clock ticks since boot), or nullopt when it does not exist.
std::optional<std::uint64_t> ProcessStartTime(pid_t pid);

}  // namespace paddock::plugins::sandbox_process
