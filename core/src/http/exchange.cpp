#include "http/exchange.h"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/String.h>
#include <Poco/Timestamp.h>

#include <charconv>
#include <istream>
#include <sstream>

#include "services/app.h"
#include "util/json_redact.h"
#include "util/redactor.h"

namespace paddock {

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
      return 409;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kInternal:
      return 500;
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kNoSpace:
      return 507;
  }
  return 500;
}

const std::string* HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && Poco::icompare(k, std::string(name)) == 0) return &v;
  }
  return nullptr;
}

void HttpReply::Set(std::string name, std::string value) {
  for (auto& [k, v] : headers) {
    if (Poco::icompare(k, name) == 0) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

Exchange::Exchange(const HttpRequest& req, HttpReply& resp, App& a, std::map<std::string, std::string> params,
                   Result<std::vector<std::pair<std::string, std::string>>> query,
                   std::int64_t max_body_bytes)
    : request(req), response(resp), app(a), params_(std::move(params)), max_body_bytes_(max_body_bytes) {
  if (query.ok()) {
    query_ = std::move(query).value();
  } else {
    query_status_ = query.status();
  }
}

const std::string& Exchange::Param(const std::string& name) const {
  static const std::string kEmpty;
  auto it = params_.find(name);
  return it == params_.end() ? kEmpty : it->second;
}

Status Exchange::CheckQuery(std::initializer_list<std::string_view> allowed) {
  PADDOCK_RETURN_IF_ERROR(query_status_);
  for (const auto& [k, v] : query_) {
    bool ok = false;
    for (auto a : allowed) ok = ok || a == k;
    if (!ok) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return Status::InvalidArgument("unknown query parameter '" + k +
                                     "'; allowed: " + (list.empty() ? "(none)" : list));
    }
  }
  return Status::Ok();
}

std::optional<std::string> Exchange::Query(std::string_view name) const {
  for (const auto& [k, v] : query_) {
    if (k == name) return v;
  }
  return std::nullopt;
}

Result<std::optional<std::string>> Exchange::QueryId(std::string_view name) const {
  std::optional<std::string> v = Query(name);
  if (v && !IsId(*v)) {
    return Status::InvalidArgument("query parameter '" + std::string(name) +
                                   "' must be an id: 1-64 characters of A-Z, a-z, 0-9, '_' and '-'");
  }
  return v;
}

Result<std::string> Exchange::QueryCursor() const {
  std::string cursor = Query("cursor").value_or("");
  if (cursor.size() > kMaxCursorLength) {
    return Status::InvalidArgument("query parameter 'cursor' is longer than " +
                                   std::to_string(kMaxCursorLength) +
                                   " bytes; send back the next_cursor of the previous page");
  }
  return cursor;
}

Result<std::int64_t> Exchange::QueryInt(std::string_view name, std::int64_t fallback, std::int64_t min,
                                        std::int64_t max) const {
  std::optional<std::string> v = Query(name);
  if (!v) return fallback;
  std::optional<std::int64_t> n = ParseInt64(*v);
  if (!n || *n < min || *n > max) {
    return Status::InvalidArgument("query parameter '" + std::string(name) + "' must be an integer between " +
                                   std::to_string(min) + " and " + std::to_string(max) + ", not '" + *v +
                                   "'");
  }
  return *n;
}

Poco::JSON::Object::Ptr Exchange::JsonBody(bool required) {
  if (!request.has_body || request.body.empty()) {
    if (!required) return new Poco::JSON::Object();
    SendError(400, "invalid_argument", "request body must be a JSON object");
    return nullptr;
  }
  const std::string* content_type = request.Header("Content-Type");
  std::string type = content_type ? *content_type : std::string();
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  if (Poco::icompare(type, "application/json") != 0) {
    SendError(415, "unsupported_media_type",
              "Content-Type must be application/json" + (type.empty() ? std::string() : ", not " + type));
    return nullptr;
  }
  if (static_cast<std::int64_t>(request.body.size()) > max_body_bytes_) {  // the server's check, again
    SendError(413, "payload_too_large",
              "request body is larger than the limit of " + std::to_string(max_body_bytes_) +
                  " bytes (server.max_body_size)");
    return nullptr;
  }
  Result<Poco::JSON::Object::Ptr> parsed = ParseBodyObject(request.body);
  if (!parsed.ok()) {
    SendError(parsed.status());
    return nullptr;
  }
  return *parsed;
}

void Exchange::SendRawJson(int status, const std::string& json) {
  SendText(status, "application/json", json);
  response.Set("Cache-Control", "no-store");
}

void Exchange::SendText(int status, std::string content_type, std::string body) {
  response.status = status;
  response.content_type = std::move(content_type);
  response.body = std::move(body);
  status_ = status;
}

void Exchange::SendEmpty(int status) { SendText(status, "", ""); }

void Exchange::StartEventStream(std::string session_id, std::int64_t after_seq) {
  response.status = 200;
  response.content_type = "text/event-stream";
  response.Set("Cache-Control", "no-store");
  response.Set("X-Accel-Buffering", "no");
  response.stream = HttpReply::EventStream{std::move(session_id), after_seq};
  status_ = 200;
}

void Exchange::SendJson(int status, const Poco::Dynamic::Var& body) {
  std::ostringstream out;
  Poco::JSON::Stringifier::stringify(RedactJson(body, app.redactor()), out, 0, -1, Poco::JSON_WRAP_STRINGS);
  SendRawJson(status, out.str());
}

void Exchange::SendError(int http_status, std::string_view code, std::string_view message,
                         const Poco::Dynamic::Var& details) {
  Poco::JSON::Object::Ptr err = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  err->set("code", std::string(code));
  err->set("message", std::string(message));
  error_message_ = std::string(message);
  if (!details.isEmpty()) err->set("details", details);
  Poco::JSON::Object::Ptr body = new Poco::JSON::Object();
  body->set("error", err);
  if (http_status == 503) response.Set("Retry-After", "1");
  if (http_status == 507) response.Set("Retry-After", "30");
  SendJson(http_status, body);
}

void Exchange::SendError(const Status& status) {
  SendError(HttpStatusFor(status.code()), StatusCodeName(status.code()), status.message());
}

std::string FormatTime(TimestampMs ms) {
  if (ms <= 0) return "";
  Poco::Timestamp ts(static_cast<Poco::Timestamp::TimeVal>(ms) * 1000);
  return Poco::DateTimeFormatter::format(ts, "%Y-%m-%dT%H:%M:%S.%iZ");
}

}  // namespace paddock
