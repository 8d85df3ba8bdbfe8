// Local sandboxes through paddock-runtime: create → runtime ready (cold), warm claim, exec round
// trip of `true`, and memory per idle sandbox — each next to a bare `bwrap ... true` launch and
// a bare fork/exec measured in the same run.
//
//   build/bin/sandbox_bench [N]      (default N = 200)
#include <signal.h>

#include <filesystem>
#include <thread>

#include "baselines.h"
#include "runtime/runtime_client.h"
#include "testing.h"

using namespace paddock;
using namespace paddock::testing;

namespace {

struct Stats {
  double p50, p99;
};
Stats Of(const std::vector<double>& v) { return {Percentile(v, 0.5), Percentile(v, 0.99)}; }

class Discard final : public ExecObserver {
 public:
  void OnOutput(ExecStream, std::string_view) noexcept override {}
};

// Every process on the host whose parent chain leads to `root` (inclusive).
std::vector<pid_t> Tree(pid_t root) {
  std::vector<pid_t> out = {root};
  for (size_t i = 0; i < out.size(); ++i) {
    std::ifstream in("/proc/" + std::to_string(out[i]) + "/task/" + std::to_string(out[i]) + "/children");
    pid_t child;
    while (in >> child) out.push_back(child);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::max(2, std::atoi(argv[1])) : 200;
  TempDir dir;
  SandboxLimits limits;  // the default profile's
  limits.memory_bytes = 2LL << 30;
  limits.pids = 512;
  limits.cpus = 1;
  limits.disk_bytes = 4LL << 30;
  auto provider = LoadSandbox("process", "destroy_on_stop = true", dir.path());
  if (!provider.ok()) {
    std::fprintf(stderr, "%s\n", provider.status().ToString().c_str());
    return 1;
  }
  // Baselines.
  std::vector<double> bwrap, forkexec;
  for (int i = 0; i < n; ++i) bwrap.push_back(BareBwrap(dir.path()));
  for (int i = 0; i < n; ++i) forkexec.push_back(BareForkExec());

  // Cold: create for a new session until the runtime answers (Create returns once it listens;
  // the health call proves it serves).
  std::vector<double> cold;
  std::vector<SandboxInfo> sandboxes;
  for (int i = 0; i < n; ++i) {
    SandboxSpec spec;
    spec.session_id = "ses_cold_" + std::to_string(i);
    spec.limits = limits;
    auto start = Clock::now();
    auto sb = (*provider)->Create(spec);
    if (!sb.ok() || !RuntimeClient(sb->runtime).Health().ok()) {
      std::fprintf(stderr, "create failed: %s\n", sb.status().ToString().c_str());
      return 1;
    }
    cold.push_back(Ms(Clock::now() - start));
    sandboxes.push_back(*sb);
  }
  // Memory per idle sandbox: the Pss of its processes (bwrap's monitor and the runtime).
  double pss = 0;
  for (const auto& sb : sandboxes) {
    pid_t runtime = static_cast<pid_t>(std::stoi(sb.detail.substr(sb.detail.find(' ') + 1)));
    std::ifstream stat("/proc/" + std::to_string(runtime) + "/stat");
    std::string skip;
    pid_t parent = 0;
    stat >> skip >> skip >> skip >> parent;  // the bwrap monitor
    pss += PssMiB(parent);
    for (pid_t p : Tree(runtime)) pss += PssMiB(p);
  }
  pss /= static_cast<double>(sandboxes.size());
  // The provider makes its spare workspace images again in the background (mkfs, a loop mount):
  // the exec rows measure the steady state after it, not a race with it.
  for (auto until = Clock::now() + std::chrono::seconds(30); Clock::now() < until;) {
    const int spares = SpareImages(dir.path() + "/sandbox-process");
    if (geteuid() != 0 || spares >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Exec round trip of `true` through the runtime: the first into each new sandbox (its
  // runtime's code paths still cold), then the steady state of a session's later commands.
  std::vector<double> exec_first, exec;
  ExecRequest t;
  t.argv = {"/bin/true"};
  Discard discard;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < n; ++i) {
      RuntimeClient rt(sandboxes[static_cast<size_t>(i) % sandboxes.size()].runtime);
      auto start = Clock::now();
      auto r = rt.Exec(t, discard);
      if (!r.ok() || r->exit_code != 0) {
        std::fprintf(stderr, "exec failed\n");
        return 1;
      }
      (round == 0 ? exec_first : exec).push_back(Ms(Clock::now() - start));
    }
  }
  for (const auto& sb : sandboxes) (void)(*provider)->Destroy(sb.id);
  for (int i = 0; i < n; ++i) (void)(*provider)->DeleteSessionData("ses_cold_" + std::to_string(i));
  // Cold again, for sessions that have their workspace already (no image to format and mount):
  // the sandbox itself.
  std::vector<double> cold_existing;
  {
    SandboxSpec spec;
    spec.session_id = "ses_existing";
    spec.limits = limits;
    for (int i = 0; i < n; ++i) {
      auto start = Clock::now();
      auto sb = (*provider)->Create(spec);
      if (!sb.ok() || !RuntimeClient(sb->runtime).Health().ok()) return 1;
      cold_existing.push_back(Ms(Clock::now() - start));
      (void)(*provider)->Destroy(sb->id);
    }
    (void)(*provider)->DeleteSessionData("ses_existing");
  }

  // Warm: sandboxes created ahead (as the pool does); a claim binds one to a session and sends
  // the session's environment, which is what a new session waits for.
  std::vector<SandboxInfo> warm;
  for (int i = 0; i < n; ++i) {
    SandboxSpec spec;
    spec.limits = limits;
    auto sb = (*provider)->Create(spec);
    if (!sb.ok()) {
      std::fprintf(stderr, "warm create failed: %s\n", sb.status().ToString().c_str());
      return 1;
    }
    warm.push_back(*sb);
  }
  std::vector<double> claim;
  for (int i = 0; i < n; ++i) {
    auto start = Clock::now();
    auto sb = (*provider)->Claim(warm[static_cast<size_t>(i)].id, "ses_warm_" + std::to_string(i));
    if (!sb.ok() || !RuntimeClient(sb->runtime).SetEnv({{"SESSION", "x"}, {"TOKEN", "secret"}}).ok()) {
      std::fprintf(stderr, "claim failed\n");
      return 1;
    }
    claim.push_back(Ms(Clock::now() - start));
  }
  for (const auto& sb : warm) (void)(*provider)->Destroy(sb.id);

  Stats b = Of(bwrap), f = Of(forkexec), c = Of(cold), w = Of(claim), e = Of(exec), e1 = Of(exec_first),
        x = Of(cold_existing);
  std::printf("sandbox bench, N = %d (process provider, cgroup limits and a %lld MiB workspace image)\n", n,
              static_cast<long long>(limits.disk_bytes >> 20));
  std::printf("%-34s %9s %9s\n", "", "p50 ms", "p99 ms");
  std::printf("%-34s %9.3f %9.3f\n", "baseline: bare bwrap ... true", b.p50, b.p99);
  std::printf("%-34s %9.3f %9.3f\n", "baseline: bare fork/exec true", f.p50, f.p99);
  std::printf("%-34s %9.3f %9.3f   (%.2fx bare bwrap at p50)\n", "cold create, new image (N in a row)", c.p50,
              c.p99, c.p50 / b.p50);
  std::printf("%-34s %9.3f %9.3f   (%.2fx bare bwrap at p50)\n", "cold create, workspace exists", x.p50,
              x.p99, x.p50 / b.p50);
  std::printf("%-34s %9.3f %9.3f   (target < 2 ms)\n", "warm claim (bind + session env)", w.p50, w.p99);
  std::printf("%-34s %9.3f %9.3f   (%.2fx bare fork/exec at p50)\n", "exec `true`, first in a sandbox",
              e1.p50, e1.p99, e1.p50 / f.p50);
  std::printf("%-34s %9.3f %9.3f   (%.2fx bare fork/exec at p50; target <= 2x, p99 <= 5 ms)\n",
              "exec round trip of `true`", e.p50, e.p99, e.p50 / f.p50);
  std::printf("%-34s %9.2f MiB Pss\n", "memory per idle sandbox", pss);
  return 0;
}
