#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "paddock/testing/session_store_conformance.h"
#include "testing.h"

namespace paddock::testing {
namespace {

// A fresh database in its own temp dir, loaded through the real plugin loader.
Result<std::shared_ptr<SessionStore>> FreshSqlite() {
  auto dir = std::make_shared<TempDir>();
  PADDOCK_ASSIGN_OR_RETURN(auto store, LoadStore("sqlite", "path = \"test.db\"", dir->path()));
  return std::shared_ptr<SessionStore>(store.get(), [store, dir](SessionStore*) mutable { store.reset(); });
}

INSTANTIATE_TEST_SUITE_P(Sqlite, SessionStoreConformance,
                         ::testing::Values(SessionStoreUnderTest{"sqlite", FreshSqlite}));

std::string Pragma(const std::string& db_path, const std::string& pragma) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, pragma.c_str(), -1, &st, nullptr);
  std::string out;
  if (sqlite3_step(st) == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

TEST(SqliteStore, UsesWalAndRecordsEveryMigrationFile) {
  TempDir dir;
  auto store = LoadStore("sqlite", "path = \"p.db\"", dir.path());
  ASSERT_OK(store);
  const std::string db = dir / "store-sqlite/p.db";
  EXPECT_EQ(Pragma(db, "PRAGMA journal_mode"), "wal");
  auto applied = (*store)->AppliedMigrations();
  ASSERT_OK(applied);
  ASSERT_FALSE(applied->empty());
  EXPECT_EQ(applied->front(), "0001_init.sql");
  EXPECT_EQ(Pragma(db, "SELECT COUNT(*) FROM schema_migrations"), std::to_string(applied->size()));
}

TEST(SqliteStore, DataSurvivesReopeningAndMigrationsRunOnce) {
  TempDir dir;
  Agent a;
  a.id = "agt_keep";
  a.name = "keep";
  a.harness = "shell";
  {
    auto store = LoadStore("sqlite", "", dir.path());
    ASSERT_OK(store);
    ASSERT_OK((*store)->CreateAgent(a));
  }
  auto again = LoadStore("sqlite", "", dir.path());
  ASSERT_OK(again);
  auto got = (*again)->GetAgent("agt_keep");
  ASSERT_OK(got);
  EXPECT_EQ(got->name, "keep");
  auto applied = (*again)->AppliedMigrations();
  ASSERT_OK(applied);
  EXPECT_EQ(Pragma(dir / "store-sqlite/paddock.db", "SELECT COUNT(*) FROM schema_migrations"),
            std::to_string(applied->size()));
}

TEST(SqliteStore, UnwritableLocationFailsToStartWithTheReason) {
  TempDir dir;
  auto store = LoadStore("sqlite", "path = \"/proc/paddock/nope.db\"", dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("/proc/paddock/nope.db"), std::string::npos)
      << store.status().ToString();
}

// An install from before teams: the schema of the migrations up to 0005, with an agent, a
// session, a run and its events in it. Upgrading brings all of it into the team "default".
TEST(SqliteStore, AnInstallFromBeforeTeamsUpgradesIntoTheDefaultTeam) {
  TempDir dir;
  std::filesystem::create_directories(dir / "store-sqlite");
  const std::string path = dir / "store-sqlite/paddock.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  auto exec = [&](const std::string& sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "") << "\n"
                                                                                << sql;
    sqlite3_free(err);
  };
  exec("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)");
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(SourceDir() + "/migrations/sqlite"))
    files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) {
    if (f >= "0006") break;  // the previous release's schema
    std::ifstream in(SourceDir() + "/migrations/sqlite/" + f);
    std::stringstream sql;
    sql << in.rdbuf();
    exec(sql.str());
    exec("INSERT INTO schema_migrations VALUES ('" + f + "', 1)");
  }
  exec(
      "INSERT INTO agents (id, name, harness, model, prompt, run_timeout_seconds, created_at, updated_at) "
      "VALUES ('agt_old', 'old', 'shell', '', '', 600, 1, 1)");
  exec("INSERT INTO agent_env (agent_id, name, value) VALUES ('agt_old', 'A', '1')");
  exec(
      "INSERT INTO sessions (id, agent_id, status, created_at, updated_at) VALUES ('ses_old', 'agt_old', "
      "'ready', 1, 1)");
  exec(
      "INSERT INTO runs (id, session_id, status, content, created_at, input_tokens, output_tokens, "
      "cost_microusd) VALUES ('run_old', 'ses_old', 'succeeded', 'echo hi', 1, 40, 2, 1500)");
  exec(
      "INSERT INTO events (session_id, seq, type, data, created_at) VALUES ('ses_old', 1, 'session.created', "
      "'{}', 1), ('ses_old', 2, 'output', '{\"text\":\"hi\"}', 1)");
  sqlite3_close(db);

  auto store = LoadStore("sqlite", "", dir.path());  // migrates
  ASSERT_OK(store);
  auto applied = (*store)->AppliedMigrations();
  ASSERT_OK(applied);
  EXPECT_EQ(applied->size(), files.size());
  auto agent = (*store)->GetAgent("agt_old");
  ASSERT_OK(agent);
  EXPECT_EQ(agent->team_id, kDefaultTeam);
  EXPECT_EQ(agent->env.at("A"), "1");
  auto session = (*store)->GetSession("ses_old");
  ASSERT_OK(session);
  EXPECT_EQ(session->team_id, kDefaultTeam);
  EXPECT_EQ(session->last_seq, 2);
  EXPECT_EQ((*store)->GetRun("run_old")->content, "echo hi");
  // What the old run spent counts on its day for the team's quotas.
  auto usage = (*store)->GetTeamUsage(kDefaultTeam, 0, 0);
  ASSERT_OK(usage);
  EXPECT_EQ(usage->tokens, 42);
  EXPECT_EQ(usage->cost_microusd, 1500);
  EXPECT_EQ(usage->open_sessions, 1);
  EXPECT_EQ(usage->runs, 1);
  EXPECT_EQ((*store)->GetTeam(kDefaultTeam)->quotas.sandboxes, std::nullopt);
  auto events = (*store)->ListEvents("ses_old", 0, 10);
  ASSERT_OK(events);
  EXPECT_EQ(events->size(), 2u);
  EXPECT_OK((*store)->GetTeam(kDefaultTeam));
  EXPECT_EQ((*store)->ListAgents(kDefaultTeam, PageRequest{10, ""})->items.size(), 1u);
  SessionFilter f;
  f.team_id = kDefaultTeam;
  EXPECT_EQ((*store)->ListSessions(f)->items.size(), 1u);
  // And it works on: a new session of the old agent joins its team.
  Session s;
  s.id = "ses_new";
  s.agent_id = "agt_old";
  s.created_at = s.updated_at = NowMs();
  ASSERT_OK((*store)->CreateSession(s, {}));
  EXPECT_EQ((*store)->GetSession("ses_new")->team_id, kDefaultTeam);
}

}  // namespace
}  // namespace paddock::testing
