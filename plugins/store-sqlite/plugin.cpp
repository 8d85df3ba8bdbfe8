// store.sqlite: the embedded SessionStore (one file, WAL, no other service).
#include <filesystem>

#include "paddock/plugin/sdk.h"
#include "sqlite_session_store.h"

namespace paddock::plugins::store_sqlite {
namespace {

constexpr paddock_config_key kConfigKeys[] = {
    {"path", PADDOCK_CONFIG_STRING, 0, "",
     "Database file; relative paths are inside the plugin's data directory (default paddock.db)."},
    {"busy_timeout", PADDOCK_CONFIG_DURATION, 0, "5s",
     "How long a write waits for a lock held by another connection."},
    {"exclusive", PADDOCK_CONFIG_BOOL, 0, "true",
     "Hold the one-process lock on the database (the store hands out leases as if nobody else could). "
     "Only `paddock admin`, which writes keys and teams beside a running server, opens it without."},
};

constexpr paddock_config_rule kConfigRules[] = {config::AtLeast("busy_timeout", 1)};

Result<SessionStorePtr> Create(const PluginContext& ctx, const ConfigView& config) {
  SqliteConfig c;
  std::filesystem::path path = config.GetString("path");
  if (path.empty()) path = "paddock.db";
  if (path.is_relative()) path = std::filesystem::path(ctx.data_dir) / path;
  c.path = path.string();
  c.busy_timeout_ms = config.GetDurationMs("busy_timeout");
  c.exclusive = config.GetBool("exclusive");
  return SessionStorePtr(std::make_unique<SqliteSessionStore>(std::move(c), *ctx.logger));
}

}  // namespace
}  // namespace paddock::plugins::store_sqlite

PADDOCK_DEFINE_PLUGIN(store, sqlite, "0.1.0", "Embedded SQLite store (WAL); one process.",
                      paddock::ConfigSchema(paddock::plugins::store_sqlite::kConfigKeys,
                                            paddock::plugins::store_sqlite::kConfigRules),
                      paddock::plugins::store_sqlite::Create)
