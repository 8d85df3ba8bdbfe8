// Exchange: one HTTP request and its response, with the helpers every handler uses to parse
// input and render output. Handlers stay thin: parse with these, call a service, render.
#pragma once

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Object.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/input.h"
#include "paddock/status.h"
#include "paddock/types.h"
#include "services/teams/principal.h"

namespace paddock {

class App;

// The HTTP status for a Status code (the one table of it).
int HttpStatusFor(StatusCode code);

// A request as the server read it: whole, body included (within [server] max_body_size).
struct HttpRequest {
  std::string method;
  std::string target;  // path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool has_body = false;  // Content-Length > 0 or chunked
  std::string client;     // the peer's address

  // The first header of that name (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const;
};

// A handler's answer. The server writes it; `stream` turns the connection into an event stream.
struct HttpReply {
  struct EventStream {
    std::string session_id;
    std::int64_t after_seq = 0;
  };
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;
  std::string body;
  bool close = false;  // close the connection after it
  std::optional<EventStream> stream;

  void Set(std::string name, std::string value);
};

class Exchange {
 public:
  // `query` is the request's parsed query string, or the reason it could not be parsed.
  Exchange(const HttpRequest& request, HttpReply& response, App& app,
           std::map<std::string, std::string> params,
           Result<std::vector<std::pair<std::string, std::string>>> query, std::int64_t max_body_bytes);

  const HttpRequest& request;
  HttpReply& response;
  App& app;
  // Who is asking (set by the server from the request's key; empty on open routes).
  Principal principal;
  // The browser session's cookie the request was authenticated with; empty for a key.
  std::string session_cookie;
  // The request's id: its X-Request-Id when that is an id, else one made for it (echoed).
  std::string request_id;
  // The team of the resource the path names (or the caller's), once the server checked it; a
  // handler that creates a resource sets it to the new one's (the audit log's team).
  std::string resource_team;

  // A path parameter ("{id}").
  const std::string& Param(const std::string& name) const;

  // Query parameters; kInvalidArgument for one not in `allowed` or a malformed query string.
  Status CheckQuery(std::initializer_list<std::string_view> allowed);
  std::optional<std::string> Query(std::string_view name) const;
  // An integer query parameter in [min, max], or `fallback` when absent.
  // A query value that must be an id (IsId); nullopt when absent, kInvalidArgument otherwise.
  Result<std::optional<std::string>> QueryId(std::string_view name) const;
  // The page cursor (empty when absent); kInvalidArgument past kMaxCursorLength.
  Result<std::string> QueryCursor() const;
  Result<std::int64_t> QueryInt(std::string_view name, std::int64_t fallback, std::int64_t min,
                                std::int64_t max) const;

  // The body as a JSON object: 415 without a JSON content type, 400 when it is not a JSON
  // object (the server answered 413 before the handler for one over the size limit). With required=false an
  // empty body yields an empty object. On failure the error response has been sent and nullptr is returned.
  Poco::JSON::Object::Ptr JsonBody(bool required = true);

  // Sends `body` (string values redacted) with `status`.
  void SendJson(int status, const Poco::Dynamic::Var& body);
  // Sends already-serialised, already-redacted JSON.
  void SendRawJson(int status, const std::string& json);
  void SendError(const Status& status);
  void SendError(int http_status, std::string_view code, std::string_view message,
                 const Poco::Dynamic::Var& details = Poco::Dynamic::Var());
  // A response without a body (204).
  void SendEmpty(int status);
  void SendText(int status, std::string content_type, std::string body);
  // Answers 200 and keeps the connection as the session's event stream, from after_seq on.
  void StartEventStream(std::string session_id, std::int64_t after_seq);

  int status() const { return status_; }
  // The message of the error sent, if one was.
  const std::string& error_message() const { return error_message_; }
  bool sent() const { return status_ != 0; }

 private:
  std::map<std::string, std::string> params_;
  std::int64_t max_body_bytes_;
  std::vector<std::pair<std::string, std::string>> query_;
  Status query_status_;
  int status_ = 0;
  std::string error_message_;
};

// RFC 3339 UTC with milliseconds.
std::string FormatTime(TimestampMs ms);

}  // namespace paddock
