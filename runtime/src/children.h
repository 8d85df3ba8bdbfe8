// Child processes of the runtime: the one place paddock-runtime starts them. A child gets
// stdin, stdout and stderr and no other descriptor. As PID 1 of the sandbox the runtime reaps every process
// that ends, its own children and orphans alike; a children table hands each exit status of a child we
// started to whoever waits for it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace paddock::runtime {

struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH
  std::vector<std::string> env;   // "NAME=value", the whole environment
  std::string cwd;
  int stdin_fd = -1;   // -1: /dev/null
  int stdout_fd = -1;  // -1: /dev/null
  int stderr_fd = -1;  // -1: /dev/null
};

// The outcome of a finished child: exit code, or 128 + signal for a killed one.
struct ExitStatus {
  int exit_code = -1;
  int signal = 0;
};

class Children {
 public:
  // Starts the reaper thread.
  static Children& Instance();

  // Starts a process in a session (and process group) of its own. Returns its pid, or an
  // errno value when it could not be started (ENOENT for an unknown program).
  std::pair<pid_t, int> Spawn(const SpawnRequest& request);

  // Waits until `pid` has ended or the timeout passes (nullopt then). Only for pids from Spawn.
  std::optional<ExitStatus> Wait(pid_t pid, std::chrono::milliseconds timeout);

  // Non-blocking: the status of an ended child, nullopt while it runs.
  std::optional<ExitStatus> Poll(pid_t pid);

  // A descriptor that becomes readable once `pid` has ended and its status is known (an
  // eventfd, close-on-exec, made on the first call, owned by the table until Forget). -1 for
  // an unknown pid or when no descriptor could be made.
  int ExitFd(pid_t pid);

  // Forgets a child that has ended and whose status was read, and closes its ExitFd.
  void Forget(pid_t pid);

  // Signals the whole process group of a child started by Spawn.
  static void SignalGroup(pid_t pid, int signal);

 private:
  Children();
  void ReapLoop();
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace paddock::runtime
