// The SandboxProvider conformance suite: what the core relies on from every provider.
#include "paddock/testing/sandbox_provider_conformance.h"

#include <algorithm>

#include "testing.h"

namespace paddock::testing {
namespace {

SandboxSpec Spec(const std::string& session) { return SandboxSpec{session, "agt_test", {}}; }

// Cancels as soon as any output arrived.
class CancelOnOutput final : public ExecObserver {
 public:
  void OnOutput(ExecStream, std::string_view) noexcept override { seen_ = true; }
  bool Cancelled() const noexcept override { return seen_; }

 private:
  std::atomic<bool> seen_{false};
};

}  // namespace

TEST_P(SandboxProviderConformance, CreateInspectListDestroy) {
  auto sb = provider_->Create(Spec("ses_one"));
  ASSERT_OK(sb);
  EXPECT_EQ(sb->session_id, "ses_one");
  EXPECT_EQ(sb->state, SandboxState::kRunning);
  auto info = provider_->Inspect(sb->id);
  ASSERT_OK(info);
  EXPECT_EQ(info->state, SandboxState::kRunning);
  auto all = provider_->List();
  ASSERT_OK(all);
  EXPECT_TRUE(std::any_of(all->begin(), all->end(), [&](const SandboxInfo& i) { return i.id == sb->id; }));
  ASSERT_OK(provider_->Destroy(sb->id));
  EXPECT_CODE(provider_->Inspect(sb->id), kNotFound);
  EXPECT_OK(provider_->Destroy(sb->id));  // idempotent
  EXPECT_CODE(provider_->Inspect("psb_never"), kNotFound);
}

TEST_P(SandboxProviderConformance, ExecStreamsStdoutStderrAndExitCode) {
  auto sb = provider_->Create(Spec("ses_exec"));
  ASSERT_OK(sb);
  CapturingObserver out;
  auto r = Sh(*provider_, sb->id, "echo out; echo err >&2; exit 3", out);
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(out.out, "out\n");
  EXPECT_EQ(out.err, "err\n");
}

TEST_P(SandboxProviderConformance, ExecUsesEnvAndWorkingDirectory) {
  auto sb = provider_->Create(Spec("ses_env"));
  ASSERT_OK(sb);
  ExecRequest req;
  req.argv = {"/bin/sh", "-c", "echo \"$GREETING\"; pwd"};
  req.env = {{"GREETING", "hello there"}};
  req.cwd = "/tmp";
  CapturingObserver out;
  auto r = provider_->Exec(sb->id, req, out);
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(out.out, "hello there\n/tmp\n");
}

TEST_P(SandboxProviderConformance, ExecTimeoutKillsTheCommand) {
  auto sb = provider_->Create(Spec("ses_timeout"));
  ASSERT_OK(sb);
  CapturingObserver out;
  auto r = Sh(*provider_, sb->id, "echo started; sleep 30; echo never", out, std::chrono::milliseconds(300));
  ASSERT_OK(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_NE(r->exit_code, 0);
  EXPECT_EQ(out.out, "started\n");
}

TEST_P(SandboxProviderConformance, ExecCanBeCancelled) {
  auto sb = provider_->Create(Spec("ses_cancel"));
  ASSERT_OK(sb);
  ExecRequest req;
  req.argv = {"/bin/sh", "-c", "echo go; sleep 30"};
  CancelOnOutput observer;
  auto r = provider_->Exec(sb->id, req, observer);
  ASSERT_OK(r);
  EXPECT_TRUE(r->cancelled);
  EXPECT_FALSE(r->timed_out);
}

TEST_P(SandboxProviderConformance, ExecRefusesBadRequests) {
  CapturingObserver out;
  ExecRequest req;
  req.argv = {"true"};
  EXPECT_CODE(provider_->Exec("psb_never", req, out), kNotFound);
  auto sb = provider_->Create(Spec("ses_bad"));
  ASSERT_OK(sb);
  req.argv.clear();
  EXPECT_CODE(provider_->Exec(sb->id, req, out), kInvalidArgument);
  req.argv = {"true"};
  req.env = {{"BAD=NAME", "x"}};
  EXPECT_CODE(provider_->Exec(sb->id, req, out), kInvalidArgument);
}

TEST_P(SandboxProviderConformance, WorkspaceOutlivesTheSandboxOfItsSession) {
  auto first = provider_->Create(Spec("ses_keep"));
  ASSERT_OK(first);
  CapturingObserver out;
  ASSERT_OK(Sh(*provider_, first->id, "echo kept > /workspace/note.txt", out));
  ASSERT_OK(provider_->Destroy(first->id));
  auto second = provider_->Create(Spec("ses_keep"));
  ASSERT_OK(second);
  EXPECT_NE(second->id, first->id);
  CapturingObserver read;
  auto r = Sh(*provider_, second->id, "cat /workspace/note.txt", read);
  ASSERT_OK(r);
  EXPECT_EQ(read.out, "kept\n");

  ASSERT_OK(provider_->Destroy(second->id));
  ASSERT_OK(provider_->DeleteSessionData("ses_keep"));
  auto third = provider_->Create(Spec("ses_keep"));
  ASSERT_OK(third);
  CapturingObserver gone;
  r = Sh(*provider_, third->id, "ls -A /workspace", gone);
  ASSERT_OK(r);
  EXPECT_EQ(gone.out, "");
}

TEST_P(SandboxProviderConformance, SessionsDoNotShareWorkspaces) {
  auto a = provider_->Create(Spec("ses_a"));
  auto b = provider_->Create(Spec("ses_b"));
  ASSERT_OK(a);
  ASSERT_OK(b);
  CapturingObserver out;
  ASSERT_OK(Sh(*provider_, a->id, "echo private > /workspace/mine.txt", out));
  CapturingObserver other;
  auto r = Sh(*provider_, b->id, "ls -A /workspace", other);
  ASSERT_OK(r);
  EXPECT_EQ(other.out, "");
}

}  // namespace paddock::testing
