#include <sqlite3.h>

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

}  // namespace
}  // namespace paddock::testing
