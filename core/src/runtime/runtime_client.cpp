#include "runtime/runtime_client.h"
#include "util/cancel_signal.h"
#include "wire.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

namespace paddock {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;
using Poco::Net::HTTPClientSession;
using Poco::Net::HTTPRequest;
using Poco::Net::HTTPResponse;

std::string Json(const Object& o) { return wire::ToJson(o); }

Result<Object::Ptr> ParseObject(const std::string& text) {
  try {
    Poco::JSON::Parser parser;
    auto v = parser.parse(text);
    if (v.type() != typeid(Object::Ptr)) return Status::Internal("runtime answered with a non-object");
    return v.extract<Object::Ptr>();
  } catch (const Poco::Exception& e) {
    return Status::Internal("runtime answered with invalid JSON: " + e.message());
  }
}

using wire::Base64;

// The runtime's base64; what is not (a broken runtime) decodes to nothing.
std::string Unbase64(const std::string& text) { return wire::Unbase64(text).value_or(""); }

Object EnvObject(const EnvMap& env) {
  Object o;
  for (const auto& [k, v] : env) o.set(k, v);
  return o;
}

std::string Encode(const std::string& value) {
  std::string out;
  Poco::URI::encode(value, "&=?#+%", out);
  return out;
}

// The runtime's error for a non-2xx answer.
Status ErrorFor(int status, const std::string& body) {
  std::string message = body;
  if (auto o = ParseObject(body); o.ok() && (*o)->has("error"))
    message = (*o)->getValue<std::string>("error");
  message = "runtime: " + message;
  switch (status) {
    case 400:
    case 413:
    case 422:
      return Status::InvalidArgument(message);
    case 401:
    case 403:
      return Status::PermissionDenied(message);
    case 404:
      return Status::NotFound(message);
    case 507:
      return Status::ResourceExhausted(message);
    case 502:  // a gateway on the way (the Kubernetes API server's pod proxy) cannot reach it
    case 503:
    case 504:
      return Status::Unavailable(message);
    default:
      return Status::Internal("runtime answered " + std::to_string(status) + ": " + message);
  }
}

RuntimeProcess ProcessFrom(const Object& o) {
  RuntimeProcess p;
  p.id = o.getValue<std::string>("id");
  p.pid = o.getValue<int>("pid");
  if (auto argv = o.getArray("argv")) {
    for (const auto& a : *argv) p.argv.push_back(a.convert<std::string>());
  }
  p.running = o.getValue<bool>("running");
  if (o.has("exit_code") && !o.isNull("exit_code")) p.exit_code = o.getValue<int>("exit_code");
  return p;
}

std::string ExecId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[24];
  std::snprintf(buf, sizeof buf, "x%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

// Runs `fn`, turning Poco's exceptions into the statuses the class comment promises.
template <class Fn>
auto Guarded(const std::string& address, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Poco::Net::NetException& e) {
    return Status::Unavailable("runtime at " + address + " is unreachable: " + e.displayText());
  } catch (const Poco::IOException& e) {
    return Status::Unavailable("runtime at " + address + " is unreachable: " + e.displayText());
  } catch (const Poco::TimeoutException& e) {
    return Status::Unavailable("runtime at " + address + " did not answer: " + e.displayText());
  } catch (const Poco::Exception& e) {
    return Status::Internal("runtime call failed: " + e.displayText());
  }
}

}  // namespace

RuntimeClient::RuntimeClient(RuntimeEndpoint endpoint, std::chrono::milliseconds connect_timeout)
    : endpoint_(std::move(endpoint)), connect_timeout_(connect_timeout) {}

namespace {

// A session to the runtime: a unix socket or TCP.
std::unique_ptr<HTTPClientSession> Connect(const RuntimeEndpoint& ep, std::chrono::milliseconds timeout) {
  Poco::Timespan t(static_cast<long>(timeout.count() / 1000),
                   static_cast<long>(timeout.count() % 1000) * 1000);
  if (ep.address.rfind("unix:", 0) == 0) {
    Poco::Net::StreamSocket socket;
    socket.connect(Poco::Net::SocketAddress(Poco::Net::SocketAddress::UNIX_LOCAL, ep.address.substr(5)), t);
    auto session = std::make_unique<HTTPClientSession>(socket);
    session->setTimeout(Poco::Timespan(3600, 0));
    return session;
  }
  if (ep.address.rfind("tcp:", 0) == 0) {
    Poco::Net::SocketAddress addr(ep.address.substr(4));
    Poco::Net::StreamSocket socket;
    socket.connect(addr, t);
    // A request is a header and a body in two writes: without this, Nagle holds the body
    // until the runtime's delayed ACK (40 ms per exec; k8s_bench).
    socket.setNoDelay(true);
    auto session = std::make_unique<HTTPClientSession>(socket);
    session->setTimeout(Poco::Timespan(3600, 0));
    return session;
  }
  throw Poco::InvalidArgumentException("runtime address must be unix:PATH or tcp:HOST:PORT: " + ep.address);
}

}  // namespace

Result<RuntimeClient::Response> RuntimeClient::Call(const std::string& method, const std::string& path,
                                                    std::string_view body,
                                                    const std::string& content_type) const {
  return Guarded(endpoint_.address, [&]() -> Result<Response> {
    auto session = Connect(endpoint_, connect_timeout_);
    HTTPRequest req(method, path, HTTPRequest::HTTP_1_1);
    req.setHost("runtime");
    req.set("Authorization", "Bearer " + endpoint_.token);
    if (!body.empty() || method == "POST" || method == "PUT") {
      req.setContentType(content_type);
      req.setContentLength64(static_cast<Poco::Int64>(body.size()));
    }
    std::ostream& out = session->sendRequest(req);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    HTTPResponse resp;
    std::istream& in = session->receiveResponse(resp);
    Response r;
    r.status = resp.getStatus();
    Poco::StreamCopier::copyToString(in, r.body);
    return r;
  });
}

Result<RuntimeHealth> RuntimeClient::Health() const {
  PADDOCK_ASSIGN_OR_RETURN(Response r, Call("GET", "/v1/health", "", ""));
  if (r.status != 200) return ErrorFor(r.status, r.body);
  PADDOCK_ASSIGN_OR_RETURN(Object::Ptr o, ParseObject(r.body));
  return RuntimeHealth{o->getValue<std::string>("version"), o->getValue<int>("pid"), o->getValue<int>("uid")};
}

Status RuntimeClient::SetEnv(const EnvMap& env) const {
  Object body;
  body.set("env", EnvObject(env));
  PADDOCK_ASSIGN_OR_RETURN(Response r, Call("PUT", "/v1/env", Json(body), "application/json"));
  return r.status == 200 ? Status::Ok() : ErrorFor(r.status, r.body);
}

Result<ExecResult> RuntimeClient::Exec(const ExecRequest& request, ExecObserver& observer,
                                       const CancelSignal* stop) const {
  if (request.argv.empty()) return Status::InvalidArgument("exec needs a non-empty argv");
  Object body;
  const std::string id = ExecId();
  body.set("id", id);
  Array argv;
  for (const auto& a : request.argv) argv.add(a);
  body.set("argv", argv);
  body.set("env", EnvObject(request.env));
  if (!request.cwd.empty()) body.set("cwd", request.cwd);
  if (!request.stdin_data.empty()) body.set("stdin_base64", Base64(request.stdin_data));
  body.set("timeout_ms", static_cast<std::int64_t>(request.timeout.count()));

  // Cancellation: the kill is asked for once, by the watcher when `stop` is set and the runtime
  // has started the command (it sleeps until then, or until the exec ends), or by the reading
  // loop when the observer turns Cancelled().
  std::atomic<bool> kill_sent{false};
  auto kill = [&] {
    if (!kill_sent.exchange(true)) (void)Call("POST", "/v1/exec/" + id + "/kill", "", "application/json");
  };
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool stopped = false;
  bool started = false;  // the runtime has said "started": it knows the id a kill names
  std::thread watcher;
  CancelSignal::Id subscription = 0;
  if (stop) {
    subscription = stop->Subscribe([&] {
      std::lock_guard lock(mu);
      stopped = true;
      cv.notify_all();
    });
    watcher = std::thread([&] {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return done || (stopped && started); });
      if (done) return;
      lock.unlock();
      kill();
    });
  }
  auto stop_watcher = [&] {
    if (!stop) return;
    stop->Unsubscribe(subscription);
    {
      std::lock_guard lock(mu);
      done = true;
    }
    cv.notify_all();
    watcher.join();
  };
  Result<ExecResult> result = Guarded(endpoint_.address, [&]() -> Result<ExecResult> {
    auto session = Connect(endpoint_, connect_timeout_);
    std::string text = Json(body);
    HTTPRequest req("POST", "/v1/exec", HTTPRequest::HTTP_1_1);
    req.setHost("runtime");
    req.set("Authorization", "Bearer " + endpoint_.token);
    req.setContentType("application/json");
    req.setContentLength64(static_cast<Poco::Int64>(text.size()));
    session->sendRequest(req) << text;
    HTTPResponse resp;
    std::istream& in = session->receiveResponse(resp);
    if (resp.getStatus() != 200) {
      std::string err;
      Poco::StreamCopier::copyToString(in, err);
      return ErrorFor(resp.getStatus(), err);
    }
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      PADDOCK_ASSIGN_OR_RETURN(Object::Ptr frame, ParseObject(line));
      std::string type = frame->getValue<std::string>("type");
      if (type == "stdout" || type == "stderr") {
        std::string data = Unbase64(frame->getValue<std::string>("data"));
        observer.OnOutput(type == "stdout" ? ExecStream::kStdout : ExecStream::kStderr, data);
        if (!kill_sent.load() && observer.Cancelled()) kill();
      } else if (type == "started") {
        {
          std::lock_guard lock(mu);
          started = true;
        }
        cv.notify_all();
      } else if (type == "exit") {
        ExecResult r;
        r.exit_code = frame->getValue<int>("exit_code");
        r.timed_out = frame->getValue<bool>("timed_out");
        r.cancelled = frame->getValue<bool>("killed");
        return r;
      }
    }
    return Status::Unavailable("runtime at " + endpoint_.address + " closed the exec stream before the exit");
  });
  stop_watcher();
  if (result.ok() && observer.Cancelled()) result->cancelled = true;
  return result;
}

Result<RuntimeProcess> RuntimeClient::StartProcess(const std::vector<std::string>& argv, const EnvMap& env,
                                                   const std::string& cwd) const {
  Object body;
  Array a;
  for (const auto& s : argv) a.add(s);
  body.set("argv", a);
  body.set("env", EnvObject(env));
  if (!cwd.empty()) body.set("cwd", cwd);
  PADDOCK_ASSIGN_OR_RETURN(Response r, Call("POST", "/v1/processes", Json(body), "application/json"));
  if (r.status != 201) return ErrorFor(r.status, r.body);
  PADDOCK_ASSIGN_OR_RETURN(Object::Ptr o, ParseObject(r.body));
  return ProcessFrom(*o);
}

Result<std::vector<RuntimeProcess>> RuntimeClient::ListProcesses() const {
  PADDOCK_ASSIGN_OR_RETURN(Response r, Call("GET", "/v1/processes", "", ""));
  if (r.status != 200) return ErrorFor(r.status, r.body);
  PADDOCK_ASSIGN_OR_RETURN(Object::Ptr o, ParseObject(r.body));
  std::vector<RuntimeProcess> out;
  for (const auto& p : *o->getArray("processes")) out.push_back(ProcessFrom(*p.extract<Object::Ptr>()));
  return out;
}

Result<RuntimeLogs> RuntimeClient::ProcessLogs(const std::string& id, std::uint64_t offset) const {
  PADDOCK_ASSIGN_OR_RETURN(
      Response r,
      Call("GET", "/v1/processes/" + Encode(id) + "/logs?offset=" + std::to_string(offset), "", ""));
  if (r.status != 200) return ErrorFor(r.status, r.body);
  PADDOCK_ASSIGN_OR_RETURN(Object::Ptr o, ParseObject(r.body));
  return RuntimeLogs{Unbase64(o->getValue<std::string>("data")), o->getValue<std::uint64_t>("next_offset"),
                     o->getValue<bool>("running")};
}

Status RuntimeClient::SignalProcess(const std::string& id, const std::string& signal) const {
  Object body;
  body.set("signal", signal);
  PADDOCK_ASSIGN_OR_RETURN(
      Response r, Call("POST", "/v1/processes/" + Encode(id) + "/signal", Json(body), "application/json"));
  return r.status == 200 ? Status::Ok() : ErrorFor(r.status, r.body);
}

Status RuntimeClient::PutFile(const std::string& path, std::string_view content,
                              const std::string& mode) const {
  PADDOCK_ASSIGN_OR_RETURN(Response r, Call("PUT", "/v1/files?path=" + Encode(path) + "&mode=" + Encode(mode),
                                            content, "application/octet-stream"));
  return r.status == 200 ? Status::Ok() : ErrorFor(r.status, r.body);
}

Result<std::string> RuntimeClient::GetFile(const std::string& path) const {
  PADDOCK_ASSIGN_OR_RETURN(Response r, Call("GET", "/v1/files?path=" + Encode(path), "", ""));
  if (r.status != 200) return ErrorFor(r.status, r.body);
  return std::move(r.body);
}

namespace {
RuntimeFileStat StatFrom(const Object& o) {
  return RuntimeFileStat{o.getValue<std::string>("path"), o.getValue<std::string>("type"),
                         o.getValue<std::int64_t>("size"), o.getValue<std::string>("mode")};
}
}  // namespace

Result<RuntimeFileStat> RuntimeClient::Stat(const std::string& path) const {
  PADDOCK_ASSIGN_OR_RETURN(Response r, Call("GET", "/v1/files/stat?path=" + Encode(path), "", ""));
  if (r.status != 200) return ErrorFor(r.status, r.body);
  PADDOCK_ASSIGN_OR_RETURN(Object::Ptr o, ParseObject(r.body));
  return StatFrom(*o);
}

Result<std::vector<RuntimeFileStat>> RuntimeClient::List(const std::string& path) const {
  PADDOCK_ASSIGN_OR_RETURN(Response r, Call("GET", "/v1/files/list?path=" + Encode(path), "", ""));
  if (r.status != 200) return ErrorFor(r.status, r.body);
  PADDOCK_ASSIGN_OR_RETURN(Object::Ptr o, ParseObject(r.body));
  std::vector<RuntimeFileStat> out;
  for (const auto& e : *o->getArray("entries")) out.push_back(StatFrom(*e.extract<Object::Ptr>()));
  return out;
}

Status RuntimeClient::Remove(const std::string& path, bool recursive) const {
  PADDOCK_ASSIGN_OR_RETURN(
      Response r,
      Call("DELETE", "/v1/files?path=" + Encode(path) + (recursive ? "&recursive=true" : ""), "", ""));
  return r.status == 204 ? Status::Ok() : ErrorFor(r.status, r.body);
}

Result<std::string> RuntimeClient::Archive(const std::vector<std::string>& paths, bool gzip,
                                           std::int64_t max_bytes) const {
  Object body;
  Array a;
  for (const auto& p : paths) a.add(p);
  body.set("paths", a);
  body.set("gzip", gzip);
  if (max_bytes > 0) body.set("max_bytes", static_cast<Poco::Int64>(max_bytes));
  PADDOCK_ASSIGN_OR_RETURN(Response r, Call("POST", "/v1/archive", Json(body), "application/json"));
  if (r.status == 413) return Status::ResourceExhausted(ErrorFor(r.status, r.body).message());
  if (r.status != 200) return ErrorFor(r.status, r.body);
  return std::move(r.body);
}

Status RuntimeClient::Restore(std::string_view archive, const std::vector<std::string>& clean) const {
  std::string path = "/v1/restore";
  for (size_t i = 0; i < clean.size(); ++i) path += (i ? "&clean=" : "?clean=") + Encode(clean[i]);
  PADDOCK_ASSIGN_OR_RETURN(Response r, Call("POST", path, archive, "application/x-tar"));
  return r.status == 200 ? Status::Ok() : ErrorFor(r.status, r.body);
}

}  // namespace paddock
