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

#include "baselines.h"
#include "testing.h"

using namespace paddock::testing;

namespace {}  // namespace

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
