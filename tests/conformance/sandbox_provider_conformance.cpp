// The SandboxProvider conformance suite: what the core relies on from every provider, with exec,
// files and archives going through the sandbox's paddock-runtime (RuntimeClient), as in the core.
#include "paddock/testing/sandbox_provider_conformance.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "runtime/runtime_client.h"
#include "testing.h"
#include "util/cancel_signal.h"

namespace paddock::testing {
namespace {

SandboxSpec Spec(const std::string& session) {
  SandboxSpec s;
  s.session_id = session;
  s.agent_id = "agt_test";
  return s;
}

// Cancels as soon as any output arrived.
class CancelOnOutput final : public ExecObserver {
 public:
  void OnOutput(ExecStream, std::string_view) noexcept override { seen_ = true; }
  bool Cancelled() const noexcept override { return seen_; }

 private:
  std::atomic<bool> seen_{false};
};

// Records the order of chunks and when each arrived.
class Timeline final : public ExecObserver {
 public:
  void OnOutput(ExecStream s, std::string_view c) noexcept override {
    chunks.emplace_back(s, std::string(c), std::chrono::steady_clock::now());
  }
  std::vector<std::tuple<ExecStream, std::string, std::chrono::steady_clock::time_point>> chunks;
};

ExecRequest Shell(const std::string& script, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  ExecRequest r;
  r.argv = {"/bin/sh", "-c", script};
  r.timeout = timeout;
  return r;
}

}  // namespace

TEST_P(SandboxProviderConformance, CreateInspectListDestroy) {
  auto sb = provider_->Create(Spec("ses_one"));
  ASSERT_OK(sb);
  EXPECT_EQ(sb->session_id, "ses_one");
  EXPECT_EQ(sb->state, SandboxState::kRunning);
  EXPECT_FALSE(sb->runtime.address.empty());
  EXPECT_GE(sb->runtime.token.size(), 16u);
  auto info = provider_->Inspect(sb->id);
  ASSERT_OK(info);
  EXPECT_EQ(info->state, SandboxState::kRunning);
  EXPECT_EQ(info->runtime.address, sb->runtime.address);
  auto all = provider_->List();
  ASSERT_OK(all);
  EXPECT_TRUE(std::any_of(all->begin(), all->end(), [&](const SandboxInfo& i) { return i.id == sb->id; }));
  ASSERT_OK(provider_->Destroy(sb->id));
  EXPECT_CODE(provider_->Inspect(sb->id), kNotFound);
  EXPECT_OK(provider_->Destroy(sb->id));  // idempotent
  EXPECT_CODE(provider_->Inspect("psb_never"), kNotFound);
  // Its runtime is gone with it.
  EXPECT_CODE(RuntimeClient(sb->runtime).Health(), kUnavailable);
}

TEST_P(SandboxProviderConformance, TheRuntimeIsPidOneAndRefusesAWrongToken) {
  auto sb = provider_->Create(Spec("ses_health"));
  ASSERT_OK(sb);
  auto health = RuntimeClient(sb->runtime).Health();
  ASSERT_OK(health);
  EXPECT_EQ(health->pid, 1);
  EXPECT_NE(health->uid, 0);  // unprivileged inside
  RuntimeEndpoint wrong = sb->runtime;
  wrong.token = std::string(wrong.token.size(), 'x');
  EXPECT_CODE(RuntimeClient(wrong).Health(), kPermissionDenied);
  wrong.token = "";
  EXPECT_CODE(RuntimeClient(wrong).Health(), kPermissionDenied);
}

TEST_P(SandboxProviderConformance, ExecStreamsOutputAsItIsProduced) {
  auto sb = provider_->Create(Spec("ses_stream"));
  ASSERT_OK(sb);
  Timeline t;
  auto r = RuntimeClient(sb->runtime).Exec(Shell("echo one; sleep 0.5; echo two >&2; exit 7"), t);
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 7);
  ASSERT_EQ(t.chunks.size(), 2u);
  EXPECT_EQ(std::get<0>(t.chunks[0]), ExecStream::kStdout);
  EXPECT_EQ(std::get<1>(t.chunks[0]), "one\n");
  EXPECT_EQ(std::get<0>(t.chunks[1]), ExecStream::kStderr);
  EXPECT_EQ(std::get<1>(t.chunks[1]), "two\n");
  // The first chunk arrived before the command ended, not all at the end.
  EXPECT_GE(std::get<2>(t.chunks[1]) - std::get<2>(t.chunks[0]), std::chrono::milliseconds(300));
}

TEST_P(SandboxProviderConformance, ChattyOutputComesInFewChunksInTheOrderItWasWritten) {
  auto sb = provider_->Create(Spec("ses_chatty"));
  ASSERT_OK(sb);
  // 2000 writes of one line each, then a line on stderr, then (once that is surely read: two
  // pipes have no order of their own) more on stdout.
  Timeline t;
  auto r = RuntimeClient(sb->runtime)
               .Exec(Shell("i=0; while [ $i -lt 2000 ]; do echo $i; i=$((i+1)); done; echo middle >&2; "
                           "sleep 0.1; echo after"),
                     t);
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 0);
  std::string out, expected;
  for (int i = 0; i < 2000; ++i) expected += std::to_string(i) + "\n";
  size_t stderr_at = 0;
  for (size_t i = 0; i < t.chunks.size(); ++i) {
    if (std::get<0>(t.chunks[i]) == ExecStream::kStderr) {
      EXPECT_EQ(std::get<1>(t.chunks[i]), "middle\n");
      EXPECT_EQ(out, expected) << "stderr came before all the stdout written ahead of it";
      stderr_at = i;
    } else {
      out += std::get<1>(t.chunks[i]);
    }
  }
  EXPECT_GT(stderr_at, 0u);
  EXPECT_EQ(out, expected + "after\n");
  // Gathered: far fewer chunks than writes (a chunk waits a few ms for more).
  EXPECT_LT(t.chunks.size(), 200u);
}

TEST_P(SandboxProviderConformance, ExecPassesEnvCwdAndStdin) {
  auto sb = provider_->Create(Spec("ses_env"));
  ASSERT_OK(sb);
  RuntimeClient rt(sb->runtime);
  ASSERT_OK(rt.SetEnv({{"SESSION_VALUE", "from-session"}, {"BOTH", "session"}}));
  ExecRequest r =
      Shell("mkdir -p /workspace/sub; cd /workspace/sub; echo \"$SESSION_VALUE $BOTH $MINE $(cat)\"; pwd");
  r.env = {{"MINE", "mine"}, {"BOTH", "request"}};
  r.stdin_data = "from-stdin";
  CapturingObserver out;
  auto result = rt.Exec(r, out);
  ASSERT_OK(result);
  EXPECT_EQ(out.out, "from-session request mine from-stdin\n/workspace/sub\n");
  ExecRequest in_dir = Shell("pwd");
  in_dir.cwd = "/workspace/sub";
  CapturingObserver out2;
  ASSERT_OK(rt.Exec(in_dir, out2));
  EXPECT_EQ(out2.out, "/workspace/sub\n");
}

TEST_P(SandboxProviderConformance, ExecTimesOutAndIsCancellable) {
  auto sb = provider_->Create(Spec("ses_timeout"));
  ASSERT_OK(sb);
  RuntimeClient rt(sb->runtime);
  CapturingObserver out;
  auto start = std::chrono::steady_clock::now();
  auto r = rt.Exec(Shell("sleep 30", std::chrono::milliseconds(300)), out);
  ASSERT_OK(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_NE(r->exit_code, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  CancelOnOutput cancel;
  auto c = rt.Exec(Shell("echo go; sleep 30"), cancel);
  ASSERT_OK(c);
  EXPECT_TRUE(c->cancelled);
  EXPECT_FALSE(c->timed_out);
  // A command that prints nothing is stopped by the signal the run's cancel sets.
  CancelSignal stop;
  CapturingObserver quiet;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop.Set();
  });
  auto s = rt.Exec(Shell("sleep 30"), quiet, &stop);
  canceller.join();
  ASSERT_OK(s);
  EXPECT_TRUE(s->cancelled);
  EXPECT_FALSE(s->timed_out);
  EXPECT_NE(s->exit_code, 0);
  // Set before the command even started (a run cancelled while its sandbox was made): the kill
  // waits for the runtime to know the command, then stops it.
  CapturingObserver early;
  auto e = rt.Exec(Shell("sleep 30"), early, &stop);
  ASSERT_OK(e);
  EXPECT_TRUE(e->cancelled);
}

TEST_P(SandboxProviderConformance, ExecRejectsBadRequests) {
  auto sb = provider_->Create(Spec("ses_bad"));
  ASSERT_OK(sb);
  RuntimeClient rt(sb->runtime);
  CapturingObserver out;
  ExecRequest empty;
  EXPECT_CODE(rt.Exec(empty, out), kInvalidArgument);
  ExecRequest bad_env = Shell("true");
  bad_env.env = {{"BAD NAME", "x"}};
  EXPECT_CODE(rt.Exec(bad_env, out), kInvalidArgument);
  ExecRequest bad_cwd = Shell("true");
  bad_cwd.cwd = "/nonexistent";
  EXPECT_CODE(rt.Exec(bad_cwd, out), kInvalidArgument);
  ExecRequest missing;
  missing.argv = {"/no/such/program"};
  auto r = rt.Exec(missing, out);
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 127);
}

TEST_P(SandboxProviderConformance, BackgroundProcessesOutliveOneExec) {
  auto sb = provider_->Create(Spec("ses_bg"));
  ASSERT_OK(sb);
  RuntimeClient rt(sb->runtime);
  auto p = rt.StartProcess({"/bin/sh", "-c", "echo started; while true; do sleep 0.1; done"}, {});
  ASSERT_OK(p);
  EXPECT_TRUE(p->running);
  RuntimeLogs logs;
  for (int i = 0; i < 50; ++i) {
    auto l = rt.ProcessLogs(p->id);
    ASSERT_OK(l);
    logs = *l;
    if (!logs.data.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(logs.data, "started\n");
  EXPECT_EQ(logs.next_offset, 8u);
  auto listed = rt.ListProcesses();
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, p->id);
  ASSERT_OK(rt.SignalProcess(p->id, "TERM"));
  bool ended = false;
  for (int i = 0; i < 100 && !ended; ++i) {
    auto l = rt.ListProcesses();
    ASSERT_OK(l);
    ended = !(*l)[0].running;
    if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(ended);
  EXPECT_CODE(rt.SignalProcess(p->id, "NOPE"), kInvalidArgument);
  EXPECT_CODE(rt.ProcessLogs("proc_none"), kNotFound);
}

TEST_P(SandboxProviderConformance, FilesStayInsideTheAllowedRoots) {
  auto sb = provider_->Create(Spec("ses_files"));
  ASSERT_OK(sb);
  RuntimeClient rt(sb->runtime);
  std::string binary("a\0b\xff", 4);
  ASSERT_OK(rt.PutFile("/workspace/dir/data.bin", binary, "0600"));
  auto got = rt.GetFile("dir/data.bin");  // relative to /workspace
  ASSERT_OK(got);
  EXPECT_EQ(*got, binary);
  auto st = rt.Stat("/workspace/dir/data.bin");
  ASSERT_OK(st);
  EXPECT_EQ(st->type, "file");
  EXPECT_EQ(st->size, 4);
  EXPECT_EQ(st->mode, "0600");
  auto list = rt.List("/workspace/dir");
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 1u);
  // Escapes are refused with 400 (kInvalidArgument), whatever the spelling.
  EXPECT_CODE(rt.GetFile("/workspace/../etc/passwd"), kInvalidArgument);
  EXPECT_CODE(rt.GetFile("../../etc/passwd"), kInvalidArgument);
  EXPECT_CODE(rt.GetFile("/etc/passwd"), kInvalidArgument);
  EXPECT_CODE(rt.GetFile("/proc/1/environ"), kInvalidArgument);
  EXPECT_CODE(rt.PutFile("/usr/evil", "x"), kInvalidArgument);
  CapturingObserver out;
  ASSERT_OK(Sh(*sb, "ln -s /etc /workspace/etc-link; ln -s /etc/passwd /workspace/pw", out));
  EXPECT_CODE(rt.GetFile("/workspace/etc-link/passwd"), kInvalidArgument);
  EXPECT_CODE(rt.GetFile("/workspace/pw"), kInvalidArgument);
  EXPECT_CODE(rt.PutFile("/workspace/etc-link/x", "x"), kInvalidArgument);
  EXPECT_CODE(rt.GetFile("/workspace/missing"), kNotFound);
  EXPECT_CODE(rt.Remove("/workspace"), kInvalidArgument);
  EXPECT_CODE(rt.Remove("/workspace/dir"), kInvalidArgument);  // not empty
  ASSERT_OK(rt.Remove("/workspace/dir", /*recursive=*/true));
  EXPECT_CODE(rt.Stat("/workspace/dir"), kNotFound);
}

TEST_P(SandboxProviderConformance, ArchiveAndRestoreRoundTrip) {
  auto sb = provider_->Create(Spec("ses_archive"));
  ASSERT_OK(sb);
  RuntimeClient rt(sb->runtime);
  CapturingObserver out;
  ASSERT_OK(
      Sh(*sb,
         "mkdir -p /workspace/p/q && echo hello > /workspace/p/q/a.txt && ln -s a.txt /workspace/p/q/l && "
         "chmod 0750 /workspace/p/q/a.txt",
         out));
  auto tar = rt.Archive({"/workspace/p"});
  ASSERT_OK(tar);
  auto gz = rt.Archive({"/workspace/p"}, /*gzip=*/true);
  ASSERT_OK(gz);
  ASSERT_OK(rt.Remove("/workspace/p", true));
  ASSERT_OK(rt.Restore(*gz));
  CapturingObserver after;
  ASSERT_OK(
      Sh(*sb, "cat /workspace/p/q/l; stat -c %a /workspace/p/q/a.txt; readlink /workspace/p/q/l", after));
  EXPECT_EQ(after.out, "hello\n750\na.txt\n");
  // An archive of another sandbox restores there, too (the snapshot path).
  auto other = provider_->Create(Spec("ses_archive_2"));
  ASSERT_OK(other);
  ASSERT_OK(RuntimeClient(other->runtime).Restore(*tar));
  auto copied = RuntimeClient(other->runtime).GetFile("/workspace/p/q/a.txt");
  ASSERT_OK(copied);
  EXPECT_EQ(*copied, "hello\n");
  EXPECT_CODE(rt.Archive({"/etc"}), kInvalidArgument);
  EXPECT_CODE(rt.Restore("this is not a tar archive, not even close....................."), kInvalidArgument);
}

TEST_P(SandboxProviderConformance, SnapshotsCarryTheWorkspaceAndHomeExactlyWithinASizeCap) {
  auto sb = provider_->Create(Spec("ses_snap"));
  ASSERT_OK(sb);
  RuntimeClient rt(sb->runtime);
  CapturingObserver out;
  ASSERT_OK(Sh(
      *sb,
      "echo $HOME; mkdir -p $HOME/.agent && echo state > $HOME/.agent/s && echo kept > /workspace/a.txt && "
      "head -c 300000 /dev/urandom > /workspace/big.bin",
      out));
  EXPECT_EQ(out.out, std::string(kSandboxHome) + "\n");
  const std::vector<std::string> paths = {kSandboxWorkspace, std::string(kSandboxHome) + "/.agent",
                                          std::string(kSandboxHome) + "/.absent"};  // absent: skipped
  auto snapshot = rt.Archive(paths, /*gzip=*/true);
  ASSERT_OK(snapshot);
  // Over max_bytes: refused as such, so the caller can keep less.
  EXPECT_CODE(rt.Archive(paths, true, 100000), kResourceExhausted);
  auto small = rt.Archive({std::string(kSandboxHome) + "/.agent"}, true, 100000);
  ASSERT_OK(small);
  // The sandbox moves on after the snapshot: new files, changed files, deleted files.
  CapturingObserver later;
  ASSERT_OK(Sh(*sb,
               "echo changed > /workspace/a.txt; echo new > /workspace/new.txt; rm /workspace/big.bin; "
               "echo more > $HOME/.agent/t",
               later));
  // Restoring with clean puts it back exactly as it was.
  ASSERT_OK(rt.Restore(*snapshot, paths));
  CapturingObserver after;
  ASSERT_OK(
      Sh(*sb, "cat /workspace/a.txt; ls /workspace; ls $HOME/.agent; wc -c < /workspace/big.bin", after));
  EXPECT_EQ(after.out, "kept\na.txt\nbig.bin\ns\n300000\n");
  // Into a new sandbox of another session (a new host), too.
  auto other = provider_->Create(Spec("ses_snap_2"));
  ASSERT_OK(other);
  ASSERT_OK(RuntimeClient(other->runtime).Restore(*snapshot, paths));
  CapturingObserver there;
  ASSERT_OK(Sh(*other, "cat /workspace/a.txt $HOME/.agent/s", there));
  EXPECT_EQ(there.out, "kept\nstate\n");
  // clean is confined to the roots like every path.
  EXPECT_CODE(rt.Restore(*small, {"/etc"}), kInvalidArgument);
  EXPECT_CODE(rt.Restore(*small, {"/workspace/../etc"}), kInvalidArgument);
}

TEST_P(SandboxProviderConformance, ArchivesCannotWriteOutsideTheRoots) {
  auto sb = provider_->Create(Spec("ses_evil_tar"));
  ASSERT_OK(sb);
  RuntimeClient rt(sb->runtime);
  // A tar made inside the sandbox with a "../" entry and an absolute one.
  CapturingObserver out;
  ASSERT_OK(Sh(
      *sb, "cd /tmp && mkdir -p x && echo evil > x/e && tar -cf evil.tar --absolute-names /tmp/x/e x/../x/e",
      out));
  auto evil = rt.GetFile("/tmp/evil.tar");
  ASSERT_OK(evil);
  EXPECT_CODE(rt.Restore(*evil), kInvalidArgument);
}

// A provider that keeps session data gives the session's next sandbox its workspace; one that
// does not (sandboxes are cattle, the core's snapshots carry the state) starts it empty.
TEST_P(SandboxProviderConformance, TheWorkspaceSurvivesItsSandboxExactlyWhenTheProviderSaysSo) {
  auto first = provider_->Create(Spec("ses_keep"));
  ASSERT_OK(first);
  ASSERT_OK(RuntimeClient(first->runtime).PutFile("/workspace/kept.txt", "kept"));
  ASSERT_OK(provider_->Destroy(first->id));
  auto second = provider_->Create(Spec("ses_keep"));
  ASSERT_OK(second);
  auto kept = RuntimeClient(second->runtime).GetFile("/workspace/kept.txt");
  if (!provider_->KeepsSessionData()) {
    EXPECT_CODE(kept, kNotFound);
    ASSERT_OK(provider_->DeleteSessionData("ses_keep"));
    return;
  }
  ASSERT_OK(kept);
  EXPECT_EQ(*kept, "kept");
  ASSERT_OK(provider_->Destroy(second->id));
  ASSERT_OK(provider_->DeleteSessionData("ses_keep"));
  ASSERT_OK(provider_->DeleteSessionData("ses_keep"));  // idempotent
  auto third = provider_->Create(Spec("ses_keep"));
  ASSERT_OK(third);
  EXPECT_CODE(RuntimeClient(third->runtime).GetFile("/workspace/kept.txt"), kNotFound);
}

TEST_P(SandboxProviderConformance, AWarmSandboxIsClaimedOnceAndNeverForASessionWithData) {
  SandboxSpec warm_spec = Spec("");
  auto warm = provider_->Create(warm_spec);
  ASSERT_OK(warm);
  EXPECT_TRUE(warm->session_id.empty());
  auto claimed = provider_->Claim(warm->id, "ses_claim");
  ASSERT_OK(claimed);
  EXPECT_EQ(claimed->session_id, "ses_claim");
  EXPECT_CODE(provider_->Claim(warm->id, "ses_other"), kFailedPrecondition);
  auto bound = provider_->Inspect(claimed->id);
  ASSERT_OK(bound);
  EXPECT_EQ(bound->session_id, "ses_claim");
  ASSERT_OK(RuntimeClient(claimed->runtime).PutFile("/workspace/mine", "claimed"));
  EXPECT_CODE(provider_->Claim("psb_never", "ses_x"), kNotFound);
  if (!provider_->KeepsSessionData()) {
    // Nothing outlives the sandbox, so a session never has data that a warm one could not take.
    auto warm2 = provider_->Create(warm_spec);
    ASSERT_OK(warm2);
    auto taken = provider_->Claim(warm2->id, "ses_claim_2");
    ASSERT_OK(taken);
    EXPECT_EQ(taken->session_id, "ses_claim_2");
    return;
  }
  // The claimed sandbox serves the session's durable data from now on.
  ASSERT_OK(provider_->Destroy(claimed->id));
  auto again = provider_->Create(Spec("ses_claim"));
  ASSERT_OK(again);
  auto mine = RuntimeClient(again->runtime).GetFile("/workspace/mine");
  ASSERT_OK(mine);
  EXPECT_EQ(*mine, "claimed");
  // A session with a workspace cannot take over a warm sandbox's.
  auto warm2 = provider_->Create(warm_spec);
  ASSERT_OK(warm2);
  EXPECT_CODE(provider_->Claim(warm2->id, "ses_claim"), kFailedPrecondition);
  auto still = provider_->Inspect(warm2->id);
  ASSERT_OK(still);
  EXPECT_TRUE(still->session_id.empty());
}

TEST_P(SandboxProviderConformance, RejectsInvalidSpecs) {
  EXPECT_CODE(provider_->Create(Spec("bad/session")), kInvalidArgument);
  SandboxSpec negative = Spec("ses_neg");
  negative.limits.memory_bytes = -1;
  EXPECT_CODE(provider_->Create(negative), kInvalidArgument);
}

TEST_P(SandboxProviderConformance, ManySandboxesAtOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      auto sb = provider_->Create(Spec("ses_many_" + std::to_string(i)));
      if (!sb.ok()) return;
      CapturingObserver out;
      auto r = Sh(*sb, "echo " + std::to_string(i), out);
      if (r.ok() && out.out == std::to_string(i) + "\n") ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 6);
}

}  // namespace paddock::testing
