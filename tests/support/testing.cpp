#include "testing.h"

#include "runtime/runtime_client.h"

#include <gtest/gtest.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <fcntl.h>
#include <signal.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "config/config.h"
#include "paddock/json.h"
#include "paddock/process.h"
#include "plugins/plugin_host.h"

namespace paddock::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/paddock-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) std::abort();
  path_ = tmpl;
  fs::permissions(path_, fs::perms(0755));
}

namespace {

// With PADDOCK_CONTRACT_LOG set, every response a test receives is appended there, one JSON
// line each, for the contract check against docs/openapi.json (tests/contract/check.mjs).
void RecordResponse(const std::string& method, const std::string& path, int status,
                    const std::string& content_type, const std::string& body) {
  const char* log = std::getenv("PADDOCK_CONTRACT_LOG");
  if (!log || !*log) return;
  std::string line = "{\"method\":" + JsonQuote(method) + ",\"path\":" + JsonQuote(path) +
                     ",\"status\":" + std::to_string(status) +
                     ",\"content_type\":" + JsonQuote(content_type) + ",\"body\":" + JsonQuote(body) + "}\n";
  // One write on an O_APPEND descriptor: lines of tests running in parallel do not interleave.
  const int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    ADD_FAILURE() << "could not record a response in " << log;
  }
  close(fd);
}

// A /proc file of a process that may end while it is read (the read then fails with ESRCH):
// what could be read, never an exception.
std::string ReadProcFile(const fs::path& path) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

// Processes whose command line names something under `dir`, and their children: the jails of a
// server that was SIGKILLed mid-creation may outlive it; a test's directory takes them with it
// so that no test leaves processes or mounts behind.
void KillProcessesUnder(const std::string& dir) {
  std::vector<pid_t> found;
  std::map<pid_t, pid_t> parent;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    const std::string line = ReadProcFile(entry.path() / "cmdline");
    if (pid != getpid() && line.find(dir + "/") != std::string::npos) found.push_back(pid);
    const std::string text = ReadProcFile(entry.path() / "stat");
    if (auto close = text.rfind(')'); close != std::string::npos) {
      std::istringstream rest(text.substr(close + 2));
      std::string state;
      pid_t ppid = 0;
      if (rest >> state >> ppid) parent[pid] = ppid;
    }
  }
  for (const auto& [pid, ppid] : parent) {
    if (std::find(found.begin(), found.end(), ppid) != found.end()) kill(pid, SIGKILL);  // a jail's init
  }
  for (pid_t pid : found) kill(pid, SIGKILL);
  // And the workspace volumes such a server left mounted.
  std::ifstream mounts("/proc/mounts");
  for (std::string device, point, rest; mounts >> device >> point && std::getline(mounts, rest);) {
    if (point.rfind(dir + "/", 0) == 0) umount2(point.c_str(), MNT_DETACH);
  }
}

}  // namespace

TempDir::~TempDir() {
  KillProcessesUnder(path_);
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string PluginDir() { return PADDOCK_TEST_PLUGIN_DIR; }
std::string FixtureDir() { return PADDOCK_TEST_FIXTURE_DIR; }
std::string PaddockBinary() { return PADDOCK_TEST_BINARY; }
std::string SourceDir() { return PADDOCK_TEST_SOURCE_DIR; }
std::string TestToolsDir() { return PADDOCK_TEST_TOOLS_DIR; }

namespace {

Result<PluginObjects> LoadStarted(const std::string& kind, const std::string& name,
                                  const std::string& config_toml, const std::string& data_dir) {
  PluginChoice choice;
  choice.kind = kind;
  choice.name = name;
  PADDOCK_ASSIGN_OR_RETURN(choice.config, ParseSectionText(config_toml, kind + ".config"));
  PADDOCK_ASSIGN_OR_RETURN(PluginObjects p, CreatePlugin(PluginDir(), choice, data_dir));
  PADDOCK_RETURN_IF_ERROR(p.lifecycle->Start());
  return p;
}

// Wraps `inner` so that dropping the last copy calls Stop() first.
template <class T>
std::shared_ptr<T> StopOnRelease(std::shared_ptr<T> inner) {
  T* raw = inner.get();
  return std::shared_ptr<T>(raw, [inner](T* p) mutable {
    p->Stop();
    inner.reset();
  });
}

// argv and envp for execve: `args`, and this process's environment plus `extra_env`.
// A child of the test program with this process's environment plus `extra_env`, started by
// the SDK's spawn (paddock/process.h) like every other child.
process::ChildSpec Child(std::vector<std::string> argv, const std::vector<std::string>& extra_env) {
  process::ChildSpec spec;
  if (!argv.empty()) argv[0] = process::FindExecutable(argv[0]).value_or(argv[0]);
  spec.argv = std::move(argv);
  for (char** e = environ; *e; ++e) spec.env.emplace_back(*e);
  spec.env.insert(spec.env.end(), extra_env.begin(), extra_env.end());
  return spec;
}

}  // namespace

template <class T>
Result<std::shared_ptr<T>> Load(const std::string& kind, const std::string& name,
                                const std::string& config_toml, const std::string& data_dir,
                                std::shared_ptr<T> PluginObjects::*member) {
  PADDOCK_ASSIGN_OR_RETURN(PluginObjects p, LoadStarted(kind, name, config_toml, data_dir));
  return StopOnRelease(p.*member);
}

Result<std::shared_ptr<SessionStore>> LoadStore(const std::string& name, const std::string& config_toml,
                                                const std::string& data_dir) {
  PADDOCK_ASSIGN_OR_RETURN(auto store, Load("store", name, config_toml, data_dir, &PluginObjects::store));
  PADDOCK_RETURN_IF_ERROR(store->Migrate().status());
  return store;
}

Result<std::shared_ptr<SandboxProvider>> LoadSandbox(const std::string& name, const std::string& config_toml,
                                                     const std::string& data_dir) {
  return Load("sandbox", name, config_toml, data_dir, &PluginObjects::sandbox);
}

Result<std::shared_ptr<Harness>> LoadHarness(const std::string& name, const std::string& config_toml,
                                             const std::string& data_dir) {
  return Load("harness", name, config_toml, data_dir, &PluginObjects::harness);
}

Result<std::shared_ptr<SecretInjector>> LoadSecrets(const std::string& name, const std::string& config_toml,
                                                    const std::string& data_dir, SessionStore* store) {
  if (!store) return Load("secrets", name, config_toml, data_dir, &PluginObjects::secrets);
  PluginChoice choice;
  choice.kind = "secrets";
  choice.name = name;
  PADDOCK_ASSIGN_OR_RETURN(choice.config, ParseSectionText(config_toml, "secrets.config"));
  PADDOCK_ASSIGN_OR_RETURN(PluginObjects p, CreatePlugin(PluginDir(), choice, data_dir));
  p.secrets->UseStore(*store);
  PADDOCK_RETURN_IF_ERROR(p.lifecycle->Start());
  return StopOnRelease(p.secrets);
}

Result<ExecResult> Sh(const SandboxInfo& sandbox, const std::string& script, CapturingObserver& out,
                      std::chrono::milliseconds timeout) {
  ExecRequest r;
  r.argv = {"/bin/sh", "-c", script};
  r.timeout = timeout;
  return RuntimeClient(sandbox.runtime).Exec(r, out);
}

// ---- ServerProcess ------------------------------------------------------------------------

std::string TestAdminKey() { return PADDOCK_TEST_KEY; }

std::map<std::string, std::string> WithKey(std::map<std::string, std::string> headers) {
  bool has = false;
  for (auto it = headers.begin(); it != headers.end();) {
    const bool auth = strcasecmp(it->first.c_str(), "Authorization") == 0;
    if (auth || strcasecmp(it->first.c_str(), "x-api-key") == 0) has = true;
    it = auth && it->second.empty() ? headers.erase(it) : std::next(it);
  }
  if (!has) headers["Authorization"] = "Bearer " + TestAdminKey();
  return headers;
}

ServerProcess::ServerProcess(const std::string& extra_toml, std::vector<std::string> env)
    : ServerProcess([&] {
        ServerOptions o;
        o.extra_toml = extra_toml;
        o.env = std::move(env);
        return o;
      }()) {}

ServerProcess::ServerProcess(ServerOptions options)
    : binary_(std::move(options.binary)),
      env_(std::move(options.env)),
      args_(std::move(options.args)),
      inherit_fds_(std::move(options.inherit_fds)) {
  bool has_key = false;
  for (const std::string& e : env_) has_key = has_key || e.rfind("PADDOCK_ADMIN_KEY=", 0) == 0;
  if (!has_key) env_.push_back("PADDOCK_ADMIN_KEY=" + TestAdminKey());
  data_dir_ = dir_ / "data";
  config_path_ = dir_ / "paddock.toml";
  std::ofstream cfg(config_path_);
  cfg << "[server]\nlisten = \"127.0.0.1\"\nport = 0\ndata_dir = \"" << data_dir_ << "\"\n";
  if (!options.plugin_dir.empty()) cfg << "plugin_dir = \"" << options.plugin_dir << "\"\n";
  cfg << "log_level = \"" << options.log_level << "\"\n";
  cfg << options.server_toml << options.secrets_toml << options.store_toml << options.sandbox_toml
      << options.harness_toml << options.extra_toml;
}

ServerProcess::~ServerProcess() { Stop(); }

std::string ServerProcess::log() const {
  std::ifstream in(dir_ / "server.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status ServerProcess::Start() {
  const std::string port_file = dir_ / "port";
  unlink(port_file.c_str());
  const std::string log_file = dir_ / "server.log";
  std::vector<std::string> argv = {binary_};
  argv.insert(argv.end(), args_.begin(), args_.end());
  const std::string port = std::to_string(port_);
  for (const char* a :
       {"--config", config_path_.c_str(), "--port-file", port_file.c_str(), "--port", port.c_str()})
    argv.emplace_back(a);
  process::ChildSpec spec = Child(std::move(argv), env_);
  int log_fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Status::Internal("cannot open " + log_file);
  spec.fds = {{log_fd, 1}, {log_fd, 2}};
  spec.fds.insert(spec.fds.end(), inherit_fds_.begin(), inherit_fds_.end());
  spec.new_process_group = false;
  Result<pid_t> started = process::Spawn(spec);
  close(log_fd);
  if (!started.ok()) return started.status();
  pid_ = *started;
  for (int i = 0; i < 4000; ++i) {  // every 5 ms for 20 s
    std::ifstream in(port_file);
    if (in >> port_) return Status::Ok();
    int wstatus;
    if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Internal("server exited during start-up:\n" + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return Status::DeadlineExceeded("server did not start in 20s:\n" + log());
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int wstatus = 0;
  waitpid(pid_, &wstatus, 0);
  pid_ = -1;
  return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

HttpResponse ServerProcess::Request(const std::string& method, const std::string& path,
                                    const std::string& body, const std::string& content_type,
                                    const std::map<std::string, std::string>& headers) const {
  HttpResponse out;
  try {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port_));
    session.setTimeout(Poco::Timespan(30, 0));
    Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [k, v] : WithKey(headers)) req.set(k, v);
    if (!body.empty() || method == "POST" || method == "PATCH") {
      if (!content_type.empty()) req.setContentType(content_type);
      req.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    session.sendRequest(req) << body;
    Poco::Net::HTTPResponse resp;
    std::istream& in = session.receiveResponse(resp);
    out.status = resp.getStatus();
    for (const auto& [k, v] : resp) out.headers[k] = v;
    Poco::StreamCopier::copyToString(in, out.body);
    RecordResponse(method, path, out.status, resp.getContentType(), out.body);
  } catch (const Poco::Exception& e) {
    out.status = -1;
    out.body = e.displayText();
  }
  return out;
}

std::map<std::string, std::pair<std::string, pid_t>> LiveSandboxes(const std::string& data_dir) {
  std::map<std::string, std::pair<std::string, pid_t>> out;
  std::error_code ec;
  for (const auto& dir : fs::directory_iterator(data_dir + "/sandbox-process/sandboxes", ec)) {
    std::ifstream state(dir.path() / "state");
    std::string line, session;
    pid_t pid = 0;
    while (std::getline(state, line)) {
      if (line.rfind("pid=", 0) == 0) pid = static_cast<pid_t>(std::stol(line.substr(4)));
      if (line.rfind("session=", 0) == 0) session = line.substr(8);
    }
    if (pid > 0 && kill(pid, 0) == 0) out[dir.path().filename().string()] = {session, pid};
  }
  return out;
}

std::pair<int, std::string> RunCommand(const std::vector<std::string>& argv_in,
                                       const std::vector<std::string>& env_in) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return {-1, "pipe failed"};
  process::ChildSpec spec = Child(argv_in, env_in);
  spec.fds = {{pipefd[1], 1}, {pipefd[1], 2}};
  spec.new_process_group = false;
  Result<pid_t> started = process::Spawn(spec);
  close(pipefd[1]);
  if (!started.ok()) {
    close(pipefd[0]);
    return {127, started.status().message()};
  }
  const pid_t pid = *started;
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) output.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  return {WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus), output};
}

// Reads the event stream until `done` says so or `timeout` passes.
std::vector<SseEvent> ReadStream(int port, const std::string& path,
                                 const std::map<std::string, std::string>& headers,
                                 const std::function<bool(const std::vector<SseEvent>&)>& done,
                                 std::chrono::seconds timeout) {
  std::vector<SseEvent> events;
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
  session.setTimeout(Poco::Timespan(20, 0));
  Poco::Net::HTTPRequest req("GET", path, Poco::Net::HTTPMessage::HTTP_1_1);
  for (const auto& [k, v] : WithKey(headers)) req.set(k, v);
  session.sendRequest(req);
  Poco::Net::HTTPResponse resp;
  std::istream& in = session.receiveResponse(resp);
  RecordResponse("GET", path, resp.getStatus(), resp.getContentType(), "");
  EXPECT_EQ(resp.getStatus(), 200);
  EXPECT_EQ(resp.getContentType(), "text/event-stream");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  SseEvent current;
  std::string line;
  while (std::chrono::steady_clock::now() < deadline && std::getline(in, line)) {
    if (line.empty()) {
      if (!current.type.empty()) events.push_back(current);
      current = SseEvent();
      if (done(events)) break;
      continue;
    }
    if (line.rfind("id: ", 0) == 0) current.id = std::stoll(line.substr(4));
    if (line.rfind("event: ", 0) == 0) current.type = line.substr(7);
    if (line.rfind("data: ", 0) == 0) current.data = line.substr(6);
  }
  session.abort();
  return events;
}

std::string TestPostgresDir() {
  const char* env = std::getenv("PADDOCK_TEST_PG_DIR");
  return env && *env ? env : PADDOCK_TEST_PG_DIR;
}

std::string TestPostgresConninfo() {
  std::ifstream in(TestPostgresDir() + "/conninfo");
  std::string line;
  std::getline(in, line);
  if (line.empty()) {
    ADD_FAILURE() << "no test PostgreSQL server at " << TestPostgresDir()
                  << "; run the tests through ctest (it starts one) or scripts/test-postgres.sh start";
  }
  return line;
}

std::string PostgresStoreToml(const std::string& schema) {
  return "[store]\ntype = \"postgres\"\n[store.config]\nurl = \"" + TestPostgresConninfo() +
         "\"\nschema = \"" + schema + "\"\nconnect_timeout = \"2s\"\n";
}

Result<std::shared_ptr<SessionStore>> StoreBeside(const ServerProcess& server,
                                                  const std::string& postgres_schema,
                                                  const std::string& plugin_data_dir) {
  if (!postgres_schema.empty()) {
    return LoadStore("postgres",
                     "url = \"" + TestPostgresConninfo() + "\"\nschema = \"" + postgres_schema + "\"\n",
                     plugin_data_dir);
  }
  return LoadStore("sqlite",
                   "path = \"" + server.data_dir() + "/store-sqlite/paddock.db\"\nexclusive = false\n",
                   plugin_data_dir);
}

std::string UniqueSchema() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  char buf[40];
  std::snprintf(buf, sizeof buf, "t_%d_%08x_%d", static_cast<int>(getpid()), rd(), counter++);
  return buf;
}

std::string JsonField(const std::string& json, const std::string& field) {
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var v = parser.parse(json);
    std::stringstream path(field);
    std::string part;
    while (std::getline(path, part, '.')) {
      if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
        auto arr = v.extract<Poco::JSON::Array::Ptr>();
        size_t i = std::stoul(part);
        if (i >= arr->size()) return "";
        v = arr->get(static_cast<unsigned>(i));
        continue;
      }
      auto obj = v.extract<Poco::JSON::Object::Ptr>();
      if (!obj->has(part)) return "";
      v = obj->get(part);
    }
    return v.isEmpty() ? "null" : v.toString();
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace paddock::testing
