// Chaos: an API server and two workers on one PostgreSQL, 10 sessions, 60 runs; meanwhile
// workers, the API server and sandboxes are killed at random moments and PostgreSQL restarts
// once. Afterwards every run is terminal, every session's log is gap-free without duplicates,
// every file a finished run wrote is in its workspace, and no sandbox is left orphaned.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "cluster.h"
#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kSessions = 10;
constexpr int kRunsEach = 6;

constexpr char kChaosToml[] =
    "[worker]\nthreads = 3\nlease_ttl = \"3s\"\nheartbeat_interval = \"500ms\"\nsweep_interval = \"500ms\"\n"
    "poll_interval = \"200ms\"\nmax_attempts = 25\nreconcile_interval = \"2s\"\n";

// One client that keeps sending until the API acknowledges, with the same Idempotency-Key, so
// that a message is never sent twice whatever the server does in between.
class Client {
 public:
  Client(std::mutex& mu, ServerProcess& api) : mu_(mu), api_(api) {}
  HttpResponse Call(const std::string& method, const std::string& path, const std::string& body = "",
                    const std::map<std::string, std::string>& headers = {}) {
    for (auto deadline = Clock::now() + std::chrono::seconds(120); Clock::now() < deadline;) {
      HttpResponse r;
      {
        std::lock_guard lock(mu_);
        if (api_.pid() > 0) r = api_.Request(method, path, body, "application/json", headers);
      }
      if (r.status >= 200 && r.status < 300) return r;
      if (r.status != 0 && r.status != 503) return r;  // a real answer: the caller judges it
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return HttpResponse{};
  }

 private:
  std::mutex& mu_;
  ServerProcess& api_;
};

TEST(Chaos, NoAcknowledgedRunIsLostOrDuplicatedWhateverDies) {
  TempDir dir;
  const std::string pg = dir / "pg";
  const std::string script = SourceDir() + "/scripts/test-postgres.sh";
  ASSERT_EQ(RunCommand({"bash", script, "start", pg}).first, 0);
  struct StopPg {
    std::string script, pg;
    ~StopPg() { RunCommand({"bash", script, "stop", pg}); }
  } stop_pg{script, pg};
  std::string conninfo;
  std::getline(std::ifstream(pg + "/conninfo"), conninfo);

  auto make = [&](std::vector<std::string> args) {
    return std::make_unique<ServerProcess>(
        ServerOptions{std::move(args), StoreToml(conninfo, "paddock", true), kChaosToml, {}});
  };
  auto api = make({"serve", "--no-worker"});
  std::unique_ptr<ServerProcess> workers[] = {make({"worker"}), make({"worker"})};
  ASSERT_OK(api->Start());
  for (auto& w : workers) ASSERT_OK(w->Start());
  std::mutex api_mu;
  Client client(api_mu, *api);

  auto agent = client.Call("POST", "/api/agents", R"({"name":"chaos","harness":"shell"})");
  ASSERT_EQ(agent.status, 201) << agent.body;
  std::vector<std::string> sessions;
  for (int i = 0; i < kSessions; ++i) {
    auto r = client.Call("POST", "/api/sessions", "{\"agent_id\":\"" + JsonField(agent.body, "id") + "\"}",
                         {{"Idempotency-Key", "chaos-session-" + std::to_string(i)}});
    ASSERT_EQ(r.status, 201) << r.body;
    sessions.push_back(JsonField(r.body, "id"));
  }

  // The sender: run j of session i appends its mark to a log and writes a file of its own.
  std::mutex acked_mu;
  std::map<std::string, std::string> acked;  // run id -> mark
  std::thread sender([&] {
    for (int j = 0; j < kRunsEach; ++j) {
      for (int i = 0; i < kSessions; ++i) {
        const std::string mark = "m" + std::to_string(i) + "-" + std::to_string(j);
        auto r =
            client.Call("POST", "/api/sessions/" + sessions[i] + "/messages",
                        Message("echo " + mark + " >> /workspace/log.txt; sleep 1.$((RANDOM % 9)); echo " +
                                mark + " > /workspace/" + mark + ".txt; echo done " + mark),
                        {{"Idempotency-Key", "chaos-" + mark}});
        EXPECT_EQ(r.status, 202) << mark << " " << r.body;
        std::lock_guard lock(acked_mu);
        acked[JsonField(r.body, "run_id")] = mark;
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
      }
    }
  });

  // The chaos: bounded in count and time; the seed is printed so a failure can be replayed.
  const unsigned seed = std::random_device{}();
  std::printf("chaos seed: %u\n", seed);
  std::mt19937 rng(seed);
  auto pause = [&](int lo_ms, int hi_ms) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(lo_ms, hi_ms)(rng)));
  };
  std::map<std::string, int> done;
  bool pg_restarted = false;
  // Sessions with a run in progress, and the worker (its pid in the lease owner) running it: the
  // chaos aims there, so that it cuts runs off rather than hitting idle processes.
  auto running = [&] {
    std::map<std::string, std::string> out;  // session -> lease owner
    for (const std::string& s : sessions) {
      auto r = client.Call("GET", "/api/sessions/" + s + "/runs");
      for (auto& run : Items(r.body, "runs")) {
        if (run->getValue<std::string>("status") == "running" && !run->isNull("worker"))
          out[s] = run->getValue<std::string>("worker");
      }
    }
    return out;
  };
  for (int step = 0; step < 14; ++step) {
    pause(700, 2000);
    const int action = step == 6 ? 3 : std::uniform_int_distribution<int>(0, 2)(rng);
    if (action == 0) {  // a worker, hard: one that holds a run if any does
      int pick = std::uniform_int_distribution<int>(0, 1)(rng);
      for (const auto& [session, owner] : running()) {
        for (int k = 0; k < 2; ++k) {
          if (owner.find("/" + std::to_string(workers[k]->pid()) + "/") != std::string::npos) pick = k;
        }
      }
      auto& w = workers[pick];
      w->Kill();
      pause(200, 1500);
      ASSERT_OK(w->Start());
      ++done["worker killed"];
    } else if (action == 1) {  // the API server, hard
      {
        std::lock_guard lock(api_mu);
        api->Kill();
      }
      pause(200, 1000);
      std::lock_guard lock(api_mu);
      ASSERT_OK(api->Start());
      ++done["api server killed"];
    } else if (action == 2) {  // a sandbox: one running a run if any is
      std::vector<pid_t> pids, busy;
      const auto now_running = running();
      for (auto& w : workers) {
        for (const auto& [id, s] : LiveSandboxes(w->data_dir())) {
          pids.push_back(s.second);
          if (now_running.count(s.first)) busy.push_back(s.second);
        }
      }
      if (!busy.empty()) pids = busy;
      if (!pids.empty()) {
        kill(pids[std::uniform_int_distribution<size_t>(0, pids.size() - 1)(rng)], SIGKILL);
        ++done["sandbox killed"];
      }
    } else if (!pg_restarted) {  // PostgreSQL, once
      ASSERT_EQ(RunCommand({"bash", script, "down", pg}).first, 0);
      pause(500, 1500);
      ASSERT_EQ(RunCommand({"bash", script, "up", pg}).first, 0);
      pg_restarted = true;
      ++done["postgres restarted"];
    }
  }
  sender.join();
  for (const auto& [what, n] : done) std::printf("chaos: %s x%d\n", what.c_str(), n);
  EXPECT_TRUE(pg_restarted);

  // Every run ends.
  bool terminal = false;
  for (auto deadline = Clock::now() + std::chrono::seconds(240); !terminal && Clock::now() < deadline;) {
    terminal = AllTerminal(*api, sessions, kRunsEach);
    if (!terminal) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(terminal) << "runs did not all end;\nworker 1:\n"
                        << workers[0]->log() << "\nworker 2:\n"
                        << workers[1]->log();

  // What each session's workspace holds, read by one more run (through a restore if needed).
  std::map<std::string, std::string> listing;  // session -> output of the reading run
  for (const std::string& s : sessions) {
    auto r = client.Call(
        "POST", "/api/sessions/" + s + "/messages",
        Message("cat /workspace/log.txt; for f in /workspace/m*.txt; do echo \"file $(cat $f)\"; done"));
    ASSERT_EQ(r.status, 202) << r.body;
  }
  for (auto deadline = Clock::now() + std::chrono::seconds(120);
       !AllTerminal(*api, sessions, kRunsEach + 1) && Clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(AllTerminal(*api, sessions, kRunsEach + 1));

  int completed = 0, lost = 0, duplicated = 0;
  std::map<std::string, int> effects;  // how often the chaos actually cut something off
  std::map<std::string, std::string> mark_session;
  for (int i = 0; i < kSessions; ++i) {
    const std::string& s = sessions[i];
    auto events = AllEvents(*api, s);
    std::map<std::string, int> messages, finishes;
    for (size_t k = 0; k < events.size(); ++k) {
      EXPECT_EQ(events[k]->getValue<std::int64_t>("seq"), static_cast<std::int64_t>(k + 1)) << s;
      const std::string type = events[k]->getValue<std::string>("type");
      const std::string run = events[k]->isNull("run_id") ? "" : events[k]->getValue<std::string>("run_id");
      if (type == "run.interrupted" || type == "run.resumed" || type == "sandbox.lost" ||
          type == "sandbox.replaced")
        ++effects[type];
      if (type == "message.user") ++messages[run];
      if (type == "run.finished") ++finishes[run];
    }
    auto transcript = Items(api->Request("GET", "/api/sessions/" + s + "/messages").body, "messages");
    ASSERT_FALSE(transcript.empty());
    const std::string last = transcript.back()->getValue<std::string>("content");
    std::map<std::string, int> logged, files;
    std::istringstream lines(last);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("file ", 0) == 0) {
        ++files[line.substr(5)];
      } else if (!line.empty()) {
        ++logged[line];
      }
    }
    for (auto& r : Items(api->Request("GET", "/api/sessions/" + s + "/runs").body, "runs")) {
      const std::string id = r->getValue<std::string>("id");
      if (messages[id] != 1 || finishes[id] != 1) ++duplicated;
      std::string mark;
      {
        std::lock_guard lock(acked_mu);
        if (!acked.count(id)) continue;  // the reading run
        mark = acked[id];
      }
      mark_session[mark] = s;
      const bool succeeded = r->getValue<std::string>("status") == "succeeded";
      if (!succeeded || logged[mark] == 0 || files[mark] != 1) {
        ++lost;
        ADD_FAILURE() << "run " << id << " (" << mark << ") " << r->getValue<std::string>("status") << " "
                      << r->getValue<std::string>("error") << "; in log " << logged[mark] << "x, file "
                      << files[mark] << "x";
      } else {
        ++completed;
      }
      if (logged[mark] > 1) {
        ++duplicated;
        ADD_FAILURE() << mark << " is in the log of " << s << " " << logged[mark] << " times";
      }
    }
  }
  EXPECT_EQ(mark_session.size(), static_cast<size_t>(kSessions * kRunsEach));
  std::printf("effects: %d runs interrupted, %d resumed, %d sandboxes lost, %d replaced\n",
              effects["run.interrupted"], effects["run.resumed"], effects["sandbox.lost"],
              effects["sandbox.replaced"]);
  std::printf("runs: %d completed, %d lost, %d duplicated\n", completed, lost, duplicated);
  EXPECT_GT(effects["run.resumed"], 0) << "the chaos interrupted no run";
  EXPECT_EQ(completed, kSessions * kRunsEach);
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(duplicated, 0);

  // No orphan: every live sandbox belongs to the session bound to it (the workers reconcile the
  // ones a session left behind on another worker within a few seconds), or is a warm one that
  // belongs to no session yet.
  std::string orphans;
  for (auto deadline = Clock::now() + std::chrono::seconds(60); Clock::now() < deadline;) {
    orphans.clear();
    std::map<std::string, std::string> bound;  // session -> sandbox id
    for (const std::string& s : sessions)
      bound[s] = JsonField(api->Request("GET", "/api/sessions/" + s).body, "sandbox_id");
    for (auto& w : workers) {
      for (const auto& [id, s] : LiveSandboxes(w->data_dir())) {
        if (!s.first.empty() && bound[s.first] != id) orphans += id + " (session " + s.first + ") ";
      }
    }
    if (orphans.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_EQ(orphans, "") << "orphaned sandboxes";

  // Closing every session leaves no sandbox but the warm pools'.
  for (const std::string& s : sessions) EXPECT_EQ(client.Call("DELETE", "/api/sessions/" + s).status, 200);
  size_t left = 1;
  for (auto deadline = Clock::now() + std::chrono::seconds(60); left > 0 && Clock::now() < deadline;) {
    left = 0;
    for (auto& w : workers) {
      for (const auto& [id, s] : LiveSandboxes(w->data_dir())) left += s.first.empty() ? 0 : 1;
    }
    if (left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_EQ(left, 0u);
  for (auto& w : workers) EXPECT_EQ(w->Stop(), 0) << w->log();
  EXPECT_EQ(api->Stop(), 0) << api->log();
}

}  // namespace
}  // namespace paddock::testing
