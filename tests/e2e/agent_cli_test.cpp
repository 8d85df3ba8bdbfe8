// The real agent CLIs (Claude Code, Codex, opencode), installed from npm by the server's tool
// cache, run inside real bubblewrap sandboxes against the scripted model server over TLS, which
// they reach only through the sandbox's egress proxy. The model key is the operator's; by
// default it goes through the vault: the sandbox holds a placeholder, and the proxy puts the
// key in on the way to the model server alone.
#include <Poco/Net/DNS.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "api_fixture.h"
#include "model_server.h"
#include "services/vault/certificate_authority.h"
#include "two_teams.h"

namespace paddock::testing {
namespace {

using Clock = std::chrono::steady_clock;

struct Cli {
  std::string harness;  // plugin name
  std::string model;
  std::string api;  // what the model server sees it speak
};

std::ostream& operator<<(std::ostream& os, const Cli& c) { return os << c.harness; }

constexpr char kKey[] = "sk-paddock-test-key-5f2a9c";

class AgentCli : public Api, public ::testing::WithParamInterface<Cli> {
 protected:
  void SetUp() override {
    const std::string h = GetParam().harness;
    // The model server's certificate, of a CA of its own that only the server trusts (as a
    // provider's is of a public CA that the proxy's system trust store holds).
    Result<std::unique_ptr<CertificateAuthority>> ca =
        CertificateAuthority::LoadOrCreate(dir_.path() + "/public-ca", "Public test CA");
    ASSERT_OK(ca);
    ca_file_ = (*ca)->certificate_file();
    Result<IssuedCertificate> cert = (*ca)->Issue(Poco::Net::DNS::hostName());
    ASSERT_OK(cert);
    const ModelServerTls tls{dir_.path() + "/model.crt", dir_.path() + "/model.key"};
    std::ofstream(tls.certificate_file) << cert->certificate_pem;
    std::ofstream(tls.key_file) << cert->key_pem;
    model_ = std::make_unique<ModelServer>(
        std::vector<ScriptedTurn>{
            {"alpha-" + h, "echo made-by-" + h + " > /workspace/made.txt && cat /workspace/made.txt",
             "Done alpha."},
            {"beta-" + h, "", "Done beta."},
            {"slow-" + h, "sleep 1", "Done slow."},
        },
        0, tls);
    StartServer("[[harness]]\ntype = \"" + h + "\"\n[models]\ngateway = \"" + model_->BaseUrl() +
                    "\"\n[vault]\nupstream_ca_file = \"" + ca_file_ + "\"\n[tools]\ndir = \"" +
                    TestToolsDir() + "\"\n",
                {std::string("CONTAINER_ENV_LITELLM_API_KEY=") + kKey});
  }

  void TearDown() override {
    model_.reset();  // answers a delayed request at once, so nothing waits on it while the server stops
    Api::TearDown();
  }

  std::string CreateCliSession() {
    auto r = server_->Request("POST", "/api/agents",
                              "{\"name\":\"cli\",\"harness\":\"" + GetParam().harness + "\",\"model\":\"" +
                                  GetParam().model + "\"}");
    EXPECT_EQ(r.status, 201) << r.body;
    return CreateSession(JsonField(r.body, "id"));
  }

  // Streams until `runs` runs have finished (a CLI's first start can take a while).
  std::vector<SseEvent> Wait(const std::string& session, size_t runs) {
    return ReadStream(
        server_->port(), "/api/sessions/" + session + "/events/stream", {},
        [&](const std::vector<SseEvent>& ev) { return Finished(ev) >= runs; }, std::chrono::seconds(240));
  }

  // Index of the first event of `type` at or after `from` whose data contains `text`; -1 if none.
  static int Index(const std::vector<SseEvent>& ev, const std::string& type, size_t from = 0,
                   const std::string& text = "") {
    for (size_t i = from; i < ev.size(); ++i) {
      if (ev[i].type == type && ev[i].data.find(text) != std::string::npos) return static_cast<int>(i);
    }
    return -1;
  }

  TempDir dir_;
  std::string ca_file_;
  std::unique_ptr<ModelServer> model_;
};

TEST_P(AgentCli, RunsAToolCallRecordsUsageAndResumesItsOwnSessionAfterTheSandboxDies) {
  const std::string h = GetParam().harness;
  const std::string session = CreateCliSession();
  const std::string run1 = Send(session, "Please do alpha-" + h + " now.");
  auto first = Wait(session, 1);
  ASSERT_EQ(Finished(first), 1u);
  const SseEvent& end = first[static_cast<size_t>(Index(first, "run.finished"))];
  ASSERT_EQ(JsonField(end.data, "data.status"), "succeeded") << end.data << "\n" << server_->log();

  // In order: some text, the tool call (the command), its result (the command's output), the
  // answer, the usage, the end.
  const int call = Index(first, "tool.call", 0, "/workspace/made.txt");
  ASSERT_GE(call, 0);
  EXPECT_GE(Index(first, "assistant.text"), 0);
  EXPECT_LT(Index(first, "assistant.text"), call);
  const int result = Index(first, "tool.result", static_cast<size_t>(call), "made-by-" + h);
  ASSERT_GT(result, call);
  EXPECT_EQ(JsonField(first[static_cast<size_t>(result)].data, "data.is_error"), "false");
  EXPECT_EQ(JsonField(first[static_cast<size_t>(result)].data, "data.id"),
            JsonField(first[static_cast<size_t>(call)].data, "data.id"));
  const int answer = Index(first, "assistant.text", static_cast<size_t>(result), "Done alpha.");
  ASSERT_GT(answer, result);
  const int usage = Index(first, "usage", static_cast<size_t>(answer));
  ASSERT_GT(usage, 0);
  EXPECT_LT(usage, Index(first, "run.finished"));
  const int session_event = Index(first, "agent.session");
  ASSERT_GE(session_event, 0);

  // The file the tool call wrote is in the workspace.
  auto exec = server_->Request("POST", "/api/sessions/" + session + "/sandbox/exec",
                               R"({"command":"cat /workspace/made.txt"})");
  EXPECT_EQ(JsonField(exec.body, "stdout"), "made-by-" + h + "\n") << exec.body;

  // Usage: on the run, summed on the session, in the metrics; the CLI's own session id.
  auto run = server_->Request("GET", "/api/sessions/" + session + "/runs");
  ASSERT_EQ(run.status, 200) << run.body;
  ASSERT_EQ(JsonField(run.body, "runs.0.id"), run1) << run.body;
  EXPECT_GT(std::stoll("0" + JsonField(run.body, "runs.0.usage.input_tokens")), 0) << run.body;
  EXPECT_GT(std::stoll("0" + JsonField(run.body, "runs.0.usage.output_tokens")), 0) << run.body;
  EXPECT_EQ(JsonField(run.body, "runs.0.usage.model"), GetParam().model) << run.body;
  auto s = server_->Request("GET", "/api/sessions/" + session);
  EXPECT_EQ(JsonField(s.body, "usage.input_tokens"), JsonField(run.body, "runs.0.usage.input_tokens"))
      << s.body;
  const std::string native = JsonField(s.body, "native_session_id");
  EXPECT_FALSE(native.empty()) << s.body;
  EXPECT_EQ(JsonField(first[static_cast<size_t>(session_event)].data, "data.id"), native);
  std::string metrics = MetricsWith("harness=\"" + h + "\"");
  EXPECT_NE(metrics.find("paddock_model_tokens_total{"), std::string::npos);
  EXPECT_NE(metrics.find("harness=\"" + h + "\""), std::string::npos);

  // Every model call went through the egress proxy with the key from the secrets path, which
  // no event shows.
  auto requests = model_->Requests();
  ASSERT_FALSE(requests.empty());
  for (const auto& r : requests) {
    EXPECT_EQ(r.api, GetParam().api) << r.path;
    EXPECT_NE(r.authorization.find(kKey), std::string::npos) << r.authorization;
  }
  for (const auto& e : first) EXPECT_EQ(e.data.find(kKey), std::string::npos) << e.data;
  const size_t before = requests.size();

  // The sandbox holds a placeholder of the key and never the key: in no process's environment
  // or command line, in no file it can read (base64, past the server's redaction of output).
  auto held = server_->Request("POST", "/api/sessions/" + session + "/sandbox/exec",
                               R"({"command":"printenv LITELLM_API_KEY"})");
  EXPECT_EQ(JsonField(held.body, "stdout").rfind("pdk_ph_", 0), 0u) << held.body;
  auto probe = server_->Request(
      "POST", "/api/sessions/" + session + "/sandbox/exec",
      Json("command",
           "{ for p in /proc/[0-9]*; do cat $p/environ $p/cmdline; echo; done; "
           "find /tmp /workspace \"$HOME\" -xdev -type f -exec cat {} + ; } 2>/dev/null | base64 -w0"));
  const std::string everything = Unbase64(JsonField(probe.body, "stdout"));
  EXPECT_NE(everything.find("pdk_ph_"), std::string::npos) << "the probe sees nothing";
  EXPECT_EQ(everything.find(kKey), std::string::npos) << "the model key is readable in the sandbox";
  // The snapshot of the turn (the workspace and the CLI's own state) holds no key either.
  Result<std::shared_ptr<SessionStore>> store = StoreBeside(*server_, "", dir_.path());
  ASSERT_OK(store);
  Result<std::optional<SnapshotInfo>> latest = (*store)->LatestSnapshot(session);
  ASSERT_OK(latest);
  ASSERT_TRUE(latest->has_value());
  Result<std::string> archive = (*store)->ReadSnapshot(session, (*latest)->version);
  ASSERT_OK(archive);
  const std::string tarball = dir_.path() + "/snapshot.tar.gz";
  std::ofstream(tarball, std::ios::binary) << *archive;
  auto [code, contents] = RunCommand({"sh", "-c", "tar -xzOf " + tarball + " | base64 -w0"});
  ASSERT_EQ(code, 0) << contents;
  const std::string unpacked = Unbase64(contents);
  EXPECT_NE(unpacked.find("alpha-" + h), std::string::npos) << "the snapshot lacks the CLI's own session";
  EXPECT_EQ(unpacked.find(kKey), std::string::npos) << "the model key is in the snapshot";

  // The sandbox dies; the next turn runs in a new one, restored from the snapshot, and the CLI
  // resumes its own session: the model sees the first turn in the second turn's request.
  KillSandbox(session);
  Send(session, "Then beta-" + h + ", please.");
  auto both = Wait(session, 2);
  ASSERT_EQ(Finished(both), 2u);
  const int second_end = Index(both, "run.finished", first.size());
  ASSERT_GT(second_end, 0);
  EXPECT_EQ(JsonField(both[static_cast<size_t>(second_end)].data, "data.status"), "succeeded")
      << both[static_cast<size_t>(second_end)].data << "\n"
      << server_->log();
  EXPECT_GE(Index(both, "sandbox.lost", first.size()), 0);
  EXPECT_GE(Index(both, "snapshot.restored", first.size()), 0);
  EXPECT_GE(Index(both, "assistant.text", first.size(), "Done beta."), 0);
  EXPECT_EQ(Index(both, "harness.rehydrated", first.size()), -1);  // its own state came back
  requests = model_->Requests();
  bool resumed = false;
  for (size_t i = before; i < requests.size(); ++i) {
    const auto& body = requests[i].body;
    if (requests[i].answered == "answer" && body.find("beta-" + h) != std::string::npos) {
      EXPECT_NE(body.find("alpha-" + h), std::string::npos) << "the second turn forgot the first";
      EXPECT_NE(body.find("made-by-" + h), std::string::npos) << "the first turn's tool result is missing";
      resumed = true;
    }
  }
  EXPECT_TRUE(resumed) << "no request of the second turn reached the model server";
  EXPECT_EQ(JsonField(server_->Request("GET", "/api/sessions/" + session).body, "native_session_id"), native);
}

TEST_P(AgentCli, CancellingATurnStopsTheCli) {
  const std::string h = GetParam().harness;
  const std::string session = CreateCliSession();
  model_->SetDelay(std::chrono::seconds(60));  // the model never answers in time
  const std::string run = Send(session, "Take it slow-" + h + ".");
  // Wait until the CLI has asked the model.
  for (auto deadline = Clock::now() + std::chrono::seconds(120);
       model_->Held() == 0 && model_->Requests().empty() && Clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto cancel = server_->Request("POST", "/api/sessions/" + session + "/runs/" + run + "/cancel");
  EXPECT_EQ(cancel.status, 202) << cancel.body;
  auto events = Wait(session, 1);
  const int end = Index(events, "run.finished");
  ASSERT_GE(end, 0) << server_->log();
  EXPECT_EQ(JsonField(events[static_cast<size_t>(end)].data, "data.status"), "cancelled");
  // The CLI is gone from the sandbox.
  auto ps =
      server_->Request("POST", "/api/sessions/" + session + "/sandbox/exec",
                       R"({"command":"ps -eo comm= | grep -cE '^(claude|codex|opencode|node)' || true"})");
  EXPECT_EQ(JsonField(ps.body, "stdout"), "0\n") << ps.body;
}

INSTANTIATE_TEST_SUITE_P(Clis, AgentCli,
                         ::testing::Values(Cli{"claude-code", "claude-sonnet-4-5", "anthropic"},
                                           Cli{"codex", "gpt-5", "responses"},
                                           Cli{"opencode", "gpt-5", "chat"}),
                         [](const auto& p) {
                           std::string n = p.param.harness;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

}  // namespace
}  // namespace paddock::testing
