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
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "baselines.h"
#include "testing.h"

using namespace paddock::testing;

namespace {

namespace fs = std::filesystem;

// Ready sandboxes nobody has claimed (the warm pool), and spare workspace images.
int Unbound(const std::string& data_dir) {
  int n = 0;
  for (const auto& [id, s] : LiveSandboxes(data_dir)) n += s.first.empty() ? 1 : 0;
  return n;
}
int Spares(const std::string& data_dir) { return SpareImages(data_dir + "/sandbox-process"); }

struct Row {
  std::vector<double> ms;
  std::map<std::string, int> sources;  // sandbox.ready's source: warm or cold
};

// n sessions, POST /api/sessions -> ready; `spaced`: each waits until the server has its
// warm sandboxes and spare images back (what a steady trickle of sessions sees).
bool Measure(ServerProcess& srv, const std::string& agent_id, int n, bool spaced, int warm, int spares,
             Row& row, std::vector<std::string>& sessions) {
  for (int i = 0; i < n; ++i) {
    if (spaced) {
      auto until = Clock::now() + std::chrono::seconds(20);
      while ((Unbound(srv.data_dir()) < warm || Spares(srv.data_dir()) < spares) && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    auto start = Clock::now();
    auto created = srv.Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent_id + "\"}");
    std::string id = JsonField(created.body, "id");
    if (created.status != 201) {
      std::fprintf(stderr, "create failed: %s\n", created.body.c_str());
      return false;
    }
    for (;;) {
      std::string status = JsonField(srv.Request("GET", "/api/sessions/" + id).body, "status");
      if (status == "ready") break;
      if (status != "provisioning") {
        std::fprintf(stderr, "session %s became %s\n", id.c_str(), status.c_str());
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    row.ms.push_back(Ms(Clock::now() - start));
    std::string events = srv.Request("GET", "/api/sessions/" + id + "/events?after=0").body;
    for (const char* source : {"warm", "cold"}) {
      if (events.find("\"source\":\"" + std::string(source) + "\"") != std::string::npos)
        ++row.sources[source];
    }
    sessions.push_back(id);
  }
  return true;
}

std::string Sources(const Row& row) {
  std::string out;
  for (const auto& [k, v] : row.sources) out += (out.empty() ? "" : ", ") + std::to_string(v) + " " + k;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::max(1, std::atoi(argv[1])) : 100;
  TempDir ws;
  if (geteuid() == 0 && chown(ws.path().c_str(), 65534, 65534) != 0) return 1;
  std::vector<double> bare;
  for (int i = 0; i < n; ++i) bare.push_back(BareBwrap(ws.path()));
  const double bare_p50 = Percentile(bare, 0.5);

  std::printf("provision: POST /api/sessions -> ready sandbox, n=%d per row\n", n);
  std::printf(
      "  bare bwrap                      p50 %7.2f ms   p90 %7.2f ms   (bwrap ... true, same namespaces)\n",
      bare_p50, Percentile(bare, 0.9));
  // The default config (a warm pool, spare images), then a pool of none: every session cold,
  // its workspace a spare image when one is ready, else one made on the request's path.
  struct Config {
    const char* name;
    std::string toml;
    int warm;
  };
  for (const Config& c : {Config{"default config", "", 2},
                          Config{"cold, new workspace image", "[profiles.default]\nwarm = 0\n", 0}}) {
    ServerProcess srv(c.toml);
    if (auto s = srv.Start(); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    auto agent = srv.Request("POST", "/api/agents", R"({"name":"bench","harness":"shell"})");
    std::string agent_id = JsonField(agent.body, "id");
    std::vector<std::string> sessions;
    for (bool spaced : {true, false}) {
      Row row;
      if (!Measure(srv, agent_id, n, spaced, c.warm, 2, row, sessions)) return 1;
      double p50 = Percentile(row.ms, 0.5);
      std::printf("  %-26s %-11s p50 %7.2f ms   p90 %7.2f ms   %5.2fx   (%s)\n", c.name,
                  spaced ? "spaced" : "back-to-back", p50, Percentile(row.ms, 0.9), p50 / bare_p50,
                  Sources(row).c_str());
    }
    std::printf("  server RSS with %zu sessions and their sandboxes: %.1f MiB\n", sessions.size(),
                RssMiB(srv.pid()));
    for (const auto& id : sessions) srv.Request("DELETE", "/api/sessions/" + id);
    srv.Stop();
  }
  std::printf(
      "  spaced: each session waits until the warm pool and the spare images are full again; "
      "back-to-back: none waits\n");
  return 0;
}
