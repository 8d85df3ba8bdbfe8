// Starting child processes, and running one to completion with its output streamed
// (RunAndStream): the one place the server, its plugins and the test programs fork
// and exec (paddock-runtime has its own, runtime/src/children.cpp). A child gets exactly the
// descriptors its ChildSpec names, at the numbers it names; every other descriptor of this
// process is closed in the child before exec (close_range), whatever its close-on-exec flag
// says, so nothing the rest of the process opened (listening sockets, connections, the store,
// pipes of other children) can reach the child.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock::process {

struct Credentials {
  uid_t uid;
  gid_t gid;
};

struct ChildSpec {
  std::vector<std::string> argv;  // argv[0] is an absolute path (FindExecutable)
  std::vector<std::string> env;   // "NAME=value", the whole environment
  std::string cwd;                // empty: this process's
  // (descriptor here, number in the child). 0, 1 and 2 not named are /dev/null; nothing else
  // is open in the child.
  std::vector<std::pair<int, int>> fds;
  bool new_process_group = true;                       // so the whole tree can be signalled
  bool detach = false;                                 // double fork: the child is not ours to reap
  std::optional<Credentials> drop_to;                  // setgroups/setgid/setuid before exec
  std::vector<std::string> join_cgroups;               // cgroup.procs files the child joins before exec
  std::vector<std::pair<int, unsigned long>> rlimits;  // (RLIMIT_*, value) set before exec
};

// Absolute path of `name` searched in $PATH (or `name` itself when it contains a slash).
inline std::optional<std::string> FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) == 0) return name;
    return std::nullopt;
  }
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

namespace detail {

// Closes [first, last] in the child. close_range(2) where the kernel has it, else one by one.
inline void CloseRange(int first, int last) {
  if (first > last) return;
  if (syscall(SYS_close_range, static_cast<unsigned>(first), static_cast<unsigned>(last), 0u) == 0) return;
  struct rlimit rl {};
  int top = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < INT_MAX
                ? static_cast<int>(rl.rlim_cur) - 1
                : 65535;
  for (int fd = first; fd <= std::min(last, top); ++fd) close(fd);
}

// Tells the parent why the child could not exec, then ends it.
[[noreturn]] inline void ChildFail(int report_fd, int stage) {
  int why[2] = {stage, errno};
  (void)!write(report_fd, why, sizeof why);
  _exit(127);
}

// Everything the child does between fork and exec; only async-signal-safe calls. `moved` has
// room for one descriptor per spec.fds entry.
[[noreturn]] inline void ExecChild(const ChildSpec& spec, char* const* argv, char* const* envp, int devnull,
                                   int report_fd, int* moved, rlim_t child_nofile) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);  // fails harmlessly for KILL/STOP
  if (spec.new_process_group) setpgid(0, 0);
  // Move every descriptor out of the way of the numbers the child gets, then put each at its
  // number (dup2 gives the copy no close-on-exec flag) and close everything else.
  int top = 2;
  for (const auto& [from, to] : spec.fds) top = std::max(top, to);
  const int floor = top + 1;
  int report = fcntl(report_fd, F_DUPFD_CLOEXEC, floor);
  if (report < 0) _exit(127);
  int null_fd = fcntl(devnull, F_DUPFD_CLOEXEC, floor);
  if (null_fd < 0) ChildFail(report, 1);
  for (size_t i = 0; i < spec.fds.size(); ++i) {
    moved[i] = fcntl(spec.fds[i].first, F_DUPFD_CLOEXEC, floor);
    if (moved[i] < 0) ChildFail(report, 1);
  }
  for (int n = 0; n <= top; ++n) {
    int source = n <= 2 ? null_fd : -1;
    for (size_t i = 0; i < spec.fds.size(); ++i) {
      if (spec.fds[i].second == n) source = moved[i];
    }
    if (source >= 0) {
      if (dup2(source, n) < 0) ChildFail(report, 1);
    } else {
      close(n);
    }
  }
  // Everything above the child's numbers but the report pipe (close-on-exec: it closes when
  // exec succeeds).
  CloseRange(floor, report - 1);
  CloseRange(report + 1, INT_MAX);
  for (const auto& path : spec.join_cgroups) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) ChildFail(report, 2);
    close(fd);
  }
  if (child_nofile > 0) {  // the limit the server started with (it raised its own)
    struct rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > child_nofile) {
      rl.rlim_cur = child_nofile;
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0) ChildFail(report, 3);
    }
  }
  for (const auto& [resource, value] : spec.rlimits) {
    struct rlimit rl = {value, value};
    if (setrlimit(resource, &rl) != 0) ChildFail(report, 3);
  }
  if (spec.drop_to) {
    if (setgroups(0, nullptr) != 0 || setgid(spec.drop_to->gid) != 0 || setuid(spec.drop_to->uid) != 0) {
      ChildFail(report, 4);
    }
  }
  if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) ChildFail(report, 5);
  execve(argv[0], argv, envp);
  ChildFail(report, 6);
}

inline std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace detail

// Starts the process and returns its pid (for detach: 0, the grandchild is not reported).
// Fails with the reason when the child could not be set up or its program not executed.
inline Result<pid_t> Spawn(const ChildSpec& spec) {
  if (spec.argv.empty()) return Status::InvalidArgument("empty argv");
  for (const auto& [from, to] : spec.fds) {
    if (from < 0 || to < 0) return Status::InvalidArgument("descriptor numbers must not be negative");
  }
  std::vector<char*> argv = detail::CStrings(spec.argv);
  std::vector<char*> envp = detail::CStrings(spec.env);
  std::vector<int> moved(spec.fds.size() + 1);  // filled in the child: no allocation after fork
  // A server that raised its own open-files limit records the one children get (main.cpp).
  rlim_t child_nofile = 0;
  if (const char* v = getenv("PADDOCK_CHILD_NOFILE"))
    child_nofile = static_cast<rlim_t>(strtoull(v, nullptr, 10));
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) return Status::Internal(std::string("open /dev/null: ") + strerror(errno));
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    int err = errno;
    close(devnull);
    return Status::Unavailable(std::string("pipe: ") + strerror(err));
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(report[0]);
    if (spec.detach) {
      setsid();
      pid_t grandchild = fork();
      if (grandchild < 0) detail::ChildFail(report[1], 0);
      if (grandchild != 0) _exit(0);
    }
    detail::ExecChild(spec, argv.data(), envp.data(), devnull, report[1], moved.data(), child_nofile);
  }
  int fork_errno = errno;
  close(devnull);
  close(report[1]);
  if (pid < 0) {
    close(report[0]);
    return Status::Unavailable(std::string("fork: ") + strerror(fork_errno));
  }
  if (spec.detach) {
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
  }
  // EOF: the program runs (the pipe closed on exec). Otherwise the stage and errno.
  int why[2] = {0, 0};
  ssize_t got;
  while ((got = read(report[0], why, sizeof why)) < 0 && errno == EINTR) {
  }
  close(report[0]);
  if (got == static_cast<ssize_t>(sizeof why)) {
    if (!spec.detach) {
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    static constexpr const char* kStage[] = {
        "fork", "arrange descriptors", "join cgroup", "set rlimit", "drop privileges", "chdir", "exec"};
    const char* stage = why[0] >= 0 && why[0] <= 6 ? kStage[why[0]] : "start";
    std::string message = spec.argv[0] + ": " + stage + ": " + strerror(why[1]);
    if (why[0] == 6 && why[1] == ENOENT) return Status::NotFound(message);
    return Status::Unavailable(message);
  }
  return spec.detach ? pid_t{0} : pid;
}

struct RunLimits {
  std::chrono::milliseconds timeout{0};  // 0: none
  // Becomes readable (say, an eventfd written to) to cancel; -1: none. Only a descriptor above
  // 2 counts: `{timeout, {}}` would otherwise make stdin one.
  int cancel_fd = -1;
};

// Runs `spec` to completion (its stdout and stderr are pipes; whatever `spec.fds` names for 1
// and 2 is replaced), passing output chunks to `on_output` as they arrive. On timeout or
// cancellation the whole process group is killed. It waits on events only — output, the
// child's exit (a pidfd), cancel_fd, the deadline — never on a fixed slice (except on a kernel
// without pidfds, where a child that exits leaving its pipes to a background process is seen
// within 50 ms).
inline Result<ExecResult> RunAndStream(ChildSpec spec, const RunLimits& limits,
                                       const std::function<void(ExecStream, std::string_view)>& on_output) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Status::Unavailable("pipe: " + std::string(strerror(errno)));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return Status::Unavailable("pipe: " + std::string(strerror(errno)));
  }
  std::erase_if(spec.fds, [](const auto& f) { return f.second == 1 || f.second == 2; });
  spec.fds.insert(spec.fds.end(), {{out_pipe[1], 1}, {err_pipe[1], 2}});
  spec.new_process_group = true;
  spec.detach = false;
  Result<pid_t> spawned = Spawn(spec);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (!spawned.ok()) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return spawned.status();
  }
  const pid_t pid = *spawned;
  // Readable once the child has exited; pidfds are close-on-exec from birth. -1 before Linux 5.3.
  const int exit_fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  using Clock = std::chrono::steady_clock;
  const auto deadline = limits.timeout.count() > 0 ? Clock::now() + limits.timeout : Clock::time_point::max();
  ExecResult result;
  bool exited = false;
  int wstatus = 0;
  std::optional<Clock::time_point> drain_until;  // after exit: read what is left, briefly
  int pipes[2] = {out_pipe[0], err_pipe[0]};
  char buf[65536];
  while (pipes[0] >= 0 || pipes[1] >= 0) {
    const bool waiting = !exited && !result.timed_out && !result.cancelled;
    Clock::time_point wake = drain_until.value_or(waiting ? deadline : Clock::time_point::max());
    int wait_ms = -1;
    if (wake != Clock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
      wait_ms = static_cast<int>(std::clamp<std::int64_t>(left, 0, 1 << 30));
    }
    if (exit_fd < 0 && !exited && (wait_ms < 0 || wait_ms > 50)) wait_ms = 50;
    pollfd fds[4] = {{pipes[0], POLLIN, 0},
                     {pipes[1], POLLIN, 0},
                     {exited ? -1 : exit_fd, POLLIN, 0},
                     {waiting && limits.cancel_fd > 2 ? limits.cancel_fd : -1, POLLIN, 0}};
    int n = poll(fds, 4, wait_ms);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2 && n > 0; ++i) {
      if (pipes[i] < 0 || fds[i].revents == 0) continue;
      ssize_t got = read(pipes[i], buf, sizeof buf);
      if (got > 0) {
        on_output(i == 0 ? ExecStream::kStdout : ExecStream::kStderr,
                  std::string_view(buf, static_cast<size_t>(got)));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(pipes[i]);
        pipes[i] = -1;
      }
    }
    if (!exited && (exit_fd < 0 || fds[2].revents != 0) && waitpid(pid, &wstatus, WNOHANG) == pid) {
      exited = true;
      // A background process may keep the pipes open; collect only what is already there.
      drain_until = Clock::now() + std::chrono::milliseconds(100);
    }
    if (drain_until && Clock::now() > *drain_until) break;
    if (!exited && !result.timed_out && !result.cancelled) {
      const bool cancel = fds[3].fd >= 0 && fds[3].revents != 0;
      if (cancel || Clock::now() >= deadline) {
        (cancel ? result.cancelled : result.timed_out) = true;
        kill(-pid, SIGKILL);
      }
    }
  }
  for (int fd : pipes) {
    if (fd >= 0) close(fd);
  }
  if (exit_fd >= 0) close(exit_fd);
  if (!exited) {
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
  }
  if (WIFEXITED(wstatus)) {
    result.exit_code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    result.exit_code = 128 + WTERMSIG(wstatus);
  }
  return result;
}

}  // namespace paddock::process
