// store.postgres: the production SessionStore, shared by any number of paddock processes.
#include <cctype>

#include "paddock/plugin/sdk.h"
#include "pg_session_store.h"

namespace paddock::plugins::store_postgres {
namespace {

constexpr paddock_config_key kConfigKeys[] = {
    {"url", PADDOCK_CONFIG_STRING, PADDOCK_CONFIG_SECRET, "",
     "libpq connection string or postgres:// URL; empty: libpq's PG* environment variables."},
    {"schema", PADDOCK_CONFIG_STRING, 0, "paddock",
     "Schema holding Paddock's tables (created by migrate); lets several installations share a database."},
    {"pool_size", PADDOCK_CONFIG_INT, 0, "8", "Connections this process keeps open at most."},
    {"connect_timeout", PADDOCK_CONFIG_DURATION, 0, "5s", "How long opening a connection may take."},
    {"statement_timeout", PADDOCK_CONFIG_DURATION, 0, "30s",
     "Longest a statement may run before the database cancels it."},
    {"acquire_timeout", PADDOCK_CONFIG_DURATION, 0, "10s",
     "How long a request waits for a free pooled connection before answering 503."},
    {"notify_window", PADDOCK_CONFIG_DURATION, 0, "1ms",
     "Appends to one session within this window share one NOTIFY (the first is sent at once, the "
     "newest when the window closes), so a burst wakes other processes' event streams once per window; "
     "0: one NOTIFY per event."},
};

constexpr paddock_config_rule kConfigRules[] = {
    config::Range("pool_size", 1, 256),        config::AtLeast("connect_timeout", 1000),
    config::AtLeast("statement_timeout", 100), config::AtLeast("acquire_timeout", 10),
    config::Range("notify_window", 0, 1000),
};

bool ValidSchema(const std::string& s) {
  if (s.empty() || s.size() > 63 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '_'))
      return false;
  }
  return true;
}

Result<SessionStorePtr> Create(const PluginContext& ctx, const ConfigView& config) {
  PoolOptions o;
  o.conninfo = config.GetString("url");
  o.schema = config.GetString("schema");
  if (!ValidSchema(o.schema)) {
    return Status::InvalidArgument("[store.config] schema must be 1-63 characters of a-z, 0-9 and _, not '" +
                                   o.schema + "'");
  }
  o.size = static_cast<int>(config.GetInt("pool_size"));
  o.connect_timeout = std::chrono::milliseconds(config.GetDurationMs("connect_timeout"));
  o.statement_timeout = std::chrono::milliseconds(config.GetDurationMs("statement_timeout"));
  o.acquire_timeout = std::chrono::milliseconds(config.GetDurationMs("acquire_timeout"));
  o.notify_window = std::chrono::milliseconds(config.GetDurationMs("notify_window"));
  return SessionStorePtr(std::make_unique<PostgresSessionStore>(std::move(o), *ctx.logger));
}

}  // namespace
}  // namespace paddock::plugins::store_postgres

PADDOCK_DEFINE_PLUGIN(store, postgres, "0.1.0", "PostgreSQL store (libpq); any number of processes.",
                      paddock::ConfigSchema(paddock::plugins::store_postgres::kConfigKeys,
                                            paddock::plugins::store_postgres::kConfigRules),
                      paddock::plugins::store_postgres::Create)
