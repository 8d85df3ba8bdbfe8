// Durable sessions: (1) from a `kill -9`ed server's restart to its interrupted run resuming,
// next to the same restart's time to listen; (2) taking and restoring a session snapshot of a
// 1, 10 and 100 MiB workspace, next to `tar czf` / `tar xzf` of the same files on the host.
//
//   build/bin/durability_bench [N]      (default N = 5 restarts, 3 snapshots per size)
//   PADDOCK_BENCH_COMPRESS=0 build/bin/durability_bench    (snapshots without gzip)
#include <filesystem>
#include <thread>

#include "baselines.h"
#include "metrics/metrics.h"
#include "runtime/runtime_client.h"
#include "services/events/event_service.h"
#include "services/snapshots/snapshot_service.h"
#include "testing.h"
#include "util/redactor.h"

using namespace paddock;
using namespace paddock::testing;

namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

bool Has(const std::string& body, const std::string& needle) {
  return body.find(needle) != std::string::npos;
}

// Restart → resume, over HTTP against a real `paddock serve` (the embedded sqlite store, whose
// start re-queues the cut-off run at once; with a shared store the lease TTL comes on top).
void ResumeAfterRestart(int n) {
  std::vector<double> resume, listen;
  ServerProcess server;
  if (!server.Start().ok()) {
    std::fprintf(stderr, "server did not start:\n%s\n", server.log().c_str());
    return;
  }
  auto agent = server.Request("POST", "/api/agents", R"({"name":"bench","harness":"shell"})");
  const std::string agent_id = JsonField(agent.body, "id");
  for (int i = 0; i < n; ++i) {
    auto session = server.Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent_id + "\"}");
    const std::string id = JsonField(session.body, "id");
    const std::string events = "/api/sessions/" + id + "/events?limit=1000";
    server.Request("POST", "/api/sessions/" + id + "/messages",
                   R"({"content":"echo seed > /workspace/s.txt"})");
    while (!Has(server.Request("GET", events).body, "run.finished"))
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    server.Request(
        "POST", "/api/sessions/" + id + "/messages",
        R"({"content":"if [ \"$PADDOCK_RESUMING\" = 1 ]; then echo resumed; else echo started; sleep 60; fi"})");
    while (!Has(server.Request("GET", events).body, "\"text\":\"started\"")) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    server.Kill();
    auto t0 = Clock::now();
    if (!server.Start().ok()) {
      std::fprintf(stderr, "restart failed:\n%s\n", server.log().c_str());
      return;
    }
    listen.push_back(MsSince(t0));
    while (!Has(server.Request("GET", events).body, "run.resumed"))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    resume.push_back(MsSince(t0));
  }
  server.Stop();
  const double l = Percentile(listen, 0.5), r = Percentile(resume, 0.5);
  std::printf("restart -> listening (baseline)         p50 %8.1f ms  max %8.1f ms  (n=%d)\n", l,
              Percentile(listen, 1.0), n);
  std::printf("restart -> interrupted run resumed      p50 %8.1f ms  max %8.1f ms  (%.2fx listening)\n", r,
              Percentile(resume, 1.0), r / l);
}

double Run(const std::vector<std::string>& argv) {
  auto t0 = Clock::now();
  if (auto [code, out] = RunCommand(argv); code != 0)
    std::fprintf(stderr, "%s failed: %s\n", argv[0].c_str(), out.c_str());
  return MsSince(t0);
}

void SnapshotSizes(int n) {
  TempDir dir;
  auto store = LoadStore("sqlite", "", dir.path());
  auto provider = LoadSandbox("process", "destroy_on_stop = true", dir.path());
  if (!store.ok() || !provider.ok()) {
    std::fprintf(stderr, "%s %s\n", store.status().ToString().c_str(), provider.status().ToString().c_str());
    return;
  }
  Redactor redactor;
  Metrics metrics;
  EventService events(**store, redactor, metrics);
  SnapshotSettings settings;  // the defaults: gzip, 1 GiB cap; PADDOCK_BENCH_COMPRESS=0 for none
  if (const char* c = std::getenv("PADDOCK_BENCH_COMPRESS"); c && std::string(c) == "0")
    settings.compress = false;
  SnapshotService snapshots(**store, events, metrics, settings);
  Agent agent;
  agent.id = "agt_bench";
  agent.name = "bench";
  agent.harness = "shell";
  (void)(*store)->CreateAgent(agent);
  for (int mib : {1, 10, 100}) {
    Session session;
    session.id = "ses_bench_" + std::to_string(mib);
    session.agent_id = agent.id;
    (void)(*store)->CreateSession(session, {});
    SandboxSpec spec;
    spec.session_id = session.id;
    auto sb = (*provider)->Create(spec);
    if (!sb.ok()) {
      std::fprintf(stderr, "%s\n", sb.status().ToString().c_str());
      return;
    }
    RuntimeClient runtime(sb->runtime);
    // Source-like content: base64 text (compresses to about 3/4), in files of 256 KiB.
    CapturingObserver out;
    auto filled =
        Sh(*sb,
           "mkdir -p /workspace/src && for i in $(seq 1 " + std::to_string(mib * 4) +
               "); do head -c 196608 /dev/urandom | base64 > /workspace/src/f$i.txt; done; du -sk /workspace",
           out, std::chrono::minutes(5));
    if (!filled.ok()) {
      std::fprintf(stderr, "%s\n", filled.status().ToString().c_str());
      return;
    }
    const std::string host_ws = dir.path() + "/sandbox-process/workspaces/" + session.id + "/";
    std::vector<double> take, restore, tar_c, tar_x;
    std::int64_t size = 0;
    for (int i = 0; i < n; ++i) {
      auto t0 = Clock::now();
      auto snap = snapshots.Take(runtime, session.id, {}, nullptr);
      take.push_back(MsSince(t0));
      if (!snap.ok()) {
        std::fprintf(stderr, "%s\n", snap.status().ToString().c_str());
        return;
      }
      size = snap->size_bytes;
      SandboxSpec other;
      other.session_id = session.id + "_restore_" + std::to_string(i);
      auto target = (*provider)->Create(other);
      if (!target.ok()) return;
      t0 = Clock::now();
      auto restored = snapshots.RestoreLatest(RuntimeClient(target->runtime), session.id, target->id);
      restore.push_back(MsSince(t0));
      if (!restored.ok()) {
        std::fprintf(stderr, "%s\n", restored.status().ToString().c_str());
        return;
      }
      (void)(*provider)->Destroy(target->id);
      (void)(*provider)->DeleteSessionData(other.session_id);
      const std::string tgz = dir.path() + "/baseline.tgz", into = dir.path() + "/baseline";
      tar_c.push_back(Run({"tar", "-czf", tgz, "-C", host_ws, "."}));
      std::filesystem::remove_all(into);
      std::filesystem::create_directories(into);
      tar_x.push_back(Run({"tar", "-xzf", tgz, "-C", into}));
    }
    (void)(*provider)->Destroy(sb->id);
    const double tk = Percentile(take, 0.5), rs = Percentile(restore, 0.5), tc = Percentile(tar_c, 0.5),
                 tx = Percentile(tar_x, 0.5);
    std::printf(
        "%3d MiB workspace (%6.1f MiB archive): snapshot %8.1f ms (tar czf %8.1f ms, %.2fx)   restore %8.1f "
        "ms "
        "(tar xzf %8.1f ms, %.2fx)\n",
        mib, static_cast<double>(size) / (1 << 20), tk, tc, tk / tc, rs, tx, rs / tx);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  ResumeAfterRestart(n);
  SnapshotSizes(std::max(1, std::min(n, 3)));
  return 0;
}
