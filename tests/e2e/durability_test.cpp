// Durable sessions end to end: snapshots after every run, a sandbox lost between or during runs,
// a server killed hard, idle suspend, the transcript fallback, delete and purge.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "api_fixture.h"

namespace paddock::testing {
namespace {

using Clock = std::chrono::steady_clock;

class Durability : public Api {
 protected:
  std::string AgentWith(const std::string& extra_fields) {
    auto r = server_->Request("POST", "/api/agents",
                              "{\"name\":\"durable\",\"harness\":\"shell\"" + extra_fields + "}");
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonField(r.body, "id");
  }
  std::string SessionField(const std::string& session, const std::string& field) {
    return JsonField(server_->Request("GET", "/api/sessions/" + session).body, field);
  }
  bool WaitForStatus(const std::string& session, const std::string& status, std::chrono::seconds limit) {
    for (auto deadline = Clock::now() + limit; Clock::now() < deadline;) {
      if (SessionField(session, "status") == status) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  static const SseEvent* Find(const std::vector<SseEvent>& events, const std::string& type, size_t from = 0) {
    for (size_t i = from; i < events.size(); ++i) {
      if (events[i].type == type) return &events[i];
    }
    return nullptr;
  }
  Poco::JSON::Array::Ptr Snapshots(const std::string& session) {
    auto r = server_->Request("GET", "/api/sessions/" + session + "/snapshots");
    EXPECT_EQ(r.status, 200) << r.body;
    Poco::JSON::Parser parser;
    return parser.parse(r.body).extract<Poco::JSON::Object::Ptr>()->getArray("snapshots");
  }
};

TEST_F(Durability, FilesAndNativeStateSurviveALostSandboxAndAKilledServer) {
  std::string session = CreateSession(CreateAgent());
  Send(session,
       "echo hello > /workspace/a.txt && echo 'GREETING=hi-there' >> \"$PADDOCK_STATE\" && echo done");
  auto first = UntilFinished(session, 1);
  const SseEvent* taken = Find(first, "snapshot.taken");
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(JsonField(taken->data, "data.version"), "1");
  EXPECT_EQ(JsonField(taken->data, "data.paths.1"), "/home/paddock/.paddock-shell");
  // The snapshot is stored before the run is recorded as finished.
  EXPECT_LT(taken->id, Find(first, "run.finished")->id);
  auto snapshots = Snapshots(session);
  ASSERT_EQ(snapshots->size(), 1u);
  EXPECT_TRUE(snapshots->getObject(0)->getValue<bool>("workspace"));
  EXPECT_TRUE(snapshots->getObject(0)->getValue<bool>("native"));
  EXPECT_EQ(snapshots->getObject(0)->getValue<std::string>("compression"), "gzip");

  const std::string lost = KillSandbox(session);
  server_->Kill();
  ASSERT_OK(server_->Start());
  Send(session, "cat /workspace/a.txt; echo \"greeting=$GREETING\"");
  auto events = UntilFinished(session, 2);
  EXPECT_TRUE(HasOutput(events, "hello"));
  EXPECT_TRUE(HasOutput(events, "greeting=hi-there"));  // from the agent's home: only the snapshot had it
  const SseEvent* gone = Find(events, "sandbox.lost", first.size());
  ASSERT_NE(gone, nullptr);
  EXPECT_EQ(JsonField(gone->data, "data.sandbox_id"), lost);
  const SseEvent* restored = Find(events, "snapshot.restored", first.size());
  ASSERT_NE(restored, nullptr);
  EXPECT_EQ(JsonField(restored->data, "data.version"), "1");
  EXPECT_NE(SessionField(session, "sandbox_id"), lost);
}

TEST_F(Durability, ASandboxKilledDuringARunIsReplacedRestoredAndTheRunResumes) {
  std::string session = CreateSession(CreateAgent());
  Send(session, "echo base > /workspace/base.txt");
  UntilFinished(session, 1);
  std::string run =
      Send(session,
           "if [ \"$PADDOCK_RESUMING\" = 1 ]; then ls /workspace; echo resumed; else echo partial > "
           "/workspace/partial.txt; echo started; sleep 60; fi");
  ReadStream(server_->port(), "/api/sessions/" + session + "/events/stream", {},
             [](const std::vector<SseEvent>& ev) { return HasOutput(ev, "started"); });
  const std::string lost = KillSandbox(session);
  auto events = UntilFinished(session, 2);
  EXPECT_TRUE(HasOutput(events, "resumed"));
  EXPECT_TRUE(HasOutput(events, "base.txt"));
  EXPECT_FALSE(HasOutput(events, "partial.txt"));  // rolled back to the snapshot after run 1
  const SseEvent* gone = Find(events, "sandbox.lost");
  ASSERT_NE(gone, nullptr);
  EXPECT_EQ(JsonField(gone->data, "data.sandbox_id"), lost);
  EXPECT_NE(JsonField(gone->data, "data.detail").find("during run " + run), std::string::npos) << gone->data;
  const SseEvent* resumed = Find(events, "run.resumed");
  ASSERT_NE(resumed, nullptr);
  EXPECT_EQ(JsonField(resumed->data, "data.restored"), "snapshot");
  EXPECT_EQ(JsonField(resumed->data, "data.snapshot_version"), "1");
  EXPECT_EQ(JsonField(resumed->data, "data.reason"), "the sandbox was lost during the run");
  auto runs = server_->Request("GET", "/api/sessions/" + session + "/runs");
  EXPECT_EQ(JsonField(runs.body, "runs.1.status"), "succeeded");
  EXPECT_EQ(JsonField(runs.body, "runs.1.attempt"), "1");  // the same attempt went on in a new sandbox
  auto transcript = server_->Request("GET", "/api/sessions/" + session + "/messages");
  EXPECT_EQ(JsonField(transcript.body, "messages.3.content"), "base.txt\nresumed\n") << transcript.body;
  EXPECT_EQ(JsonField(transcript.body, "messages.3.interruptions.0"), "the sandbox was lost during the run");
  EXPECT_NE(MetricsWith("paddock_durability_events_total{event=\"sandbox_lost\"} 1")
                .find("paddock_durability_events_total{event=\"sandbox_lost\"} 1"),
            std::string::npos);
}

TEST_F(Durability, ACommandKilledForMemoryFailsItsRunAndTheSandboxCarriesOn) {
  server_->Stop();
  StartServer("[profiles.default]\nmemory = \"64MiB\"\n");
  std::string session = CreateSession(CreateAgent());
  Send(session, "python3 -c 'x = bytearray(512 << 20); print(len(x))'");
  UntilFinished(session, 1);
  auto runs = server_->Request("GET", "/api/sessions/" + session + "/runs");
  EXPECT_EQ(JsonField(runs.body, "runs.0.status"), "failed");
  EXPECT_NE(JsonField(runs.body, "runs.0.error").find("the sandbox reached its memory limit"),
            std::string::npos)
      << runs.body;
  EXPECT_NE(JsonField(server_->Request("GET", "/api/sessions/" + session + "/sandbox").body, "detail")
                .find("out of memory"),
            std::string::npos);
  const std::string sandbox = SessionField(session, "sandbox_id");
  Send(session, "echo still-here");
  auto events = UntilFinished(session, 2);
  EXPECT_TRUE(HasOutput(events, "still-here"));
  EXPECT_EQ(SessionField(session, "sandbox_id"), sandbox);
  for (const auto& e : events) EXPECT_NE(e.type, "sandbox.lost");
  // A later failure that is not about memory does not blame it.
  Send(session, "exit 3");
  UntilFinished(session, 3);
  runs = server_->Request("GET", "/api/sessions/" + session + "/runs");
  EXPECT_EQ(JsonField(runs.body, "runs.2.error"), "command exited with code 3");
}

TEST_F(Durability, AnIdleSessionIsSuspendedAndComesBackExactly) {
  server_->Stop();
  StartServer("[sessions]\nidle_timeout = \"1s\"\n");
  std::string session = CreateSession(CreateAgent());
  Send(session, "echo one > /workspace/one.txt && echo 'COUNT=1' >> \"$PADDOCK_STATE\"");
  UntilFinished(session, 1);
  // What an operator puts in the workspace between runs is kept too.
  auto exec = server_->Request("POST", "/api/sessions/" + session + "/sandbox/exec",
                               R"({"command":"echo seeded > /workspace/seeded.txt"})");
  ASSERT_EQ(exec.status, 200) << exec.body;
  const std::string before = SessionField(session, "sandbox_id");
  ASSERT_TRUE(WaitForStatus(session, "suspended", std::chrono::seconds(30))) << server_->log();
  EXPECT_EQ(SessionField(session, "sandbox_id"), "null");
  // The workspace's disk copy went with the sandbox: the snapshot holds it.
  EXPECT_FALSE(std::filesystem::exists(server_->data_dir() + "/sandbox-process/workspaces/" + session));
  EXPECT_EQ(server_->Request("GET", "/api/sessions/" + session + "/sandbox").status, 404);

  Send(session, "cat /workspace/one.txt /workspace/seeded.txt; echo \"count=$COUNT\"");
  auto events = UntilFinished(session, 2);
  EXPECT_TRUE(HasOutput(events, "one"));
  EXPECT_TRUE(HasOutput(events, "seeded"));
  EXPECT_TRUE(HasOutput(events, "count=1"));
  const SseEvent* released = Find(events, "sandbox.released");
  ASSERT_NE(released, nullptr);
  EXPECT_EQ(JsonField(released->data, "data.reason"), "idle");
  EXPECT_EQ(JsonField(released->data, "data.sandbox_id"), before);
  EXPECT_EQ(JsonField(released->data, "data.workspace_kept"), "false");
  for (const auto& e : events) EXPECT_NE(e.type, "sandbox.lost") << "a suspend is not a loss";
  EXPECT_NE(MetricsWith("event=\"session_suspended\"} ").find("event=\"session_suspended\"} "),
            std::string::npos);

  // An agent that says never keeps its sandbox however long it idles.
  std::string kept = CreateSession(AgentWith(",\"idle_timeout_seconds\":0"));
  Send(kept, "echo hi");
  UntilFinished(kept, 1);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(SessionField(kept, "status"), "ready");
  EXPECT_NE(SessionField(kept, "sandbox_id"), "");
}

TEST_F(Durability, WithoutASnapshotOfItsStateTheHarnessRehydratesFromTheTranscript) {
  server_->Stop();
  StartServer("[snapshots]\nmax_size = \"1KiB\"\n");
  std::string session = CreateSession(CreateAgent());
  // A native state too large for the cap: nothing can be kept, and the event says so.
  Send(session,
       "(printf '# '; head -c 3000 /dev/urandom | base64 -w0; echo) >> \"$PADDOCK_STATE\"; echo 'X=1' >> "
       "\"$PADDOCK_STATE\"; echo first");
  auto first = UntilFinished(session, 1);
  const SseEvent* partial = Find(first, "snapshot.partial");
  ASSERT_NE(partial, nullptr);
  EXPECT_NE(JsonField(partial->data, "data.omitted").find("the workspace and the native state"),
            std::string::npos)
      << partial->data;
  EXPECT_EQ(Find(first, "snapshot.taken"), nullptr);
  KillSandbox(session);
  Send(session, "echo \"x=$X\"");
  auto events = UntilFinished(session, 2);
  const SseEvent* rehydrated = Find(events, "harness.rehydrated", first.size());
  ASSERT_NE(rehydrated, nullptr);
  EXPECT_EQ(JsonField(rehydrated->data, "data.messages"), "2");  // run 1's message and answer
  EXPECT_EQ(JsonField(rehydrated->data, "data.replayed"), "0");
  EXPECT_TRUE(HasOutput(events, "x="));  // the shell's variables could not come back
}

TEST_F(Durability, DeleteKeepsTheHistoryPurgeRemovesEverythingAndBothAreIdempotent) {
  const std::string agent = CreateAgent();
  std::string closed = CreateSession(agent);
  Send(closed, "echo kept-in-history");
  UntilFinished(closed, 1);
  ASSERT_EQ(Snapshots(closed)->size(), 1u);
  auto del = server_->Request("DELETE", "/api/sessions/" + closed);
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(JsonField(del.body, "status"), "closed");
  EXPECT_EQ(Snapshots(closed)->size(), 0u);
  auto transcript = server_->Request("GET", "/api/sessions/" + closed + "/messages");
  EXPECT_EQ(JsonField(transcript.body, "messages.1.content"), "kept-in-history\n");
  EXPECT_EQ(server_->Request("DELETE", "/api/sessions/" + closed).status, 200);
  EXPECT_FALSE(std::filesystem::exists(server_->data_dir() + "/sandbox-process/workspaces/" + closed));

  // Purge, even while a run is under way.
  std::string purged = CreateSession(agent);
  Send(purged, "echo running; sleep 30");
  ReadStream(server_->port(), "/api/sessions/" + purged + "/events/stream", {},
             [](const std::vector<SseEvent>& ev) { return HasOutput(ev, "running"); });
  auto purge = server_->Request("DELETE", "/api/sessions/" + purged + "?purge=true");
  EXPECT_EQ(purge.status, 204) << purge.body;
  EXPECT_EQ(server_->Request("GET", "/api/sessions/" + purged).status, 404);
  EXPECT_EQ(server_->Request("GET", "/api/sessions/" + purged + "/events").status, 404);
  EXPECT_EQ(server_->Request("GET", "/api/sessions/" + purged + "/snapshots").status, 404);
  // Gone is gone: a purged session's id answers 404 like any id that does not exist (or that
  // belongs to another team), to a second purge as well.
  EXPECT_EQ(server_->Request("DELETE", "/api/sessions/" + purged + "?purge=true").status, 404);
  EXPECT_EQ(server_->Request("DELETE", "/api/sessions/" + purged).status, 404);
  // A closed session can be purged too; then the agent has none left.
  EXPECT_EQ(server_->Request("DELETE", "/api/sessions/" + closed + "?purge=true").status, 204);
  EXPECT_EQ(server_->Request("DELETE", "/api/agents/" + agent).status, 204);

  const std::string open = CreateSession(CreateAgent());
  ExpectError(server_->Request("DELETE", "/api/sessions/" + open + "?purge=yes"), 400, "invalid_argument",
              "'purge' must be true or false");
  ExpectError(server_->Request("DELETE", "/api/sessions/" + open + "?purge=true&force=1"), 400,
              "invalid_argument", "force");
  EXPECT_EQ(server_->Request("GET", "/healthz").status, 200);
}

TEST_F(Durability, AnAgentsIdleTimeoutIsValidated) {
  ExpectError(
      server_->Request("POST", "/api/agents", R"({"name":"a","harness":"shell","idle_timeout_seconds":-1})"),
      400, "invalid_argument", "idle_timeout_seconds");
  ExpectError(server_->Request("POST", "/api/agents",
                               R"({"name":"a","harness":"shell","idle_timeout_seconds":"60"})"),
              400, "invalid_argument", "must be an integer");
  ExpectError(server_->Request("POST", "/api/agents",
                               R"({"name":"a","harness":"shell","idle_timeout_seconds":2592001})"),
              400, "invalid_argument", "2592000");
  auto made = server_->Request("POST", "/api/agents",
                               R"({"name":"a","harness":"shell","idle_timeout_seconds":null})");
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_NE(made.body.find("\"idle_timeout_seconds\":null"), std::string::npos) << made.body;
  const std::string id = JsonField(made.body, "id");
  auto patched = server_->Request("PATCH", "/api/agents/" + id, R"({"idle_timeout_seconds":600})");
  EXPECT_EQ(JsonField(patched.body, "idle_timeout_seconds"), "600");
  patched = server_->Request("PATCH", "/api/agents/" + id, R"({"idle_timeout_seconds":null})");
  EXPECT_NE(patched.body.find("\"idle_timeout_seconds\":null"), std::string::npos) << patched.body;
  ExpectError(server_->Request("PATCH", "/api/agents/" + id, R"({"idle_timeout_seconds":-5})"), 400,
              "invalid_argument", "idle_timeout_seconds");
  EXPECT_NE(server_->Request("GET", "/api/agents/" + id).body.find("\"idle_timeout_seconds\":null"),
            std::string::npos);
}

}  // namespace
}  // namespace paddock::testing
