// sandbox.process: the conformance suite, and the isolation every sandbox must have.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "paddock/testing/sandbox_provider_conformance.h"
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

class ProcessSandbox : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = LoadSandbox("process", kConfig, dir_.path());
    ASSERT_OK(p);
    provider_ = *p;
  }
  std::string Run(const std::string& sandbox, const std::string& script, int* exit_code = nullptr) {
    CapturingObserver out;
    auto r = Sh(*provider_, sandbox, script, out);
    EXPECT_OK(r);
    if (exit_code && r.ok()) *exit_code = r->exit_code;
    return out.out + out.err;
  }
  TempDir dir_;
  std::shared_ptr<SandboxProvider> provider_;
};

TEST_F(ProcessSandbox, HasItsOwnPidNamespace) {
  auto sb = provider_->Create(SandboxSpec{"ses_pid", "", {}});
  ASSERT_OK(sb);
  EXPECT_EQ(Run(sb->id, "head -1 /proc/1/status"), "Name:\tbwrap\n");
  // Only the sandbox's own few processes are visible, never the host's.
  std::string pids = Run(sb->id, "ls /proc | grep -c '^[0-9]'");
  EXPECT_LT(std::stoi(pids), 10) << pids;
  EXPECT_EQ(
      Run(sb->id, "test -e /proc/" + std::to_string(getpid()) + "/status && echo visible || echo hidden"),
      "hidden\n");
}

TEST_F(ProcessSandbox, SeesNoHostFilesOutsideItsMounts) {
  auto sb = provider_->Create(SandboxSpec{"ses_files", "", {}});
  ASSERT_OK(sb);
  for (const std::string& path : {std::string("/root"), std::string("/home"), std::string("/work"),
                                  dir_.path(), SourceDir(), std::string("/var/lib")}) {
    EXPECT_EQ(Run(sb->id, "test -e '" + path + "' && echo present || echo absent"), "absent\n") << path;
  }
  // System directories are there, read-only.
  int code = 0;
  Run(sb->id, "touch /usr/paddock-probe", &code);
  EXPECT_NE(code, 0);
  EXPECT_EQ(Run(sb->id, "test -x /usr/bin/env && echo ok"), "ok\n");
  // An unprivileged user inside.
  EXPECT_EQ(Run(sb->id, "id -u"), "1000\n");
}

TEST_F(ProcessSandbox, DoesNotSeeTheServerEnvironment) {
  setenv("PADDOCK_TEST_SERVER_ONLY", "server-value-4711", 1);
  auto sb = provider_->Create(SandboxSpec{"ses_env", "", {}});
  ASSERT_OK(sb);
  std::string seen = Run(sb->id, "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'");
  EXPECT_EQ(seen.find("server-value-4711"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("PADDOCK_TEST_SERVER_ONLY"), std::string::npos);
  unsetenv("PADDOCK_TEST_SERVER_ONLY");
}

TEST_F(ProcessSandbox, CannotSeeAnotherSandboxesFilesOrProcesses) {
  auto a = provider_->Create(SandboxSpec{"ses_left", "", {}});
  auto b = provider_->Create(SandboxSpec{"ses_right", "", {}});
  ASSERT_OK(a);
  ASSERT_OK(b);
  Run(a->id, "echo secret-of-left > /workspace/left.txt; (sleep 600 &) ; echo started");
  std::string view = Run(b->id, "ls -A /workspace; ps -eo args 2>/dev/null || ls /proc");
  EXPECT_EQ(view.find("left.txt"), std::string::npos) << view;
  EXPECT_EQ(view.find("sleep 600"), std::string::npos) << view;
  // Nor can it find the other workspace on disk: the sandbox root is not mounted.
  EXPECT_EQ(Run(b->id, "cat '" + dir_.path() + "/sandbox-process/workspaces/ses_left/left.txt' 2>&1 || true")
                .find("secret-of-left"),
            std::string::npos);
}

TEST_F(ProcessSandbox, HasNoNetworkButLoopback) {
  auto sb = provider_->Create(SandboxSpec{"ses_net", "", {}});
  ASSERT_OK(sb);
  std::string devices = Run(sb->id, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
  EXPECT_EQ(devices, "lo\n");
}

TEST_F(ProcessSandbox, DestroyKillsEveryProcessOfTheSandbox) {
  auto sb = provider_->Create(SandboxSpec{"ses_kill", "", {}});
  ASSERT_OK(sb);
  Run(sb->id, "(setsid sleep 777.25 &) ; (sleep 777.25 &) ; echo started");
  EXPECT_EQ(HostProcessesWith("sleep 777.25").size(), 2u);
  ASSERT_OK(provider_->Destroy(sb->id));
  for (int i = 0; i < 100 && !HostProcessesWith("sleep 777.25").empty(); ++i) usleep(20000);
  EXPECT_TRUE(HostProcessesWith("sleep 777.25").empty());
}

TEST_F(ProcessSandbox, ACommandWhoseSandboxDiesUnderItReportsTheSandboxGone) {
  auto sb = provider_->Create(SandboxSpec{"ses_dies", "", {}});
  ASSERT_OK(sb);
  pid_t init = static_cast<pid_t>(std::stoi(sb->detail.substr(sb->detail.find(' ') + 1)));
  std::thread killer([&] {
    while (HostProcessesWith("sleep 999.75").empty()) usleep(5000);
    kill(init, SIGKILL);
  });
  CapturingObserver out;
  auto r = Sh(*provider_, sb->id, "sleep 999.75", out);
  killer.join();
  EXPECT_CODE(r, kUnavailable);
  auto info = provider_->Inspect(sb->id);
  ASSERT_OK(info);
  EXPECT_EQ(info->state, SandboxState::kGone);
}

TEST_F(ProcessSandbox, ARestartedProviderDestroysSandboxesItFindsLeftOver) {
  TempDir root;
  std::string marker = "sleep 888.5";
  {
    auto first = LoadSandbox("process", "destroy_on_stop = false", root.path());
    ASSERT_OK(first);
    auto sb = (*first)->Create(SandboxSpec{"ses_orphan", "", {}});
    ASSERT_OK(sb);
    CapturingObserver out;
    ASSERT_OK(Sh(**first, sb->id, "(sleep 888.5 &); true", out));
  }
  EXPECT_EQ(HostProcessesWith(marker).size(), 1u);
  auto second = LoadSandbox("process", "destroy_on_stop = true", root.path());
  ASSERT_OK(second);
  for (int i = 0; i < 100 && !HostProcessesWith(marker).empty(); ++i) usleep(20000);
  EXPECT_TRUE(HostProcessesWith(marker).empty());
  auto left = (*second)->List();
  ASSERT_OK(left);
  EXPECT_TRUE(left->empty());
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
}

}  // namespace
}  // namespace paddock::testing
