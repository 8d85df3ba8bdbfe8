// Time from POST /api/sessions to a ready sandbox, next to a bare `bwrap ... true` measured in
// the same run on the same machine.
//
//   build/bin/provision_bench [N]      (default N = 100)
#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "testing.h"

using namespace paddock::testing;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Resident memory of a process, from /proc.
double RssMiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

// One bare bubblewrap start with the namespaces the process provider uses, running `true`,
// as the unprivileged uid the provider drops to when run as root.
double BareBwrap(const std::string& workspace) {
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

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::max(1, std::atoi(argv[1])) : 100;
  ServerProcess srv;
  if (auto s = srv.Start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  auto agent = srv.Request("POST", "/api/agents", R"({"name":"bench","harness":"shell"})");
  std::string agent_id = JsonField(agent.body, "id");

  std::vector<double> api;
  std::vector<std::string> sessions;
  for (int i = 0; i < n; ++i) {
    auto start = Clock::now();
    auto created = srv.Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent_id + "\"}");
    std::string id = JsonField(created.body, "id");
    if (created.status != 201) {
      std::fprintf(stderr, "create failed: %s\n", created.body.c_str());
      return 1;
    }
    for (;;) {
      std::string status = JsonField(srv.Request("GET", "/api/sessions/" + id).body, "status");
      if (status == "ready") break;
      if (status != "provisioning") {
        std::fprintf(stderr, "session %s became %s\n", id.c_str(), status.c_str());
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    api.push_back(Ms(Clock::now() - start));
    sessions.push_back(id);
  }

  const double rss_mib = RssMiB(srv.pid());

  TempDir ws;
  if (geteuid() == 0 && chown(ws.path().c_str(), 65534, 65534) != 0) return 1;
  std::vector<double> bare;
  for (int i = 0; i < n; ++i) bare.push_back(BareBwrap(ws.path()));

  for (const auto& id : sessions) srv.Request("DELETE", "/api/sessions/" + id);
  srv.Stop();

  double api_p50 = Percentile(api, 0.5), bare_p50 = Percentile(bare, 0.5);
  std::printf("provision: POST /api/sessions -> ready sandbox, n=%d\n", n);
  std::printf("  paddock      p50 %7.2f ms   p90 %7.2f ms\n", api_p50, Percentile(api, 0.9));
  std::printf("  bare bwrap   p50 %7.2f ms   p90 %7.2f ms   (bwrap ... true, same namespaces)\n", bare_p50,
              Percentile(bare, 0.9));
  std::printf("  ratio p50    %.2fx\n", api_p50 / bare_p50);
  std::printf("  server RSS with %d sessions and their sandboxes: %.1f MiB\n", n, rss_mib);
  return 0;
}
