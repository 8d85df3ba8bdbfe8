#include "spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace paddock::plugins::sandbox_process {

Result<ExecResult> RunAndStream(ChildSpec spec, const RunLimits& limits,
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
