// paddock: the control plane's one binary.
//   paddock serve [--config FILE] [--listen ADDR] [--port N] [--data-dir DIR] [--plugin-dir DIR]
//                 [--port-file FILE] [--no-worker]
//   paddock worker [same options as serve but --no-worker]
//   paddock egress [--config FILE] [--port N] [--egress-port N] [--port-file F] [--egress-port-file F]
//   paddock migrate [--config FILE] [--data-dir DIR] [--plugin-dir DIR]
//   paddock plugins [--plugin-dir DIR] [--config FILE]
//   paddock check-config [--config FILE] [--plugin-dir DIR]
//   paddock admin create-key --name NAME [--team T] [--role R] [--expires-in-days N] [--config FILE]
//   paddock admin create-team --team T [--name NAME] [--config FILE]
//   paddock admin new-key
//   paddock admin vault-keys --dir DIR
//   paddock rotate-key [--config FILE]
//   paddock rotate-ca [--config FILE]
//   paddock version
#include <linux/close_range.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "http/router.h"
#include "http/server.h"
#include "paddock/json.h"
#include "plugins/plugin_host.h"
#include "services/app.h"
#include "services/events/event_service.h"
#include "services/teams/api_key.h"
#include "services/teams/authenticator.h"
#include "services/teams/team_service.h"
#include "services/vault/certificate_authority.h"
#include "util/key_file.h"
#include "util/log.h"
#include "util/redactor.h"

namespace paddock {
namespace {

constexpr char kUsage[] =
    "usage: paddock <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve          run the REST API on port 3000 (and, unless --no-worker, the worker)\n"
    "  worker         run only the worker: claim runs from the store and drive them; serves\n"
    "                 /healthz, /readyz and /metrics on [worker] port (3001)\n"
    "  egress         run only the egress proxy for remote sandboxes (Kubernetes pods), with the\n"
    "                 credential vault: [egress] listen:port; /healthz, /readyz and /metrics on\n"
    "                 [egress] health_port (3002)\n"
    "  migrate        apply the store's pending schema migrations and exit\n"
    "  plugins        list the loadable plugins and their config schemas as JSON\n"
    "  check-config   validate the config and every configured plugin's section, then exit\n"
    "  admin create-key --name NAME [--team T] [--role R] [--expires-in-days N]\n"
    "                 make an API key in the store (also beside a running server) and print it\n"
    "                 once; role: viewer, member, admin (default) or operator; team: default\n"
    "  admin create-team --team T [--name NAME]\n"
    "  admin new-key  print a new random key (for $PADDOCK_ADMIN_KEY or [auth] admin_key_file)\n"
    "  admin vault-keys --dir DIR\n"
    "                 make the vault's CA, its placeholder key, the egress pass key and the browser\n"
    "                 session key in DIR: what a cluster's processes share (Secret paddock-vault)\n"
    "  rotate-key     team secrets: a new current key (secrets.store with a key file), then every\n"
    "                 value re-encrypted under the current key; safe beside running servers\n"
    "  rotate-ca      the credential vault: a new egress CA in place of the old; running servers\n"
    "                 follow within seconds, and sandboxes then trust the new CA only\n"
    "  version        print the version\n"
    "\n"
    "options:\n"
    "  --config FILE      TOML config (default: the embedded config/paddock.toml)\n"
    "  --listen ADDR      override [server] listen\n"
    "  --port N           override [server] port (worker: [worker] port; 0: any free port)\n"
    "  --data-dir DIR     override [server] data_dir\n"
    "  --plugin-dir DIR   override [server] plugin_dir\n"
    "  --port-file FILE   serve, worker, egress: write the bound (health) port to FILE once listening\n"
    "  --egress-port N    egress: override [egress] port (0: any free port)\n"
    "  --egress-port-file FILE  egress: write the port it serves sandboxes on to FILE\n"
    "  --no-worker        serve: run the API only, no runs in this process\n";

struct Args {
  std::string command;
  std::map<std::string, std::string> options;
  bool no_worker = false;
  std::string subcommand;  // admin's
};

int Fail(const std::string& message, int code = 2) {
  std::fprintf(stderr, "paddock: %s\n", message.c_str());
  return code;
}

Result<Args> ParseArgs(int argc, char** argv) {
  Args a;
  if (argc < 2) return Status::InvalidArgument("no command given\n\n" + std::string(kUsage));
  a.command = argv[1];
  int first = 2;
  if (a.command == "admin" && argc > 2 && argv[2][0] != '-') a.subcommand = argv[first++];
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--no-worker") {
      a.no_worker = true;
      continue;
    }
    static const char* kWithValue[] = {
        "--config", "--listen", "--port", "--data-dir",        "--plugin-dir",  "--port-file",
        "--name",   "--team",   "--role", "--expires-in-days", "--egress-port", "--egress-port-file",
        "--dir"};
    bool known = false;
    for (const char* k : kWithValue) known = known || arg == k;
    if (!known) return Status::InvalidArgument("unknown option '" + arg + "'\n\n" + kUsage);
    if (i + 1 >= argc) return Status::InvalidArgument("option " + arg + " needs a value");
    a.options[arg.substr(2)] = argv[++i];
  }
  return a;
}

enum class ProcessRole { kServe, kWorker, kEgress };

Result<Config> LoadConfig(const Args& args, bool worker_role = false, bool egress_role = false) {
  Result<Config> config = args.options.count("config")
                              ? LoadConfigFile(args.options.at("config"))
                              : ParseConfig(EmbeddedConfigText(), kEmbeddedConfigName);
  if (!config.ok()) return config;
  ServerSettings& s = config->server;
  if (auto it = args.options.find("listen"); it != args.options.end()) s.listen = it->second;
  if (auto it = args.options.find("port"); it != args.options.end()) {
    char* end = nullptr;
    long port = std::strtol(it->second.c_str(), &end, 10);
    if (*end != '\0' || end == it->second.c_str() || port < 0 || port > 65535) {
      return Status::InvalidArgument("--port must be 0..65535, not '" + it->second + "'");
    }
    (egress_role   ? config->egress.health_port
     : worker_role ? config->worker.port
                   : s.port) = static_cast<int>(port);
  }
  if (auto it = args.options.find("data-dir"); it != args.options.end()) s.data_dir = it->second;
  if (auto it = args.options.find("plugin-dir"); it != args.options.end()) s.plugin_dir = it->second;
  if (args.no_worker) config->worker.enabled = false;
  if (worker_role) {
    if (args.no_worker) return Status::InvalidArgument("--no-worker makes no sense for `paddock worker`");
    config->worker.enabled = true;
  }
  if (egress_role) {
    config->worker.enabled = false;
    config->egress_role = true;
    if (auto it = args.options.find("egress-port"); it != args.options.end()) {
      char* end = nullptr;
      long port = std::strtol(it->second.c_str(), &end, 10);
      if (*end != '\0' || end == it->second.c_str() || port < 0 || port > 65535)
        return Status::InvalidArgument("--egress-port must be 0..65535, not '" + it->second + "'");
      config->egress.port = static_cast<int>(port);
    }
  }
  return config;
}

// Every connection is a descriptor: the soft RLIMIT_NOFILE goes up to the hard limit. Children
// get the original soft limit back (process::Spawn reads PADDOCK_CHILD_NOFILE): programs that
// use select() or size tables by the limit expect the usual one. Called before any thread starts
// (setenv).
void RaiseOpenFilesLimit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t before = rl.rlim_cur;
  if (!std::getenv("PADDOCK_CHILD_NOFILE")) setenv("PADDOCK_CHILD_NOFILE", std::to_string(before).c_str(), 1);
  if (rl.rlim_cur == rl.rlim_max) {
    LogInfo("open files: limit " + std::to_string(rl.rlim_cur) + " (soft = hard)");
    return;
  }
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    LogWarn("open files: cannot raise the soft limit " + std::to_string(before) + " to " +
            std::to_string(rl.rlim_max) + ": " + strerror(errno));
    return;
  }
  LogInfo("open files: soft limit raised from " + std::to_string(before) + " to " +
          std::to_string(rl.rlim_max) + " (children get " + std::to_string(before) + ")");
}

// `serve` (the API, and the worker unless disabled) and `worker` (the worker, and only health and
// metrics over HTTP).
int Serve(const Args& args, ProcessRole role) {
  const bool worker_role = role == ProcessRole::kWorker;
  const bool egress_role = role == ProcessRole::kEgress;
  Result<Config> config = LoadConfig(args, worker_role, egress_role);
  if (!config.ok()) return Fail(config.status().message());
  auto redactor = std::make_shared<Redactor>();
  InitLogging(redactor, config->server.log_level);
  RaiseOpenFilesLimit();

  // Block the termination signals in every thread; the main thread waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const std::string plugin_dir = ResolvePluginDir(config->server.plugin_dir);
  LogInfo("config " + config->source + "; data " + config->server.data_dir + "; plugins " + plugin_dir);
  Result<std::unique_ptr<App>> app = App::Create(*config, plugin_dir, redactor);
  if (!app.ok()) return Fail(app.status().message());
  if (Status s = (*app)->Start(); !s.ok()) return Fail(s.message());
  if (role == ProcessRole::kServe) {
    Status s = EnsureBootstrapKey((*app)->store(), config->auth, config->server.data_dir);
    if (!s.ok()) {
      (*app)->Stop();
      return Fail("the first operator key: " + s.message());
    }
  }

  HttpServer server(**app, role == ProcessRole::kServe ? ApiRouter() : WorkerRouter(), config->server,
                    egress_role   ? config->egress.health_port
                    : worker_role ? config->worker.port
                                  : config->server.port);
  if (Status s = server.Start(); !s.ok()) {
    (*app)->Stop();
    return Fail(s.message());
  }
  LogInfo(std::string(egress_role   ? "egress "
                      : worker_role ? "worker "
                                    : "") +
          "listening on " + config->server.listen + ":" + std::to_string(server.port()) +
          (egress_role              ? " (health and metrics)"
           : config->worker.enabled ? " with " + std::to_string(config->worker.threads) + " worker threads"
                                    : " (no worker)"));
  auto write_port = [&](const char* option, int port) {
    auto it = args.options.find(option);
    if (it == args.options.end()) return;
    std::string tmp = it->second + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), it->second.c_str());
  };
  // The egress port first: a caller waiting for the port file finds both.
  if (egress_role) write_port("egress-port-file", (*app)->egress_port());
  write_port("port-file", server.port());

  int sig = 0;
  sigwait(&signals, &sig);
  LogInfo(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + "; shutting down");
  server.Stop();  // requests in flight finish; event streams end with a comment
  (*app)->Stop();
  LogInfo("stopped");
  return 0;
}

// Loads only the store, applies its migrations, and exits: 0 when the schema is current, 1 with
// the failed migration's name and the database's error otherwise.
int Migrate(const Args& args) {
  Result<Config> config = LoadConfig(args);
  if (!config.ok()) return Fail(config.status().message());
  auto redactor = std::make_shared<Redactor>();
  InitLogging(redactor, config->server.log_level);
  const std::string plugin_dir = ResolvePluginDir(config->server.plugin_dir);
  for (const PluginChoice& choice : config->plugins) {
    if (choice.kind != "store") continue;
    Result<PluginObjects> p = CreatePlugin(plugin_dir, choice, config->server.data_dir);
    if (!p.ok()) return Fail(p.status().message());
    if (Status s = p->lifecycle->Start(); !s.ok())
      return Fail("starting store." + choice.name + ": " + s.message(), 1);
    Result<std::vector<std::string>> applied = p->store->Migrate();
    Result<std::vector<std::string>> all = p->store->AppliedMigrations();
    p->lifecycle->Stop();
    if (!applied.ok()) return Fail(applied.status().message(), 1);
    if (!all.ok()) return Fail(all.status().message(), 1);
    for (const std::string& m : *applied) std::printf("applied %s\n", m.c_str());
    std::printf("schema is current: %zu migration(s) applied, %zu just now\n", all->size(), applied->size());
    return 0;
  }
  return Fail("the config names no [store]");
}

// The configured store, started beside a running server (sqlite without its one-process
// lock), with a current schema; stopped when it goes.
struct StoreBeside {
  PluginObjects objects;
  StoreBeside(PluginObjects o) : objects(std::move(o)) {}
  StoreBeside(StoreBeside&& o) noexcept : objects(std::move(o.objects)) { o.objects.lifecycle = nullptr; }
  StoreBeside(const StoreBeside&) = delete;
  ~StoreBeside() {
    if (objects.lifecycle) objects.lifecycle->Stop();
  }
};

Result<StoreBeside> OpenStoreBeside(const Config& config) {
  for (PluginChoice choice : config.plugins) {
    if (choice.kind != "store") continue;
    if (choice.name == "sqlite") {
      RawValue no;
      no.type = RawValue::Type::kBool;
      no.b = false;
      choice.config.values["exclusive"] = no;
    }
    PADDOCK_ASSIGN_OR_RETURN(PluginObjects p, CreatePlugin(ResolvePluginDir(config.server.plugin_dir), choice,
                                                           config.server.data_dir));
    if (Status s = p.lifecycle->Start(); !s.ok()) return s.Annotate("starting store." + choice.name);
    StoreBeside out(std::move(p));
    if (Result<std::vector<std::string>> pending = out.objects.store->PendingMigrations();
        !pending.ok() || !pending->empty())
      return Status::FailedPrecondition("the store's schema is not current: run `paddock migrate` first");
    return out;
  }
  return Status::InvalidArgument("the config names no [store]");
}

// `paddock admin`: teams and keys written straight into the configured store, so that an
// install whose keys are all lost can be entered again (the sqlite store is opened beside a
// running server, without its one-process lock).
int Admin(const Args& args) {
  auto opt = [&](const char* name, std::string fallback = "") {
    auto it = args.options.find(name);
    return it == args.options.end() ? fallback : it->second;
  };
  if (args.subcommand == "new-key") {
    std::printf("%s\n", GenerateKey().key.c_str());
    return 0;
  }
  if (args.subcommand == "vault-keys") {
    // What the processes of a cluster share, made once: the vault's CA and placeholder key, the
    // egress pass key and the browser session key, for one Secret (deploy/base/egress.yaml).
    const std::string dir = opt("dir");
    if (dir.empty()) return Fail("admin vault-keys: give --dir DIR (made if missing)");
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return Fail("cannot make " + dir + ": " + strerror(errno), 1);
    Result<std::unique_ptr<CertificateAuthority>> ca =
        CertificateAuthority::LoadOrCreate(dir, "Paddock egress CA");
    if (!ca.ok()) return Fail(ca.status().message(), 1);
    for (const auto& [file, what] :
         {std::pair<const char*, const char*>{"placeholder.key", "the placeholder key"},
          {"egress-pass.key", "the egress pass key"},
          {"session.key", "the browser session key"}}) {
      Result<std::string> key = LoadOrCreateKeyFile(dir + "/" + file, what);
      if (!key.ok()) return Fail(key.status().message(), 1);
    }
    std::printf(
        "%s: ca.key ca.crt placeholder.key egress-pass.key session.key (CA sha256 %s)\n"
        "kubectl -n paddock create secret generic paddock-vault --from-file=%s\n",
        dir.c_str(), (*ca)->fingerprint().c_str(), dir.c_str());
    return 0;
  }
  if (args.subcommand != "create-key" && args.subcommand != "create-team")
    return Fail("admin: give create-key, create-team, new-key or vault-keys\n\n" + std::string(kUsage));
  Result<Config> config = LoadConfig(args);
  if (!config.ok()) return Fail(config.status().message());
  auto redactor = std::make_shared<Redactor>();
  InitLogging(redactor, "warn");
  {
    Result<StoreBeside> opened = OpenStoreBeside(*config);
    if (!opened.ok()) return Fail(opened.status().message(), 1);
    StoreBeside& p = *opened;
    TeamService teams(*p.objects.store);
    Principal root{"", "admin", kDefaultTeam, Role::kOperator};
    if (args.subcommand == "create-team") {
      Result<Team> t = teams.CreateTeam(opt("team"), opt("name"));
      if (!t.ok()) return Fail(t.status().message(), 1);
      std::printf("team %s created\n", t->id.c_str());
      return 0;
    }
    NewKeyRequest req;
    req.name = opt("name");
    req.team_id = opt("team", kDefaultTeam);
    std::optional<Role> role = ParseRole(opt("role", "admin"));
    if (!role) return Fail("--role must be viewer, member, admin or operator");
    req.role = *role;
    if (std::string days = opt("expires-in-days"); !days.empty()) {
      char* end = nullptr;
      long n = std::strtol(days.c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 3660) return Fail("--expires-in-days must be 1..3660");
      req.expires_at = NowMs() + static_cast<std::int64_t>(n) * 86400000;
    }
    Result<CreatedKey> made = teams.CreateKey(root, req);
    if (!made.ok()) return Fail(made.status().message(), 1);
    std::fprintf(stderr, "key %s (%s, team %s, role %s); it is shown only now:\n", made->record.id.c_str(),
                 made->record.prefix.c_str(), made->record.team_id.c_str(),
                 std::string(ToString(made->record.role)).c_str());
    std::printf("%s\n", made->key.c_str());
    return 0;
  }
}

// `paddock rotate-key`: a new current key for the injector that keeps team secrets (when it
// keeps its keys in a file), then every value re-encrypted under the current key. Safe beside
// running servers; repeat it after a failure.
int RotateKey(const Args& args) {
  Result<Config> config = LoadConfig(args);
  if (!config.ok()) return Fail(config.status().message());
  auto redactor = std::make_shared<Redactor>();
  InitLogging(redactor, "warn");
  Result<StoreBeside> store = OpenStoreBeside(*config);
  if (!store.ok()) return Fail(store.status().message(), 1);
  for (const PluginChoice& choice : config->plugins) {
    if (choice.kind != "secrets") continue;
    Result<PluginObjects> p =
        CreatePlugin(ResolvePluginDir(config->server.plugin_dir), choice, config->server.data_dir);
    if (!p.ok()) return Fail(p.status().message());
    TeamSecrets* keeper = p->secrets->team_secrets();
    if (!keeper) continue;
    p->secrets->UseStore(*store->objects.store);
    if (Status s = p->lifecycle->Start(); !s.ok())
      return Fail("starting secrets." + choice.name + ": " + s.message(), 1);
    Result<std::int64_t> resealed = keeper->Rotate();
    p->lifecycle->Stop();
    if (!resealed.ok()) return Fail("rotating: " + resealed.status().message(), 1);
    std::printf("secrets.%s: %lld value(s) re-encrypted under the current key\n", choice.name.c_str(),
                static_cast<long long>(*resealed));
    return 0;
  }
  return Fail("no configured [[secrets]] plugin keeps team secrets (type = \"store\")");
}

// `paddock rotate-ca`: a new egress CA in [vault] dir in place of the old (key and certificate
// renamed over the old files). Running servers of this install load it within a second or two
// and rewrite every sandbox's trust files; clients that read their trust before must start
// again. For a CA key that may have leaked, and on a schedule.
int RotateCa(const Args& args) {
  Result<Config> config = LoadConfig(args);
  if (!config.ok()) return Fail(config.status().message());
  if (!config->vault.enabled)
    return Fail("the vault is off ([vault] enabled = false): there is no CA to rotate");
  const std::string dir = config->vault.dir.empty() ? config->server.data_dir + "/vault" : config->vault.dir;
  Result<std::unique_ptr<CertificateAuthority>> ca =
      CertificateAuthority::LoadOrCreate(dir, "Paddock egress CA");
  if (!ca.ok()) return Fail(ca.status().message(), 1);
  const std::string old = (*ca)->fingerprint();
  if (Status s = (*ca)->Rotate(); !s.ok()) return Fail("rotating the CA in " + dir + ": " + s.message(), 1);
  std::printf("vault CA in %s rotated: sha256 %s -> %s\n", dir.c_str(), old.c_str(),
              (*ca)->fingerprint().c_str());
  return 0;
}

int Plugins(const Args& args) {
  std::string dir;
  if (args.options.count("plugin-dir")) {
    dir = args.options.at("plugin-dir");
  } else if (args.options.count("config")) {
    Result<Config> config = LoadConfig(args);
    if (!config.ok()) return Fail(config.status().message());
    dir = config->server.plugin_dir;
  }
  dir = ResolvePluginDir(dir);
  Discovery d = DiscoverPlugins(dir);
  std::string out = "{\n  \"plugin_dir\": " + JsonQuote(dir) + ",\n  \"plugins\": [";
  for (size_t i = 0; i < d.loadable.size(); ++i) {
    const PluginSummary& p = d.loadable[i];
    out += std::string(i ? "," : "") + "\n    {\"id\": " + JsonQuote(p.kind + "." + p.name) +
           ", \"kind\": " + JsonQuote(p.kind) + ", \"name\": " + JsonQuote(p.name) +
           ", \"version\": " + JsonQuote(p.version) + ", \"description\": " + JsonQuote(p.description) +
           ", \"file\": " + JsonQuote(p.path) + ",\n     \"config_schema\": " + p.keys_json + "}";
  }
  out += "\n  ],\n  \"refused\": [";
  for (size_t i = 0; i < d.refused.size(); ++i)
    out += std::string(i ? ", " : "") + "\n    " + JsonQuote(d.refused[i]);
  out += "\n  ]\n}\n";
  std::fputs(out.c_str(), stdout);
  return 0;
}

int CheckConfig(const Args& args) {
  Result<Config> config = LoadConfig(args);
  if (!config.ok()) return Fail(config.status().message());
  auto redactor = std::make_shared<Redactor>();
  InitLogging(redactor, "warn");
  Result<std::unique_ptr<App>> app =
      App::Create(*config, ResolvePluginDir(config->server.plugin_dir), redactor);
  if (!app.ok()) return Fail(app.status().message());
  std::printf("%s: ok\n", config->source.c_str());
  return 0;
}

}  // namespace
}  // namespace paddock

int main(int argc, char** argv) {
  using namespace paddock;
  // Descriptors the process was started with (whatever its parent left open) are as
  // close-on-exec as every descriptor it opens itself (docs/architecture.md).
  syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
  Result<Args> args = ParseArgs(argc, argv);
  if (!args.ok()) return Fail(args.status().message());
  try {
    if (args->command == "serve") return Serve(*args, ProcessRole::kServe);
    if (args->command == "worker") return Serve(*args, ProcessRole::kWorker);
    if (args->command == "egress") return Serve(*args, ProcessRole::kEgress);
    if (args->command == "migrate") return Migrate(*args);
    if (args->command == "plugins") return Plugins(*args);
    if (args->command == "check-config") return CheckConfig(*args);
    if (args->command == "admin") return Admin(*args);
    if (args->command == "rotate-key") return RotateKey(*args);
    if (args->command == "rotate-ca") return RotateCa(*args);
    if (args->command == "version") {
      std::printf("paddock 0.1.0 (plugin ABI %u.%u, SDK %s)\n", PADDOCK_PLUGIN_ABI_MAJOR,
                  PADDOCK_PLUGIN_ABI_MINOR, PADDOCK_SDK_HASH);
      return 0;
    }
    if (args->command == "help" || args->command == "--help" || args->command == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  } catch (const std::exception& e) {
    return Fail(std::string("fatal: ") + e.what(), 1);
  }
  return Fail("unknown command '" + args->command + "'\n\n" + kUsage);
}
