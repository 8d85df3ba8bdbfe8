#include "spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace paddock::plugins::sandbox_process {
namespace {

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// In the forked child: only async-signal-safe calls from here on.
[[noreturn]] void ExecChild(const SpawnSpec& spec, char* const* argv, char* const* envp, int devnull) {
  if (spec.new_process_group) setpgid(0, 0);
  dup2(devnull, 0);
  dup2(spec.stdout_fd >= 0 ? spec.stdout_fd : devnull, 1);
  dup2(spec.stderr_fd >= 0 ? spec.stderr_fd : devnull, 2);
  for (const auto& [from, to] : spec.extra_fds) {
    if (from == to) {
      int flags = fcntl(from, F_GETFD);
      fcntl(from, F_SETFD, flags & ~FD_CLOEXEC);
    } else {
      dup2(from, to);
    }
  }
  for (const auto& path : spec.join_cgroups) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) _exit(125);
    close(fd);
  }
  for (const auto& [resource, value] : spec.rlimits) {
    struct rlimit rl = {value, value};
    if (setrlimit(resource, &rl) != 0) _exit(125);
  }
  if (spec.drop_to) {
    if (setgroups(0, nullptr) != 0 || setgid(spec.drop_to->gid) != 0 || setuid(spec.drop_to->uid) != 0) {
      _exit(126);
    }
  }
  execve(argv[0], argv, envp);
  _exit(127);
}

}  // namespace

std::optional<std::string> FindExecutable(const std::string& name) {
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

Result<pid_t> Spawn(const SpawnSpec& spec) {
  if (spec.argv.empty()) return Status::InvalidArgument("empty argv");
  std::vector<char*> argv = CStrings(spec.argv);
  std::vector<char*> envp = CStrings(spec.env);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) return Status::Internal(std::string("open /dev/null: ") + strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(devnull);
    return Status::Unavailable(std::string("fork: ") + strerror(err));
  }
  if (pid == 0) {
    if (spec.detach) {
      setsid();
      pid_t grandchild = fork();
      if (grandchild != 0) _exit(grandchild < 0 ? 1 : 0);
    }
    ExecChild(spec, argv.data(), envp.data(), devnull);
  }
  close(devnull);
  if (spec.detach) {
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
      return Status::Unavailable("could not start " + spec.argv[0]);
    }
    return pid_t{0};
  }
  return pid;
}

Result<ExecResult> RunAndStream(SpawnSpec spec, const RunLimits& limits,
                                const std::function<void(ExecStream, std::string_view)>& on_output) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Status::Unavailable("pipe: " + std::string(strerror(errno)));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return Status::Unavailable("pipe: " + std::string(strerror(errno)));
  }
  spec.stdout_fd = out_pipe[1];
  spec.stderr_fd = err_pipe[1];
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
  using Clock = std::chrono::steady_clock;
  const auto deadline = limits.timeout.count() > 0 ? Clock::now() + limits.timeout : Clock::time_point::max();
  ExecResult result;
  bool exited = false;
  int wstatus = 0;
  std::optional<Clock::time_point> drain_until;  // after exit: read what is left, briefly
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  char buf[65536];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    int n = poll(fds, 2, 50);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2 && n > 0; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        on_output(i == 0 ? ExecStream::kStdout : ExecStream::kStderr,
                  std::string_view(buf, static_cast<size_t>(got)));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
    if (!exited && waitpid(pid, &wstatus, WNOHANG) == pid) {
      exited = true;
      // A background process may keep the pipes open; collect only what is already there.
      drain_until = Clock::now() + std::chrono::milliseconds(100);
    }
    if (drain_until && Clock::now() > *drain_until) break;
    if (!exited && !result.timed_out && !result.cancelled) {
      bool cancel = limits.cancelled && limits.cancelled();
      if (cancel || Clock::now() > deadline) {
        (cancel ? result.cancelled : result.timed_out) = true;
        kill(-pid, SIGKILL);
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
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

}  // namespace paddock::plugins::sandbox_process
