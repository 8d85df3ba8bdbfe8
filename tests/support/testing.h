// Helpers shared by the tests and benchmarks: temp dirs, loading one plugin through the real
// loader, and a `paddock serve` child process with an HTTP client for it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "paddock/harness.h"
#include "paddock/sandbox_provider.h"
#include "paddock/secret_injector.h"
#include "paddock/session_store.h"

namespace paddock::testing {

// A fresh directory under $TMPDIR (world-searchable, so sandboxes can mount below it);
// removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string PluginDir();   // the built plugins
std::string FixtureDir();  // the broken fixture plugins
std::string PaddockBinary();
std::string SourceDir();
// Where the tests' servers install the agent CLIs ([tools] dir), shared by every test of the
// build so that each CLI is installed from npm once.
std::string TestToolsDir();

// Loads <kind>.<name> from `plugin_dir` through the real loader with `config_toml` as its
// config section, starts it, and returns it; the pointer stops the plugin and then unloads
// it when the last copy goes. LoadStore also applies the store's migrations.
Result<std::shared_ptr<SessionStore>> LoadStore(const std::string& name, const std::string& config_toml,
                                                const std::string& data_dir);
Result<std::shared_ptr<SandboxProvider>> LoadSandbox(const std::string& name, const std::string& config_toml,
                                                     const std::string& data_dir);
Result<std::shared_ptr<Harness>> LoadHarness(const std::string& name, const std::string& config_toml,
                                             const std::string& data_dir);
Result<std::shared_ptr<SecretInjector>> LoadSecrets(const std::string& name, const std::string& config_toml,
                                                    const std::string& data_dir,
                                                    SessionStore* store = nullptr);

// Collects an exec's output.
class CapturingObserver : public ExecObserver {
 public:
  void OnOutput(ExecStream stream, std::string_view chunk) noexcept override {
    (stream == ExecStream::kStdout ? out : err).append(chunk);
  }
  std::string out;
  std::string err;
};

// Runs `sh -c script` in the sandbox and returns stdout (stderr appended after "\n--stderr--\n"
// when non-empty), failing the calling test on an exec error.
// Runs a shell script in a sandbox through its runtime.
Result<ExecResult> Sh(const SandboxInfo& sandbox, const std::string& script, CapturingObserver& out,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The operator key every ServerProcess starts with ($PADDOCK_ADMIN_KEY), and that Request and
// ReadStream send unless the headers carry a key of their own; {"Authorization", ""} sends none.
#define PADDOCK_TEST_KEY "pdk_test-operator-key-0123456789abcdefghijklmnop"
// The header line that carries it, for raw requests.
#define PADDOCK_TEST_AUTH "Authorization: Bearer " PADDOCK_TEST_KEY "\r\n"
std::string TestAdminKey();
// `headers` with the test key added as above.
std::map<std::string, std::string> WithKey(std::map<std::string, std::string> headers);

// A `paddock serve` child process on a free port with its own data directory.
struct HttpResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
};

// How a ServerProcess runs: the command line after the binary (the role and its flags), the
// [store] section, TOML appended to the config, and extra environment entries ("NAME=value").
struct ServerOptions {
  std::vector<std::string> args = {"serve"};
  std::string store_toml = "[store]\ntype = \"sqlite\"\n";
  std::string extra_toml;
  std::vector<std::string> env;
  // As the embedded config: the server's CONTAINER_ENV_ variables, then team secrets.
  std::string secrets_toml = "[[secrets]]\ntype = \"env\"\n[[secrets]]\ntype = \"store\"\n";
  std::string binary = PaddockBinary();
  std::string plugin_dir = PluginDir();  // empty: the binary's own default
  std::string harness_toml = "[[harness]]\ntype = \"shell\"\n";
  std::string sandbox_toml = "[sandbox]\ntype = \"process\"\n[sandbox.config]\ndestroy_on_stop = true\n";
  // Descriptors the server inherits besides stdio, as (descriptor here, number there): what a
  // careless parent process might leave open.
  std::vector<std::pair<int, int>> inherit_fds = {};
  std::string server_toml = "";  // more [server] keys, one per line
  std::string log_level = "debug";
};

class ServerProcess {
 public:
  // `extra_toml` is appended to a config naming the built plugins, port 0 and a temp data dir;
  // `env` entries ("NAME=value") are added to the child's environment.
  explicit ServerProcess(const std::string& extra_toml = "", std::vector<std::string> env = {});
  explicit ServerProcess(ServerOptions options);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the server and waits until it listens (a restart listens on the port it had, as a
  // restarted service does). Returns the failure with the server's log.
  Status Start();
  // SIGTERM, then waits for the exit status.
  int Stop();
  // SIGKILL: the process dies mid-whatever, as in a crash.
  void Kill();

  int port() const { return port_; }
  // The environment entries of the next Start() (a restart with another environment).
  void SetEnv(std::vector<std::string> env) { env_ = std::move(env); }
  pid_t pid() const { return pid_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& config_path() const { return config_path_; }
  std::string log() const;

  HttpResponse Request(const std::string& method, const std::string& path, const std::string& body = "",
                       const std::string& content_type = "application/json",
                       const std::map<std::string, std::string>& headers = {}) const;

 private:
  TempDir dir_;
  std::string data_dir_;
  std::string config_path_;
  std::string binary_;
  std::vector<std::string> env_;
  std::vector<std::string> args_;
  std::vector<std::pair<int, int>> inherit_fds_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Live sandboxes (sandbox.process) of a server's data directory: sandbox id -> (session id,
// pid of the jail's init).
std::map<std::string, std::pair<std::string, pid_t>> LiveSandboxes(const std::string& data_dir);

// Runs a command, returns (exit code, combined stdout+stderr).
std::pair<int, std::string> RunCommand(const std::vector<std::string>& argv,
                                       const std::vector<std::string>& env = {});

// One server-sent event as a client sees it.
struct SseEvent {
  std::int64_t id = 0;
  std::string type;
  std::string data;
};

// Reads the event stream at `path` until `done` says so, `timeout` passes or the server ends it.
std::vector<SseEvent> ReadStream(int port, const std::string& path,
                                 const std::map<std::string, std::string>& headers,
                                 const std::function<bool(const std::vector<SseEvent>&)>& done,
                                 std::chrono::seconds timeout = std::chrono::seconds(30));

// The throwaway PostgreSQL server the test command started (scripts/test-postgres.sh): its
// directory ($PADDOCK_TEST_PG_DIR, else the build's test-postgres/) and libpq conninfo. A test
// that needs it fails (never skips) when it is not running.
std::string TestPostgresDir();
std::string TestPostgresConninfo();
// A schema name no other test uses ("t_<random>").
std::string UniqueSchema();

// A [store] section for the test PostgreSQL in `schema`.
std::string PostgresStoreToml(const std::string& schema);

class ServerProcess;
// The store a server uses, opened beside it: the test PostgreSQL's `postgres_schema`, or with
// an empty schema the server's SQLite file (opened without its one-process lock).
Result<std::shared_ptr<SessionStore>> StoreBeside(const ServerProcess& server,
                                                  const std::string& postgres_schema,
                                                  const std::string& plugin_data_dir);

// The value of `field` in JSON text as a string: a dotted path whose parts are object keys or
// array indices ("messages.1.content"); "" when absent (test convenience).
std::string JsonField(const std::string& json, const std::string& field);

}  // namespace paddock::testing
