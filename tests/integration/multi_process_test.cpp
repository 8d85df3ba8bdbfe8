// The production shape: several paddock processes against one PostgreSQL. API servers and
// workers are separate processes; a worker is killed while it holds runs; the database goes
// away and comes back.
#include <gtest/gtest.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "cluster.h"
#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {
namespace {

TEST(MultiProcess, RunsSurviveAKilledWorkerAndStreamsSurviveSwitchingServers) {
  const std::string conninfo = TestPostgresConninfo();
  const std::string schema = UniqueSchema();
  TempDir dir;

  // paddock migrate, then processes that refuse to start on an unmigrated schema.
  std::ofstream(dir / "migrate.toml") << "[secrets]\ntype = \"env\"\n"
                                      << StoreToml(conninfo, schema, false)
                                      << "[sandbox]\ntype = \"process\"\n[[harness]]\ntype = \"shell\"\n";
  auto [code, out] = RunCommand({PaddockBinary(), "migrate", "--config", dir / "migrate.toml", "--plugin-dir",
                                 PluginDir(), "--data-dir", dir / "migrate-data"});
  ASSERT_EQ(code, 0) << out;

  auto make = [&](std::vector<std::string> args) {
    return std::make_unique<ServerProcess>(
        ServerOptions{std::move(args), StoreToml(conninfo, schema, false), kWorkerToml, {}});
  };
  auto api1 = make({"serve", "--no-worker"}), api2 = make({"serve", "--no-worker"});
  auto w1 = make({"worker"}), w2 = make({"worker"});
  for (ServerProcess* p : {api1.get(), api2.get(), w1.get(), w2.get()}) ASSERT_OK(p->Start());
  ServerProcess* apis[] = {api1.get(), api2.get()};
  // A worker serves health and metrics only.
  EXPECT_EQ(w1->Request("GET", "/readyz").status, 200) << w1->Request("GET", "/readyz").body;
  EXPECT_EQ(w1->Request("GET", "/api/sessions").status, 404);

  auto agent = api1->Request("POST", "/api/agents", R"({"name":"mp","harness":"shell"})");
  ASSERT_EQ(agent.status, 201) << agent.body;
  const std::string agent_id = JsonField(agent.body, "id");
  constexpr int kSessions = 8, kEach = 5;
  std::vector<std::string> sessions;
  for (int i = 0; i < kSessions; ++i) {
    auto r = apis[i % 2]->Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent_id + "\"}");
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(JsonField(r.body, "status"), "suspended");  // sandboxes live with the workers
    sessions.push_back(JsonField(r.body, "id"));
  }

  // A client streams session 0 from api1, then switches to api2 with Last-Event-ID.
  std::vector<SseEvent> streamed;
  std::thread client([&] {
    const std::string path = "/api/sessions/" + sessions[0] + "/events/stream";
    auto finished = [](const std::vector<SseEvent>& ev, size_t n) {
      size_t k = 0;
      for (const auto& e : ev) k += e.type == "run.finished";
      return k >= n;
    };
    streamed = ReadStream(
        api1->port(), path, {}, [&](const auto& ev) { return finished(ev, 2); }, std::chrono::seconds(180));
    std::int64_t last = streamed.empty() ? 0 : streamed.back().id;
    auto rest = ReadStream(
        api2->port(), path, {{"Last-Event-ID", std::to_string(last)}},
        [&](const auto& ev) {
          std::vector<SseEvent> all = streamed;
          all.insert(all.end(), ev.begin(), ev.end());
          return finished(all, kEach);
        },
        std::chrono::seconds(180));
    streamed.insert(streamed.end(), rest.begin(), rest.end());
  });

  // 40 messages, through both API servers. Output comes after a pause, so runs are in progress.
  std::map<std::string, std::string> expected_output;  // run id -> its output line
  for (int j = 0; j < kEach; ++j) {
    for (int i = 0; i < kSessions; ++i) {
      std::string text = "out-" + std::to_string(i) + "-" + std::to_string(j);
      auto r = apis[(i + j) % 2]->Request("POST", "/api/sessions/" + sessions[i] + "/messages",
                                          Message("sleep 0.5; echo " + text));
      ASSERT_EQ(r.status, 202) << r.body;
      expected_output[JsonField(r.body, "run_id")] = text;
    }
  }

  // Kill -9 worker 1 while it holds runs.
  const std::string w1_mark = "/" + std::to_string(w1->pid()) + "/";
  bool held = false;
  for (auto deadline = Clock::now() + std::chrono::seconds(60); !held && Clock::now() < deadline;) {
    for (const std::string& s : sessions) {
      for (auto& r : Items(api1->Request("GET", "/api/sessions/" + s + "/runs").body, "runs")) {
        held = held || (r->getValue<std::string>("status") == "running" && !r->isNull("worker") &&
                        r->getValue<std::string>("worker").find(w1_mark) != std::string::npos);
      }
    }
    if (!held) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(held) << "worker 1 never held a run:\n" << w1->log();
  w1->Kill();
  // However the test ends, the killed worker comes back on its data directory (which destroys
  // the sandboxes it left behind) and then stops cleanly.
  struct Revive {
    ServerProcess& worker;
    ~Revive() {
      if (worker.pid() <= 0 && worker.Start().ok()) worker.Stop();
    }
  } revive{*w1};

  bool done = false;
  for (auto deadline = Clock::now() + std::chrono::seconds(240); !done && Clock::now() < deadline;) {
    done = AllTerminal(*api2, sessions, kEach);
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(done) << "runs did not all finish;\nworker 2 log:\n" << w2->log();
  client.join();

  int interrupted = 0;
  for (int i = 0; i < kSessions; ++i) {
    const std::string& s = sessions[i];
    for (auto& r : Items(api1->Request("GET", "/api/sessions/" + s + "/runs").body, "runs")) {
      EXPECT_EQ(r->getValue<std::string>("status"), "succeeded")
          << s << " " << r->getValue<std::string>("error");
    }
    auto events = AllEvents(*apis[i % 2], s);
    std::map<std::string, int> messages, finishes, starts, interruptions;
    std::map<std::string, int> output_seen;  // run -> output events since its latest run.started
    std::set<std::string> distinct;
    for (size_t k = 0; k < events.size(); ++k) {
      auto& e = events[k];
      EXPECT_EQ(e->getValue<std::int64_t>("seq"), static_cast<std::int64_t>(k + 1))
          << s;  // gap-free, in order
      const std::string type = e->getValue<std::string>("type");
      const std::string run = e->isNull("run_id") ? "" : e->getValue<std::string>("run_id");
      std::ostringstream data;
      e->getObject("data")->stringify(data);
      if (type == "message.user") ++messages[run];
      if (type == "run.finished") ++finishes[run];
      if (type == "run.interrupted") {
        ++interrupted;
        ++interruptions[run];
      }
      if (type == "run.started") {
        ++starts[run];
        output_seen[run] = 0;
        EXPECT_TRUE(distinct.insert(run + "|started|" + data.str()).second) << "duplicated event in " << s;
      }
      if (type == "output") {
        EXPECT_EQ(JsonField(data.str(), "text"), expected_output[run]);
        ++output_seen[run];
        EXPECT_TRUE(distinct.insert(run + "|" + std::to_string(starts[run]) + "|" + data.str()).second)
            << "duplicated output in one attempt of " << run;
      }
    }
    for (auto& r : Items(api1->Request("GET", "/api/sessions/" + s + "/runs").body, "runs")) {
      const std::string id = r->getValue<std::string>("id");
      EXPECT_EQ(messages[id], 1) << id;
      EXPECT_EQ(finishes[id], 1) << id;
      const int attempt = r->getValue<int>("attempt");
      EXPECT_EQ(interruptions[id], attempt - 1) << id;  // every attempt but the last was interrupted
      EXPECT_GE(starts[id], 1) << id;                   // a killed attempt may not have got as far
      EXPECT_LE(starts[id], attempt) << id;
      EXPECT_EQ(output_seen[id], 1) << id;  // the finishing attempt printed it once
    }
    // The transcript keeps each run's answer exactly once.
    for (auto& m : Items(api2->Request("GET", "/api/sessions/" + s + "/messages").body, "messages")) {
      if (m->getValue<std::string>("role") != "assistant") continue;
      EXPECT_EQ(m->getValue<std::string>("content"),
                expected_output[m->getValue<std::string>("run_id")] + "\n");
    }
  }
  EXPECT_GT(interrupted, 0) << "killing the worker interrupted no run";

  // The client that switched servers saw every event of session 0 once, in order.
  auto events0 = AllEvents(*api1, sessions[0]);
  ASSERT_FALSE(streamed.empty());
  ASSERT_LE(streamed.size(), events0.size());
  for (size_t k = 0; k < streamed.size(); ++k) {
    EXPECT_EQ(streamed[k].id, static_cast<std::int64_t>(k + 1));
    EXPECT_EQ(streamed[k].type, events0[k]->getValue<std::string>("type"));
  }

  // The killed worker comes back and joins; every process stops cleanly.
  ASSERT_OK(w1->Start());
  EXPECT_EQ(w1->Request("GET", "/readyz").status, 200);
  for (ServerProcess* p : {api1.get(), api2.get(), w1.get(), w2.get()}) EXPECT_EQ(p->Stop(), 0) << p->log();
}

TEST(MultiProcess, ADatabaseOutageAnswers503AndLosesNothingAcknowledged) {
  TempDir dir;
  const std::string pg = dir / "pg";
  const std::string script = SourceDir() + "/scripts/test-postgres.sh";
  ASSERT_EQ(RunCommand({"bash", script, "start", pg}).first, 0);
  std::string conninfo;
  std::getline(std::ifstream(pg + "/conninfo"), conninfo);
  ServerProcess server(ServerOptions{{"serve"}, StoreToml(conninfo, "paddock", true), kWorkerToml, {}});
  ASSERT_OK(server.Start());
  auto agent = server.Request("POST", "/api/agents", R"({"name":"o","harness":"shell"})");
  auto session =
      server.Request("POST", "/api/sessions", "{\"agent_id\":\"" + JsonField(agent.body, "id") + "\"}");
  const std::string id = JsonField(session.body, "id");
  auto first = server.Request("POST", "/api/sessions/" + id + "/messages", Message("echo before"));
  ASSERT_EQ(first.status, 202) << first.body;
  ReadStream(server.port(), "/api/sessions/" + id + "/events/stream", {},
             [](const std::vector<SseEvent>& ev) {
               for (const auto& e : ev) {
                 if (e.type == "run.finished") return true;
               }
               return false;
             });
  auto during = server.Request("POST", "/api/sessions/" + id + "/messages", Message("sleep 2; echo during"));
  ASSERT_EQ(during.status, 202) << during.body;
  const std::int64_t acknowledged = AllEvents(server, id).back()->getValue<std::int64_t>("seq");

  ASSERT_EQ(RunCommand({"bash", script, "down", pg}).first, 0);
  auto ready = server.Request("GET", "/readyz");
  EXPECT_EQ(ready.status, 503) << ready.body;
  auto started = Clock::now();
  auto get = server.Request("GET", "/api/sessions/" + id);
  EXPECT_EQ(get.status, 503) << get.body;  // at once, not after a client timeout
  EXPECT_EQ(JsonField(get.body, "error.code"), "unavailable");
  EXPECT_EQ(get.headers.count("Retry-After"), 1u);
  auto post = server.Request("POST", "/api/sessions/" + id + "/messages", Message("echo refused"));
  EXPECT_EQ(post.status, 503) << post.body;
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(25));  // the client gives up at 30 s
  EXPECT_EQ(server.Request("GET", "/healthz").status, 200);     // the process itself is fine

  ASSERT_EQ(RunCommand({"bash", script, "up", pg}).first, 0);
  bool back = false;
  for (auto deadline = Clock::now() + std::chrono::seconds(60); !back && Clock::now() < deadline;) {
    back = server.Request("GET", "/readyz").status == 200;
    if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(back);
  // The run that was in flight ends (re-run after its lease lapsed if the outage cut it off).
  bool finished = false;
  for (auto deadline = Clock::now() + std::chrono::seconds(90); !finished && Clock::now() < deadline;) {
    auto runs = Items(server.Request("GET", "/api/sessions/" + id + "/runs").body, "runs");
    finished = runs.size() == 2 && runs[1]->getValue<std::string>("status") == "succeeded";
    if (!finished) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(finished) << server.log();
  auto events = AllEvents(server, id);
  ASSERT_GE(events.size(), static_cast<size_t>(acknowledged));
  for (size_t k = 0; k < events.size(); ++k) {
    EXPECT_EQ(events[k]->getValue<std::int64_t>("seq"), static_cast<std::int64_t>(k + 1));
  }
  EXPECT_EQ(server.Stop(), 0);
  RunCommand({"bash", script, "stop", pg});
}

}  // namespace
}  // namespace paddock::testing
