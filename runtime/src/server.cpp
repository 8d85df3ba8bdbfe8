#include "server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "archive.h"
#include "children.h"
#include "wire.h"

namespace paddock::runtime {
namespace {

namespace fs = std::filesystem;
using Poco::JSON::Array;
using Poco::JSON::Object;
using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;
using Clock = std::chrono::steady_clock;

constexpr const char* kVersion = "0.1.0";
constexpr std::int64_t kMaxJsonBody = 4 << 20;
constexpr size_t kMaxLogBytes = 1 << 20;  // kept per background process

// A client error: the message goes back with the status.
struct HttpError {
  HTTPResponse::HTTPStatus status;
  std::string message;
};

[[noreturn]] void Fail(HTTPResponse::HTTPStatus status, std::string message) {
  throw HttpError{status, std::move(message)};
}
[[noreturn]] void BadRequest(std::string message) {
  Fail(HTTPResponse::HTTP_BAD_REQUEST, std::move(message));
}

using wire::ToJson;

void SendJson(HTTPServerResponse& resp, HTTPResponse::HTTPStatus status, const Object& body) {
  std::string text = ToJson(body);
  resp.setStatus(status);
  resp.setContentType("application/json");
  resp.setContentLength(static_cast<std::streamsize>(text.size()));
  resp.send() << text;
}

using wire::Base64;

std::string Unbase64(const std::string& text) {
  std::optional<std::string> out = wire::Unbase64(text);
  if (!out) BadRequest("stdin_base64 is not valid base64");
  return *out;
}

Object::Ptr ReadJson(HTTPServerRequest& req) {
  if (req.getContentLength64() > kMaxJsonBody) {
    Fail(HTTPResponse::HTTP_REQUESTENTITYTOOLARGE, "request body is larger than 4 MiB");
  }
  std::string body;
  char buf[8192];
  while (req.stream().read(buf, sizeof buf) || req.stream().gcount() > 0) {
    body.append(buf, static_cast<size_t>(req.stream().gcount()));
    if (static_cast<std::int64_t>(body.size()) > kMaxJsonBody) {
      Fail(HTTPResponse::HTTP_REQUESTENTITYTOOLARGE, "request body is larger than 4 MiB");
    }
  }
  if (body.empty()) BadRequest("request body must be a JSON object");
  try {
    Poco::JSON::Parser parser;
    auto v = parser.parse(body);
    if (v.type() != typeid(Object::Ptr)) BadRequest("request body must be a JSON object");
    return v.extract<Object::Ptr>();
  } catch (const Poco::Exception& e) {
    BadRequest("request body is not valid JSON: " + e.message());
  }
}

std::string GetString(const Object& o, const std::string& key, const std::string& fallback = "") {
  if (!o.has(key) || o.isNull(key)) return fallback;
  auto v = o.get(key);
  if (!v.isString()) BadRequest("'" + key + "' must be a string");
  return v.convert<std::string>();
}

std::int64_t GetInt(const Object& o, const std::string& key, std::int64_t fallback) {
  if (!o.has(key) || o.isNull(key)) return fallback;
  auto v = o.get(key);
  if (!v.isInteger()) BadRequest("'" + key + "' must be an integer");
  return v.convert<std::int64_t>();
}

bool ValidEnvName(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

std::map<std::string, std::string> GetEnv(const Object& o, const std::string& key) {
  std::map<std::string, std::string> env;
  if (!o.has(key) || o.isNull(key)) return env;
  auto obj = o.getObject(key);
  if (!obj) BadRequest("'" + key + "' must be an object of strings");
  for (const auto& [k, v] : *obj) {
    if (!ValidEnvName(k)) BadRequest("invalid environment variable name '" + k + "'");
    if (!v.isString()) BadRequest("environment variable '" + k + "' must be a string");
    std::string value = v.convert<std::string>();
    if (value.find('\0') != std::string::npos) BadRequest("environment variable '" + k + "' contains NUL");
    env[k] = value;
  }
  return env;
}

// argv from "argv" (array of strings) or "shell" (a /bin/sh -c script).
std::vector<std::string> GetCommand(const Object& o) {
  std::vector<std::string> argv;
  if (o.has("argv") && !o.isNull("argv")) {
    auto arr = o.getArray("argv");
    if (!arr) BadRequest("'argv' must be an array of strings");
    for (const auto& v : *arr) {
      if (!v.isString()) BadRequest("'argv' must be an array of strings");
      argv.push_back(v.convert<std::string>());
    }
    if (o.has("shell")) BadRequest("give 'argv' or 'shell', not both");
  } else if (o.has("shell")) {
    argv = {"/bin/sh", "-c", GetString(o, "shell")};
  }
  if (argv.empty() || argv[0].empty()) BadRequest("a command needs a non-empty 'argv' or a 'shell' script");
  for (const auto& a : argv) {
    if (a.find('\0') != std::string::npos) BadRequest("'argv' contains a NUL byte");
  }
  return argv;
}

std::string Query(const HTTPServerRequest& req, const std::string& key) {
  Poco::URI uri(req.getURI());
  for (const auto& [k, v] : uri.getQueryParameters()) {
    if (k == key) return v;
  }
  return "";
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) Fail(HTTPResponse::HTTP_SERVICE_UNAVAILABLE, strerror(errno));
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) close(r);
    if (w >= 0) close(w);
  }
  void CloseWrite() {
    if (w >= 0) close(w);
    w = -1;
  }
};

struct BackgroundProcess {
  std::string id;
  pid_t pid = 0;
  std::vector<std::string> argv;
  std::int64_t started_at = 0;
  std::mutex mu;
  std::string log;            // the last kMaxLogBytes of combined output
  std::uint64_t dropped = 0;  // bytes before log[0]
  bool output_done = false;
};

class Runtime {
 public:
  explicit Runtime(const Options& options) : options_(options), roots_(options.roots) {}

  void Handle(HTTPServerRequest& req, HTTPServerResponse& resp) {
    try {
      // Through the Kubernetes API server's pod proxy the token comes as X-Paddock-Runtime-Token:
      // the API server authenticates the caller with Authorization and strips it.
      std::string auth = req.get("Authorization", "");
      if (!req.has("Authorization") && req.has("X-Paddock-Runtime-Token")) {
        auth = "Bearer " + req.get("X-Paddock-Runtime-Token");
      }
      std::string token;
      {
        std::lock_guard lock(mu_);
        token = options_.token;
      }
      // Answers go out in small pieces (a stream's lines, the chunked ending): over TCP, Nagle
      // would hold each behind the client's delayed ACK.
      if (auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&req);
          impl && options_.listen.rfind("tcp:", 0) == 0) {
        impl->socket().setNoDelay(true);
      }
      if (!ConstantTimeEquals(auth, "Bearer " + token)) {
        resp.set("WWW-Authenticate", "Bearer");
        Fail(HTTPResponse::HTTP_UNAUTHORIZED, "missing or wrong bearer token");
      }
      Route(req, resp);
    } catch (const HttpError& e) {
      if (resp.sent()) return;
      Object o;
      o.set("error", e.message);
      SendJson(resp, e.status, o);
    } catch (const std::exception& e) {
      if (resp.sent()) return;
      Object o;
      o.set("error", std::string("internal error: ") + e.what());
      SendJson(resp, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, o);
    }
  }

 private:
  void Route(HTTPServerRequest& req, HTTPServerResponse& resp) {
    const std::string path = Poco::URI(req.getURI()).getPath();
    const std::string& m = req.getMethod();
    if (path == "/v1/health" && m == "GET") return Health(resp);
    if (path == "/v1/env" && m == "PUT") return PutEnv(req, resp);
    if (path == "/v1/claim" && m == "POST") return ClaimToken(req, resp);
    if (path == "/v1/exec" && m == "POST") return Exec(req, resp);
    if (path.rfind("/v1/exec/", 0) == 0 && path.size() > 14 && path.substr(path.size() - 5) == "/kill" &&
        m == "POST") {
      return KillExec(path.substr(9, path.size() - 14), resp);
    }
    if (path == "/v1/processes" && m == "POST") return StartProcess(req, resp);
    if (path == "/v1/processes" && m == "GET") return ListProcesses(resp);
    if (path.rfind("/v1/processes/", 0) == 0) {
      std::string rest = path.substr(14);
      auto slash = rest.find('/');
      std::string id = rest.substr(0, slash);
      std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
      if (action == "logs" && m == "GET") return ProcessLogs(id, req, resp);
      if (action == "signal" && m == "POST") return SignalProcess(id, req, resp);
      if (action.empty() && m == "GET") return GetProcess(id, resp);
    }
    if (path == "/v1/files") {
      if (m == "GET") return GetFile(req, resp);
      if (m == "PUT") return PutFile(req, resp);
      if (m == "DELETE") return RemoveFile(req, resp);
    }
    if (path == "/v1/files/stat" && m == "GET") return StatFile(req, resp);
    if (path == "/v1/files/list" && m == "GET") return ListFiles(req, resp);
    if (path == "/v1/archive" && m == "POST") return Archive(req, resp);
    if (path == "/v1/restore" && m == "POST") return Restore(req, resp);
    Fail(HTTPResponse::HTTP_NOT_FOUND, "no route for " + m + " " + path);
  }

  void Health(HTTPServerResponse& resp) {
    Object o;
    o.set("status", "ok");
    o.set("version", kVersion);
    o.set("pid", static_cast<int>(getpid()));
    o.set("uid", static_cast<int>(getuid()));
    {
      std::lock_guard lock(mu_);
      o.set("processes", static_cast<int>(processes_.size()));
      o.set("execs", static_cast<int>(execs_.size()));
    }
    SendJson(resp, HTTPResponse::HTTP_OK, o);
  }

  // Replaces a pool's bootstrap token with the sandbox's own, once.
  void ClaimToken(HTTPServerRequest& req, HTTPServerResponse& resp) {
    Object::Ptr body = ReadJson(req);
    if (!body->has("token") || !body->get("token").isString()) BadRequest("'token' must be a string");
    std::string token = body->getValue<std::string>("token");
    if (token.size() < 16) BadRequest("'token' must be at least 16 characters");
    {
      std::lock_guard lock(mu_);
      if (!claimable_) {
        Fail(HTTPResponse::HTTP_CONFLICT,
             "this runtime's token cannot be replaced (it was claimed already, or not started --claimable)");
      }
      claimable_ = false;
      options_.token = token;
    }
    Object o;
    o.set("claimed", true);
    SendJson(resp, HTTPResponse::HTTP_OK, o);
  }

  void PutEnv(HTTPServerRequest& req, HTTPServerResponse& resp) {
    Object::Ptr body = ReadJson(req);
    auto env = GetEnv(*body, "env");
    {
      std::lock_guard lock(mu_);
      session_env_ = env;
    }
    Object o;
    o.set("count", static_cast<int>(env.size()));
    SendJson(resp, HTTPResponse::HTTP_OK, o);
  }

  std::vector<std::string> Environment(const std::map<std::string, std::string>& request_env) {
    std::map<std::string, std::string> env = options_.base_env;
    {
      std::lock_guard lock(mu_);
      for (const auto& [k, v] : session_env_) env[k] = v;
    }
    for (const auto& [k, v] : request_env) env[k] = v;
    std::vector<std::string> out;
    for (const auto& [k, v] : env) out.push_back(k + "=" + v);
    return out;
  }

  std::string Cwd(const Object& body) {
    std::string cwd = GetString(body, "cwd", options_.default_cwd);
    if (cwd.empty()) cwd = options_.default_cwd;
    if (cwd[0] != '/') BadRequest("'cwd' must be an absolute path");
    std::error_code ec;
    if (!fs::is_directory(cwd, ec)) BadRequest("cwd '" + cwd + "' is not a directory");
    return cwd;
  }

  void Exec(HTTPServerRequest& req, HTTPServerResponse& resp) {
    Object::Ptr body = ReadJson(req);
    SpawnRequest spawn;
    spawn.argv = GetCommand(*body);
    spawn.env = Environment(GetEnv(*body, "env"));
    spawn.cwd = Cwd(*body);
    std::string input = GetString(*body, "stdin");
    if (body->has("stdin_base64")) input = Unbase64(GetString(*body, "stdin_base64"));
    std::int64_t timeout_ms = GetInt(*body, "timeout_ms", 0);
    if (timeout_ms < 0) BadRequest("'timeout_ms' must not be negative");
    std::string id = GetString(*body, "id");
    if (id.size() > 128) BadRequest("'id' is longer than 128 characters");

    Pipe out, err, in;
    spawn.stdout_fd = out.w;
    spawn.stderr_fd = err.w;
    spawn.stdin_fd = in.r;
    auto [pid, spawn_errno] = Children::Instance().Spawn(spawn);
    out.CloseWrite();
    err.CloseWrite();
    close(in.r);
    in.r = -1;

    resp.setStatus(HTTPResponse::HTTP_OK);
    resp.setContentType("application/x-ndjson");
    resp.setChunkedTransferEncoding(true);
    std::ostream& stream = resp.send();
    auto frame = [&](const Object& o) {
      stream << ToJson(o) << '\n';
      stream.flush();
      return stream.good();
    };
    if (pid == 0) {
      Object o;
      o.set("type", "stderr");
      o.set("data", Base64(spawn.argv[0] + ": " + strerror(spawn_errno) + "\n"));
      frame(o);
      Object exit;
      exit.set("type", "exit");
      exit.set("exit_code", spawn_errno == ENOENT ? 127 : 126);
      exit.set("signal", 0);
      exit.set("timed_out", false);
      exit.set("killed", false);
      frame(exit);
      return;
    }
    auto killed = std::make_shared<std::atomic<bool>>(false);
    if (!id.empty()) {
      std::lock_guard lock(mu_);
      execs_[id] = {pid, killed};
    }
    {
      Object started;
      started.set("type", "started");
      started.set("pid", static_cast<int>(pid));
      if (!id.empty()) started.set("id", id);
      frame(started);
    }
    // stdin is written from its own thread, so a command that writes before it reads cannot
    // deadlock against us.
    std::thread writer([fd = in.w, input]() {
      size_t off = 0;
      while (off < input.size()) {
        ssize_t n = write(fd, input.data() + off, input.size() - off);
        if (n <= 0 && errno != EINTR) break;
        if (n > 0) off += static_cast<size_t>(n);
      }
      close(fd);
    });
    in.w = -1;

    int client_fd = -1;
    if (auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&req)) {
      client_fd = impl->socket().impl()->sockfd();
    }
    // One wait per step on everything that can happen: output, the exit, the client leaving,
    // the timeout, the end of the drain or of the gathering window. No fixed slice: an exec
    // costs what its command costs.
    //
    // Output is gathered before it is framed: bytes of one stream wait up to kGatherWindow
    // for more (or until kGatherBytes are held), so a command that writes many short lines
    // costs a few frames, not one per write. Bytes of the other stream, the exit, the end of
    // a pipe and the end of the exec send what is held first, so the order between streams
    // is the order they were read in.
    constexpr auto kGatherWindow = std::chrono::milliseconds(5);
    constexpr size_t kGatherBytes = 64 * 1024;
    const int exit_fd = Children::Instance().ExitFd(pid);
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    bool timed_out = false;
    bool gone = false;  // the client went away
    std::optional<ExitStatus> status;
    Clock::time_point drain_until{};
    std::string held;
    int held_stream = -1;  // 0 stdout, 1 stderr
    Clock::time_point held_since{};
    char buf[64 * 1024];
    auto kill_group = [&] { Children::SignalGroup(pid, SIGKILL); };
    auto send_held = [&] {
      if (held.empty()) return;
      Object o;
      o.set("type", held_stream == 0 ? "stdout" : "stderr");
      o.set("data", Base64(held));
      held.clear();
      if (!frame(o)) {
        gone = true;
        kill_group();
      }
    };
    for (;;) {
      if (!status) status = Children::Instance().Poll(pid);
      // Output still held open by a background child of the command is drained for 200 ms
      // after the exit, not waited for.
      if (status && drain_until == Clock::time_point{})
        drain_until = Clock::now() + std::chrono::milliseconds(200);
      if (status && ((out.r < 0 && err.r < 0) || Clock::now() >= drain_until)) break;
      Clock::time_point wake = Clock::time_point::max();
      if (!timed_out && timeout_ms > 0) wake = deadline;
      if (status) wake = std::min(wake, drain_until);
      if (!held.empty()) wake = std::min(wake, held_since + kGatherWindow);
      int wait_ms = -1;
      if (wake != Clock::time_point::max()) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
        wait_ms = static_cast<int>(std::clamp<std::int64_t>(left, 0, 1 << 30));
      }
      pollfd fds[4] = {{out.r, POLLIN, 0},
                       {err.r, POLLIN, 0},
                       {client_fd, POLLRDHUP, 0},
                       {status || exit_fd < 0 ? -1 : exit_fd, POLLIN, 0}};
      // Without an exit descriptor (none could be made), the exit is looked at every 50 ms.
      if (exit_fd < 0 && !status && (wait_ms < 0 || wait_ms > 50)) wait_ms = 50;
      int n = poll(fds, 4, wait_ms);
      if (n < 0 && errno != EINTR) break;
      const auto now = Clock::now();
      if (!timed_out && timeout_ms > 0 && now >= deadline) {
        timed_out = true;
        kill_group();
      }
      if (fds[2].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
        gone = true;
        kill_group();
        break;
      }
      for (int i = 0; i < 2 && !gone; ++i) {
        int& fd = i == 0 ? out.r : err.r;
        if (fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) {
          if (held_stream == i) send_held();
          close(fd);
          fd = -1;
          continue;
        }
        if (held_stream != i) send_held();
        if (held.empty()) held_since = now;
        held_stream = i;
        held.append(buf, static_cast<size_t>(got));
        if (held.size() >= kGatherBytes) send_held();
      }
      if (!gone && !held.empty() && (now >= held_since + kGatherWindow || fds[3].revents)) send_held();
      if (gone) break;
    }
    if (!gone) send_held();
    if (!status) status = Children::Instance().Wait(pid, std::chrono::seconds(10));
    writer.join();
    Children::Instance().Forget(pid);
    if (!id.empty()) {
      std::lock_guard lock(mu_);
      execs_.erase(id);
    }
    if (gone) return;
    Object exit;
    exit.set("type", "exit");
    exit.set("exit_code", status ? status->exit_code : -1);
    exit.set("signal", status ? status->signal : 0);
    exit.set("timed_out", timed_out);
    exit.set("killed", killed->load());
    frame(exit);
  }

  void KillExec(const std::string& id, HTTPServerResponse& resp) {
    std::lock_guard lock(mu_);
    auto it = execs_.find(id);
    if (it == execs_.end()) Fail(HTTPResponse::HTTP_NOT_FOUND, "no running exec '" + id + "'");
    it->second.second->store(true);
    Children::SignalGroup(it->second.first, SIGKILL);
    Object o;
    o.set("killed", true);
    SendJson(resp, HTTPResponse::HTTP_OK, o);
  }

  Object Describe(BackgroundProcess& p) {
    Object o;
    o.set("id", p.id);
    o.set("pid", static_cast<int>(p.pid));
    Array argv;
    for (const auto& a : p.argv) argv.add(a);
    o.set("argv", argv);
    o.set("started_at", p.started_at);
    auto status = Children::Instance().Poll(p.pid);
    o.set("running", !status.has_value());
    if (status) {
      o.set("exit_code", status->exit_code);
    } else {
      o.set("exit_code", Poco::Dynamic::Var());
    }
    return o;
  }

  std::shared_ptr<BackgroundProcess> FindProcess(const std::string& id) {
    std::lock_guard lock(mu_);
    auto it = processes_.find(id);
    if (it == processes_.end()) Fail(HTTPResponse::HTTP_NOT_FOUND, "no process '" + id + "'");
    return it->second;
  }

  void StartProcess(HTTPServerRequest& req, HTTPServerResponse& resp) {
    Object::Ptr body = ReadJson(req);
    SpawnRequest spawn;
    spawn.argv = GetCommand(*body);
    spawn.env = Environment(GetEnv(*body, "env"));
    spawn.cwd = Cwd(*body);
    Pipe out;
    spawn.stdout_fd = out.w;
    spawn.stderr_fd = out.w;
    auto [pid, spawn_errno] = Children::Instance().Spawn(spawn);
    out.CloseWrite();
    if (pid == 0) BadRequest("cannot start " + spawn.argv[0] + ": " + strerror(spawn_errno));
    auto p = std::make_shared<BackgroundProcess>();
    p->id = "proc_" + std::to_string(++next_process_);
    p->pid = pid;
    p->argv = spawn.argv;
    p->started_at = NowMs();
    int fd = out.r;
    out.r = -1;
    std::thread([p, fd] {
      char buf[16 * 1024];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        if (n <= 0) continue;
        std::lock_guard lock(p->mu);
        p->log.append(buf, static_cast<size_t>(n));
        if (p->log.size() > kMaxLogBytes) {
          size_t drop = p->log.size() - kMaxLogBytes;
          p->log.erase(0, drop);
          p->dropped += drop;
        }
      }
      close(fd);
      std::lock_guard lock(p->mu);
      p->output_done = true;
    }).detach();
    {
      std::lock_guard lock(mu_);
      processes_[p->id] = p;
    }
    SendJson(resp, HTTPResponse::HTTP_CREATED, Describe(*p));
  }

  void ListProcesses(HTTPServerResponse& resp) {
    std::vector<std::shared_ptr<BackgroundProcess>> all;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, p] : processes_) all.push_back(p);
    }
    Array arr;
    for (const auto& p : all) arr.add(Describe(*p));
    Object o;
    o.set("processes", arr);
    SendJson(resp, HTTPResponse::HTTP_OK, o);
  }

  void GetProcess(const std::string& id, HTTPServerResponse& resp) {
    auto p = FindProcess(id);
    SendJson(resp, HTTPResponse::HTTP_OK, Describe(*p));
  }

  void ProcessLogs(const std::string& id, HTTPServerRequest& req, HTTPServerResponse& resp) {
    auto p = FindProcess(id);
    std::string offset_text = Query(req, "offset");
    std::uint64_t offset = 0;
    if (!offset_text.empty()) {
      try {
        size_t used = 0;
        offset = std::stoull(offset_text, &used);
        if (used != offset_text.size()) throw std::invalid_argument("offset");
      } catch (const std::exception&) {
        BadRequest("'offset' must be a non-negative integer");
      }
    }
    Object o = Describe(*p);
    std::lock_guard lock(p->mu);
    std::uint64_t start = std::max(offset, p->dropped);
    std::uint64_t end = p->dropped + p->log.size();
    std::string data = start < end ? p->log.substr(static_cast<size_t>(start - p->dropped)) : "";
    o.set("data", Base64(data));
    o.set("offset", start);
    o.set("next_offset", end);
    o.set("truncated", offset < p->dropped);
    o.set("output_done", p->output_done);
    SendJson(resp, HTTPResponse::HTTP_OK, o);
  }

  void SignalProcess(const std::string& id, HTTPServerRequest& req, HTTPServerResponse& resp) {
    auto p = FindProcess(id);
    Object::Ptr body = ReadJson(req);
    static const std::map<std::string, int> kSignals = {
        {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"HUP", SIGHUP},  {"STOP", SIGSTOP},
        {"CONT", SIGCONT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"QUIT", SIGQUIT}};
    std::string name = GetString(*body, "signal", "TERM");
    auto it = kSignals.find(name);
    if (it == kSignals.end())
      BadRequest("unknown signal '" + name + "' (TERM, KILL, INT, HUP, STOP, CONT, USR1, USR2, QUIT)");
    if (!Children::Instance().Poll(p->pid)) Children::SignalGroup(p->pid, it->second);
    SendJson(resp, HTTPResponse::HTTP_OK, Describe(*p));
  }

  std::string PathParam(HTTPServerRequest& req) {
    std::string raw = Query(req, "path");
    if (raw.empty()) BadRequest("query parameter 'path' is required");
    Confined c = roots_.Resolve(raw);
    if (!c.error.empty()) BadRequest(c.error);
    return c.path;
  }

  static Object StatObject(const std::string& path, const struct stat& st) {
    Object o;
    o.set("path", path);
    o.set("type", S_ISDIR(st.st_mode)   ? "directory"
                  : S_ISREG(st.st_mode) ? "file"
                  : S_ISLNK(st.st_mode) ? "symlink"
                                        : "other");
    o.set("size", static_cast<std::int64_t>(st.st_size));
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    o.set("mode", std::string(mode));
    o.set("mtime_ms", static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000);
    return o;
  }

  void GetFile(HTTPServerRequest& req, HTTPServerResponse& resp) {
    std::string path = PathParam(req);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) Fail(HTTPResponse::HTTP_NOT_FOUND, "no file '" + path + "'");
      BadRequest("cannot open '" + path + "': " + strerror(errno));
    }
    struct stat st {};
    fstat(fd, &st);
    if (!S_ISREG(st.st_mode)) {
      close(fd);
      BadRequest("'" + path + "' is not a regular file");
    }
    resp.setStatus(HTTPResponse::HTTP_OK);
    resp.setContentType("application/octet-stream");
    resp.setContentLength64(st.st_size);
    std::ostream& out = resp.send();
    char buf[64 * 1024];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) out.write(buf, n);
    close(fd);
  }

  void PutFile(HTTPServerRequest& req, HTTPServerResponse& resp) {
    std::string path = PathParam(req);
    if (req.getContentLength64() > options_.max_file_bytes) {
      Fail(HTTPResponse::HTTP_REQUESTENTITYTOOLARGE,
           "file is larger than the limit of " + std::to_string(options_.max_file_bytes) + " bytes");
    }
    mode_t mode = 0644;
    if (std::string m = Query(req, "mode"); !m.empty()) {
      char* end = nullptr;
      long v = std::strtol(m.c_str(), &end, 8);
      if (*end != '\0' || v < 0 || v > 07777) BadRequest("'mode' must be octal, like 0644");
      mode = static_cast<mode_t>(v);
    }
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    if (ec) BadRequest("cannot create the parent of '" + path + "': " + ec.message());
    if (fs::is_directory(path, ec)) BadRequest("'" + path + "' is a directory");
    // Written to a temporary name and renamed, so a reader never sees half a file.
    std::string tmp = path + ".paddock-tmp-" + std::to_string(getpid()) + "-" +
                      std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) BadRequest("cannot write '" + path + "': " + strerror(errno));
    std::int64_t total = 0;
    char buf[64 * 1024];
    std::string error;
    bool too_large = false;
    std::istream& in = req.stream();
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      total += in.gcount();
      if (total > options_.max_file_bytes) {
        too_large = true;
        error = "file is larger than the limit";
        break;
      }
      if (write(fd, buf, static_cast<size_t>(in.gcount())) != in.gcount()) {
        error = std::string("write: ") + strerror(errno);
        break;
      }
    }
    if (error.empty() && fchmod(fd, mode) != 0) error = strerror(errno);
    close(fd);
    if (error.empty() && rename(tmp.c_str(), path.c_str()) != 0) error = strerror(errno);
    if (!error.empty()) {
      unlink(tmp.c_str());
      if (too_large) Fail(HTTPResponse::HTTP_REQUESTENTITYTOOLARGE, error);
      Fail(HTTPResponse::HTTP_INSUFFICIENT_STORAGE, "cannot write '" + path + "': " + error);
    }
    Object o;
    o.set("path", path);
    o.set("size", total);
    SendJson(resp, HTTPResponse::HTTP_OK, o);
  }

  void RemoveFile(HTTPServerRequest& req, HTTPServerResponse& resp) {
    std::string path = PathParam(req);
    for (const auto& root : roots_.list()) {
      if (path == root) BadRequest("refusing to remove the root '" + path + "'");
    }
    std::error_code ec;
    auto st = fs::symlink_status(path, ec);
    if (!fs::exists(st)) Fail(HTTPResponse::HTTP_NOT_FOUND, "no file '" + path + "'");
    if (fs::is_directory(st) && Query(req, "recursive") != "true" && !fs::is_empty(path, ec)) {
      BadRequest("'" + path + "' is a non-empty directory; pass recursive=true");
    }
    fs::remove_all(path, ec);
    if (ec) BadRequest("cannot remove '" + path + "': " + ec.message());
    resp.setStatus(HTTPResponse::HTTP_NO_CONTENT);
    resp.setContentLength(0);
    resp.send();
  }

  void StatFile(HTTPServerRequest& req, HTTPServerResponse& resp) {
    std::string path = PathParam(req);
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) Fail(HTTPResponse::HTTP_NOT_FOUND, "no file '" + path + "'");
    SendJson(resp, HTTPResponse::HTTP_OK, StatObject(path, st));
  }

  void ListFiles(HTTPServerRequest& req, HTTPServerResponse& resp) {
    std::string path = PathParam(req);
    std::error_code ec;
    if (!fs::exists(path, ec)) Fail(HTTPResponse::HTTP_NOT_FOUND, "no directory '" + path + "'");
    if (!fs::is_directory(path, ec)) BadRequest("'" + path + "' is not a directory");
    Array entries;
    for (const auto& e : fs::directory_iterator(path, ec)) {
      struct stat st {};
      if (lstat(e.path().c_str(), &st) != 0) continue;
      Object o = StatObject(e.path().string(), st);
      o.set("name", e.path().filename().string());
      entries.add(o);
    }
    Object o;
    o.set("path", path);
    o.set("entries", entries);
    SendJson(resp, HTTPResponse::HTTP_OK, o);
  }

  void Archive(HTTPServerRequest& req, HTTPServerResponse& resp) {
    Object::Ptr body = ReadJson(req);
    std::vector<std::string> paths;
    auto arr = body->getArray("paths");
    if (!arr || arr->size() == 0) BadRequest("'paths' must be a non-empty array of strings");
    for (const auto& v : *arr) {
      if (!v.isString()) BadRequest("'paths' must be a non-empty array of strings");
      Confined c = roots_.Resolve(v.convert<std::string>());
      if (!c.error.empty()) BadRequest(c.error);
      paths.push_back(c.path);
    }
    bool gzip = body->has("gzip") && body->get("gzip").isBoolean() && body->getValue<bool>("gzip");
    std::int64_t max_bytes = 0;
    if (body->has("max_bytes")) {
      if (!body->get("max_bytes").isInteger() || body->getValue<std::int64_t>("max_bytes") < 0)
        BadRequest("'max_bytes' must be a non-negative integer");
      max_bytes = body->getValue<std::int64_t>("max_bytes");
    }
    // Built into a spool file first, so that an error can still become a 4xx/5xx.
    std::string spool = "/tmp/.paddock-archive-" + std::to_string(++next_spool_);
    int entries = 0;
    bool too_large = false;
    std::string error;
    {
      std::ofstream out(spool, std::ios::binary | std::ios::trunc);
      error = WriteArchive(roots_, paths, gzip, max_bytes, out, &entries, &too_large);
      if (error.empty() && !out.good()) error = "cannot write the archive spool (is /tmp full?)";
    }
    if (!error.empty()) {
      unlink(spool.c_str());
      Fail(too_large ? HTTPResponse::HTTP_REQUESTENTITYTOOLARGE : HTTPResponse::HTTP_UNPROCESSABLE_ENTITY,
           error);
    }
    std::ifstream in(spool, std::ios::binary);
    unlink(spool.c_str());
    in.seekg(0, std::ios::end);
    std::streamsize size = in.tellg();
    in.seekg(0);
    resp.setStatus(HTTPResponse::HTTP_OK);
    resp.setContentType(gzip ? "application/gzip" : "application/x-tar");
    resp.set("X-Paddock-Entries", std::to_string(entries));
    resp.setContentLength64(size);
    Poco::StreamCopier::copyStream(in, resp.send());
  }

  void Restore(HTTPServerRequest& req, HTTPServerResponse& resp) {
    if (req.getContentLength64() > options_.max_restore_bytes) {
      Fail(HTTPResponse::HTTP_REQUESTENTITYTOOLARGE, "archive is larger than the restore limit");
    }
    // ?clean=<dir> (repeatable): empty these directories first, so that what they hold
    // afterwards is exactly what the archive holds (a snapshot restored over a used sandbox).
    std::vector<std::string> clean;
    Poco::URI uri(req.getURI());
    for (const auto& [k, v] : uri.getQueryParameters()) {
      if (k != "clean") BadRequest("unknown query parameter '" + k + "'");
      Confined c = roots_.Resolve(v);
      if (!c.error.empty()) BadRequest(c.error);
      clean.push_back(c.path);
    }
    for (const std::string& dir : clean) {
      std::error_code ec;
      if (!fs::is_directory(fs::symlink_status(dir, ec))) continue;
      for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code rm;
        fs::remove_all(it->path(), rm);
        if (rm) Fail(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, it->path().string() + ": " + rm.message());
      }
      if (ec) Fail(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, dir + ": " + ec.message());
    }
    int entries = 0;
    std::string error = ExtractArchive(roots_, req.stream(), &entries);
    if (!error.empty()) BadRequest(error);
    Object o;
    o.set("entries", entries);
    SendJson(resp, HTTPResponse::HTTP_OK, o);
  }

  Options options_;  // a copy: the token may be replaced (ClaimToken)
  Roots roots_;
  std::mutex mu_;
  bool claimable_ = options_.claimable;
  std::map<std::string, std::string> session_env_;
  std::map<std::string, std::pair<pid_t, std::shared_ptr<std::atomic<bool>>>> execs_;
  std::map<std::string, std::shared_ptr<BackgroundProcess>> processes_;
  std::atomic<std::uint64_t> next_process_{0};
  std::atomic<std::uint64_t> next_spool_{0};
};

class Handler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(Runtime& runtime) : runtime_(runtime) {}
  void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override {
    runtime_.Handle(req, resp);
  }

 private:
  Runtime& runtime_;
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(Runtime& runtime) : runtime_(runtime) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override {
    return new Handler(runtime_);
  }

 private:
  Runtime& runtime_;
};

}  // namespace

std::string Serve(const Options& options, void (*on_ready)(void*), void* ready_arg) {
  try {
    Poco::Net::ServerSocket socket;
    if (options.listen.rfind("unix:", 0) == 0) {
      std::string path = options.listen.substr(5);
      unlink(path.c_str());
      socket.bind(Poco::Net::SocketAddress(Poco::Net::SocketAddress::UNIX_LOCAL, path));
      socket.listen(256);
      chmod(path.c_str(), 0600);
    } else if (options.listen.rfind("tcp:", 0) == 0) {
      socket.bind(Poco::Net::SocketAddress(options.listen.substr(4)), true, false);  // no SO_REUSEPORT
      socket.listen(256);
    } else {
      return "--listen must be unix:PATH or tcp:HOST:PORT, got '" + options.listen + "'";
    }
    auto params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(options.max_threads);
    params->setMaxQueued(256);
    params->setKeepAlive(true);
    params->setTimeout(Poco::Timespan(3600, 0));
    Runtime runtime(options);
    Poco::ThreadPool pool(2, options.max_threads);
    Poco::Net::HTTPServer server(new Factory(runtime), pool, socket, params);
    server.start();
    on_ready(ready_arg);
    for (;;) pause();
  } catch (const Poco::Exception& e) {
    return "cannot serve on " + options.listen + ": " + e.displayText();
  } catch (const std::exception& e) {
    return "cannot serve on " + options.listen + ": " + e.what();
  }
}

}  // namespace paddock::runtime
