#include "config/config.h"

#include <unistd.h>

#include <toml++/toml.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "config/schema.h"
#include "config_embedded.h"
#include "util/money.h"

namespace paddock {
namespace {

namespace fs = std::filesystem;

constexpr paddock_config_key kServerKeys[] = {
    {"listen", PADDOCK_CONFIG_STRING, 0, "127.0.0.1",
     "Address the REST API binds to (0.0.0.0: every interface; every route but /healthz and /readyz needs a "
     "key)."},
    {"port", PADDOCK_CONFIG_INT, 0, "3000", "Port of the REST API, dashboard and /metrics."},
    {"data_dir", PADDOCK_CONFIG_STRING, 0, "",
     "State directory; empty: $PADDOCK_DATA_DIR, /var/lib/paddock (root) or ~/.local/share/paddock."},
    {"plugin_dir", PADDOCK_CONFIG_STRING, 0, "",
     "Where paddock-<kind>-<name>.so files are; empty: $PADDOCK_PLUGIN_DIR or next to the binary."},
    {"dashboard_dir", PADDOCK_CONFIG_STRING, 0, "",
     "The built dashboard (index.html, assets/) that GET / serves; empty: $PADDOCK_DASHBOARD_DIR, else "
     "share/paddock/dashboard or dashboard beside the binary's directory."},
    {"max_body_size", PADDOCK_CONFIG_SIZE, 0, "1MiB", "Largest request body accepted (413 above)."},
    {"log_level", PADDOCK_CONFIG_STRING, 0, "info", "debug, info, warn or error."},
    {"io_threads", PADDOCK_CONFIG_INT, 0, "2",
     "Event-loop threads that accept, read requests and write responses and event streams."},
    {"handler_threads", PADDOCK_CONFIG_INT, 0, "16",
     "Requests handled at once (event streams do not count)."},
    {"max_queued_requests", PADDOCK_CONFIG_INT, 0, "256",
     "Requests waiting for a handler thread; past it: 503 with Retry-After."},
    {"max_connections", PADDOCK_CONFIG_INT, 0, "10000",
     "Open connections in total, event streams included; past it: 503 (capped by the open-files limit)."},
    {"max_connections_per_client", PADDOCK_CONFIG_INT, 0, "1000",
     "Open connections from one client address; past it: 503."},
    {"health_reserve", PADDOCK_CONFIG_INT, 0, "32",
     "Connections past the limits still accepted for /healthz, /readyz and /metrics only."},
    {"header_timeout", PADDOCK_CONFIG_DURATION, 0, "10s",
     "Deadline for a request's whole header, from the connection or the request's first byte."},
    {"body_timeout", PADDOCK_CONFIG_DURATION, 0, "30s", "Deadline for a request's whole body."},
    {"idle_timeout", PADDOCK_CONFIG_DURATION, 0, "60s",
     "How long a kept-alive connection may wait for its next request."},
    {"write_timeout", PADDOCK_CONFIG_DURATION, 0, "30s",
     "Deadline for writing one response, or one batch of a stream, to a client that does not read."},
    {"stream_buffer", PADDOCK_CONFIG_SIZE, 0, "1MiB",
     "Events waiting for one slow stream; past it the stream is cut (the client resumes with "
     "Last-Event-ID)."},
    {"shutdown_grace", PADDOCK_CONFIG_DURATION, 0, "10s",
     "On SIGTERM: how long requests in flight may take to finish before connections are closed."},
};

constexpr paddock_config_rule kServerRules[] = {
    config::Range("port", 0, 65535),
    config::Range("max_body_size", 1LL << 10, 1LL << 30),
    config::OneOf("log_level", "debug,info,warn,error"),
    config::Range("io_threads", 1, 64),
    config::Range("handler_threads", 1, 1024),
    config::Range("max_queued_requests", 0, 100000),
    config::Range("max_connections", 2, 1000000),
    config::Range("max_connections_per_client", 1, 1000000),
    config::Range("health_reserve", 0, 10000),
    config::AtLeast("header_timeout", 100),
    config::AtLeast("body_timeout", 100),
    config::AtLeast("idle_timeout", 100),
    config::AtLeast("write_timeout", 100),
    config::Range("stream_buffer", 4LL << 10, 1LL << 30),
};

constexpr paddock_config_key kWorkerKeys[] = {
    {"enabled", PADDOCK_CONFIG_BOOL, 0, "true", "Run runs in this process."},
    {"threads", PADDOCK_CONFIG_INT, 0, "4", "Runs executed at once by this process."},
    {"poll_interval", PADDOCK_CONFIG_DURATION, 0, "1s",
     "How often an idle worker looks for queued runs it was not told about."},
    {"lease_ttl", PADDOCK_CONFIG_DURATION, 0, "15s",
     "How long a claimed run stays this worker's without a heartbeat; then the sweeper re-queues it."},
    {"heartbeat_interval", PADDOCK_CONFIG_DURATION, 0, "3s",
     "How often a worker renews the leases of its runs (at most half of lease_ttl)."},
    {"max_attempts", PADDOCK_CONFIG_INT, 0, "3",
     "Claims of one run before an interruption fails it instead of re-queuing it."},
    {"sweep_interval", PADDOCK_CONFIG_DURATION, 0, "5s",
     "How often every process looks for expired leases (and prunes old Idempotency-Keys)."},
    {"port", PADDOCK_CONFIG_INT, 0, "3001",
     "Port of /healthz, /readyz and /metrics in `paddock worker` (which serves no API)."},
    {"reconcile_interval", PADDOCK_CONFIG_DURATION, 0, "1m",
     "How often a worker destroys sandboxes no open session is bound to any more."},
};

constexpr paddock_config_rule kWorkerRules[] = {
    config::Range("threads", 1, 256),      config::AtLeast("poll_interval", 10),
    config::AtLeast("lease_ttl", 1000),    config::AtLeast("heartbeat_interval", 100),
    config::Range("max_attempts", 1, 100), config::AtLeast("sweep_interval", 100),
    config::Range("port", 0, 65535),       config::AtLeast("reconcile_interval", 1000),
};

constexpr paddock_config_key kEgressKeys[] = {
    {"enabled", PADDOCK_CONFIG_BOOL, 0, "true",
     "Give sandboxes the egress proxy; false: sandboxes have no way out at all."},
    {"allow", PADDOCK_CONFIG_STRING_LIST, 0, "",
     "Hosts every sandbox may reach: \"example.com\", \"*.example.com\" or \"host:port\"."},
    {"port", PADDOCK_CONFIG_INT, 0, "3128", "Port of the proxy inside each sandbox (on 127.0.0.1)."},
    {"connect_timeout", PADDOCK_CONFIG_DURATION, 0, "10s", "How long the proxy waits to connect upstream."},
    {"remote", PADDOCK_CONFIG_STRING, 0, "",
     "host:port of a `paddock egress` service that sandboxes reach the network through (Kubernetes); "
     "empty: this process's own proxy, on a socket in each sandbox."},
    {"listen", PADDOCK_CONFIG_STRING, 0, "0.0.0.0",
     "The `paddock egress` role: the address it serves sandboxes on (at port)."},
    {"health_port", PADDOCK_CONFIG_INT, 0, "3002",
     "The `paddock egress` role: /healthz, /readyz and /metrics."},
    {"pass_key_file", PADDOCK_CONFIG_STRING, 0, "",
     "The key sandboxes' egress passes are made with, shared by workers and egress processes; empty: "
     "<data_dir>/egress-pass.key (made at the first start)."},
};

constexpr paddock_config_key kVaultKeys[] = {
    {"enabled", PADDOCK_CONFIG_BOOL, 0, "true",
     "Vault entries (team secrets with a \"vault\" binding): sandboxes get placeholders and the egress "
     "proxy puts the values in for the bound hosts; false: such secrets are refused to sandboxes."},
    {"dir", PADDOCK_CONFIG_STRING, 0, "",
     "Where the install's CA (ca.key, ca.crt) and the placeholder key live; empty: <data_dir>/vault."},
    {"upstream_ca_file", PADDOCK_CONFIG_STRING, 0, "",
     "PEM certificates trusted for bound hosts besides the system's trust store (an internal gateway's CA)."},
    {"inspect", PADDOCK_CONFIG_STRING, 0, "bound",
     "Which TLS connections the proxy reads: \"bound\", those to hosts a vault entry of the sandbox's "
     "agent (or a model key) is bound to, every other host a plain tunnel; \"all\", every one, so a "
     "placeholder sent anywhere else is refused too (clients must trust the install's CA for every host)."},
    {"model_keys", PADDOCK_CONFIG_BOOL, 0, "true",
     "Model keys (ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, OPENAI_API_KEY, LITELLM_API_KEY) without a "
     "binding of their own are bound to the [models] endpoints, so sandboxes hold placeholders of them."},
};

constexpr paddock_config_rule kVaultRules[] = {
    config::OneOf("inspect", "bound,all"),
};

constexpr paddock_config_rule kEgressRules[] = {
    config::Range("port", 1, 65535),
    config::Range("health_port", 0, 65535),
    config::AtLeast("connect_timeout", 100),
};

constexpr paddock_config_key kModelKeys[] = {
    {"gateway", PADDOCK_CONFIG_STRING, 0, "",
     "A LiteLLM-style gateway (one URL for Anthropic and OpenAI APIs): LITELLM_API_BASE in sandboxes."},
    {"anthropic_base_url", PADDOCK_CONFIG_STRING, 0, "",
     "Anthropic Messages API base URL (ANTHROPIC_BASE_URL); empty: the gateway."},
    {"openai_base_url", PADDOCK_CONFIG_STRING, 0, "",
     "OpenAI API base URL, ending in /v1 (OPENAI_BASE_URL); empty: the gateway's /v1."},
};

constexpr paddock_config_key kToolKeys[] = {
    {"dir", PADDOCK_CONFIG_STRING, 0, "", "Where harness tools are installed; empty: <data_dir>/tools."},
    {"npm", PADDOCK_CONFIG_STRING, 0, "npm", "The npm executable that installs them."},
    {"install_timeout", PADDOCK_CONFIG_DURATION, 0, "10m", "How long one install may take."},
    {"preinstall", PADDOCK_CONFIG_BOOL, 0, "true",
     "Install every loaded harness's tools when the server starts, not at its first run."},
};

constexpr paddock_config_rule kToolRules[] = {
    config::NotEmpty("npm"),
    config::AtLeast("install_timeout", 1000),
};

constexpr paddock_config_key kSessionKeys[] = {
    {"idle_timeout", PADDOCK_CONFIG_DURATION, 0, "30m",
     "A session whose sandbox has run nothing this long releases it (status suspended); the next message "
     "restores it from its snapshot. 0s: never. An agent's idle_timeout_seconds overrides it."},
    {"append_rate", PADDOCK_CONFIG_INT, 0, "1000",
     "Each session's share of the store's write rate, in events per second (a second's worth may come at "
     "once): a session over it waits, so one noisy session cannot slow the others' appends. 0: no limit."},
    {"append_bytes_rate", PADDOCK_CONFIG_SIZE, 0, "16MiB",
     "The same share in bytes of event data per second. 0: no limit."},
};

constexpr paddock_config_rule kSessionRules[] = {
    config::ZeroOr("idle_timeout", 1000),
    config::Range("append_rate", 0, 1000000),
};

constexpr paddock_config_key kSnapshotKeys[] = {
    {"enabled", PADDOCK_CONFIG_BOOL, 0, "true",
     "Snapshot the workspace and the harness's native state after every run."},
    {"max_size", PADDOCK_CONFIG_SIZE, 0, "1GiB",
     "Largest snapshot; over it only the native state is kept (and an event says so)."},
    {"keep", PADDOCK_CONFIG_INT, 0, "3", "Versions kept per session; older ones are pruned."},
    {"compress", PADDOCK_CONFIG_BOOL, 0, "true", "gzip the archives."},
};

constexpr paddock_config_rule kSnapshotRules[] = {
    config::Range("max_size", 1LL << 10, 16LL << 30),
    config::Range("keep", 1, 100),
};

constexpr paddock_config_key kAuthKeys[] = {
    {"admin_key_file", PADDOCK_CONFIG_STRING, 0, "",
     "A file holding the first operator key (else $PADDOCK_ADMIN_KEY; with neither and no key in the "
     "store, one is made and written to <data_dir>/admin.key)."},
    {"cache_ttl", PADDOCK_CONFIG_DURATION, 0, "5s",
     "How long a process trusts a key it looked up; revocations reach every process at once "
     "(Postgres: NOTIFY) and the cache is not used while notifications are down."},
    {"failed_per_minute", PADDOCK_CONFIG_INT, 0, "30",
     "Failed authentications one source address may make per minute (burst: the same number); past it "
     "every request of that address answers 429 until the bucket refills. 0: no limit."},
    {"audit_retention", PADDOCK_CONFIG_DURATION, 0, "90d",
     "How long audit log entries are kept; \"0s\": for ever."},
    {"metrics", PADDOCK_CONFIG_STRING, 0, "keyed",
     "GET /metrics on the API port: \"keyed\" (an operator key) or \"open\". The worker's port "
     "([worker] port) always serves it open."},
    {"session_ttl", PADDOCK_CONFIG_DURATION, 0, "12h",
     "How long a browser session (POST /api/auth/login: an API key turned into a cookie) lasts."},
    {"session_key_file", PADDOCK_CONFIG_STRING, 0, "",
     "The key browser session cookies are signed with, shared by every API process of an install; "
     "empty: <data_dir>/session.key (made at the first start)."},
};

constexpr paddock_config_rule kAuthRules[] = {
    config::Range("failed_per_minute", 0, 1000000),
    config::AtLeast("session_ttl", 60000),
    config::OneOf("metrics", "keyed,open"),
};

constexpr paddock_config_key kQuotaKeys[] = {
    {"sandboxes", PADDOCK_CONFIG_INT, 0, "0", "Sandboxes one team may have at once; 0: no limit."},
    {"open_sessions", PADDOCK_CONFIG_INT, 0, "0",
     "Sessions (neither closed nor failed) one team may have; 0: no limit."},
    {"runs_per_minute", PADDOCK_CONFIG_INT, 0, "0", "Messages one team may send in any 60 s; 0: no limit."},
    {"tokens_per_day", PADDOCK_CONFIG_INT, 0, "0",
     "Model input + output tokens of one team's runs sent in a UTC day; 0: no limit."},
    {"cost_per_day_usd", PADDOCK_CONFIG_STRING, 0, "0",
     "Model cost in US dollars (\"25.50\") of one team's runs sent in a UTC day; \"0\": no limit."},
};

constexpr paddock_config_rule kQuotaRules[] = {
    config::Range("sandboxes", 0, 1000000),
    config::Range("open_sessions", 0, 100000000),
    config::Range("runs_per_minute", 0, 1000000),
    config::Range("tokens_per_day", 0, 1000000000000000LL),
};

constexpr paddock_config_key kProfileKeys[] = {
    {"memory", PADDOCK_CONFIG_SIZE, 0, "2GiB", "Memory of all the sandbox's processes together; 0: none."},
    {"cpus", PADDOCK_CONFIG_STRING, 0, "1", "CPU time in cores (\"0.5\": half a core); \"0\": none."},
    {"pids", PADDOCK_CONFIG_INT, 0, "512", "Processes and threads at once; 0: none."},
    {"disk", PADDOCK_CONFIG_SIZE, 0, "4GiB", "Size of the workspace (and of /tmp); 0: none."},
    {"warm", PADDOCK_CONFIG_INT, 0, "2",
     "Ready sandboxes kept for new sessions of this profile (each about 4 MiB of memory)."},
    {"allow", PADDOCK_CONFIG_STRING_LIST, 0, "",
     "Hosts this profile's sandboxes may reach besides [egress] allow."},
    {"host_network", PADDOCK_CONFIG_BOOL, 0, "false",
     "Share the host's network: no isolation, no proxy. Logged at every sandbox start."},
    {"seccomp", PADDOCK_CONFIG_STRING, 0, "default",
     "\"default\": the syscall filter and no nested user namespaces; \"off\": neither (logged at start)."},
    {"seccomp_allow", PADDOCK_CONFIG_STRING_LIST, 0, "",
     "Syscalls of the default filter's refused list that this profile lets through."},
    {"runtime_class", PADDOCK_CONFIG_STRING, 0, "",
     "Kubernetes: runtimeClassName of the profile's sandbox pods (gVisor, Kata); empty: the cluster's."},
};

constexpr paddock_config_rule kProfileRules[] = {
    config::ZeroOr("memory", 16LL << 20),    config::ZeroOr("pids", 16),
    config::ZeroOr("disk", 16LL << 20),      config::Range("warm", 0, 1000),
    config::OneOf("seccomp", "default,off"),
};

Status CheckHost(const std::string& host, const std::string& source, int line) {
  if (host.empty() || host.size() > 253 || host.find_first_of(" /@") != std::string::npos) {
    return Status::InvalidArgument(source + ":" + std::to_string(line) + ": '" + host +
                                   "' is not a host (use example.com, *.example.com or host:port)");
  }
  return Status::Ok();
}

constexpr paddock_config_key kStoreSelectKeys[] = {
    {"type", PADDOCK_CONFIG_STRING, PADDOCK_CONFIG_REQUIRED, nullptr, "Plugin name."},
    {"path", PADDOCK_CONFIG_STRING, 0, "",
     "The plugin's .so, for one built out of tree (relative: to this file's directory); empty: "
     "paddock-<kind>-<type>.so in plugin_dir."},
    {"migrate", PADDOCK_CONFIG_BOOL, 0, "true",
     "Apply pending schema migrations at start; false: refuse to start until `paddock migrate` ran."},
};

constexpr paddock_config_key kPluginSelectKeys[] = {
    {"type", PADDOCK_CONFIG_STRING, PADDOCK_CONFIG_REQUIRED, nullptr, "Plugin name."},
    {"path", PADDOCK_CONFIG_STRING, 0, "",
     "The plugin's .so, for one built out of tree (relative: to this file's directory); empty: "
     "paddock-<kind>-<type>.so in plugin_dir."},
};

constexpr paddock_config_rule kSelectRules[] = {config::NotEmpty("type")};

RawValue ToRaw(const toml::node& node) {
  RawValue v;
  v.line = static_cast<int>(node.source().begin.line);
  if (auto s = node.as_string()) {
    v.type = RawValue::Type::kString;
    v.str = s->get();
  } else if (auto i = node.as_integer()) {
    v.type = RawValue::Type::kInt;
    v.i = i->get();
  } else if (auto d = node.as_floating_point()) {
    v.type = RawValue::Type::kFloat;
    v.d = d->get();
  } else if (auto b = node.as_boolean()) {
    v.type = RawValue::Type::kBool;
    v.b = b->get();
  } else if (auto a = node.as_array()) {
    v.type = RawValue::Type::kArray;
    for (const auto& item : *a) v.items.push_back(ToRaw(item));
  } else if (node.is_table()) {
    v.type = RawValue::Type::kTable;
  }
  return v;
}

// Copies the scalar keys of `table` into a RawSection; nested tables named in `subtables`
// are left for the caller, any other nested table is an error.
Result<RawSection> ToSection(const toml::table& table, std::string name, const std::string& source,
                             std::initializer_list<std::string_view> subtables = {}) {
  RawSection s;
  s.name = std::move(name);
  s.source = source;
  s.line = static_cast<int>(table.source().begin.line);
  for (const auto& [key, node] : table) {
    std::string k(key.str());
    bool is_sub = false;
    for (auto sub : subtables) is_sub = is_sub || sub == k;
    if (is_sub) continue;
    s.values.emplace(k, ToRaw(node));
  }
  return s;
}

// An int key (its rule bounds it well inside int).
int Int(const ConfigView& v, std::string_view key) { return static_cast<int>(v.GetInt(key)); }

Status Invalid(const std::string& source, int line, const std::string& msg) {
  return Status::InvalidArgument(source + ":" + std::to_string(line) + ": " + msg);
}

// [kind] type = "..." with an optional [kind.config] table. [store] also takes `migrate`.
Result<PluginChoice> ReadPlugin(const toml::table& table, const std::string& kind, const std::string& source,
                                Config* config = nullptr) {
  PADDOCK_ASSIGN_OR_RETURN(RawSection select, ToSection(table, kind, source, {"config"}));
  Result<ConfigView> validated = kind == "store" ? ValidateSection({kStoreSelectKeys, kSelectRules}, select)
                                                 : ValidateSection({kPluginSelectKeys, kSelectRules}, select);
  PADDOCK_RETURN_IF_ERROR(validated.status());
  const ConfigView& view = *validated;
  if (kind == "store" && config) config->migrate_on_start = view.GetBool("migrate");
  PluginChoice choice;
  choice.kind = kind;
  choice.name = view.GetString("type");
  if (std::string path = view.GetString("path"); !path.empty()) {
    const bool from_file = !source.empty() && source.front() != '<';
    if (fs::path(path).is_relative() && from_file) path = (fs::path(source).parent_path() / path).string();
    const std::string file = "paddock-" + kind + "-" + choice.name + ".so";  // as the loader insists
    if (fs::path(path).filename() != file) {
      return Invalid(source, select.values.at("path").line,
                     "[" + kind + "] path must name a file called " + file + ", not " +
                         fs::path(path).filename().string());
    }
    choice.path = path;
  }
  choice.config.name = kind + ".config";
  choice.config.source = source;
  choice.config.line = select.line;
  if (const toml::node* cfg = table.get("config")) {
    const toml::table* t = cfg->as_table();
    if (!t) {
      return Invalid(source, static_cast<int>(cfg->source().begin.line),
                     "[" + kind + "] config must be a table");
    }
    PADDOCK_ASSIGN_OR_RETURN(choice.config, ToSection(*t, kind + ".config", source));
    for (const auto& [k, v] : choice.config.values) {
      if (v.type == RawValue::Type::kTable) {
        return Invalid(source, v.line, "[" + kind + ".config] " + k + ": nested tables are not supported");
      }
    }
  }
  return choice;
}

// An array of tables of one kind ([[secrets]], [[harness]]), in order, each name once.
Status ReadPluginList(const toml::array& entries, const std::string& kind, const std::string& source,
                      Config& config) {
  std::set<std::string> names;
  for (const auto& e : entries) {
    if (!e.is_table()) {
      return Invalid(source, static_cast<int>(e.source().begin.line),
                     "[[" + kind + "]] entries must be tables");
    }
    PADDOCK_ASSIGN_OR_RETURN(PluginChoice c, ReadPlugin(*e.as_table(), kind, source));
    if (!names.insert(c.name).second) {
      return Invalid(source, c.config.line, kind + " '" + c.name + "' is configured twice");
    }
    config.plugins.push_back(std::move(c));
  }
  return Status::Ok();
}

}  // namespace

std::vector<std::pair<std::string, ConfigSchema>> CoreSchemas() {
  return {{"server", {kServerKeys, kServerRules}},
          {"worker", {kWorkerKeys, kWorkerRules}},
          {"auth", {kAuthKeys, kAuthRules}},
          {"quotas", {kQuotaKeys, kQuotaRules}},
          {"sessions", {kSessionKeys, kSessionRules}},
          {"snapshots", {kSnapshotKeys, kSnapshotRules}},
          {"egress", {kEgressKeys, kEgressRules}},
          {"vault", {kVaultKeys, kVaultRules}},
          {"models", ConfigKeys(kModelKeys)},
          {"tools", {kToolKeys, kToolRules}},
          {"profiles.<name>", {kProfileKeys, kProfileRules}},
          {"store", {kStoreSelectKeys, kSelectRules}},
          {"<kind>", {kPluginSelectKeys, kSelectRules}}};
}

std::string_view EmbeddedConfigText() { return paddock::embedded_config::kFiles[0].content; }

std::string DefaultDataDir() {
  if (const char* env = std::getenv("PADDOCK_DATA_DIR"); env && *env) return env;
  if (geteuid() == 0) return "/var/lib/paddock";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.local/share/paddock";
}

Result<Config> ParseConfig(std::string_view text, std::string source) {
  toml::table doc;
  try {
    doc = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(source + ":" + std::to_string(e.source().begin.line) + ":" +
                                   std::to_string(e.source().begin.column) +
                                   ": TOML syntax error: " + std::string(e.description()));
  }
  Config config;
  config.source = source;
  const std::set<std::string> known = {"server",   "worker",   "auth",      "quotas", "store",
                                       "sandbox",  "secrets",  "harness",   "egress", "vault",
                                       "profiles", "sessions", "snapshots", "models", "tools"};
  for (const auto& [key, node] : doc) {
    if (!known.count(std::string(key.str()))) {
      return Invalid(
          source, static_cast<int>(node.source().begin.line),
          "unknown section [" + std::string(key.str()) +
              "]; allowed: server, worker, auth, quotas, store, sandbox, secrets, harness, egress, "
              "vault, profiles, sessions, snapshots, models, tools");
    }
  }
  auto table_of = [&](const char* name) -> Result<const toml::table*> {
    const toml::node* n = doc.get(name);
    if (!n) return static_cast<const toml::table*>(nullptr);
    if (!n->is_table()) {
      return Invalid(source, static_cast<int>(n->source().begin.line),
                     std::string(name) + " must be a table ([" + name + "])");
    }
    return n->as_table();
  };
  // A top-level section's keys (an absent section has none: every key takes its default).
  auto section = [&](const char* name) -> Result<RawSection> {
    PADDOCK_ASSIGN_OR_RETURN(const toml::table* t, table_of(name));
    if (t) return ToSection(*t, name, source);
    RawSection s;
    s.name = name;
    s.source = source;
    return s;
  };

  // [server]
  {
    PADDOCK_ASSIGN_OR_RETURN(RawSection s, section("server"));
    PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection({kServerKeys, kServerRules}, s));
    ServerSettings& out = config.server;
    out.listen = v.GetString("listen");
    out.port = Int(v, "port");
    out.data_dir = v.GetString("data_dir");
    if (out.data_dir.empty()) out.data_dir = DefaultDataDir();
    out.plugin_dir = v.GetString("plugin_dir");
    out.dashboard_dir = v.GetString("dashboard_dir");
    out.max_body_bytes = v.GetSizeBytes("max_body_size");
    out.io_threads = Int(v, "io_threads");
    out.handler_threads = Int(v, "handler_threads");
    out.max_queued_requests = Int(v, "max_queued_requests");
    out.max_connections = Int(v, "max_connections");
    out.max_connections_per_client = Int(v, "max_connections_per_client");
    out.health_reserve = Int(v, "health_reserve");
    out.header_timeout_ms = v.GetDurationMs("header_timeout");
    out.body_timeout_ms = v.GetDurationMs("body_timeout");
    out.idle_timeout_ms = v.GetDurationMs("idle_timeout");
    out.write_timeout_ms = v.GetDurationMs("write_timeout");
    out.shutdown_grace_ms = v.GetDurationMs("shutdown_grace");
    out.stream_buffer_bytes = v.GetSizeBytes("stream_buffer");
    out.log_level = v.GetString("log_level");
  }
  // [worker]
  {
    PADDOCK_ASSIGN_OR_RETURN(RawSection s, section("worker"));
    PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection({kWorkerKeys, kWorkerRules}, s));
    WorkerSettings& w = config.worker;
    w.enabled = v.GetBool("enabled");
    w.threads = Int(v, "threads");
    w.poll_interval_ms = v.GetDurationMs("poll_interval");
    w.lease_ttl_ms = v.GetDurationMs("lease_ttl");
    w.heartbeat_interval_ms = v.GetDurationMs("heartbeat_interval");
    w.sweep_interval_ms = v.GetDurationMs("sweep_interval");
    if (2 * w.heartbeat_interval_ms > w.lease_ttl_ms)
      return Invalid(source, s.line, "[worker] heartbeat_interval must be at most half of lease_ttl");
    w.max_attempts = Int(v, "max_attempts");
    w.port = Int(v, "port");
    w.reconcile_interval_ms = v.GetDurationMs("reconcile_interval");
  }
  // [sessions]
  {
    PADDOCK_ASSIGN_OR_RETURN(RawSection s, section("sessions"));
    PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection({kSessionKeys, kSessionRules}, s));
    config.sessions.idle_timeout_ms = v.GetDurationMs("idle_timeout");
    config.sessions.append_rate = v.GetInt("append_rate");
    config.sessions.append_bytes_rate = v.GetSizeBytes("append_bytes_rate");
  }
  // [auth]
  {
    PADDOCK_ASSIGN_OR_RETURN(RawSection s, section("auth"));
    PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection({kAuthKeys, kAuthRules}, s));
    AuthSettings& a = config.auth;
    a.admin_key_file = v.GetString("admin_key_file");
    a.cache_ttl_ms = v.GetDurationMs("cache_ttl");
    a.failed_per_minute = v.GetInt("failed_per_minute");
    a.metrics_open = v.GetString("metrics") == "open";
    a.audit_retention_ms = v.GetDurationMs("audit_retention");
    a.session_ttl_ms = v.GetDurationMs("session_ttl");
    a.session_key_file = v.GetString("session_key_file");
  }
  // [quotas]
  {
    PADDOCK_ASSIGN_OR_RETURN(RawSection s, section("quotas"));
    PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection({kQuotaKeys, kQuotaRules}, s));
    QuotaSettings& q = config.quotas;
    q.sandboxes = v.GetInt("sandboxes");
    q.open_sessions = v.GetInt("open_sessions");
    q.runs_per_minute = v.GetInt("runs_per_minute");
    q.tokens_per_day = v.GetInt("tokens_per_day");
    std::optional<std::int64_t> cost = ParseUsdMicros(v.GetString("cost_per_day_usd"));
    if (!cost) {
      return Invalid(source, s.line,
                     "[quotas] cost_per_day_usd must be an amount of US dollars like \"25\" or \"7.50\"");
    }
    q.cost_per_day_microusd = *cost;
  }
  // [snapshots]
  {
    PADDOCK_ASSIGN_OR_RETURN(RawSection s, section("snapshots"));
    PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection({kSnapshotKeys, kSnapshotRules}, s));
    SnapshotSettings& sn = config.snapshots;
    sn.enabled = v.GetBool("enabled");
    sn.max_bytes = v.GetSizeBytes("max_size");
    sn.keep = Int(v, "keep");
    sn.compress = v.GetBool("compress");
  }
  // [egress]
  {
    PADDOCK_ASSIGN_OR_RETURN(RawSection s, section("egress"));
    PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection({kEgressKeys, kEgressRules}, s));
    EgressSettings& e = config.egress;
    e.enabled = v.GetBool("enabled");
    e.allow = v.GetStringList("allow");
    for (const auto& h : e.allow) PADDOCK_RETURN_IF_ERROR(CheckHost(h, source, s.line));
    e.port = Int(v, "port");
    e.connect_timeout_ms = v.GetDurationMs("connect_timeout");
    e.remote = v.GetString("remote");
    e.listen = v.GetString("listen");
    e.health_port = Int(v, "health_port");
    e.pass_key_file = v.GetString("pass_key_file");
    if (!e.remote.empty()) {
      auto colon = e.remote.rfind(':');
      const std::string p = colon == std::string::npos ? "" : e.remote.substr(colon + 1);
      if (colon == 0 || p.empty() || p.find_first_not_of("0123456789") != std::string::npos || p.size() > 5 ||
          std::stoi(p) < 1 || std::stoi(p) > 65535) {
        return Invalid(source, s.line,
                       "[egress] remote = \"" + e.remote +
                           "\" must be host:port, e.g. \"paddock-egress.paddock.svc:3128\"");
      }
    }
  }
  // [vault]
  {
    PADDOCK_ASSIGN_OR_RETURN(RawSection s, section("vault"));
    PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection({kVaultKeys, kVaultRules}, s));
    VaultSettings& vs = config.vault;
    vs.enabled = v.GetBool("enabled");
    vs.dir = v.GetString("dir");
    vs.upstream_ca_file = v.GetString("upstream_ca_file");
    vs.model_keys = v.GetBool("model_keys");
    vs.inspect_all = v.GetString("inspect") == "all";
  }
  // [models]: where sandboxes reach models; the egress proxy always allows these hosts.
  {
    PADDOCK_ASSIGN_OR_RETURN(RawSection s, section("models"));
    PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection(ConfigKeys(kModelKeys), s));
    ModelSettings& m = config.models;
    m.gateway = v.GetString("gateway");
    m.anthropic_base_url = v.GetString("anthropic_base_url");
    m.openai_base_url = v.GetString("openai_base_url");
    for (const auto& [key, url] : {std::pair<const char*, std::string&>{"gateway", m.gateway},
                                   {"anthropic_base_url", m.anthropic_base_url},
                                   {"openai_base_url", m.openai_base_url}}) {
      while (!url.empty() && url.back() == '/') url.pop_back();
      if (url.empty()) continue;
      if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
        return Invalid(
            source, s.line,
            std::string("[models] ") + key + " must be an http:// or https:// URL, not '" + url + "'");
      }
      config.egress.model_urls.push_back(url);
    }
  }
  // [tools]
  {
    PADDOCK_ASSIGN_OR_RETURN(RawSection s, section("tools"));
    PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection({kToolKeys, kToolRules}, s));
    ToolSettings& t = config.tools;
    t.dir = v.GetString("dir");
    t.npm = v.GetString("npm");
    t.install_timeout_ms = v.GetDurationMs("install_timeout");
    t.preinstall = v.GetBool("preinstall");
  }
  // [profiles.<name>]
  {
    PADDOCK_ASSIGN_OR_RETURN(const toml::table* t, table_of("profiles"));
    std::vector<std::pair<std::string, const toml::table*>> tables;
    bool has_default = false;
    if (t) {
      for (const auto& [key, node] : *t) {
        if (!node.is_table()) {
          return Invalid(source, static_cast<int>(node.source().begin.line),
                         "profiles." + std::string(key.str()) + " must be a table ([profiles." +
                             std::string(key.str()) + "])");
        }
        has_default = has_default || key.str() == "default";
        tables.emplace_back(std::string(key.str()), node.as_table());
      }
    }
    if (!has_default) tables.insert(tables.begin(), {"default", nullptr});
    for (const auto& [name, table] : tables) {
      RawSection s;
      if (table) {
        PADDOCK_ASSIGN_OR_RETURN(s, ToSection(*table, "profiles." + name, source));
      } else {
        s.name = "profiles." + name;
        s.source = source;
      }
      bool valid_name = !name.empty() && name.size() <= 64;
      for (char c : name)
        valid_name = valid_name && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
      if (!valid_name)
        return Invalid(source, s.line,
                       "profile name '" + name + "' must be 1-64 letters, digits, '-' or '_'");
      PADDOCK_ASSIGN_OR_RETURN(ConfigView v, ValidateSection({kProfileKeys, kProfileRules}, s));
      ProfileSettings p;
      p.name = name;
      p.limits.memory_bytes = v.GetSizeBytes("memory");
      std::string cpus = v.GetString("cpus");
      char* end = nullptr;
      p.limits.cpus = std::strtod(cpus.c_str(), &end);
      if (cpus.empty() || *end != '\0' || p.limits.cpus < 0 || p.limits.cpus > 1024) {
        return Invalid(source, s.line,
                       "[profiles." + name + "] cpus must be a number of cores like \"0.5\" or \"2\"");
      }
      p.limits.pids = v.GetInt("pids");
      p.limits.disk_bytes = v.GetSizeBytes("disk");
      p.warm = Int(v, "warm");
      p.allow = v.GetStringList("allow");
      for (const auto& h : p.allow) PADDOCK_RETURN_IF_ERROR(CheckHost(h, source, s.line));
      p.host_network = v.GetBool("host_network");
      p.hardening.seccomp = v.GetString("seccomp") == "default";
      p.hardening.seccomp_allow = v.GetStringList("seccomp_allow");
      for (const auto& call : p.hardening.seccomp_allow) {
        if (!IsRefusedSyscall(call)) {
          std::string refused;
          for (std::string_view k : kRefusedSyscalls)
            refused += (refused.empty() ? "" : ", ") + std::string(k);
          return Invalid(source, s.line,
                         "[profiles." + name + "] seccomp_allow: '" + call +
                             "' is not refused by the default filter; it refuses: " + refused);
        }
      }
      p.hardening.runtime_class = v.GetString("runtime_class");
      for (char c : p.hardening.runtime_class) {
        if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
              c == '-' || c == '.')) {
          return Invalid(
              source, s.line,
              "[profiles." + name + "] runtime_class must be a Kubernetes name (a-z, 0-9, '-', '.')");
        }
      }
      config.profiles.push_back(std::move(p));
    }
  }
  // Plugins, in start order. Secrets: one [secrets] table, or [[secrets]] entries asked in order.
  if (const toml::node* n = doc.get("secrets"); n && n->is_array()) {
    const toml::array& entries = *n->as_array();
    if (entries.empty()) {
      return Invalid(source, static_cast<int>(n->source().begin.line),
                     "[[secrets]] needs at least one entry");
    }
    PADDOCK_RETURN_IF_ERROR(ReadPluginList(entries, "secrets", source, config));
  }
  for (const char* kind : {"secrets", "store", "sandbox"}) {
    if (std::string_view(kind) == "secrets" && !config.plugins.empty()) continue;
    PADDOCK_ASSIGN_OR_RETURN(const toml::table* t, table_of(kind));
    if (!t) return Invalid(source, 1, std::string("missing section [") + kind + "] with type = \"...\"");
    PADDOCK_ASSIGN_OR_RETURN(PluginChoice c, ReadPlugin(*t, kind, source, &config));
    config.plugins.push_back(std::move(c));
  }
  const toml::node* harness = doc.get("harness");
  const toml::array* harnesses = harness ? harness->as_array() : nullptr;
  if (!harnesses || harnesses->empty()) {
    return Invalid(source, harness ? static_cast<int>(harness->source().begin.line) : 1,
                   "at least one [[harness]] with type = \"...\" is required");
  }
  PADDOCK_RETURN_IF_ERROR(ReadPluginList(*harnesses, "harness", source, config));
  return config;
}

Result<RawSection> ParseSectionText(std::string_view text, std::string name) {
  try {
    toml::table t = toml::parse(text, name);
    return ToSection(t, name, name);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(name + ":" + std::to_string(e.source().begin.line) +
                                   ": TOML syntax error: " + std::string(e.description()));
  }
}

Result<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument(path + ": cannot read config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

}  // namespace paddock
