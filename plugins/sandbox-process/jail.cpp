#include "jail.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "syscall_filter.h"

namespace paddock::plugins::sandbox_process {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The top-level directories that are symlinks into /usr on a merged-/usr system.
constexpr const char* kTopLevelDirs[] = {"/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"};

std::vector<std::string> BwrapArgv(const JailOptions& o, const JailSpec& j) {
  std::vector<std::string> a = {o.bwrap,
                                "--unshare-user",
                                "--unshare-pid",
                                "--unshare-ipc",
                                "--unshare-uts",
                                "--unshare-cgroup-try",
                                "--as-pid-1",
                                "--uid",
                                std::to_string(o.sandbox_uid),
                                "--gid",
                                std::to_string(o.sandbox_gid),
                                "--hostname",
                                o.hostname,
                                "--new-session",
                                "--info-fd",
                                "3"};
  if (!j.host_network) a.push_back("--unshare-net");
  if (j.hardening.seccomp) a.insert(a.end(), {"--disable-userns", "--seccomp", "6"});
  for (const auto& path : o.ro_binds) {
    a.insert(a.end(), {"--ro-bind-try", path, path});
  }
  for (const char* dir : kTopLevelDirs) {
    std::error_code ec;
    if (fs::is_symlink(dir, ec)) {
      a.insert(a.end(), {"--symlink", fs::read_symlink(dir, ec).string(), dir});
    } else if (fs::is_directory(dir, ec)) {
      a.insert(a.end(), {"--ro-bind", dir, dir});
    }
  }
  a.insert(a.end(), {"--proc", "/proc", "--dev", "/dev"});
  if (j.tmp_bytes > 0) a.insert(a.end(), {"--size", std::to_string(j.tmp_bytes)});
  a.insert(a.end(), {"--tmpfs", "/tmp"});
  // The agent's home: scratch like /tmp (it dies with the sandbox; snapshots carry what matters).
  if (j.tmp_bytes > 0) a.insert(a.end(), {"--size", std::to_string(j.tmp_bytes)});
  a.insert(a.end(), {"--tmpfs", "/home", "--dir", "/home/paddock", "--bind", j.workspace, "/workspace",
                     "--bind", j.run_dir, "/run/paddock", "--ro-bind", o.runtime, "/run/paddock-runtime"});
  if (!j.egress_dir.empty()) {
    a.insert(a.end(), {"--ro-bind", j.egress_dir, "/run/paddock-egress"});
    // The vault's trust bundle is the sandbox's system trust store (OpenSSL, GnuTLS and the
    // rest read it there without being told).
    std::error_code ec;
    const std::string bundle = j.egress_dir + "/" + kEgressCaBundle;
    if (fs::is_regular_file(bundle, ec) && fs::exists("/etc/ssl/certs/ca-certificates.crt", ec)) {
      a.insert(a.end(), {"--ro-bind", bundle, "/etc/ssl/certs/ca-certificates.crt"});
    }
  }
  for (const SandboxMount& m : j.ro_mounts) a.insert(a.end(), {"--ro-bind", m.host_path, m.sandbox_path});
  for (const SandboxMount& m : j.rw_mounts) a.insert(a.end(), {"--bind", m.host_path, m.sandbox_path});
  if (!j.runtime_args.empty()) {
    a.insert(a.end(), {"--chdir", "/workspace", "--clearenv", "--setenv", "PATH",
                       "/usr/local/bin:/usr/bin:/bin", "--cap-drop", "ALL", "--", "/run/paddock-runtime"});
    a.insert(a.end(), j.runtime_args.begin(), j.runtime_args.end());
    return a;
  }
  a.insert(a.end(), {"--chdir",    "/workspace",
                     "--clearenv", "--setenv",
                     "PATH",       "/usr/local/bin:/usr/bin:/bin",
                     "--cap-drop", "ALL",
                     "--",         "/run/paddock-runtime",
                     "--listen",   "unix:/run/paddock/runtime.sock",
                     "--token-fd", "5",
                     "--ready-fd", "4",
                     "--cwd",      "/workspace",
                     "--root",     "/workspace",
                     "--root",     "/home/paddock",
                     "--root",     "/tmp",
                     "--env",      "HOME=/home/paddock",
                     "--env",      "PATH=/usr/local/bin:/usr/bin:/bin"});
  if (!j.egress_dir.empty()) {
    a.insert(a.end(), {"--egress-socket", "/run/paddock-egress/egress.sock", "--egress-port",
                       std::to_string(j.egress_port)});
  }
  return a;
}

// Reads from `fd` until `done(text)` or the deadline; returns what was read.
std::string ReadUntil(int fd, Clock::time_point deadline, bool (*done)(const std::string&)) {
  std::string text;
  char buf[4096];
  while (!done(text)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ssize_t got = read(fd, buf, sizeof buf);
    if (got <= 0) break;
    text.append(buf, static_cast<size_t>(got));
  }
  return text;
}

std::optional<pid_t> ParseChildPid(const std::string& info) {
  auto key = info.find("\"child-pid\"");
  if (key == std::string::npos) return std::nullopt;
  auto colon = info.find(':', key);
  if (colon == std::string::npos) return std::nullopt;
  char* end = nullptr;
  long v = std::strtol(info.c_str() + colon + 1, &end, 10);
  if (end == info.c_str() + colon + 1 || v <= 0) return std::nullopt;
  return static_cast<pid_t>(v);
}

std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > 400) s = s.substr(s.size() - 400);
  return s;
}

}  // namespace

std::optional<std::uint64_t> ProcessStartTime(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close_paren + 2));
  std::string field;
  if (stat.size() > close_paren + 2 && (stat[close_paren + 2] == 'Z' || stat[close_paren + 2] == 'X')) {
    return std::nullopt;  // exited; only its parent's wait is missing
  }
  // Fields after comm start at 3 (state); starttime is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
  }
  return std::stoull(field);
}

Result<JailProcess> StartJail(const JailOptions& options, const JailSpec& jail, const std::string& log_path) {
  int info[2], ready[2], token[2];
  if (pipe2(info, O_CLOEXEC) != 0) return Status::Unavailable("pipe: " + std::string(strerror(errno)));
  if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(token, O_CLOEXEC) != 0) {
    close(info[0]);
    close(info[1]);
    return Status::Unavailable("pipe: " + std::string(strerror(errno)));
  }
  // The token is short: the pipe buffer holds it, so it is written before the jail starts.
  (void)!write(token[1], jail.token.data(), jail.token.size());
  close(token[1]);
  int filter = -1;
  if (jail.hardening.seccomp) {
    Result<int> compiled = CompileFilter(jail.hardening);
    if (!compiled.ok()) {
      for (int fd : {info[0], info[1], ready[0], ready[1], token[0]}) close(fd);
      return compiled.status();
    }
    filter = *compiled;
  }
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ChildSpec spec;
  spec.argv = BwrapArgv(options, jail);
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  spec.drop_to = options.host_creds;
  // bwrap gets these and nothing else: its stdio is the log, 3-5 the start-up pipes.
  spec.fds = {{info[1], 3}, {ready[1], 4}, {token[0], 5}};
  if (log >= 0) spec.fds.insert(spec.fds.end(), {{log, 1}, {log, 2}});
  if (filter >= 0) spec.fds.emplace_back(filter, 6);
  spec.detach = true;  // the jail outlives this call and, by design, this process
  spec.join_cgroups = jail.join_cgroups;
  spec.rlimits = jail.rlimits;
  Result<pid_t> spawned = Spawn(spec);
  close(info[1]);
  close(ready[1]);
  close(token[0]);
  if (log >= 0) close(log);
  if (filter >= 0) close(filter);
  auto cleanup = [&] {
    close(info[0]);
    close(ready[0]);
  };
  if (!spawned.ok()) {
    cleanup();
    return spawned.status();
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(options.start_timeout_ms);
  std::string info_text =
      ReadUntil(info[0], deadline, [](const std::string& t) { return t.find('}') != std::string::npos; });
  std::optional<pid_t> pid = ParseChildPid(info_text);
  // The runtime writes "ready" once it listens.
  std::string ready_text = ReadUntil(
      ready[0], deadline, [](const std::string& t) { return t.find("ready\n") != std::string::npos; });
  cleanup();
  if (!pid || ready_text.find("ready\n") == std::string::npos) {
    if (pid) kill(*pid, SIGKILL);
    std::string why = Tail(log_path);
    return Status::Unavailable("the sandbox's runtime did not start" +
                               (why.empty() ? std::string() : ": " + why));
  }
  std::optional<std::uint64_t> start = ProcessStartTime(*pid);
  if (!start) return Status::Unavailable("sandbox runtime exited right after start: " + Tail(log_path));
  return JailProcess{*pid, *start};
}

bool JailAlive(const JailProcess& jail) {
  std::optional<std::uint64_t> start = ProcessStartTime(jail.pid);
  if (!start || *start != jail.start_time) return false;
  // A dying init releases its namespaces before it shows as a zombie; without them nothing can
  // enter the sandbox any more, so it counts as gone.
  char link[64];
  std::string ns = "/proc/" + std::to_string(jail.pid) + "/ns/mnt";
  return readlink(ns.c_str(), link, sizeof link) > 0;
}

Status KillJail(const JailProcess& jail) {
  if (!JailAlive(jail)) return Status::Ok();
  if (kill(jail.pid, SIGKILL) != 0 && errno != ESRCH) {
    return Status::Internal("kill " + std::to_string(jail.pid) + ": " + strerror(errno));
  }
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (JailAlive(jail) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (JailAlive(jail))
    return Status::Internal("sandbox init " + std::to_string(jail.pid) + " survived SIGKILL");
  return Status::Ok();
}

}  // namespace paddock::plugins::sandbox_process
