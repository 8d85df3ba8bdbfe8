// sandbox.k8s against the fake Kubernetes API server: how long Create takes through the plugin
// (claim → watch → Ready → token hand-over → runtime answers), next to what the fake's
// simulated controller and kubelet take for the same claim server-side (creation → Ready) in
// the same run, so the difference is the plugin's own overhead; cold (empty pool) and warm
// (adopted from the pool). Then an exec's round trip and a streamed exec through the API
// server's pod proxy (runtime_access "apiserver", what sandbox.kind uses) next to the same at
// the pod IP (the baseline) on the same fake cluster, and the API calls of one sandbox's
// lifecycle.
//
//   build/bin/k8s_bench [N]      (default N = 20; the exec comparison runs 10N round trips)
#include <cstdio>
#include <map>
#include <thread>

#include <Poco/JSON/Parser.h>

#include "baselines.h"
#include "fake_kube.h"
#include "runtime/runtime_client.h"
#include "testing.h"

using namespace paddock;
using namespace paddock::testing;

namespace {

struct Run {
  std::vector<double> create, server, destroy;
};

// A fake cluster with deploy/base's template and a warm pool of `warm`, and sandbox.k8s on it.
struct Cluster {
  TempDir dir;
  std::unique_ptr<FakeKube> kube;
  std::shared_ptr<SandboxProvider> provider;

  explicit Cluster(int warm, const std::string& extra = "") {
    FakeKubeOptions o;
    o.crd_dir = PADDOCK_BENCH_CRD_DIR;
    o.data_dir = dir.path() + "/kube";
    std::string paddock = PADDOCK_BENCH_BINARY;
    o.runtime = paddock.substr(0, paddock.rfind('/') + 1) + "paddock-runtime";
    kube = std::make_unique<FakeKube>(o);
    if (Status s = kube->Start(); !s.ok()) Die(s.ToString());
    std::string kubeconfig = kube->WriteKubeconfig(dir.path() + "/kubeconfig");
    for (const std::string& doc :
         YamlDocumentsAsJson(std::string(PADDOCK_BENCH_SOURCE_DIR) + "/deploy/base/sandbox-templates.yaml")) {
      Poco::JSON::Parser p;
      auto obj = p.parse(doc).extract<Poco::JSON::Object::Ptr>();
      if (obj->getValue<std::string>("kind") == "SandboxWarmPool")
        obj->getObject("spec")->set("replicas", warm);
      std::ostringstream ss;
      obj->stringify(ss);
      if (Status s = kube->Create(ss.str()); !s.ok()) Die(s.ToString());
    }
    auto p = LoadSandbox("k8s", "kubeconfig = \"" + kubeconfig + "\"\n" + extra, dir.path());
    if (!p.ok()) Die(p.status().ToString());
    provider = *p;
  }
  ~Cluster() {
    provider.reset();
    kube->Stop();
  }
  static void Die(const std::string& why) {
    std::fprintf(stderr, "%s\n", why.c_str());
    std::exit(1);
  }
  // Waits until the pool has `n` ready sandboxes.
  void PoolReady(int n) {
    for (int t = 0; t < 500; ++t) {
      auto pools = kube->List("sandboxwarmpools", "paddock");
      if (!pools.empty() && pools[0]->has("status") &&
          pools[0]->getObject("status")->optValue<int>("readyReplicas", 0) >= n) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
};

Run Measure(int n, int warm) {
  Cluster c(warm);
  Run r;
  for (int i = 0; i < n; ++i) {
    if (warm > 0) c.PoolReady(warm);  // a full pool before each claim, so every one is adopted
    SandboxSpec spec;
    spec.session_id = "ses_bench_" + std::to_string(i);
    auto start = Clock::now();
    auto sb = c.provider->Create(spec);
    r.create.push_back(Ms(Clock::now() - start));
    if (!sb.ok()) Cluster::Die("create: " + sb.status().ToString());
    start = Clock::now();
    (void)c.provider->Destroy(sb->id);
    r.destroy.push_back(Ms(Clock::now() - start));
  }
  r.server = c.kube->ClaimReadyMs();
  return r;
}

void Print(const char* what, const Run& r) {
  double c50 = Percentile(r.create, 0.5), c95 = Percentile(r.create, 0.95);
  double s50 = Percentile(r.server, 0.5), s95 = Percentile(r.server, 0.95);
  std::printf("%-5s create through the plugin  p50 %7.1f ms  p95 %7.1f ms\n", what, c50, c95);
  std::printf("%-5s claim → Ready server-side  p50 %7.1f ms  p95 %7.1f ms   (baseline)\n", what, s50, s95);
  std::printf("%-5s plugin overhead            p50 %7.1f ms  (%.2fx the server-side time)\n", what, c50 - s50,
              c50 / s50);
  std::printf("%-5s destroy (foreground, until gone) p50 %7.1f ms\n", what, Percentile(r.destroy, 0.5));
}

}  // namespace

struct ExecTimes {
  std::vector<double> round_trip;
  double stream_mib_s = 0;
};

// `n` execs of `true`, then one exec streaming 32 MiB of output, against `sandbox`.
ExecTimes MeasureExec(const SandboxInfo& sandbox, int n) {
  RuntimeClient runtime(sandbox.runtime);
  ExecTimes t;
  ExecRequest nothing;
  nothing.argv = {"true"};
  for (int i = 0; i < n; ++i) {
    CapturingObserver out;
    auto start = Clock::now();
    auto r = runtime.Exec(nothing, out);
    t.round_trip.push_back(Ms(Clock::now() - start));
    if (!r.ok()) Cluster::Die("exec: " + r.status().ToString());
  }
  struct Counting : ExecObserver {
    size_t bytes = 0;
    void OnOutput(ExecStream, std::string_view chunk) noexcept override { bytes += chunk.size(); }
  } counted;
  ExecRequest stream;
  stream.argv = {"head", "-c", "33554432", "/dev/zero"};
  auto start = Clock::now();
  auto r = runtime.Exec(stream, counted);
  const double seconds = Ms(Clock::now() - start) / 1000;
  if (!r.ok() || counted.bytes != 33554432u) Cluster::Die("streaming exec: " + r.status().ToString());
  t.stream_mib_s = 32 / seconds;
  return t;
}

void CompareAccess(int n) {
  // Two providers on one fake cluster, told apart by their instance label: the pod-IP path and
  // the API-server path, each with a sandbox of its own, measured turn about.
  Cluster c(0);
  auto relayed = LoadSandbox("k8s",
                             "kubeconfig = \"" + c.dir.path() + "/kubeconfig\"\ninstance = \"relayed\"\n" +
                                 "runtime_access = \"apiserver\"\n",
                             c.dir.path() + "/relayed");
  if (!relayed.ok()) Cluster::Die(relayed.status().ToString());
  SandboxSpec spec;
  spec.session_id = "ses_direct";
  auto direct_sb = c.provider->Create(spec);
  spec.session_id = "ses_relayed";
  auto relayed_sb = (*relayed)->Create(spec);
  if (!direct_sb.ok() || !relayed_sb.ok()) Cluster::Die("create for the exec comparison");
  (void)MeasureExec(*direct_sb, 10);  // warm both paths' connections
  (void)MeasureExec(*relayed_sb, 10);
  ExecTimes direct = MeasureExec(*direct_sb, n), via = MeasureExec(*relayed_sb, n);
  const double d50 = Percentile(direct.round_trip, 0.5), v50 = Percentile(via.round_trip, 0.5);
  std::printf("\nexec `true` round trip, %d each (same cluster, same run):\n", n);
  std::printf("  pod IP (baseline)          p50 %6.2f ms  p95 %6.2f ms\n", d50,
              Percentile(direct.round_trip, 0.95));
  std::printf("  through the API server     p50 %6.2f ms  p95 %6.2f ms   (%.2fx)\n", v50,
              Percentile(via.round_trip, 0.95), v50 / d50);
  std::printf("exec streaming 32 MiB of output:\n");
  std::printf("  pod IP (baseline)          %7.1f MiB/s\n", direct.stream_mib_s);
  std::printf("  through the API server     %7.1f MiB/s   (%.2fx)\n", via.stream_mib_s,
              via.stream_mib_s / direct.stream_mib_s);
  (void)(*relayed)->Destroy(relayed_sb->id);
  (void)c.provider->Destroy(direct_sb->id);
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  Print("cold", Measure(n, 0));
  Print("warm", Measure(n, 1));
  CompareAccess(10 * n);

  // The API calls of one lifecycle (create, inspect, destroy), as the server saw them.
  Cluster c(2);
  c.PoolReady(2);
  FakeKube& kube = *c.kube;
  kube.ClearLog();
  SandboxSpec spec;
  spec.session_id = "ses_calls";
  auto sb = c.provider->Create(spec);
  if (!sb.ok()) return 1;
  std::printf("\nAPI calls of one warm sandbox's lifecycle:\n  Create:\n");
  for (const auto& r : kube.Requests()) std::printf("    %s\n", r.c_str());
  kube.ClearLog();
  (void)c.provider->Inspect(sb->id);
  std::printf("  Inspect (the token cached; a new process reads its Secret once more):\n");
  for (const auto& r : kube.Requests()) std::printf("    %s\n", r.c_str());
  kube.ClearLog();
  (void)c.provider->Destroy(sb->id);
  std::printf("  Destroy:\n");
  for (const auto& r : kube.Requests()) std::printf("    %s\n", r.c_str());
  return 0;
}
