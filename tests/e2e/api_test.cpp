// End to end: a real `paddock serve` process with the embedded plugins (sqlite, bubblewrap,
// shell, env secrets), driven over HTTP.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "api_fixture.h"
#include "http/router.h"
#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {
namespace {

using Clock = std::chrono::steady_clock;

TEST_F(Api, TheDocumentedCurlCallCreatesASession) {
  std::string agent = CreateAgent();
  auto [code, out] =
      RunCommand({"curl", "-s", "-w", "\n%{http_code}", "-X", "POST",
                  "http://localhost:" + std::to_string(server_->port()) + "/api/sessions", "-H",
                  "Authorization: Bearer " + TestAdminKey(), "-H", "Content-Type: application/json", "-d",
                  "{\"agent_id\": \"" + agent + "\"}"});
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(out.substr(out.rfind('\n') + 1), "201");
  std::string body = out.substr(0, out.rfind('\n'));
  EXPECT_EQ(JsonField(body, "agent_id"), agent);
  EXPECT_EQ(JsonField(body, "id").rfind("ses_", 0), 0u);
  // The sandbox becomes ready.
  std::string id = JsonField(body, "id");
  auto events = ReadStream(
      server_->port(), "/api/sessions/" + id + "/events/stream", {},
      [](const std::vector<SseEvent>& ev) { return !ev.empty() && ev.back().type == "sandbox.ready"; });
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type, "sandbox.ready");
  EXPECT_EQ(JsonField(server_->Request("GET", "/api/sessions/" + id).body, "status"), "ready");
}

TEST_F(Api, EchoHelloArrivesOnTheEventStream) {
  std::string session = CreateSession(CreateAgent());
  std::string run = Send(session, "echo hello");
  EXPECT_EQ(run.rfind("run_", 0), 0u);
  auto events = ReadStream(server_->port(), "/api/sessions/" + session + "/events/stream", {},
                           [](const std::vector<SseEvent>& ev) { return HasOutput(ev, "hello"); });
  EXPECT_TRUE(HasOutput(events, "hello"));
  // Every event got a gap-free seq, and the stream's ids are those seqs.
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].id, static_cast<std::int64_t>(i + 1));
}

TEST_F(Api, RunsIsolatedWithSecretsRedactedAndAWorkspaceThatPersists) {
  std::string session = CreateSession(CreateAgent());
  Send(session, "echo $FOO; cat /proc/1/status | head -1; ls /; ls /home; echo kept > /workspace/first.txt");
  Send(session, "cat /workspace/first.txt");
  auto events = UntilFinished(session, 2);
  ASSERT_EQ(Finished(events), 2u);
  EXPECT_TRUE(HasOutput(events, "[redacted]"));
  EXPECT_TRUE(
      HasOutput(events, "Name:\tpaddock-runtime"));  // PID 1 is the sandbox's runtime: own pid namespace
  EXPECT_TRUE(HasOutput(events, "workspace"));
  EXPECT_TRUE(HasOutput(events, "home"));
  EXPECT_TRUE(HasOutput(events, "paddock"));  // /home holds the agent's home, nothing of the host's
  EXPECT_FALSE(HasOutput(events, "root"));
  EXPECT_TRUE(HasOutput(events, "kept"));  // the second run sees the first run's file
  for (const auto& e : events) EXPECT_EQ(e.data.find("bar"), std::string::npos) << e.data;

  auto transcript = server_->Request("GET", "/api/sessions/" + session + "/messages");
  ASSERT_EQ(transcript.status, 200);
  EXPECT_EQ(transcript.body.find("bar"), std::string::npos);
  EXPECT_NE(transcript.body.find("[redacted]\\nName:\\tpaddock-runtime"), std::string::npos)
      << transcript.body;
  auto runs = server_->Request("GET", "/api/sessions/" + session + "/runs");
  EXPECT_NE(runs.body.find("\"status\":\"succeeded\""), std::string::npos) << runs.body;
}

TEST_F(Api, SecretValuesNeverReachResponsesOrLogs) {
  server_->Stop();
  StartServer("", {"CONTAINER_ENV_API_TOKEN=zq-secret-7781"});
  // Even a value a client stores elsewhere comes back redacted.
  auto agent = server_->Request(
      "POST", "/api/agents", R"({"name":"zq-secret-7781","harness":"shell","env":{"X":"zq-secret-7781"}})");
  ASSERT_EQ(agent.status, 201) << agent.body;
  EXPECT_EQ(agent.body.find("zq-secret-7781"), std::string::npos) << agent.body;
  std::string session = CreateSession(JsonField(agent.body, "id"));
  Send(session, "echo $API_TOKEN; echo $API_TOKEN >&2; exit 3");
  auto events = UntilFinished(session, 1);
  for (const auto& e : events) EXPECT_EQ(e.data.find("zq-secret-7781"), std::string::npos) << e.data;
  for (const std::string& path :
       {"/api/sessions/" + session + "/messages", "/api/sessions/" + session + "/runs",
        "/api/sessions/" + session + "/events"}) {
    auto r = server_->Request("GET", path);
    EXPECT_EQ(r.body.find("zq-secret-7781"), std::string::npos) << path << ": " << r.body;
  }
  EXPECT_EQ(server_->Stop(), 0);
  EXPECT_EQ(server_->log().find("zq-secret-7781"), std::string::npos);
}

TEST_F(Api, StreamResumesAfterLastEventId) {
  std::string session = CreateSession(CreateAgent());
  Send(session, "echo one; echo two; echo three");
  auto all = UntilFinished(session, 1);
  ASSERT_GE(all.size(), 6u);
  auto resumed =
      ReadStream(server_->port(), "/api/sessions/" + session + "/events/stream", {{"Last-Event-ID", "3"}},
                 [&](const std::vector<SseEvent>& ev) { return ev.size() >= all.size() - 3; });
  ASSERT_EQ(resumed.size(), all.size() - 3);
  for (size_t i = 0; i < resumed.size(); ++i) {
    EXPECT_EQ(resumed[i].id, all[i + 3].id);
    EXPECT_EQ(resumed[i].data, all[i + 3].data);
  }
  auto by_query = ReadStream(server_->port(), "/api/sessions/" + session + "/events/stream?after=5", {},
                             [](const std::vector<SseEvent>& ev) { return !ev.empty(); });
  ASSERT_FALSE(by_query.empty());
  EXPECT_EQ(by_query[0].id, 6);
  // The JSON page agrees.
  auto page = server_->Request("GET", "/api/sessions/" + session + "/events?after=3&limit=2");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(JsonField(page.body, "next_after"), "5");
  EXPECT_EQ(JsonField(page.body, "has_more"), "true");
}

TEST_F(Api, BadInputGetsAClearErrorAndChangesNothing) {
  std::string agent = CreateAgent();
  std::string session = CreateSession(agent);
  const std::string msgs = "/api/sessions/" + session + "/messages";

  ExpectError(server_->Request("POST", "/api/agents", "{\"name\": "), 400, "invalid_argument",
              "not valid JSON");
  ExpectError(server_->Request("GET", "/api/sessions?agent_id=agt%27%20OR%201=1"), 400, "invalid_argument",
              "query parameter 'agent_id' must be an id");
  ExpectError(server_->Request("GET", "/api/agents?cursor=" + std::string(600, 'c')), 400, "invalid_argument",
              "query parameter 'cursor' is longer than 512 bytes");
  ExpectError(server_->Request("GET", "/api/sessions/not.an.id"), 404, "not_found",
              "'not.an.id' is not an id");
  ExpectError(server_->Request("POST", "/api/agents", "[1,2]"), 400, "invalid_argument",
              "must be a JSON object");
  ExpectError(server_->Request("POST", "/api/agents", R"({"name":123,"harness":"shell"})"), 400,
              "invalid_argument", "field 'name' must be a string, not a number");
  ExpectError(server_->Request("POST", "/api/agents", R"({"name":"x","harness":"shell","colour":"red"})"),
              400, "invalid_argument", "unknown field 'colour'");
  ExpectError(server_->Request("POST", "/api/agents", R"({"name":"x","harness":"nope"})"), 400,
              "invalid_argument", "'nope' is not a loaded harness; loaded: shell");
  ExpectError(server_->Request("POST", "/api/agents", R"({"name":"x","harness":"shell","env":{"1BAD":"v"}})"),
              400, "invalid_argument", "not a valid variable name");
  ExpectError(
      server_->Request("POST", "/api/agents", R"({"name":"x","harness":"shell","run_timeout_seconds":0})"),
      400, "invalid_argument", "between 1 and 86400");
  ExpectError(server_->Request("POST", "/api/agents", "name=x", "text/plain"), 415, "unsupported_media_type",
              "must be application/json");
  ExpectError(server_->Request("POST", "/api/sessions", "{}"), 400, "invalid_argument",
              "'agent_id' is required");
  ExpectError(server_->Request("POST", "/api/sessions", R"({"agent_id":"agt_missing"})"), 404, "not_found",
              "agent 'agt_missing' does not exist");
  ExpectError(server_->Request("GET", "/api/sessions/ses_missing"), 404, "not_found", "does not exist");
  ExpectError(server_->Request("POST", "/api/sessions/ses_missing/messages", R"({"content":"ls"})"), 404,
              "not_found", "does not exist");
  ExpectError(server_->Request("POST", msgs, R"({"content":""})"), 400, "invalid_argument",
              "must not be empty");
  ExpectError(server_->Request("POST", msgs, R"({"content":["ls"]})"), 400, "invalid_argument",
              "must be a string");
  ExpectError(server_->Request("POST", msgs, R"({"content":"ls","on_busy":"later"})"), 400,
              "invalid_argument", "queue, reject or interrupt");
  ExpectError(server_->Request("GET", "/api/nothing"), 404, "not_found", "no route");
  auto wrong_method = server_->Request("PUT", "/api/sessions", "{}");
  ExpectError(wrong_method, 405, "method_not_allowed", "allowed: POST, GET");
  EXPECT_EQ(wrong_method.headers["Allow"], "POST, GET");
  ExpectError(server_->Request("GET", "/api/sessions?limit=0"), 400, "invalid_argument",
              "between 1 and 1000");
  ExpectError(server_->Request("GET", "/api/sessions?limit=ten"), 400, "invalid_argument", "'limit'");
  ExpectError(server_->Request("GET", "/api/sessions?status=sleeping"), 400, "invalid_argument", "'status'");
  ExpectError(server_->Request("GET", "/api/sessions?colour=red"), 400, "invalid_argument",
              "unknown query parameter");
  ExpectError(server_->Request("GET", "/api/sessions/" + session + "/events/stream", "", "",
                               {{"Last-Event-ID", "x"}}),
              400, "invalid_argument", "Last-Event-ID");
  ExpectError(server_->Request("POST", "/api/agents", std::string(2000, '[') + std::string(2000, ']')), 400,
              "invalid_argument", "not valid JSON");
  std::string huge = R"({"name":")" + std::string(2 << 20, 'x') + R"(","harness":"shell"})";
  ExpectError(server_->Request("POST", "/api/agents", huge), 413, "payload_too_large",
              "server.max_body_size");

  // Nothing was created or broken by any of it.
  EXPECT_EQ(server_->Request("GET", "/healthz").status, 200);
  auto agents = server_->Request("GET", "/api/agents");
  Poco::JSON::Parser parser;
  auto list = parser.parse(agents.body).extract<Poco::JSON::Object::Ptr>()->getArray("agents");
  EXPECT_EQ(list->size(), 1u);
  auto sessions = server_->Request("GET", "/api/sessions");
  EXPECT_EQ(parser.parse(sessions.body).extract<Poco::JSON::Object::Ptr>()->getArray("sessions")->size(), 1u);
  auto events = server_->Request("GET", "/api/sessions/" + session + "/events");
  EXPECT_EQ(events.body.find("message.user"), std::string::npos) << events.body;
}

TEST_F(Api, BusySessionsQueueRejectOrCancel) {
  std::string session = CreateSession(CreateAgent());
  std::string slow = Send(session, "sleep 30; echo late");
  std::string queued = Send(session, "echo queued");
  auto rejected = server_->Request("POST", "/api/sessions/" + session + "/messages",
                                   R"({"content":"echo no","on_busy":"reject"})");
  ExpectError(rejected, 409, "failed_precondition", "on_busy=queue");
  auto cancel = server_->Request("POST", "/api/sessions/" + session + "/runs/" + slow + "/cancel", "");
  EXPECT_EQ(cancel.status, 202) << cancel.body;
  auto events = UntilFinished(session, 2);
  ASSERT_EQ(Finished(events), 2u);
  EXPECT_TRUE(HasOutput(events, "queued"));
  EXPECT_FALSE(HasOutput(events, "late"));
  auto run = server_->Request("GET", "/api/sessions/" + session + "/runs");
  EXPECT_NE(run.body.find("\"status\":\"cancelled\""), std::string::npos) << run.body;
  auto metrics = MetricsWith("paddock_runs_total{outcome=\"succeeded\"} 1");
  EXPECT_NE(metrics.find("paddock_runs_total{outcome=\"cancelled\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("paddock_runs_total{outcome=\"succeeded\"} 1"), std::string::npos) << metrics;
  ExpectError(server_->Request("POST", "/api/sessions/" + session + "/runs/" + slow + "/cancel", ""), 409,
              "failed_precondition", "already cancelled");
}

TEST_F(Api, ClosingASessionIsIdempotentAndKeepsItsHistory) {
  std::string session = CreateSession(CreateAgent());
  Send(session, "echo before close");
  UntilFinished(session, 1);
  auto closed = server_->Request("DELETE", "/api/sessions/" + session);
  ASSERT_EQ(closed.status, 200) << closed.body;
  EXPECT_EQ(JsonField(closed.body, "status"), "closed");
  EXPECT_EQ(JsonField(closed.body, "sandbox_id"), "null");
  auto again = server_->Request("DELETE", "/api/sessions/" + session);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(JsonField(again.body, "status"), "closed");
  ExpectError(server_->Request("POST", "/api/sessions/" + session + "/messages", R"({"content":"ls"})"), 409,
              "failed_precondition", "is closed");
  auto transcript = server_->Request("GET", "/api/sessions/" + session + "/messages");
  EXPECT_NE(transcript.body.find("before close"), std::string::npos);
  ExpectError(server_->Request("DELETE", "/api/agents/" + JsonField(closed.body, "agent_id")), 409,
              "failed_precondition", "still has 1 session");
}

TEST_F(Api, AgentsCanBeReadAndChangedAndSnapshotsListed) {
  const std::string agent = CreateAgent();
  auto got = server_->Request("GET", "/api/agents/" + agent);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(JsonField(got.body, "name"), "shell agent");
  auto renamed = server_->Request("PATCH", "/api/agents/" + agent, R"({"name":"renamed agent"})");
  ASSERT_EQ(renamed.status, 200) << renamed.body;
  EXPECT_EQ(JsonField(renamed.body, "name"), "renamed agent");
  EXPECT_EQ(JsonField(server_->Request("GET", "/api/agents/" + agent).body, "name"), "renamed agent");
  // Bad changes are refused and change nothing.
  EXPECT_EQ(server_->Request("PATCH", "/api/agents/" + agent, R"({"name":42})").status, 400);
  EXPECT_EQ(server_->Request("PATCH", "/api/agents/" + agent, "{not json").status, 400);
  EXPECT_EQ(server_->Request("PATCH", "/api/agents/" + agent, R"({"name":"x"})", "text/plain").status, 415);
  EXPECT_EQ(JsonField(server_->Request("GET", "/api/agents/" + agent).body, "name"), "renamed agent");
  EXPECT_EQ(server_->Request("GET", "/api/agents/agt_missing").status, 404);
  EXPECT_EQ(server_->Request("PATCH", "/api/agents/agt_missing", R"({"name":"y"})").status, 404);

  const std::string session = CreateSession(agent);
  Send(session, "echo snapshot me");
  UntilFinished(session, 1);
  auto snapshots = server_->Request("GET", "/api/sessions/" + session + "/snapshots");
  ASSERT_EQ(snapshots.status, 200) << snapshots.body;
  EXPECT_EQ(server_->Request("GET", "/api/sessions/ses_missing/snapshots").status, 404);
}

TEST_F(Api, HealthReadinessMetricsAndPlugins) {
  EXPECT_EQ(server_->Request("GET", "/healthz").status, 200);
  auto ready = server_->Request("GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_NE(ready.body.find("\"store.sqlite\":{\"status\":\"ok\"}"), std::string::npos) << ready.body;

  std::string session = CreateSession(CreateAgent());
  Send(session, "echo metrics");
  UntilFinished(session, 1);
  HttpResponse metrics;
  metrics.body = MetricsWith("paddock_runs_total{outcome=\"succeeded\"} 1");
  metrics.status = server_->Request("GET", "/metrics").status;
  ASSERT_EQ(metrics.status, 200);
  for (const char* name :
       {"paddock_http_requests_total", "paddock_http_request_duration_seconds_bucket",
        "paddock_sessions{status=\"ready\"}", "paddock_runs_total{outcome=\"succeeded\"} 1",
        "paddock_sandbox_provision_duration_seconds_count", "paddock_events_appended_total"}) {
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name;
  }
  // The session's workspace image (and the warm pool's, and the spares) promise disk.
  auto gauge = [&](const std::string& kind) {
    const std::string key = "paddock_sandbox_disk_bytes{kind=\"" + kind + "\"} ";
    size_t at = metrics.body.find(key);
    return at == std::string::npos ? -1.0 : std::stod(metrics.body.substr(at + key.size()));
  };
  if (geteuid() == 0) {
    EXPECT_GE(gauge("committed"), 4.0 * (1 << 30)) << "the session's 4 GiB image";
  }
  EXPECT_GT(gauge("size"), 0);
  EXPECT_GT(gauge("free"), 0);
  EXPECT_LE(gauge("free"), gauge("size"));
  EXPECT_GE(gauge("used"), 0);
  TempDir dir;
  std::ofstream(dir / "metrics.txt") << metrics.body;
  auto [code, out] = RunCommand({"sh", "-c", "promtool check metrics < " + (dir / "metrics.txt")});
  EXPECT_EQ(code, 0) << out;

  auto plugins = server_->Request("GET", "/api/plugins");
  ASSERT_EQ(plugins.status, 200);
  for (const char* id : {"store.sqlite", "sandbox.process", "harness.shell", "secrets.env"}) {
    EXPECT_NE(plugins.body.find(std::string("\"id\":\"") + id + "\""), std::string::npos) << id;
  }
}

TEST_F(Api, OpenApiDocumentsEveryRoute) {
  auto doc = server_->Request("GET", "/api/openapi.json");
  ASSERT_EQ(doc.status, 200);
  Poco::JSON::Parser parser;
  auto paths = parser.parse(doc.body).extract<Poco::JSON::Object::Ptr>()->getObject("paths");
  ASSERT_TRUE(paths);
  size_t documented = 0;
  for (const Route& r : ApiRouter().routes()) {
    auto path = paths->getObject(r.pattern);
    ASSERT_TRUE(path) << r.pattern << " is not in docs/openapi.json";
    std::string method = r.method;
    for (char& c : method) c = static_cast<char>(std::tolower(c));
    EXPECT_TRUE(path->has(method)) << r.method << " " << r.pattern << " is not in docs/openapi.json";
    ++documented;
  }
  // The dashboard's files are served beside the route table (GET only).
  const std::set<std::string> dashboard = {"/", "/index.html", "/assets/{file}"};
  size_t operations = 0;
  for (const auto& p : paths->getNames()) {
    if (dashboard.count(p)) {
      EXPECT_TRUE(paths->getObject(p)->has("get")) << p;
      EXPECT_EQ(paths->getObject(p)->size(), 1u) << p << " is GET only";
      continue;
    }
    for (const char* m : {"get", "put", "post", "patch", "delete"}) operations += paths->getObject(p)->has(m);
  }
  EXPECT_EQ(operations, documented) << "docs/openapi.json documents operations the server does not have";
}

TEST_F(Api, TheSandboxCanBeInspectedExecutedInAndRestarted) {
  std::string session = CreateSession(CreateAgent());
  Send(session, "echo x > /workspace/k.txt");
  UntilFinished(session, 1);
  const std::string base = "/api/sessions/" + session;
  std::string first = JsonField(server_->Request("GET", base).body, "sandbox_id");

  auto sandbox = server_->Request("GET", base + "/sandbox");
  ASSERT_EQ(sandbox.status, 200) << sandbox.body;
  EXPECT_EQ(JsonField(sandbox.body, "id"), first);
  EXPECT_EQ(JsonField(sandbox.body, "state"), "running");

  auto exec = server_->Request("POST", base + "/sandbox/exec",
                               R"({"command":"cat /workspace/k.txt; echo $FOO; echo err >&2; exit 4"})");
  ASSERT_EQ(exec.status, 200) << exec.body;
  EXPECT_EQ(JsonField(exec.body, "exit_code"), "4");
  EXPECT_EQ(JsonField(exec.body, "stdout"), "x\n[redacted]\n");  // the session's secrets, redacted
  EXPECT_EQ(JsonField(exec.body, "stderr"), "err\n");
  exec = server_->Request("POST", base + "/sandbox/exec", R"({"argv":["pwd"],"cwd":"/tmp"})");
  EXPECT_EQ(JsonField(exec.body, "stdout"), "/tmp\n");
  exec = server_->Request("POST", base + "/sandbox/exec", R"({"command":"sleep 5","timeout_seconds":1})");
  EXPECT_EQ(JsonField(exec.body, "timed_out"), "true") << exec.body;
  ExpectError(server_->Request("POST", base + "/sandbox/exec", "{}"), 400, "invalid_argument", "is required");
  ExpectError(server_->Request("POST", base + "/sandbox/exec", R"({"command":"ls","argv":["ls"]})"), 400,
              "invalid_argument", "not both");
  ExpectError(server_->Request("POST", base + "/sandbox/exec", R"({"argv":[1]})"), 400, "invalid_argument",
              "only strings");
  ExpectError(server_->Request("POST", base + "/sandbox/exec", R"({"command":"ls","timeout_seconds":0})"),
              400, "invalid_argument", "1..3600");
  auto events = server_->Request("GET", base + "/events?limit=1000");
  EXPECT_NE(events.body.find("\"type\":\"sandbox.exec\""), std::string::npos);

  auto restarted = server_->Request("POST", base + "/restart", "");
  ASSERT_EQ(restarted.status, 200) << restarted.body;
  std::string second = JsonField(restarted.body, "sandbox_id");
  EXPECT_NE(second, first);
  EXPECT_EQ(JsonField(server_->Request("GET", base + "/sandbox").body, "state"), "running");
  exec = server_->Request("POST", base + "/sandbox/exec", R"({"command":"cat /workspace/k.txt"})");
  EXPECT_EQ(JsonField(exec.body, "stdout"), "x\n");  // the workspace stayed

  std::string slow = Send(session, "sleep 30");
  ExpectError(server_->Request("POST", base + "/restart", ""), 409, "failed_precondition", "cancel them");
  EXPECT_EQ(server_->Request("POST", base + "/runs/" + slow + "/cancel", "").status, 202);
  ASSERT_EQ(server_->Request("DELETE", base).status, 200);
  ExpectError(server_->Request("GET", base + "/sandbox"), 404, "not_found", "has no sandbox");
  ExpectError(server_->Request("POST", base + "/sandbox/exec", R"({"command":"ls"})"), 409,
              "failed_precondition", "is closed");
}

TEST_F(Api, IdempotencyKeysReplayTheFirstResultAndRefuseAnotherBody) {
  const std::string agent = CreateAgent();
  const std::string body = "{\"agent_id\":\"" + agent + "\"}";
  auto first =
      server_->Request("POST", "/api/sessions", body, "application/json", {{"Idempotency-Key", "k-1"}});
  ASSERT_EQ(first.status, 201) << first.body;
  EXPECT_EQ(first.headers.count("Idempotent-Replayed"), 0u);
  auto again =
      server_->Request("POST", "/api/sessions", body, "application/json", {{"Idempotency-Key", "k-1"}});
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(JsonField(again.body, "id"), JsonField(first.body, "id"));  // the same session, not a second
  EXPECT_EQ(again.headers["Idempotent-Replayed"], "true");
  // The same body written differently is the same request.
  auto spaced = server_->Request("POST", "/api/sessions", "{ \"agent_id\" : \"" + agent + "\" }",
                                 "application/json", {{"Idempotency-Key", "k-1"}});
  EXPECT_EQ(JsonField(spaced.body, "id"), JsonField(first.body, "id"));
  auto other = CreateAgent();
  ExpectError(server_->Request("POST", "/api/sessions", "{\"agent_id\":\"" + other + "\"}",
                               "application/json", {{"Idempotency-Key", "k-1"}}),
              409, "failed_precondition", "different request");
  ExpectError(server_->Request("POST", "/api/sessions", body, "application/json",
                               {{"Idempotency-Key", std::string(256, 'x')}}),
              400, "invalid_argument", "Idempotency-Key");
  ExpectError(
      server_->Request("POST", "/api/sessions", body, "application/json", {{"Idempotency-Key", "has space"}}),
      400, "invalid_argument", "Idempotency-Key");
  auto list = server_->Request("GET", "/api/sessions?agent_id=" + agent);
  EXPECT_EQ(list.body.find(JsonField(first.body, "id")), list.body.rfind(JsonField(first.body, "id")));
  EXPECT_NE(list.body.find("\"next_cursor\":null"), std::string::npos);

  // Messages: a retried send is one run, one message in the log.
  const std::string session = JsonField(first.body, "id");
  const std::string path = "/api/sessions/" + session + "/messages";
  auto m1 = server_->Request("POST", path, R"({"content":"echo once"})", "application/json",
                             {{"Idempotency-Key", "m"}});
  auto m2 = server_->Request("POST", path, R"({"content":"echo once"})", "application/json",
                             {{"Idempotency-Key", "m"}});
  ASSERT_EQ(m1.status, 202) << m1.body;
  ASSERT_EQ(m2.status, 202) << m2.body;
  EXPECT_EQ(JsonField(m1.body, "run_id"), JsonField(m2.body, "run_id"));
  ExpectError(server_->Request("POST", path, R"({"content":"echo twice"})", "application/json",
                               {{"Idempotency-Key", "m"}}),
              409, "failed_precondition", "different request");
  // Keys are per session: the same key on another session is a new message.
  const std::string session2 = CreateSession(agent);
  auto m3 = server_->Request("POST", "/api/sessions/" + session2 + "/messages", R"({"content":"echo once"})",
                             "application/json", {{"Idempotency-Key", "m"}});
  EXPECT_EQ(m3.status, 202) << m3.body;
  EXPECT_NE(JsonField(m3.body, "run_id"), JsonField(m1.body, "run_id"));
  UntilFinished(session, 1);
  auto runs = server_->Request("GET", "/api/sessions/" + session + "/runs");
  EXPECT_EQ(runs.body.find("\"id\":\"run_"), runs.body.rfind("\"id\":\"run_")) << runs.body;  // one run
}

TEST_F(Api, AnApiOnlyServerQueuesRunsButRunsNoSandboxes) {
  server_->Stop();
  ServerOptions api_only;
  api_only.args = {"serve", "--no-worker"};
  server_ = std::make_unique<ServerProcess>(api_only);
  ASSERT_OK(server_->Start());
  const std::string session = CreateSession(CreateAgent());
  EXPECT_EQ(JsonField(server_->Request("GET", "/api/sessions/" + session).body, "status"), "suspended");
  Send(session, "echo waits");
  auto runs = server_->Request("GET", "/api/sessions/" + session + "/runs");
  EXPECT_NE(runs.body.find("\"status\":\"queued\""), std::string::npos) << runs.body;
  ExpectError(server_->Request("POST", "/api/sessions/" + session + "/sandbox/exec", R"({"argv":["true"]})"),
              409, "failed_precondition", "runs no sandboxes");
  // Cancelling works from any process: the run is queued, so it ends at once.
  auto cancel = server_->Request(
      "POST", "/api/sessions/" + session + "/runs/" + JsonField(runs.body, "runs.0.id") + "/cancel");
  EXPECT_EQ(JsonField(cancel.body, "status"), "cancelled") << cancel.body;
}

TEST_F(Api, ConcurrentClientsGetEveryRunInOrderPerSession) {
  constexpr int kSessions = 8, kMessages = 4;
  std::string agent = CreateAgent();
  std::vector<std::string> sessions(kSessions);
  std::vector<std::thread> clients;
  std::atomic<int> accepted{0};
  for (int i = 0; i < kSessions; ++i) {
    clients.emplace_back([&, i] {
      auto r = server_->Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent + "\"}");
      if (r.status != 201) return;
      sessions[i] = JsonField(r.body, "id");
      for (int m = 0; m < kMessages; ++m) {
        auto sent =
            server_->Request("POST", "/api/sessions/" + sessions[i] + "/messages",
                             "{\"content\":\"echo s" + std::to_string(i) + "m" + std::to_string(m) + "\"}");
        if (sent.status == 202) ++accepted;
      }
    });
  }
  for (auto& c : clients) c.join();
  ASSERT_EQ(accepted, kSessions * kMessages);
  for (int i = 0; i < kSessions; ++i) {
    auto events = UntilFinished(sessions[i], kMessages);
    ASSERT_EQ(Finished(events), static_cast<size_t>(kMessages)) << sessions[i];
    // Gap-free seq, and the runs ran one at a time in the order they were sent.
    std::vector<std::string> outputs;
    std::string running;
    for (size_t k = 0; k < events.size(); ++k) {
      EXPECT_EQ(events[k].id, static_cast<std::int64_t>(k + 1));
      std::string run = JsonField(events[k].data, "run_id");
      if (events[k].type == "run.started") {
        EXPECT_EQ(running, "") << "two runs of one session at once";
        running = run;
      }
      if (events[k].type == "run.finished") running.clear();
      if (events[k].type == "output") outputs.push_back(JsonField(events[k].data, "data.text"));
    }
    std::vector<std::string> expected;
    for (int m = 0; m < kMessages; ++m) expected.push_back("s" + std::to_string(i) + "m" + std::to_string(m));
    EXPECT_EQ(outputs, expected);
  }
}

// ---- restarts, crashes and lost sandboxes ---------------------------------------------------

class Recovery : public Api {
 protected:
  // Streams until `text` was printed by a run.
  void WaitForOutput(const std::string& session, const std::string& text) {
    auto events = ReadStream(server_->port(), "/api/sessions/" + session + "/events/stream", {},
                             [&](const std::vector<SseEvent>& ev) { return HasOutput(ev, text); });
    ASSERT_TRUE(HasOutput(events, text));
  }
  std::string RunField(const std::string& session, const std::string& field) {
    auto runs = server_->Request("GET", "/api/sessions/" + session + "/runs");
    Poco::JSON::Parser parser;
    auto first = parser.parse(runs.body).extract<Poco::JSON::Object::Ptr>()->getArray("runs")->getObject(0);
    return first->get(field).toString();
  }

 public:
  std::string RunFieldPublic(const std::string& session, const std::string& field) {
    return RunField(session, field);
  }
  std::vector<SseEvent> UntilFinishedPublic(const std::string& session, size_t runs) {
    return UntilFinished(session, runs);
  }
};

TEST_F(Recovery, SessionsHistoryAndWorkspaceSurviveARestart) {
  std::string session = CreateSession(CreateAgent());
  Send(session, "echo one > /workspace/keep.txt; echo written");
  auto before = UntilFinished(session, 1);
  ASSERT_EQ(server_->Stop(), 0);
  ASSERT_OK(server_->Start());

  auto got = server_->Request("GET", "/api/sessions/" + session);
  ASSERT_EQ(got.status, 200) << got.body;
  Send(session, "cat /workspace/keep.txt");
  auto after = UntilFinished(session, 2);
  EXPECT_TRUE(HasOutput(after, "one"));
  // The old sandbox went with the old process; the session noticed and got a new one.
  bool replaced = false;
  for (const auto& e : after) replaced = replaced || e.type == "sandbox.replaced";
  EXPECT_TRUE(replaced);
  // History is intact and seq stayed gap-free across the restart.
  for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i].id, static_cast<std::int64_t>(i + 1));
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i].data, before[i].data);
}

TEST_F(Api, NewSessionsClaimWarmSandboxesAndGetTheirSecretsOnlyThen) {
  server_->Stop();
  StartServer("[profiles.default]\nwarm = 2\nmemory = \"256MiB\"\n", {"CONTAINER_ENV_FOO=bar"});
  // The pool fills in the background.
  for (int i = 0; i < 200; ++i) {
    auto metrics = server_->Request("GET", "/metrics");
    if (metrics.body.find("_count{result=\"ok\",source=\"pool\"} 2") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string session = CreateSession(CreateAgent());
  Send(session, "echo $FOO");
  auto events = UntilFinished(session, 1);
  bool warm = false;
  for (const auto& e : events)
    warm = warm || (e.type == "sandbox.ready" && JsonField(e.data, "data.source") == "warm");
  EXPECT_TRUE(warm);
  EXPECT_TRUE(HasOutput(events, "[redacted]"));  // the secret arrived after the claim
  auto sandbox = server_->Request("GET", "/api/sessions/" + session + "/sandbox");
  EXPECT_EQ(JsonField(sandbox.body, "limits.memory"), "268435456 (cgroup v1)") << sandbox.body;
  EXPECT_EQ(JsonField(sandbox.body, "limits.network"), "egress proxy only") << sandbox.body;
  EXPECT_EQ(sandbox.body.find("token"), std::string::npos);
}

TEST_F(Recovery, AServerKilledHardReattachesItsSandboxesAndDestroysTheRest) {
  std::string session = CreateSession(CreateAgent());
  Send(session, "(setsid sleep 4242.5 > /dev/null 2>&1 &); echo started");
  UntilFinished(session, 1);
  std::string sandbox = JsonField(server_->Request("GET", "/api/sessions/" + session).body, "sandbox_id");
  server_->Kill();
  // A sandbox bound to no session, left behind as if by a crash while it was being created.
  std::string ghost;
  {
    auto provider = LoadSandbox("process", "destroy_on_stop = false", server_->data_dir());
    ASSERT_OK(provider);
    SandboxSpec spec;
    spec.session_id = "ses_ghost";
    auto sb = (*provider)->Create(spec);
    ASSERT_OK(sb);
    ghost = sb->id;
  }
  ASSERT_OK(server_->Start());
  // The same sandbox, with the process the first run left running in it.
  auto got = server_->Request("GET", "/api/sessions/" + session + "/sandbox");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(JsonField(got.body, "id"), sandbox);
  EXPECT_EQ(JsonField(got.body, "state"), "running");
  Send(session,
       "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done | grep -c '^sleep 4242[.]5'");
  auto events = UntilFinished(session, 2);
  bool still_running = false;
  for (const auto& e : events)
    still_running = still_running || (e.type == "output" && JsonField(e.data, "data.text") == "1");
  EXPECT_TRUE(still_running);
  for (const auto& e : events) EXPECT_NE(e.type, "sandbox.lost") << e.data;
  EXPECT_FALSE(std::filesystem::exists(server_->data_dir() + "/sandbox-process/sandboxes/" + ghost));
}

TEST_F(Recovery, ASandboxKilledBetweenRunsIsReplacedAndKeepsTheWorkspace) {
  std::string session = CreateSession(CreateAgent());
  Send(session, "echo data > /workspace/f.txt");
  UntilFinished(session, 1);
  std::string sandbox = JsonField(server_->Request("GET", "/api/sessions/" + session).body, "sandbox_id");
  std::ifstream state(server_->data_dir() + "/sandbox-process/sandboxes/" + sandbox + "/state");
  pid_t pid = 0;
  std::string line;
  ASSERT_TRUE(std::getline(state, line) && line.rfind("pid=", 0) == 0) << "no state for sandbox " << sandbox;
  pid = static_cast<pid_t>(std::stoi(line.substr(4)));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  // Between runs: wait until it is really gone (the kill is asynchronous).
  for (int i = 0; i < 500 && std::ifstream("/proc/" + std::to_string(pid) + "/stat").good(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  Send(session, "cat /workspace/f.txt");
  auto events = UntilFinished(session, 2);
  EXPECT_TRUE(HasOutput(events, "data"));
  bool lost = false;
  for (const auto& e : events)
    lost = lost || (e.type == "sandbox.lost" && e.data.find(sandbox) != std::string::npos);
  EXPECT_TRUE(lost);
  EXPECT_NE(JsonField(server_->Request("GET", "/api/sessions/" + session).body, "sandbox_id"), sandbox);
}

// A run whose first attempt leaves a partial file and hangs; the attempt after it (told so by
// the shell harness) lists the workspace, which was rolled back to before the run.
constexpr char kResumable[] =
    "if [ \"$PADDOCK_RESUMING\" = 1 ]; then echo resumed; ls /workspace; else echo partial > "
    "/workspace/partial; "
    "echo started; sleep 60; fi";

// The run cut off by the stop is interrupted and runs again (attempt 2) after the restart; the
// transcript keeps only the attempt that finished.
void ExpectRerunAfterRestart(Recovery& t, ServerProcess& server, const std::string& session,
                             const std::string& reason) {
  auto events = t.UntilFinishedPublic(session, 1);
  EXPECT_TRUE(HasOutput(events, "resumed"));
  bool interrupted = false;
  for (const SseEvent& e : events) {
    if (e.type == "run.interrupted") {
      interrupted = true;
      EXPECT_EQ(JsonField(e.data, "data.reason"), reason) << e.data;
      EXPECT_EQ(JsonField(e.data, "data.next"), "queued") << e.data;
    }
  }
  EXPECT_TRUE(interrupted);
  // The first run was lost before any snapshot: the harness was asked to rehydrate.
  bool rehydrated = false;
  for (const SseEvent& e : events) rehydrated = rehydrated || e.type == "harness.rehydrated";
  EXPECT_TRUE(rehydrated);
  EXPECT_EQ(t.RunFieldPublic(session, "status"), "succeeded");
  EXPECT_EQ(t.RunFieldPublic(session, "attempt"), "2");
  auto transcript = server.Request("GET", "/api/sessions/" + session + "/messages");
  EXPECT_EQ(JsonField(transcript.body, "messages.1.content"), "resumed\n")
      << transcript.body << server.Request("GET", "/api/sessions/" + session + "/events").body;
}

TEST_F(Recovery, ARunCutOffByACrashRunsAgainAfterRestart) {
  std::string session = CreateSession(CreateAgent());
  Send(session, kResumable);
  WaitForOutput(session, "started");
  server_->Kill();
  ASSERT_OK(server_->Start());
  ExpectRerunAfterRestart(*this, *server_, session, "the server stopped during the run");
  Send(session, "echo after");
  auto events = UntilFinished(session, 2);
  EXPECT_TRUE(HasOutput(events, "after"));
  EXPECT_EQ(JsonField(server_->Request("GET", "/api/sessions/" + session).body, "status"), "ready");
}

TEST_F(Recovery, AShutdownDuringARunHandsItBackToRunAgain) {
  std::string session = CreateSession(CreateAgent());
  Send(session, kResumable);
  WaitForOutput(session, "started");
  ASSERT_EQ(server_->Stop(), 0);
  ASSERT_OK(server_->Start());
  ExpectRerunAfterRestart(*this, *server_, session, "the server stopped during the run");
}

TEST_F(Recovery, InterruptCancelsTheRunningRunAndRunsTheNewMessage) {
  std::string session = CreateSession(CreateAgent());
  std::string first = Send(session, "echo first; sleep 60; echo never");
  WaitForOutput(session, "first");
  std::string second = Send(session, "echo second", 202, "interrupt");
  auto events = UntilFinished(session, 2);
  EXPECT_TRUE(HasOutput(events, "second"));
  EXPECT_FALSE(HasOutput(events, "never"));
  EXPECT_EQ(RunField(session, "status"), "cancelled");
}

// ---- the command line ----------------------------------------------------------------------

TEST(Cli, ConfigErrorsExitNonZeroNamingFileAndLine) {
  TempDir dir;
  std::ofstream(dir / "bad.toml") << "[server]\nport = 3000\nlisten = \"unterminated\n";
  auto [code, out] = RunCommand({PaddockBinary(), "serve", "--config", dir / "bad.toml"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find(dir / "bad.toml:3:"), std::string::npos) << out;

  std::ofstream(dir / "unknown.toml")
      << "[secrets]\ntype=\"env\"\n[store]\ntype=\"sqlite\"\n[store.config]\n"
         "paht=\"x.db\"\n[sandbox]\ntype=\"process\"\n[[harness]]\ntype=\"shell\"\n";
  std::tie(code, out) = RunCommand(
      {PaddockBinary(), "check-config", "--config", dir / "unknown.toml", "--plugin-dir", PluginDir()});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("unknown.toml:6: [store.config] unknown key 'paht'; allowed: path, busy_timeout"),
            std::string::npos)
      << out;

  std::ofstream(dir / "missing.toml") << "[secrets]\ntype=\"env\"\n[store]\ntype=\"mongo\"\n"
                                         "[sandbox]\ntype=\"process\"\n[[harness]]\ntype=\"shell\"\n";
  std::tie(code, out) = RunCommand(
      {PaddockBinary(), "check-config", "--config", dir / "missing.toml", "--plugin-dir", PluginDir()});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("paddock-store-mongo.so: file not found"), std::string::npos) << out;
}

TEST(Cli, EveryShippedConfigIsValid) {
  for (const char* name : {"paddock.toml", "postgres.toml"}) {
    auto [code, out] = RunCommand({PaddockBinary(), "check-config", "--config",
                                   SourceDir() + "/config/" + name, "--plugin-dir", PluginDir()});
    EXPECT_EQ(code, 0) << name << ": " << out;
  }
  // The worker role takes no --no-worker.
  auto [code, out] = RunCommand({PaddockBinary(), "worker", "--no-worker"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("--no-worker makes no sense"), std::string::npos) << out;
}

TEST(Cli, PluginsListsEveryLoadablePluginWithItsSchema) {
  auto [code, out] = RunCommand({PaddockBinary(), "plugins", "--plugin-dir", PluginDir()});
  ASSERT_EQ(code, 0) << out;
  Poco::JSON::Parser parser;
  auto doc = parser.parse(out).extract<Poco::JSON::Object::Ptr>();
  auto plugins = doc->getArray("plugins");
  // store.sqlite, store.postgres, sandbox.process, sandbox.k8s, sandbox.kind, secrets.env,
  // secrets.store, harness.shell, harness.claude-code, harness.codex, harness.opencode
  ASSERT_EQ(plugins->size(), 11u);
  EXPECT_EQ(doc->getArray("refused")->size(), 0u);
  bool saw_sqlite_path = false;
  for (unsigned i = 0; i < plugins->size(); ++i) {
    auto p = plugins->getObject(i);
    if (p->getValue<std::string>("id") != "store.sqlite") continue;
    auto keys = p->getArray("config_schema");
    for (unsigned k = 0; k < keys->size(); ++k) {
      saw_sqlite_path = saw_sqlite_path || keys->getObject(k)->getValue<std::string>("name") == "path";
    }
  }
  EXPECT_TRUE(saw_sqlite_path);
}

}  // namespace
}  // namespace paddock::testing
