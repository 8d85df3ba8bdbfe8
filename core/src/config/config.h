// The server's configuration: one TOML file (or the embedded config/paddock.toml).
//
//   [server]  listen, port, data_dir, plugin_dir, max_body_size, max_connections, log_level
//   [worker]  enabled, threads, poll_interval, lease_ttl, heartbeat_interval, max_attempts,
//             sweep_interval, port, reconcile_interval
//   [auth]    admin_key_file, cache_ttl, failed_per_minute, audit_retention, metrics
//   [sessions]  idle_timeout
//   [snapshots] enabled, max_size, keep, compress
//   [store] / [sandbox] / [secrets]   type = "<name>", plus [<kind>.config] for the plugin;
//                                     [store] also migrate = true|false
//   [[harness]]                       type = "<name>", plus [harness.config]; one or more
//   [egress]  enabled, allow, port, connect_timeout
//   [models]  gateway, anthropic_base_url, openai_base_url
//   [tools]   dir, npm, install_timeout, preinstall
//   [profiles.<name>]  memory, cpus, pids, disk, warm, allow, host_network, seccomp, seccomp_allow,
//                      runtime_class ("default" always exists)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/raw.h"
#include "paddock/plugin/config_schema.h"
#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock {

struct ServerSettings {
  std::string listen = "127.0.0.1";
  int port = 3000;
  std::string data_dir;       // resolved: never empty after LoadConfig
  std::string plugin_dir;     // empty: found next to the executable
  std::string dashboard_dir;  // the built dashboard; empty: found next to the executable
  std::int64_t max_body_bytes = 1 << 20;
  std::string log_level = "info";
  // The front door (http/server.h).
  int io_threads = 2;
  int handler_threads = 16;
  int max_queued_requests = 256;
  int max_connections = 10000;
  int max_connections_per_client = 1000;
  int health_reserve = 32;
  std::int64_t header_timeout_ms = 10000;
  std::int64_t body_timeout_ms = 30000;
  std::int64_t idle_timeout_ms = 60000;
  std::int64_t write_timeout_ms = 30000;
  std::int64_t stream_buffer_bytes = 1 << 20;
  std::int64_t shutdown_grace_ms = 10000;
};

struct WorkerSettings {
  bool enabled = true;
  int threads = 4;
  std::int64_t poll_interval_ms = 1000;
  std::int64_t lease_ttl_ms = 15000;
  std::int64_t heartbeat_interval_ms = 3000;
  std::int64_t sweep_interval_ms = 5000;
  int max_attempts = 3;
  int port = 3001;  // `paddock worker`: health and metrics only
  std::int64_t reconcile_interval_ms = 60000;
};

// Keys and their checking ([auth]; services/teams/).
struct AuthSettings {
  std::string admin_key_file;  // empty: $PADDOCK_ADMIN_KEY, else one made at first start
  std::int64_t cache_ttl_ms = 5000;
  std::int64_t failed_per_minute = 30;                // per source address; 0: no limit
  bool metrics_open = false;                          // GET /metrics on the API port without a key
  std::int64_t audit_retention_ms = 90LL * 86400000;  // 0: for ever
  std::int64_t session_ttl_ms = 12LL * 3600000;       // a browser session's cookie (POST /api/auth/login)
  std::string session_key_file;                       // "": <data_dir>/session.key
};

// What every team may use unless its own quotas say otherwise ([quotas]; 0: no limit;
// services/teams/quota_service.h).
struct QuotaSettings {
  std::int64_t sandboxes = 0;
  std::int64_t open_sessions = 0;
  std::int64_t runs_per_minute = 0;
  std::int64_t tokens_per_day = 0;
  std::int64_t cost_per_day_microusd = 0;
};

struct SessionSettings {
  std::int64_t idle_timeout_ms = 30 * 60 * 1000;  // 0: never suspend
  // Each session's share of the store's write rate (services/events/append_share.h); 0: no limit.
  std::int64_t append_rate = 1000;              // events per second
  std::int64_t append_bytes_rate = 16LL << 20;  // bytes of event data per second
};

// Snapshots of sessions after every run (workspace + the harness's native state).
struct SnapshotSettings {
  bool enabled = true;
  std::int64_t max_bytes = 1LL << 30;  // over it: native state only
  int keep = 3;
  bool compress = true;
};

// The control plane's egress proxy, the only way out of a sandbox.
struct EgressSettings {
  bool enabled = true;
  std::vector<std::string>
      allow;  // hosts every sandbox may reach: "example.com", "*.example.com", "host:port"
  std::vector<std::string> model_urls;  // [models] URLs: their hosts are always allowed
  int port = 3128;                      // the proxy's port inside each sandbox (127.0.0.1)
  std::int64_t connect_timeout_ms = 10000;
  // "host:port" of a `paddock egress` service: sandboxes that cannot be handed a socket (pods)
  // reach the network through it, with a pass (egress_pass.h); "": this process's own proxy.
  std::string remote;
  std::string listen = "0.0.0.0";  // the `paddock egress` role: where it serves remote sandboxes (on port)
  int health_port = 3002;          // the `paddock egress` role: /healthz, /readyz, /metrics
  std::string pass_key_file;       // the key passes are made with; "": <data_dir>/egress-pass.key
};

// The credential vault ([vault]): placeholders in sandboxes, values put in by the egress proxy.
struct VaultSettings {
  bool enabled = true;
  std::string dir;               // empty: <data_dir>/vault (the CA and the placeholder key)
  std::string upstream_ca_file;  // extra PEM trust for bound hosts; empty: the system's only
  bool model_keys = true;        // model keys without a binding are bound to [models] (model_keys.h)
  bool inspect_all = false;      // inspect = "all": every TLS connection is read, not only bound hosts
};

// Where sandboxes reach models ([models]); each becomes an environment variable of every
// sandbox (LITELLM_API_BASE, ANTHROPIC_BASE_URL, OPENAI_BASE_URL). Keys are secrets.
struct ModelSettings {
  std::string gateway;
  std::string anthropic_base_url;
  std::string openai_base_url;
};

// Installs of what harnesses need in their sandboxes ([tools]).
struct ToolSettings {
  std::string dir;  // empty: <data_dir>/tools
  std::string npm = "npm";
  std::int64_t install_timeout_ms = 600000;
  bool preinstall = true;
};

// A sandbox profile: limits, warm pool and egress allow list.
struct ProfileSettings {
  std::string name;
  SandboxLimits limits;
  int warm = 0;  // ready sandboxes kept for new sessions
  std::vector<std::string> allow;
  bool host_network = false;
  SandboxHardening hardening;  // seccomp, seccomp_allow, runtime_class
};

struct PluginChoice {
  std::string kind;   // "store", "sandbox", "secrets", "harness"
  std::string name;   // "sqlite"
  RawSection config;  // the [<kind>.config] table, possibly empty
  std::string path;   // the .so given by `path`; empty: <plugin_dir>/paddock-<kind>-<name>.so
};

struct Config {
  std::string source;  // path of the file, or "<embedded config/paddock.toml>"
  // Set by `paddock egress`, not by the file: the process serves remote sandboxes' egress only.
  bool egress_role = false;
  ServerSettings server;
  WorkerSettings worker;
  AuthSettings auth;
  QuotaSettings quotas;
  bool migrate_on_start = true;  // [store] migrate
  EgressSettings egress;
  VaultSettings vault;
  ModelSettings models;
  ToolSettings tools;
  SessionSettings sessions;
  SnapshotSettings snapshots;
  std::vector<ProfileSettings> profiles;  // "default" first
  std::vector<PluginChoice> plugins;      // start order: secrets, store, sandbox, harness...
};

// The embedded default (config/paddock.toml at build time).
std::string_view EmbeddedConfigText();

// The core's own sections and their schemas, in the order of the docs ("server", "worker", ...,
// "profiles.<name>", "<kind>" for a plugin's type/path).
std::vector<std::pair<std::string, ConfigSchema>> CoreSchemas();
inline constexpr char kEmbeddedConfigName[] = "<embedded config/paddock.toml>";

// Parses and validates TOML text. Errors are kInvalidArgument with "<source>:<line>:<col>: ...".
Result<Config> ParseConfig(std::string_view text, std::string source);
// Parses TOML text holding one table's keys (e.g. a plugin's config section) into a section
// named `name`; used by tests and tools that load a single plugin.
Result<RawSection> ParseSectionText(std::string_view text, std::string name);

// Reads and parses a file.
Result<Config> LoadConfigFile(const std::string& path);

// The data directory when none is configured: $PADDOCK_DATA_DIR, else /var/lib/paddock when
// running as root, else $HOME/.local/share/paddock.
std::string DefaultDataDir();

}  // namespace paddock
