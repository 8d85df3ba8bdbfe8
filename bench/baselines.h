// Baselines measured next to Paddock's figures in the same run, and small statistics helpers.
// The bare bwrap and fork/exec baselines fork and exec by hand on purpose: they measure the
// system calls alone, without paddock::process::Spawn's descriptor arrangement.
#pragma once

#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

inline double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Resident memory of a process, from /proc.
inline double RssMiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

inline double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

// One bare bubblewrap start with the namespaces the process provider uses, running `true`,
// as the unprivileged uid the provider drops to when run as root.
// Spare workspace images sandbox.process holds ready under a provider data directory.
inline int SpareImages(const std::string& provider_dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& size : std::filesystem::directory_iterator(provider_dir + "/spare", ec)) {
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(size.path(), ec)) ++n;
  }
  return n;
}

inline double BareBwrap(const std::string& workspace) {
  std::vector<std::string> args = {"/usr/bin/bwrap",
                                   "--unshare-user",
                                   "--unshare-pid",
                                   "--unshare-ipc",
                                   "--unshare-uts",
                                   "--unshare-net",
                                   "--unshare-cgroup-try",
                                   "--uid",
                                   "1000",
                                   "--gid",
                                   "1000",
                                   "--ro-bind",
                                   "/usr",
                                   "/usr",
                                   "--symlink",
                                   "usr/bin",
                                   "/bin",
                                   "--symlink",
                                   "usr/lib",
                                   "/lib",
                                   "--symlink",
                                   "usr/lib64",
                                   "/lib64",
                                   "--proc",
                                   "/proc",
                                   "--dev",
                                   "/dev",
                                   "--tmpfs",
                                   "/tmp",
                                   "--bind",
                                   workspace,
                                   "/workspace",
                                   "--clearenv",
                                   "--",
                                   "/bin/true"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  auto start = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    if (geteuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
      _exit(126);
    execve(argv[0], argv.data(), envp);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "bwrap baseline failed (status %d)\n", status);
    std::exit(1);
  }
  return Ms(Clock::now() - start);
}

// A bare fork/exec of /bin/true, waited for.
inline double BareForkExec() {
  auto start = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    char* envp[] = {nullptr};
    execve(argv[0], argv, envp);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return Ms(Clock::now() - start);
}

// Proportional set size of a process (shared pages divided among their users), in MiB.
inline double PssMiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Pss:", 0) == 0) return std::stod(line.substr(4)) / 1024.0;
  }
  return 0;
}

}  // namespace
