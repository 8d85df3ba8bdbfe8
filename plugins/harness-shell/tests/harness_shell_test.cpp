// The shell harness against a scripted TurnContext: output becomes one event per line, and the
// exit code decides the outcome.
#include <gtest/gtest.h>

#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {
namespace {

class ScriptedTurn final : public TurnContext {
 public:
  // `chunks` are fed to the observer as stdout, in order; the exec then exits with `exit_code`.
  ScriptedTurn(std::vector<std::string> chunks, int exit_code)
      : chunks_(std::move(chunks)), exit_code_(exit_code) {
    run_.content = "the command";
  }
  const Agent& agent() const noexcept override { return agent_; }
  const Session& session() const noexcept override { return session_; }
  const Run& run() const noexcept override { return run_; }
  Result<ExecResult> Exec(const ExecRequest& request, ExecObserver& observer) noexcept override {
    argv = request.argv;
    env = request.env;
    for (const auto& c : chunks_) observer.OnOutput(ExecStream::kStdout, c);
    observer.OnOutput(ExecStream::kStderr, "warning: partial");
    ExecResult r;
    r.exit_code = exit_code_;
    return r;
  }
  Status Emit(std::string_view type, std::string_view data) noexcept override {
    events.emplace_back(std::string(type) + " " + std::string(data));
    return Status::Ok();
  }
  bool Cancelled() const noexcept override { return false; }
  const TurnResume& resume() const noexcept override { return resume_; }

  std::vector<std::string> argv;
  EnvMap env;
  TurnResume resume_;
  std::vector<std::string> events;

 private:
  Agent agent_;
  Session session_;
  Run run_;
  std::vector<std::string> chunks_;
  int exit_code_;
};

TEST(ShellHarness, TheWholeLinesOfEachChunkAreOneEventAndExitZeroSucceeds) {
  TempDir dir;
  auto harness = LoadHarness("shell", "", dir.path());
  ASSERT_OK(harness);
  ScriptedTurn turn({"hel", "lo\nwor", "ld\n\"quoted\"\n"}, 0);
  auto outcome = (*harness)->RunTurn(turn);
  ASSERT_OK(outcome);
  EXPECT_EQ(outcome->status, RunStatus::kSucceeded);
  EXPECT_EQ(outcome->exit_code, 0);
  ASSERT_EQ(turn.argv.size(), 3u);
  EXPECT_EQ(turn.argv[0], "/bin/sh");
  EXPECT_EQ(turn.argv[1], "-c");
  // The state file is sourced first, then the message runs as it was sent.
  EXPECT_NE(turn.argv[2].find(". \"$PADDOCK_STATE\""), std::string::npos) << turn.argv[2];
  EXPECT_EQ(turn.argv[2].substr(turn.argv[2].size() - 11), "the command");
  EXPECT_EQ(turn.env["PADDOCK_STATE"], "/home/paddock/.paddock-shell/state");
  EXPECT_EQ(turn.env.count("PADDOCK_RESUMING"), 0u);
  // "hel" holds no whole line; "lo\nwor" completes one; the third chunk completes two.
  ASSERT_EQ(turn.events.size(), 3u);
  EXPECT_EQ(turn.events[0], R"(output {"stream":"stdout","text":"hello"})");
  EXPECT_EQ(turn.events[1], R"(output {"stream":"stdout","text":"world\n\"quoted\""})");
  EXPECT_EQ(turn.events[2], R"(output {"stream":"stderr","text":"warning: partial"})");
}

TEST(ShellHarness, NonZeroExitFailsTheRunWithTheCode) {
  TempDir dir;
  auto harness = LoadHarness("shell", "shell = \"/bin/bash\"", dir.path());
  ASSERT_OK(harness);
  ScriptedTurn turn({}, 7);
  auto outcome = (*harness)->RunTurn(turn);
  ASSERT_OK(outcome);
  EXPECT_EQ(outcome->status, RunStatus::kFailed);
  EXPECT_EQ(outcome->exit_code, 7);
  EXPECT_EQ(outcome->error, "command exited with code 7");
  EXPECT_EQ(turn.argv[0], "/bin/bash");
}

TEST(ShellHarness, LongLinesAreSplit) {
  TempDir dir;
  auto harness = LoadHarness("shell", "max_line_bytes = 4", dir.path());
  ASSERT_OK(harness);
  ScriptedTurn turn({"abcdefghij\n"}, 0);
  ASSERT_OK((*harness)->RunTurn(turn));
  // Each piece of the long line is an event of its own: concatenated, they are the line (the
  // scripted stderr follows, in pieces too).
  ASSERT_EQ(turn.events.size(), 7u);
  EXPECT_EQ(turn.events[0], R"(output {"stream":"stdout","text":"abcd"})");
  EXPECT_EQ(turn.events[1], R"(output {"stream":"stdout","text":"efgh"})");
  EXPECT_EQ(turn.events[2], R"(output {"stream":"stdout","text":"ij"})");
}

TEST(ShellHarness, NativeStateIsTheStateFilesDirectoryAndAResumedTurnIsTold) {
  TempDir dir;
  auto harness = LoadHarness("shell", "state_file = \"/workspace/.state/vars\"", dir.path());
  ASSERT_OK(harness);
  EXPECT_EQ((*harness)->NativeStatePaths(Agent{}), (std::vector<std::string>{"/workspace/.state"}));
  ScriptedTurn turn({}, 0);
  turn.resume_.resuming = true;
  ASSERT_OK((*harness)->RunTurn(turn));
  EXPECT_EQ(turn.env["PADDOCK_STATE"], "/workspace/.state/vars");
  EXPECT_EQ(turn.env["PADDOCK_RESUMING"], "1");
}

TEST(ShellHarness, RehydrateReplaysNothingButSaysSo) {
  TempDir dir;
  auto harness = LoadHarness("shell", "", dir.path());
  ASSERT_OK(harness);
  ScriptedTurn turn({}, 0);
  std::vector<TranscriptMessage> transcript = {{"user", "run_1", "echo hi", std::nullopt},
                                               {"assistant", "run_1", "hi\n", RunStatus::kSucceeded}};
  auto outcome = (*harness)->Rehydrate(turn, transcript);
  ASSERT_OK(outcome);
  EXPECT_EQ(outcome->replayed, 0);
  ASSERT_EQ(turn.events.size(), 1u);
  EXPECT_EQ(turn.events[0], R"(harness.rehydrated {"messages":2,"replayed":0})");
}

TEST(ShellHarness, AStateFileOutsideTheSandboxRootsIsRefused) {
  TempDir dir;
  for (const char* bad : {"/etc/state", "/home/paddock/../../etc/x", "/home/paddock/a$b", "relative/state",
                          "/workspace/dir/"}) {
    auto harness = LoadHarness("shell", std::string("state_file = \"") + bad + "\"", dir.path());
    ASSERT_FALSE(harness.ok()) << bad;
    EXPECT_NE(harness.status().message().find("state_file"), std::string::npos);
  }
}

}  // namespace
}  // namespace paddock::testing
