// store.postgres: the conformance suite against a real PostgreSQL server, plus what only a
// shared database server has: concurrent migrations, failed migrations, outages.
#include <libpq-fe.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "paddock/testing/session_store_conformance.h"
#include "testing.h"

namespace paddock::testing {
namespace {

std::string StoreConfig(const std::string& conninfo, const std::string& schema) {
  return "url = \"" + conninfo + "\"\nschema = \"" + schema + "\"\nconnect_timeout = \"2s\"\n";
}

// A fresh schema in the test server, loaded through the real plugin loader.
Result<std::shared_ptr<SessionStore>> FreshPostgres() {
  auto dir = std::make_shared<TempDir>();
  PADDOCK_ASSIGN_OR_RETURN(
      auto store, LoadStore("postgres", StoreConfig(TestPostgresConninfo(), UniqueSchema()), dir->path()));
  return std::shared_ptr<SessionStore>(store.get(), [store, dir](SessionStore*) mutable { store.reset(); });
}

INSTANTIATE_TEST_SUITE_P(Postgres, SessionStoreConformance,
                         ::testing::Values(SessionStoreUnderTest{"postgres", FreshPostgres}));

// One value from a query on a connection of the test's own.
std::string Scalar(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  PGresult* r = PQexec(c, sql.c_str());
  std::string out =
      PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)
          ? PQgetvalue(r, 0, 0)
          : (PQresultStatus(r) == PGRES_TUPLES_OK ? "" : std::string("ERROR ") + PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
  return out;
}

TEST(PostgresStore, ProcessesMigratingAtOnceApplyEachMigrationOnce) {
  const std::string conninfo = TestPostgresConninfo();
  const std::string schema = UniqueSchema();
  TempDir dir;
  constexpr int kProcesses = 4;
  std::vector<std::string> config_files;
  for (int i = 0; i < kProcesses; ++i) {
    std::string path = dir / ("p" + std::to_string(i) + ".toml");
    std::ofstream(path) << "[secrets]\ntype = \"env\"\n[store]\ntype = \"postgres\"\n[store.config]\n"
                        << StoreConfig(conninfo, schema)
                        << "[sandbox]\ntype = \"process\"\n[[harness]]\ntype = \"shell\"\n";
    config_files.push_back(path);
  }
  std::vector<std::pair<int, std::string>> results(kProcesses);
  std::vector<std::thread> threads;
  for (int i = 0; i < kProcesses; ++i) {
    threads.emplace_back([&, i] {
      results[i] = RunCommand({PaddockBinary(), "migrate", "--config", config_files[i], "--plugin-dir",
                               PluginDir(), "--data-dir", dir / ("d" + std::to_string(i))});
    });
  }
  for (auto& t : threads) t.join();
  int applied_now = 0;
  for (const auto& [code, out] : results) {
    EXPECT_EQ(code, 0) << out;
    for (size_t at = out.find("applied 0"); at != std::string::npos; at = out.find("applied 0", at + 1))
      ++applied_now;
  }
  const std::string total = Scalar(conninfo, "SELECT COUNT(*) FROM \"" + schema + "\".schema_migrations");
  EXPECT_EQ(std::to_string(applied_now), total);  // each applied by exactly one process
  EXPECT_EQ(Scalar(conninfo, "SELECT COUNT(DISTINCT version) FROM \"" + schema + "\".schema_migrations"),
            total);
  EXPECT_NE(total, "0");
}

TEST(PostgresStore, AFailedMigrationChangesNothingAndMigrateExitsNamingIt) {
  const std::string conninfo = TestPostgresConninfo();
  const std::string schema = UniqueSchema();
  // A table in the way: 0001_init.sql's CREATE TABLE agents fails half-way through the file.
  ASSERT_EQ(Scalar(conninfo, "CREATE SCHEMA \"" + schema + "\"; CREATE TABLE \"" + schema +
                                 "\".agents (x int); SELECT 'ok'"),
            "ok");
  TempDir dir;
  std::ofstream(dir / "c.toml") << "[secrets]\ntype = \"env\"\n[store]\ntype = \"postgres\"\n[store.config]\n"
                                << StoreConfig(conninfo, schema)
                                << "[sandbox]\ntype = \"process\"\n[[harness]]\ntype = \"shell\"\n";
  auto [code, out] = RunCommand({PaddockBinary(), "migrate", "--config", dir / "c.toml", "--plugin-dir",
                                 PluginDir(), "--data-dir", dir / "d"});
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("migration 0001_init.sql failed"), std::string::npos) << out;
  EXPECT_NE(out.find("already exists"), std::string::npos) << out;
  // Rolled back: nothing the migration created before the failure is there, nothing recorded.
  EXPECT_EQ(Scalar(conninfo, "SELECT to_regclass('\"" + schema + "\".idempotency_keys')::text"), "");
  EXPECT_EQ(Scalar(conninfo, "SELECT COUNT(*) FROM \"" + schema + "\".schema_migrations"), "0");
  EXPECT_EQ(Scalar(conninfo, "SELECT COUNT(*) FROM \"" + schema + "\".agents"), "0");

  // `serve` with migrate = false refuses to start on a schema that is behind.
  std::ofstream(dir / "nomigrate.toml")
      << "[secrets]\ntype = \"env\"\n[store]\ntype = \"postgres\"\nmigrate = false\n"
         "[store.config]\n"
      << StoreConfig(conninfo, UniqueSchema())
      << "[sandbox]\ntype = \"process\"\n[[harness]]\ntype = \"shell\"\n";
  std::tie(code, out) =
      RunCommand({PaddockBinary(), "serve", "--config", dir / "nomigrate.toml", "--plugin-dir", PluginDir(),
                  "--data-dir", dir / "d2", "--port", "0", "--no-worker"});
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("run `paddock migrate` first"), std::string::npos) << out;
}

TEST(PostgresStore, AnUnreachableServerFailsStartWithTheReason) {
  TempDir dir;
  auto store =
      LoadStore("postgres", StoreConfig("host=127.0.0.1 port=1 user=postgres", UniqueSchema()), dir.path());
  EXPECT_CODE(store, kUnavailable);
  EXPECT_NE(store.status().message().find("cannot connect"), std::string::npos) << store.status().message();
}

TEST(PostgresStore, BadConfigIsRefusedBeforeConnecting) {
  TempDir dir;
  EXPECT_CODE(LoadStore("postgres", "schema = \"Robert'); DROP TABLE x;--\"", dir.path()), kInvalidArgument);
  EXPECT_CODE(LoadStore("postgres", "pool_size = 0", dir.path()), kInvalidArgument);
}

// Counts feed states and appends, for the outage test.
class Feed final : public EventFeed {
 public:
  void OnAppended(std::string_view, std::int64_t seq) noexcept override { last_seq = seq; }
  void OnFeedState(bool is_live) noexcept override { live = is_live; }
  std::atomic<std::int64_t> last_seq{0};
  std::atomic<bool> live{false};
};

template <class Pred>
bool Eventually(Pred pred, std::chrono::seconds limit = std::chrono::seconds(60)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

TEST(PostgresStore, SurvivesTheServerGoingAwayAndComingBack) {
  // Its own server: the shared one must stay up for the tests running alongside.
  TempDir dir;
  const std::string pg = dir / "pg";
  ASSERT_EQ(RunCommand({"bash", SourceDir() + "/scripts/test-postgres.sh", "start", pg}).first, 0);
  std::string conninfo;
  std::getline(std::ifstream(pg + "/conninfo"), conninfo);
  auto store = LoadStore("postgres", StoreConfig(conninfo, "paddock"), dir / "data");
  ASSERT_OK(store);
  Feed feed;
  (*store)->SetEventFeed(&feed);
  ASSERT_TRUE(Eventually([&] { return feed.live.load(); }));

  Agent a;
  a.id = "agt_outage";
  a.name = "a";
  a.harness = "shell";
  ASSERT_OK((*store)->CreateAgent(a));
  Session s;
  s.id = "ses_outage";
  s.agent_id = a.id;
  ASSERT_OK((*store)->CreateSession(s, {}));
  for (int i = 0; i < 5; ++i) ASSERT_OK((*store)->AppendEvent(s.id, NewEvent{"", "output", "{}"}));

  ASSERT_EQ(RunCommand({"bash", SourceDir() + "/scripts/test-postgres.sh", "down", pg}).first, 0);
  EXPECT_CODE((*store)->AppendEvent(s.id, NewEvent{"", "output", "{}"}), kUnavailable);
  EXPECT_CODE((*store)->GetSession(s.id), kUnavailable);
  EXPECT_EQ((*store)->GetHealth().state, HealthState::kDown);
  EXPECT_TRUE(Eventually([&] { return !feed.live.load(); }));

  ASSERT_EQ(RunCommand({"bash", SourceDir() + "/scripts/test-postgres.sh", "up", pg}).first, 0);
  EXPECT_TRUE(Eventually([&] { return (*store)->GetSession(s.id).ok(); }));
  EXPECT_TRUE(Eventually([&] { return feed.live.load(); }));
  EXPECT_EQ((*store)->GetHealth().state, HealthState::kOk);
  auto e = (*store)->AppendEvent(s.id, NewEvent{"", "output", "{}"});
  ASSERT_OK(e);
  EXPECT_EQ(e->seq, 6);  // the five acknowledged before the outage are all there, no gap
  EXPECT_TRUE(Eventually([&] { return feed.last_seq.load() == 6; }));
  (*store)->SetEventFeed(nullptr);
  store->reset();
  RunCommand({"bash", SourceDir() + "/scripts/test-postgres.sh", "stop", pg});
}

// Every seq another process was told of, in arrival order.
class Recorder final : public EventFeed {
 public:
  void OnAppended(std::string_view, std::int64_t seq) noexcept override {
    std::lock_guard lock(mu);
    seqs.push_back(seq);
  }
  void OnFeedState(bool is_live) noexcept override { live = is_live; }
  std::vector<std::int64_t> Seqs() {
    std::lock_guard lock(mu);
    return seqs;
  }
  std::mutex mu;
  std::vector<std::int64_t> seqs;
  std::atomic<bool> live{false};
};

TEST(PostgresStore, ABurstOfAppendsWakesOtherProcessesOncePerWindowAndTellsTheLastSeq) {
  TempDir dir;
  const std::string schema = UniqueSchema();
  // A long window, so the burst below surely falls in few of them.
  const std::string config = StoreConfig(TestPostgresConninfo(), schema) + "notify_window = \"1s\"\n";
  auto listener = LoadStore("postgres", config, dir / "listener");
  ASSERT_OK(listener);
  auto writer = LoadStore("postgres", config, dir / "writer");
  ASSERT_OK(writer);
  Recorder told;
  (*listener)->SetEventFeed(&told);
  ASSERT_TRUE(Eventually([&] { return told.live.load(); }));
  Agent a;
  a.id = "agt_burst";
  a.name = "a";
  a.harness = "shell";
  ASSERT_OK((*writer)->CreateAgent(a));
  Session s;
  s.id = "ses_burst";
  s.agent_id = a.id;
  ASSERT_OK((*writer)->CreateSession(s, {}));
  constexpr int kBurst = 300;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kBurst; ++i) ASSERT_OK((*writer)->AppendEvent(s.id, NewEvent{"", "output", "{}"}));
  const double burst_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  // The last seq arrives (the window's trailing notification), without another append.
  ASSERT_TRUE(Eventually([&] {
    auto seqs = told.Seqs();
    return !seqs.empty() && seqs.back() == kBurst;
  }));
  std::vector<std::int64_t> seqs = told.Seqs();
  // The first append of the burst was told at once, by itself; then one per window at most.
  EXPECT_EQ(seqs.front(), 1);
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  EXPECT_LE(seqs.size(), static_cast<size_t>(2 + burst_ms / 1000.0 + 1))
      << "burst took " << burst_ms << " ms";
  // Everything the listener was told of is in the log, gap-free.
  auto events = (*listener)->ListEvents(s.id, 0, 1000);
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), static_cast<size_t>(kBurst));
  EXPECT_EQ(events->back().seq, kBurst);
  // With the window at 0 every append is told on its own.
  auto each = LoadStore("postgres", StoreConfig(TestPostgresConninfo(), schema) + "notify_window = \"0s\"\n",
                        dir / "each");
  ASSERT_OK(each);
  for (int i = 0; i < 5; ++i) ASSERT_OK((*each)->AppendEvent(s.id, NewEvent{"", "output", "{}"}));
  ASSERT_TRUE(Eventually([&] { return told.Seqs().back() == kBurst + 5; }));
  seqs = told.Seqs();
  EXPECT_EQ(std::vector<std::int64_t>(seqs.end() - 5, seqs.end()),
            (std::vector<std::int64_t>{kBurst + 1, kBurst + 2, kBurst + 3, kBurst + 4, kBurst + 5}));
  (*listener)->SetEventFeed(nullptr);
}

// An install from before teams: the migrations up to 0004 applied by hand, with data in every
// table. Upgrading brings all of it into the team "default".
TEST(PostgresStore, AnInstallFromBeforeTeamsUpgradesIntoTheDefaultTeam) {
  const std::string conninfo = TestPostgresConninfo();
  const std::string schema = UniqueSchema();
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(SourceDir() + "/migrations/postgres"))
    files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  std::string sql =
      "CREATE SCHEMA \"" + schema + "\"; SET search_path TO \"" + schema +
      "\"; CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL);";
  for (const std::string& f : files) {
    if (f >= "0005") break;  // the previous release's schema
    std::ifstream in(SourceDir() + "/migrations/postgres/" + f);
    std::stringstream text;
    text << in.rdbuf();
    sql += text.str() + ";\nINSERT INTO schema_migrations VALUES ('" + f + "', 1);\n";
  }
  sql +=
      "INSERT INTO agents (id, name, harness, model, prompt, run_timeout_seconds, created_at, updated_at) "
      "VALUES ('agt_old', 'old', 'shell', '', '', 600, 1, 1);"
      "INSERT INTO sessions (id, agent_id, status, created_at, updated_at, last_seq) VALUES ('ses_old', "
      "'agt_old', 'ready', 1, 1, 1);"
      "INSERT INTO events (session_id, seq, type, data, created_at) VALUES ('ses_old', 1, 'session.created', "
      "'{}', 1);"
      "INSERT INTO runs (id, session_id, status, content, created_at, input_tokens, output_tokens, "
      "cost_microusd) "
      "VALUES ('run_old', 'ses_old', 'succeeded', 'echo hi', 1, 40, 2, 1500);"
      "SELECT 'ok';";
  ASSERT_EQ(Scalar(conninfo, sql), "ok");
  TempDir dir;
  auto store = LoadStore("postgres", "url = \"" + conninfo + "\"\nschema = \"" + schema + "\"\n", dir.path());
  ASSERT_OK(store);
  auto applied = (*store)->AppliedMigrations();
  ASSERT_OK(applied);
  EXPECT_EQ(applied->size(), files.size());
  auto agent = (*store)->GetAgent("agt_old");
  ASSERT_OK(agent);
  EXPECT_EQ(agent->team_id, kDefaultTeam);
  auto session = (*store)->GetSession("ses_old");
  ASSERT_OK(session);
  EXPECT_EQ(session->team_id, kDefaultTeam);
  EXPECT_EQ(session->last_seq, 1);
  EXPECT_EQ((*store)->ListEvents("ses_old", 0, 10)->size(), 1u);
  // What the old run spent counts on its day for the team's quotas.
  auto usage = (*store)->GetTeamUsage(kDefaultTeam, 0, 0);
  ASSERT_OK(usage);
  EXPECT_EQ(usage->tokens, 42);
  EXPECT_EQ(usage->cost_microusd, 1500);
  EXPECT_EQ(usage->open_sessions, 1);
  EXPECT_EQ(usage->runs, 1);
  EXPECT_OK((*store)->GetTeam(kDefaultTeam));
  SessionFilter f;
  f.team_id = kDefaultTeam;
  EXPECT_EQ((*store)->ListSessions(f)->items.size(), 1u);
  Session s;
  s.id = "ses_new";
  s.agent_id = "agt_old";
  s.created_at = s.updated_at = NowMs();
  ASSERT_OK((*store)->CreateSession(s, {}));
  EXPECT_EQ((*store)->GetSession("ses_new")->team_id, kDefaultTeam);
}

}  // namespace
}  // namespace paddock::testing
