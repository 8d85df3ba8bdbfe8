#include "children.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace paddock::runtime {

struct Children::State {
  std::mutex mu;
  std::condition_variable changed;  // a child ended, or one was started (wakes the reaper)
  struct Child {
    std::optional<ExitStatus> status;
    int exit_fd = -1;  // written once the status is set
  };
  std::map<pid_t, Child> table;
};

Children& Children::Instance() {
  static Children* children = new Children();  // lives as long as the process
  return *children;
}

Children::Children() : state_(std::make_unique<State>()) {
  std::thread([this] { ReapLoop(); }).detach();
}

void Children::ReapLoop() {
  for (;;) {
    int wstatus = 0;
    pid_t pid = waitpid(-1, &wstatus, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      // ECHILD: nothing to wait for until a child is started.
      std::unique_lock lock(state_->mu);
      state_->changed.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    ExitStatus status;
    if (WIFEXITED(wstatus)) {
      status.exit_code = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
      status.signal = WTERMSIG(wstatus);
      status.exit_code = 128 + status.signal;
    }
    std::lock_guard lock(state_->mu);
    auto it = state_->table.find(pid);
    if (it != state_->table.end()) {  // else an orphan that was reparented to us
      it->second.status = status;
      if (it->second.exit_fd >= 0) (void)eventfd_write(it->second.exit_fd, 1);
      state_->changed.notify_all();
    }
  }
}

std::pair<pid_t, int> Children::Spawn(const SpawnRequest& request) {
  std::vector<char*> argv;
  for (const auto& a : request.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : request.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  auto redirect = [&](int fd, int target, int flags) {
    if (fd >= 0) {
      posix_spawn_file_actions_adddup2(&actions, fd, target);
    } else {
      posix_spawn_file_actions_addopen(&actions, target, "/dev/null", flags, 0);
    }
  };
  redirect(request.stdin_fd, 0, O_RDONLY);
  redirect(request.stdout_fd, 1, O_WRONLY);
  redirect(request.stderr_fd, 2, O_WRONLY);
  // Nothing but 0, 1 and 2: not the runtime's listener, its connections, the egress socket,
  // the token or ready pipes, nor the pipes of other commands, whatever their flags.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (!request.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, request.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = 0;
  int err = 0;
  {
    // Held across the spawn so that the reaper cannot see the child end before it is known.
    std::lock_guard lock(state_->mu);
    err = posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
    if (err == 0) state_->table[pid] = State::Child{};
  }
  state_->changed.notify_all();
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) return {0, err};
  return {pid, 0};
}

std::optional<ExitStatus> Children::Wait(pid_t pid, std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  auto ended = [&] {
    auto it = state_->table.find(pid);
    return it == state_->table.end() || it->second.status.has_value();
  };
  if (!state_->changed.wait_for(lock, timeout, ended)) return std::nullopt;
  auto it = state_->table.find(pid);
  if (it == state_->table.end()) return ExitStatus{};
  return it->second.status;
}

std::optional<ExitStatus> Children::Poll(pid_t pid) {
  std::lock_guard lock(state_->mu);
  auto it = state_->table.find(pid);
  if (it == state_->table.end()) return ExitStatus{};
  return it->second.status;
}

int Children::ExitFd(pid_t pid) {
  std::lock_guard lock(state_->mu);
  auto it = state_->table.find(pid);
  if (it == state_->table.end()) return -1;
  State::Child& child = it->second;
  if (child.exit_fd < 0) {
    // Made on first use, so background processes, whose entries stay, hold no descriptor.
    child.exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (child.exit_fd >= 0 && child.status) (void)eventfd_write(child.exit_fd, 1);
  }
  return child.exit_fd;
}

void Children::Forget(pid_t pid) {
  std::lock_guard lock(state_->mu);
  auto it = state_->table.find(pid);
  if (it == state_->table.end()) return;
  if (it->second.exit_fd >= 0) close(it->second.exit_fd);
  state_->table.erase(it);
}

void Children::SignalGroup(pid_t pid, int signal) {
  if (pid > 0) kill(-pid, signal);
}

}  // namespace paddock::runtime
