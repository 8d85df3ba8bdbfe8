#include "runtime.h"

namespace paddock::runtime {

void Runtime::Handle(HTTPServerRequest& req, HTTPServerResponse& resp) {
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

namespace {

// One route: method and path, where a segment "{id}" matches any one non-empty segment.
struct RouteEntry {
  const char* method;
  const char* pattern;
  void (*handle)(Runtime& runtime, HTTPServerRequest& req, HTTPServerResponse& resp, const std::string& id);
};

// The id captured when `path` matches `pattern` ("" when the pattern has none); nullopt when it
// does not match.
std::optional<std::string> MatchPath(std::string_view pattern, std::string_view path) {
  std::string id;
  while (!pattern.empty() || !path.empty()) {
    if (pattern.empty() || path.empty() || pattern[0] != '/' || path[0] != '/') return std::nullopt;
    pattern.remove_prefix(1);
    path.remove_prefix(1);
    const std::string_view want = pattern.substr(0, pattern.find('/'));
    const std::string_view got = path.substr(0, path.find('/'));
    if (want == "{id}") {
      if (got.empty()) return std::nullopt;
      id = std::string(got);
    } else if (want != got) {
      return std::nullopt;
    }
    pattern.remove_prefix(want.size());
    path.remove_prefix(got.size());
  }
  return id;
}

}  // namespace

void Runtime::Route(HTTPServerRequest& req, HTTPServerResponse& resp) {
  using R = Runtime;
  using Req = HTTPServerRequest;
  using Resp = HTTPServerResponse;
  using Id = const std::string&;
  // runtime/PROTOCOL.md, in its order.
  static const RouteEntry kRoutes[] = {
      {"GET", "/v1/health", [](R& r, Req&, Resp& o, Id) { r.Health(o); }},
      {"PUT", "/v1/env", [](R& r, Req& q, Resp& o, Id) { r.PutEnv(q, o); }},
      {"POST", "/v1/claim", [](R& r, Req& q, Resp& o, Id) { r.ClaimToken(q, o); }},
      // routes_exec.cpp
      {"POST", "/v1/exec", [](R& r, Req& q, Resp& o, Id) { r.Exec(q, o); }},
      {"POST", "/v1/exec/{id}/kill", [](R& r, Req&, Resp& o, Id id) { r.KillExec(id, o); }},
      // routes_processes.cpp
      {"POST", "/v1/processes", [](R& r, Req& q, Resp& o, Id) { r.StartProcess(q, o); }},
      {"GET", "/v1/processes", [](R& r, Req&, Resp& o, Id) { r.ListProcesses(o); }},
      {"GET", "/v1/processes/{id}", [](R& r, Req&, Resp& o, Id id) { r.GetProcess(id, o); }},
      {"GET", "/v1/processes/{id}/logs", [](R& r, Req& q, Resp& o, Id id) { r.ProcessLogs(id, q, o); }},
      {"POST", "/v1/processes/{id}/signal", [](R& r, Req& q, Resp& o, Id id) { r.SignalProcess(id, q, o); }},
      // routes_files.cpp
      {"GET", "/v1/files", [](R& r, Req& q, Resp& o, Id) { r.GetFile(q, o); }},
      {"PUT", "/v1/files", [](R& r, Req& q, Resp& o, Id) { r.PutFile(q, o); }},
      {"DELETE", "/v1/files", [](R& r, Req& q, Resp& o, Id) { r.RemoveFile(q, o); }},
      {"GET", "/v1/files/stat", [](R& r, Req& q, Resp& o, Id) { r.StatFile(q, o); }},
      {"GET", "/v1/files/list", [](R& r, Req& q, Resp& o, Id) { r.ListFiles(q, o); }},
      // routes_archive.cpp
      {"POST", "/v1/archive", [](R& r, Req& q, Resp& o, Id) { r.Archive(q, o); }},
      {"POST", "/v1/restore", [](R& r, Req& q, Resp& o, Id) { r.Restore(q, o); }},
  };
  const std::string path = Poco::URI(req.getURI()).getPath();
  const std::string& method = req.getMethod();
  for (const RouteEntry& route : kRoutes) {
    if (method != route.method) continue;
    if (std::optional<std::string> id = MatchPath(route.pattern, path))
      return route.handle(*this, req, resp, *id);
  }
  Fail(HTTPResponse::HTTP_NOT_FOUND, "no route for " + method + " " + path);
}

void Runtime::Health(HTTPServerResponse& resp) {
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

void Runtime::ClaimToken(HTTPServerRequest& req, HTTPServerResponse& resp) {
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

void Runtime::PutEnv(HTTPServerRequest& req, HTTPServerResponse& resp) {
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

std::vector<std::string> Runtime::Environment(const std::map<std::string, std::string>& request_env) {
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

std::string Runtime::Cwd(const Object& body) {
  std::string cwd = GetString(body, "cwd", options_.default_cwd);
  if (cwd.empty()) cwd = options_.default_cwd;
  if (cwd[0] != '/') BadRequest("'cwd' must be an absolute path");
  std::error_code ec;
  if (!fs::is_directory(cwd, ec)) BadRequest("cwd '" + cwd + "' is not a directory");
  return cwd;
}

namespace {

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
