// sandbox.process: the conformance suite, and the isolation every sandbox must have.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "paddock/testing/sandbox_provider_conformance.h"
#include "runtime/runtime_client.h"
#include "services/egress/egress_proxy.h"
#include "testing.h"

namespace paddock::testing {
namespace {

constexpr char kConfig[] = "destroy_on_stop = true\n";

Result<std::shared_ptr<SandboxProvider>> FreshProvider() {
  auto dir = std::make_shared<TempDir>();
  PADDOCK_ASSIGN_OR_RETURN(auto p, LoadSandbox("process", kConfig, dir->path()));
  return std::shared_ptr<SandboxProvider>(p.get(), [p, dir](SandboxProvider*) mutable { p.reset(); });
}

INSTANTIATE_TEST_SUITE_P(Process, SandboxProviderConformance,
                         ::testing::Values(SandboxProviderUnderTest{"process", FreshProvider}));

// Host pids whose command line contains `marker`.
std::vector<pid_t> HostProcessesWith(const std::string& marker) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  while (dirent* d = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(d->d_name));
    if (pid <= 0) continue;
    std::ifstream in(std::string("/proc/") + d->d_name + "/cmdline");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string cmd = ss.str();
    for (char& c : cmd) c = c == '\0' ? ' ' : c;
    if (cmd.find(marker) != std::string::npos && pid != getpid()) out.push_back(pid);
  }
  closedir(proc);
  return out;
}

SandboxSpec Spec(const std::string& session, SandboxLimits limits = {}) {
  SandboxSpec s;
  s.session_id = session;
  s.limits = limits;
  return s;
}

class ProcessSandbox : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = LoadSandbox("process", kConfig, dir_.path());
    ASSERT_OK(p);
    provider_ = *p;
  }
  std::string Run(const SandboxInfo& sandbox, const std::string& script, int* exit_code = nullptr,
                  std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    CapturingObserver out;
    auto r = Sh(sandbox, script, out, timeout);
    EXPECT_OK(r);
    if (exit_code && r.ok()) *exit_code = r->exit_code;
    return out.out + out.err;
  }
  TempDir dir_;
  std::shared_ptr<SandboxProvider> provider_;
};

TEST_F(ProcessSandbox, TheRuntimeIsInitOfItsOwnPidNamespace) {
  auto sb = provider_->Create(Spec("ses_pid"));
  ASSERT_OK(sb);
  EXPECT_EQ(Run(*sb, "head -1 /proc/1/status"), "Name:\tpaddock-runtime\n");
  // Only the sandbox's own few processes are visible, never the host's.
  std::string pids = Run(*sb, "ls /proc | grep -c '^[0-9]'");
  EXPECT_LT(std::stoi(pids), 10) << pids;
  EXPECT_EQ(Run(*sb, "test -e /proc/" + std::to_string(getpid()) + "/status && echo visible || echo hidden"),
            "hidden\n");
  // As PID 1 it reaps orphans: no zombies pile up.
  Run(*sb, "for i in 1 2 3 4 5; do (sleep 0.05 &); done; sleep 0.5");
  EXPECT_EQ(Run(*sb, "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l"), "0\n");
}

TEST_F(ProcessSandbox, SeesNoHostFilesOutsideItsMounts) {
  auto sb = provider_->Create(Spec("ses_files"));
  ASSERT_OK(sb);
  // The store's files live in the data directory, like dir_ here.
  std::ofstream(dir_.path() + "/store.db") << "store-content";
  for (const std::string& path : {std::string("/root"), std::string("/work"), dir_.path(),
                                  dir_.path() + "/store.db", SourceDir(), std::string("/var/lib")}) {
    EXPECT_EQ(Run(*sb, "test -e '" + path + "' && echo present || echo absent"), "absent\n") << path;
  }
  // /home holds the agent's own home only (a tmpfs), nothing of the host's.
  EXPECT_EQ(Run(*sb, "ls -A /home; echo $HOME; ls -A $HOME | wc -l"), "paddock\n/home/paddock\n0\n");
  // System directories are there, read-only.
  int code = 0;
  Run(*sb, "touch /usr/paddock-probe", &code);
  EXPECT_NE(code, 0);
  EXPECT_EQ(Run(*sb, "test -x /usr/bin/env && echo ok"), "ok\n");
  // An unprivileged user inside.
  EXPECT_EQ(Run(*sb, "id -u"), "1000\n");
}

TEST_F(ProcessSandbox, DoesNotSeeTheServerEnvironmentOrSecretsOfOthers) {
  setenv("PADDOCK_TEST_SERVER_ONLY", "server-value-4711", 1);
  auto sb = provider_->Create(Spec("ses_env"));
  auto other = provider_->Create(Spec("ses_env_other"));
  ASSERT_OK(sb);
  ASSERT_OK(other);
  ASSERT_OK(RuntimeClient(other->runtime).SetEnv({{"OTHER_SECRET", "other-secret-0815"}}));
  std::string seen = Run(*sb, "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'");
  EXPECT_EQ(seen.find("server-value-4711"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("PADDOCK_TEST_SERVER_ONLY"), std::string::npos);
  EXPECT_EQ(seen.find("other-secret-0815"), std::string::npos);
  // Nor the runtime's token.
  EXPECT_EQ(seen.find(sb->runtime.token), std::string::npos);
  unsetenv("PADDOCK_TEST_SERVER_ONLY");
}

TEST_F(ProcessSandbox, CannotSeeAnotherSandboxesFilesOrProcesses) {
  auto a = provider_->Create(Spec("ses_left"));
  auto b = provider_->Create(Spec("ses_right"));
  ASSERT_OK(a);
  ASSERT_OK(b);
  Run(*a, "echo secret-of-left > /workspace/left.txt; (sleep 600 &) ; echo started");
  std::string view = Run(*b, "ls -A /workspace; ps -eo args 2>/dev/null || ls /proc");
  EXPECT_EQ(view.find("left.txt"), std::string::npos) << view;
  EXPECT_EQ(view.find("sleep 600"), std::string::npos) << view;
  EXPECT_EQ(Run(*b, "cat '" + dir_.path() + "/sandbox-process/workspaces/ses_left/left.txt' 2>&1 || true")
                .find("secret-of-left"),
            std::string::npos);
  // Nor reach its runtime: the other socket is not mounted in.
  EXPECT_EQ(Run(*b, "ls /run/paddock"), "runtime.sock\n");
}

TEST_F(ProcessSandbox, HasNoNetworkButLoopback) {
  auto sb = provider_->Create(Spec("ses_net"));
  ASSERT_OK(sb);
  std::string devices = Run(*sb, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
  EXPECT_EQ(devices, "lo\n");
}

TEST_F(ProcessSandbox, DestroyKillsEveryProcessOfTheSandbox) {
  auto sb = provider_->Create(Spec("ses_kill"));
  ASSERT_OK(sb);
  Run(*sb, "(setsid sleep 777.25 &) ; (sleep 777.25 &) ; echo started");
  EXPECT_EQ(HostProcessesWith("sleep 777.25").size(), 2u);
  ASSERT_OK(provider_->Destroy(sb->id));
  for (int i = 0; i < 100 && !HostProcessesWith("sleep 777.25").empty(); ++i) usleep(20000);
  EXPECT_TRUE(HostProcessesWith("sleep 777.25").empty());
}

TEST_F(ProcessSandbox, ACommandWhoseSandboxDiesUnderItReportsTheSandboxGone) {
  auto sb = provider_->Create(Spec("ses_dies"));
  ASSERT_OK(sb);
  pid_t init = static_cast<pid_t>(std::stoi(sb->detail.substr(sb->detail.find(' ') + 1)));
  std::thread killer([&] {
    while (HostProcessesWith("sleep 999.75").empty()) usleep(5000);
    kill(init, SIGKILL);
  });
  CapturingObserver out;
  auto r = Sh(*sb, "sleep 999.75", out);
  killer.join();
  EXPECT_CODE(r, kUnavailable);
  auto info = provider_->Inspect(sb->id);
  ASSERT_OK(info);
  EXPECT_EQ(info->state, SandboxState::kGone);
}

TEST_F(ProcessSandbox, ARestartedProviderFindsItsSandboxesStillServing) {
  TempDir root;
  std::string marker = "sleep 888.5";
  SandboxInfo left;
  {
    auto first = LoadSandbox("process", "destroy_on_stop = false", root.path());
    ASSERT_OK(first);
    auto sb = (*first)->Create(Spec("ses_orphan"));
    ASSERT_OK(sb);
    left = *sb;
    CapturingObserver out;
    ASSERT_OK(Sh(*sb, "(sleep 888.5 &); echo kept > /workspace/f", out));
  }
  EXPECT_EQ(HostProcessesWith(marker).size(), 1u);
  auto second = LoadSandbox("process", "destroy_on_stop = true", root.path());
  ASSERT_OK(second);
  // The core decides what to reattach: the provider lists the sandbox, running, reachable.
  auto listed = (*second)->List();
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, left.id);
  EXPECT_EQ((*listed)[0].session_id, "ses_orphan");
  EXPECT_EQ((*listed)[0].state, SandboxState::kRunning);
  auto f = RuntimeClient((*listed)[0].runtime).GetFile("/workspace/f");
  ASSERT_OK(f);
  EXPECT_EQ(*f, "kept\n");
  ASSERT_OK((*second)->Destroy(left.id));
  for (int i = 0; i < 100 && !HostProcessesWith(marker).empty(); ++i) usleep(20000);
  EXPECT_TRUE(HostProcessesWith(marker).empty());
}

TEST_F(ProcessSandbox, TwoProvidersCannotShareOneRoot) {
  auto second = LoadSandbox("process", kConfig, dir_.path());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use by another paddock process"), std::string::npos)
      << second.status().ToString();
}

TEST_F(ProcessSandbox, RejectsInvalidConfigValues) {
  TempDir other;
  EXPECT_CODE(LoadSandbox("process", "sandbox_uid = 0", other.path()), kInvalidArgument);
  EXPECT_CODE(LoadSandbox("process", "ro_binds = [\"relative/path\"]", other.path()), kInvalidArgument);
  EXPECT_CODE(LoadSandbox("process", "bwrap = \"/nonexistent/bwrap\"", other.path()), kFailedPrecondition);
  EXPECT_CODE(LoadSandbox("process", "runtime = \"/nonexistent/paddock-runtime\"", other.path()),
              kFailedPrecondition);
}

// ---- Isolation under load: each of these fails when its limit is taken away. --------------

SandboxLimits Tight() {
  SandboxLimits l;
  l.memory_bytes = 128LL << 20;
  l.pids = 64;
  l.disk_bytes = 64LL << 20;
  l.cpus = 0.5;
  return l;
}

TEST_F(ProcessSandbox, TheStatusSaysWhichLimitsAreInForce) {
  auto sb = provider_->Create(Spec("ses_limits", Tight()));
  ASSERT_OK(sb);
  std::map<std::string, std::string> limits(sb->limits.begin(), sb->limits.end());
  const bool root = geteuid() == 0;
  EXPECT_EQ(limits["memory"],
            std::to_string(128LL << 20) + (root ? " (cgroup v1)" : " (rlimit as, per process)"))
      << "host without cgroup v1? " << limits["memory"];
  EXPECT_EQ(limits["disk"],
            std::to_string(64LL << 20) + (root ? " (ext4 image)" : " (rlimit fsize, per file)"));
  EXPECT_EQ(limits["network"], "none");
  auto again = provider_->Inspect(sb->id);
  ASSERT_OK(again);
  EXPECT_EQ(again->limits, sb->limits);
}

TEST_F(ProcessSandbox, AForkBombMeetsThePidsLimitAndTheNeighbourKeepsWorking) {
  auto bomb = provider_->Create(Spec("ses_bomb", Tight()));
  auto neighbour = provider_->Create(Spec("ses_calm", Tight()));
  ASSERT_OK(bomb);
  ASSERT_OK(neighbour);
  // Try to hold 200 processes at once; the limit stops it well short.
  int code = 0;
  std::string out = Run(*bomb,
                        "n=0; for i in $(seq 200); do sleep 30 & n=$((n+1)); done 2>/dev/null; "
                        "ls /proc | grep -c '^[0-9]'",
                        &code, std::chrono::seconds(60));
  int held = std::atoi(out.substr(out.find_last_of('\n', out.size() - 2) + 1).c_str());
  EXPECT_LE(held, 64) << out;
  // A real fork bomb, cut off by its timeout, while the neighbour and the host keep working.
  CapturingObserver bomb_out;
  std::thread bomber([&] { (void)Sh(*bomb, "b() { b | b & }; b", bomb_out, std::chrono::seconds(3)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(Run(*neighbour, "echo alive"), "alive\n");
  pid_t child = fork();
  if (child == 0) _exit(0);
  EXPECT_GT(child, 0) << "the host could not fork";
  if (child > 0) waitpid(child, nullptr, 0);
  bomber.join();
}

TEST_F(ProcessSandbox, AMemoryHogIsKilledAndTheNeighbourKeepsWorking) {
  auto hog = provider_->Create(Spec("ses_hog", Tight()));
  auto neighbour = provider_->Create(Spec("ses_calm2", Tight()));
  ASSERT_OK(hog);
  ASSERT_OK(neighbour);
  int code = 0;
  std::string out = Run(*hog, "python3 -c 'x = bytearray(512 << 20); print(len(x))'", &code);
  EXPECT_NE(code, 0) << out;  // killed (137) or MemoryError, never 512 MiB
  EXPECT_EQ(out.find("536870912"), std::string::npos);
  EXPECT_EQ(Run(*neighbour, "python3 -c 'x = bytearray(32 << 20); print(len(x))'"), "33554432\n");
}

TEST_F(ProcessSandbox, ADiskFillerMeetsTheWorkspaceLimit) {
  auto filler = provider_->Create(Spec("ses_fill", Tight()));
  auto neighbour = provider_->Create(Spec("ses_calm3", Tight()));
  ASSERT_OK(filler);
  ASSERT_OK(neighbour);
  int code = 0;
  Run(*filler, "dd if=/dev/zero of=/workspace/big bs=1M count=200 2>&1", &code);
  EXPECT_NE(code, 0);
  std::string size = Run(*filler, "stat -c %s /workspace/big");
  EXPECT_LE(std::stoll(size), 64LL << 20);
  // /tmp is bounded too.
  Run(*filler, "dd if=/dev/zero of=/tmp/big bs=1M count=200 2>&1", &code);
  EXPECT_NE(code, 0);
  EXPECT_EQ(Run(*neighbour, "echo fine > /workspace/f && cat /workspace/f"), "fine\n");
}

// ---- Workspace images: made ahead, and never more promised than the disk is configured for. --

// The volumes kept spare for workspaces of `bytes`, under a provider's root.
std::vector<std::string> SpareVolumes(const std::string& root, std::int64_t bytes) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root + "/spare/" + std::to_string(bytes), ec))
    out.push_back(e.path().filename().string());
  return out;
}

SandboxLimits DiskOf(std::int64_t bytes) {
  SandboxLimits l;
  l.disk_bytes = bytes;
  return l;
}

bool MountedAt(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + path + " ") != std::string::npos) return true;
  }
  return false;
}

TEST(ProcessSandboxDisk, ANewWorkspaceTakesASpareImageMadeAheadAndTheSpareIsReplaced) {
  if (geteuid() != 0) GTEST_SKIP() << "workspace images need root (CI runs as root)";
  TempDir root;
  auto provider = LoadSandbox("process", "destroy_on_stop = true\nspare_volumes = 1\n", root.path());
  ASSERT_OK(provider);
  const std::string state = root.path() + "/sandbox-process";  // the plugin's data directory
  const std::int64_t bytes = 32LL << 20;
  auto first = (*provider)->Create(Spec("ses_first", DiskOf(bytes)));
  ASSERT_OK(first);
  // The first workspace of a size is made on the spot; a spare of that size follows.
  std::vector<std::string> spares;
  for (int i = 0; i < 500 && spares.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    spares = SpareVolumes(state, bytes);
  }
  ASSERT_EQ(spares.size(), 1u);
  const std::string spare = spares[0];
  EXPECT_TRUE(MountedAt(state + "/volumes/" + spare)) << "a spare is formatted and mounted";
  auto second = (*provider)->Create(Spec("ses_second", DiskOf(bytes)));
  ASSERT_OK(second);
  std::error_code ec;
  EXPECT_EQ(std::filesystem::read_symlink(state + "/workspaces/ses_second", ec).filename(), spare)
      << "the second workspace is the spare";
  // Still a hard limit, and the spare's place is taken by a new one, never by the used one.
  CapturingObserver out;
  auto filled =
      Sh(*second, "dd if=/dev/zero of=/workspace/big bs=1M count=64 2>&1; stat -c %s /workspace/big", out,
         std::chrono::seconds(60));
  ASSERT_OK(filled);
  EXPECT_LE(std::stoll(out.out.substr(out.out.find_last_of('\n', out.out.size() - 2) + 1)), bytes) << out.out;
  for (int i = 0; i < 500; ++i) {
    spares = SpareVolumes(state, bytes);
    if (!spares.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(spares.size(), 1u);
  EXPECT_NE(spares[0], spare);
  // Stopping the provider leaves no spare behind, mounted or not.
  const std::string replacement = state + "/volumes/" + spares[0];
  provider->reset();
  EXPECT_FALSE(MountedAt(replacement));
  EXPECT_FALSE(std::filesystem::exists(replacement + ".img"));
}

TEST(ProcessSandboxDisk, ImagesPastTheConfiguredOvercommitAreRefusedAndCounted) {
  if (geteuid() != 0) GTEST_SKIP() << "workspace images need root (CI runs as root)";
  // A 64 MiB filesystem for the root, and images of 48 MiB: twice the disk is two images.
  TempDir dir;
  const std::string image = dir / "root.img", root = dir / "root";
  std::filesystem::create_directories(root);
  ASSERT_EQ(std::system(("truncate -s 64M " + image + " && mkfs.ext4 -q -F -m 0 " + image +
                         " && mount -o loop " + image + " " + root)
                            .c_str()),
            0);
  struct Unmount {
    std::string at;
    ~Unmount() { umount2(at.c_str(), MNT_DETACH); }
  } unmount{root};
  {
    auto provider =
        LoadSandbox("process", "destroy_on_stop = true\nspare_volumes = 0\ndisk_overcommit = 2\n", root);
    ASSERT_OK(provider);
    const std::int64_t bytes = 48LL << 20;
    auto a = (*provider)->Create(Spec("ses_a", DiskOf(bytes)));
    ASSERT_OK(a);
    ASSERT_OK((*provider)->Create(Spec("ses_b", DiskOf(bytes))));
    std::optional<DiskCommitment> disk = (*provider)->Disk();
    ASSERT_TRUE(disk.has_value());
    EXPECT_EQ(disk->committed_bytes, 2 * bytes);
    EXPECT_GT(disk->size_bytes, 0);
    EXPECT_LT(disk->size_bytes, 64LL << 20);
    EXPECT_GT(disk->used_bytes, 0);
    EXPECT_LT(disk->used_bytes, disk->committed_bytes) << "images are sparse";
    auto third = (*provider)->Create(Spec("ses_c", DiskOf(bytes)));
    EXPECT_CODE(third, kResourceExhausted);
    EXPECT_NE(third.status().message().find("disk_overcommit = 2"), std::string::npos)
        << third.status().ToString();
    EXPECT_FALSE(std::filesystem::exists(root + "/sandbox-process/workspaces/ses_c"))
        << "a refused workspace leaves nothing";
    EXPECT_EQ((*provider)->Disk()->committed_bytes, 2 * bytes);
    // A workspace that goes frees its promise.
    ASSERT_OK((*provider)->Destroy(a->id));
    ASSERT_OK((*provider)->DeleteSessionData("ses_a"));
    EXPECT_EQ((*provider)->Disk()->committed_bytes, bytes);
    EXPECT_OK((*provider)->Create(Spec("ses_c", DiskOf(bytes))));
  }
}

// ---- Egress: only through the proxy, only to allowed hosts. --------------------------------

// A one-line HTTP server on the host: answers every request with `body`.
class HostListener {
 public:
  HostListener(const char* address, std::string body) : body_(std::move(body)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, address, &a.sin_addr);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd_, 16);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        char buf[4096];
        (void)!read(c, buf, sizeof buf);
        std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body_.size()) +
                            "\r\nConnection: close\r\n\r\n" + body_;
        (void)!write(c, reply.data(), reply.size());
        close(c);
      }
    });
  }
  ~HostListener() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  std::string body_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(ProcessSandbox, EgressReachesAllowedHostsThroughTheProxyAndNothingElse) {
  HostListener allowed("127.0.0.2", "allowed-body");
  HostListener forbidden("127.0.0.1", "forbidden-body");
  EgressSettings settings;
  TempDir egress_root;
  EgressProxy proxy(settings, egress_root.path() + "/egress");
  std::mutex mu;
  std::vector<std::string> refused;
  proxy.SetOnRefused([&](const std::string&, const std::string& host, int port) {
    std::lock_guard lock(mu);
    refused.push_back(host + ":" + std::to_string(port));
  });
  auto dir = proxy.Open("eg_test", {"127.0.0.2:" + std::to_string(allowed.port())});
  ASSERT_OK(dir);
  SandboxSpec spec = Spec("ses_egress");
  spec.egress_dir = *dir;
  auto sb = provider_->Create(spec);
  ASSERT_OK(sb);
  const std::string a = std::to_string(allowed.port());
  const std::string f = std::to_string(forbidden.port());
  // Plain HTTP through the proxy (HTTP_PROXY is set inside), and a CONNECT tunnel.
  EXPECT_EQ(Run(*sb, "curl -sS http://127.0.0.2:" + a + "/"), "allowed-body");
  EXPECT_EQ(Run(*sb, "curl -sS --proxytunnel http://127.0.0.2:" + a + "/"), "allowed-body");
  // A host that is not on the list: refused by the proxy, with the host named.
  std::string denied = Run(
      *sb, "curl -sS --noproxy '' -o /dev/null -w '%{http_code}' -x http://127.0.0.1:3128 http://127.0.0.1:" +
               f + "/");
  EXPECT_EQ(denied, "403");
  std::string tunnel =
      Run(*sb, "curl -sS --noproxy '' -p -x http://127.0.0.1:3128 http://127.0.0.1:" + f + "/ 2>&1; true");
  EXPECT_EQ(tunnel.find("forbidden-body"), std::string::npos) << tunnel;
  {
    std::lock_guard lock(mu);
    ASSERT_GE(refused.size(), 2u);
    EXPECT_EQ(refused[0], "127.0.0.1:" + f);
  }
  // No route around the proxy: the host's loopback and the allowed host directly are unreachable.
  int code = 0;
  std::string direct =
      Run(*sb, "curl -sS --noproxy '*' --max-time 3 http://127.0.0.1:" + f + "/ 2>&1", &code);
  EXPECT_NE(code, 0);
  EXPECT_EQ(direct.find("forbidden-body"), std::string::npos);
  direct = Run(*sb, "curl -sS --noproxy '*' --max-time 3 http://127.0.0.2:" + a + "/ 2>&1", &code);
  EXPECT_NE(code, 0);
  EXPECT_EQ(direct.find("allowed-body"), std::string::npos);
  // Changing the list takes effect for the next connection.
  proxy.SetAllow(*dir, {});
  EXPECT_EQ(Run(*sb, "curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.2:" + a + "/"), "403");
}

TEST(EgressAllowList, MatchesHostsAndPorts) {
  std::vector<std::string> allow = {"example.com", "*.pypi.org", "gateway:4000", "any:*"};
  EXPECT_TRUE(EgressProxy::Allowed(allow, "example.com", 443));
  EXPECT_TRUE(EgressProxy::Allowed(allow, "EXAMPLE.com", 80));
  EXPECT_FALSE(EgressProxy::Allowed(allow, "example.com", 22));
  EXPECT_FALSE(EgressProxy::Allowed(allow, "www.example.com", 443));
  EXPECT_FALSE(EgressProxy::Allowed(allow, "example.com.evil.net", 443));
  EXPECT_TRUE(EgressProxy::Allowed(allow, "files.pypi.org", 443));
  EXPECT_FALSE(EgressProxy::Allowed(allow, "pypi.org", 443));
  EXPECT_FALSE(EgressProxy::Allowed(allow, "evilpypi.org", 443));
  EXPECT_TRUE(EgressProxy::Allowed(allow, "gateway", 4000));
  EXPECT_FALSE(EgressProxy::Allowed(allow, "gateway", 443));
  EXPECT_TRUE(EgressProxy::Allowed(allow, "any", 12345));
  EXPECT_FALSE(EgressProxy::Allowed({}, "example.com", 443));
}

}  // namespace
}  // namespace paddock::testing
