// What the runtime's HTTP handlers share: errors as exceptions that become answers, reading and
// checking JSON bodies, and the runtime's bookkeeping types. Internal to paddock-runtime.
#pragma once

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

#include "server.h"

namespace paddock::runtime {

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

[[noreturn]] inline void Fail(HTTPResponse::HTTPStatus status, std::string message) {
  throw HttpError{status, std::move(message)};
}
[[noreturn]] inline void BadRequest(std::string message) {
  Fail(HTTPResponse::HTTP_BAD_REQUEST, std::move(message));
}

using wire::ToJson;

inline void SendJson(HTTPServerResponse& resp, HTTPResponse::HTTPStatus status, const Object& body) {
  std::string text = ToJson(body);
  resp.setStatus(status);
  resp.setContentType("application/json");
  resp.setContentLength(static_cast<std::streamsize>(text.size()));
  resp.send() << text;
}

using wire::Base64;

inline std::string Unbase64(const std::string& text) {
  std::optional<std::string> out = wire::Unbase64(text);
  if (!out) BadRequest("stdin_base64 is not valid base64");
  return *out;
}

inline Object::Ptr ReadJson(HTTPServerRequest& req) {
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

inline std::string GetString(const Object& o, const std::string& key, const std::string& fallback = "") {
  if (!o.has(key) || o.isNull(key)) return fallback;
  auto v = o.get(key);
  if (!v.isString()) BadRequest("'" + key + "' must be a string");
  return v.convert<std::string>();
}

inline std::int64_t GetInt(const Object& o, const std::string& key, std::int64_t fallback) {
  if (!o.has(key) || o.isNull(key)) return fallback;
  auto v = o.get(key);
  if (!v.isInteger()) BadRequest("'" + key + "' must be an integer");
  return v.convert<std::int64_t>();
}

inline bool ValidEnvName(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

inline std::map<std::string, std::string> GetEnv(const Object& o, const std::string& key) {
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
inline std::vector<std::string> GetCommand(const Object& o) {
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

inline std::string Query(const HTTPServerRequest& req, const std::string& key) {
  Poco::URI uri(req.getURI());
  for (const auto& [k, v] : uri.getQueryParameters()) {
    if (k == key) return v;
  }
  return "";
}

inline bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

inline std::int64_t NowMs() {
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

}  // namespace paddock::runtime
