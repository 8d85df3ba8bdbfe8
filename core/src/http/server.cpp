#include "http/server.h"

#include <Poco/JSON/Array.h>
#include <Poco/URI.h>
#include <sys/resource.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http/exchange.h"
#include "http/render.h"
#include "http/router.h"
#include "metrics/metrics.h"
#include "paddock/json.h"
#include "services/app.h"
#include "services/dashboard/assets.h"
#include "services/events/event_hub.h"
#include "services/events/event_service.h"
#include "services/teams/audit_log.h"
#include "services/teams/authenticator.h"
#include "services/teams/browser_sessions.h"
#include "services/teams/failed_auth.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/redactor.h"

namespace paddock {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kHeaderLimit = 16 * 1024;
constexpr auto kHeartbeat = std::chrono::seconds(15);
constexpr auto kLinger = std::chrono::seconds(2);
constexpr std::uint64_t kLingerBytes = 64 << 20;

// A fixed set of threads with a bounded queue: TrySubmit refuses instead of queueing past it.
// A job returns what must happen once its thread counts as free again (sending the reply), so a
// client that has its answer never finds that thread still taken.
class WorkPool {
 public:
  using Job = std::function<std::function<void()>()>;

  WorkPool(int threads, size_t max_queued) : max_queued_(max_queued), idle_(static_cast<size_t>(threads)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~WorkPool() { Stop(); }

  // False when every thread is busy and the queue is full.
  bool TrySubmit(Job job) {
    {
      std::lock_guard lock(mu_);
      if (stopping_ || queue_.size() >= idle_ + max_queued_) return false;
      queue_.push_back(std::move(job));
    }
    cv_.notify_one();
    return true;
  }
  // Runs what is queued, then joins.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      Job job = std::move(queue_.front());
      queue_.pop_front();
      --idle_;
      lock.unlock();
      std::function<void()> then = job();
      job = nullptr;
      lock.lock();
      ++idle_;
      lock.unlock();
      if (then) then();
      lock.lock();
    }
  }

  const size_t max_queued_;
  size_t idle_;  // under mu_
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

std::shared_ptr<const RenderedEvent> RenderForStreams(const Event& e) {
  auto r = std::make_shared<RenderedEvent>();
  r->seq = e.seq;
  r->type = e.type;
  r->json = RenderEventJson(e);
  r->sse = "id: " + std::to_string(e.seq) + "\nevent: " + e.type + "\ndata: " + r->json + "\n\n";
  r->created_at = e.created_at;
  return r;
}

std::string ErrorJson(std::string_view code, std::string_view message) {
  std::string out = "{\"error\":{\"code\":\"";
  out += code;
  out += "\",\"message\":";
  out += JsonQuote(message);
  out += "}}";
  return out;
}

// The 503 a connection past every limit gets, written without waiting before it is closed.
const std::string& RefusedResponse() {
  static const std::string response = [] {
    const std::string body =
        ErrorJson("unavailable", "too many open connections (server.max_connections); retry later");
    return "HTTP/1.1 503 Service Unavailable\r\nServer: paddock\r\nRetry-After: 1\r\nContent-Type: "
           "application/json\r\nConnection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  return response;
}

}  // namespace

class Connection;

// What the listener and every connection share.
struct HttpServer::Impl {
  Impl(App& a, const Router& r, const ServerSettings& s, int p)
      : app(a), router(r), settings(s), port(p), metrics(a.metrics()) {}

  App& app;
  const Router& router;
  ServerSettings settings;
  int port;
  Metrics& metrics;
  int max_connections = 0;  // settings.max_connections, capped by the open-files limit

  std::vector<std::unique_ptr<net::io_context>> loops;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<net::steady_timer> accept_pause;
  size_t next_loop = 0;
  int bound_port = 0;
  Clock::time_point last_accept_error{};

  std::unique_ptr<WorkPool> api;
  std::unique_ptr<WorkPool> health;
  std::unique_ptr<EventHub> hub;
  std::atomic<bool> draining{false};
  bool stopped = false;

  // Connection accounting, under mu.
  mutable std::mutex mu;
  std::condition_variable all_closed;
  int total = 0;
  int reserve_in_use = 0;
  int streams = 0;
  std::unordered_map<std::string, int> per_client;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> open;

  void Accept();
  void OnAccept(const beast::error_code& ec, tcp::socket socket);
};

// One client connection. Everything it does runs on its event loop (one thread), so it needs no
// lock; the handler pool and the hub hand work to it with net::post.
class Connection final : public EventSink, public std::enable_shared_from_this<Connection> {
 public:
  Connection(HttpServer::Impl& server, tcp::socket socket, std::string client, bool reserve)
      : server_(server),
        stream_(std::move(socket)),
        client_(std::move(client)),
        reserve_(reserve),
        heartbeat_(stream_.get_executor()) {}

  ~Connection() override {
    ReleaseSlot();
    std::lock_guard lock(server_.mu);
    server_.open.erase(this);
    if (server_.open.empty()) server_.all_closed.notify_all();
  }

  void Start() {
    // A new connection's header deadline runs from the accept.
    const auto deadline = reserve_ ? std::min<std::int64_t>(server_.settings.header_timeout_ms, 2000)
                                   : server_.settings.header_timeout_ms;
    stream_.expires_after(std::chrono::milliseconds(deadline));
    ReadHeader(false);
  }

  net::any_io_executor executor() { return stream_.get_executor(); }

  // From any thread: the server is shutting down.
  void Drain() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->OnDrain(); });
  }
  // From any thread: the grace is over.
  void ForceClose() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->Close(); });
  }

  // EventSink, called by hub threads.
  void Deliver(std::shared_ptr<const RenderedEvent> event) noexcept override {
    try {
      net::post(stream_.get_executor(),
                [self = shared_from_this(), e = std::move(event)]() mutable { self->OnEvent(std::move(e)); });
    } catch (...) {
    }
  }
  void Fail(std::string_view why) noexcept override {
    try {
      LogWarn("event stream of " + stream_session_ + " ends: " + std::string(why));
      net::post(stream_.get_executor(), [self = shared_from_this()] {
        self->Cut("store", "event: error\ndata: {\"message\":\"event store unavailable\"}\n\n");
      });
    } catch (...) {
    }
  }

 private:
  enum class State { kHeader, kIdle, kBody, kHandling, kWriting, kStreaming, kClosing, kClosed };

  // ---- reading a request ------------------------------------------------------------------

  void WaitForNext() {
    if (server_.draining) return Close();
    state_ = State::kIdle;
    if (buffer_.size() > 0) return ReadHeader(true);  // pipelined: already here
    stream_.expires_after(std::chrono::milliseconds(server_.settings.idle_timeout_ms));
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->OnReadError(ec, "idle");
                              self->buffer_.commit(n);
                              self->ReadHeader(true);
                            });
  }

  void ReadHeader(bool restart_deadline) {
    state_ = State::kHeader;
    if (restart_deadline)
      stream_.expires_after(std::chrono::milliseconds(server_.settings.header_timeout_ms));
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(static_cast<std::uint64_t>(server_.settings.max_body_bytes));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnReadError(const beast::error_code& ec, const char* phase) {
    if (ec == beast::error::timeout) server_.metrics.ConnectionTimedOut(phase);
    Close();
  }

  void OnHeader(const beast::error_code& ec) {
    if (ec == http::error::header_limit) {
      return Refuse(431, "request_header_fields_too_large",
                    "request header is larger than " + std::to_string(kHeaderLimit) + " bytes");
    }
    if (ec == http::error::body_limit) return TooLarge();  // the Content-Length says so
    if (ec == http::error::end_of_stream || ec == net::error::eof) return Close();
    if (ec == beast::error::timeout) return OnReadError(ec, "header");
    if (ec == net::error::operation_aborted || ec == net::error::connection_reset) return Close();
    if (ec) return Refuse(400, "invalid_argument", "malformed HTTP request: " + ec.message());
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    version_ = req.version();
    const auto length = parser_->content_length();
    if (length && *length > static_cast<std::uint64_t>(server_.settings.max_body_bytes)) return TooLarge();
    if (parser_->is_done()) return OnRequest();
    state_ = State::kBody;
    stream_.expires_after(std::chrono::milliseconds(server_.settings.body_timeout_ms));
    auto expect = req[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, version_);
      return http::async_write(stream_, *cont,
                               [self = shared_from_this(), cont](beast::error_code wec, size_t) {
                                 if (wec) return self->OnReadError(wec, "write");
                                 self->ReadBody();
                               });
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec == http::error::body_limit) return self->TooLarge();
      if (ec == beast::error::timeout) return self->OnReadError(ec, "body");
      if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::operation_aborted ||
          ec == net::error::connection_reset) {
        return self->Close();
      }
      if (ec) return self->Refuse(400, "invalid_argument", "malformed HTTP request body: " + ec.message());
      self->OnRequest();
    });
  }

  void TooLarge() {
    Refuse(413, "payload_too_large",
           "request body is larger than the limit of " + std::to_string(server_.settings.max_body_bytes) +
               " bytes (server.max_body_size)");
  }

  // ---- handing the request over -----------------------------------------------------------

  void OnRequest() {
    stream_.expires_never();
    state_ = State::kHandling;
    auto& req = parser_->get();
    if (websocket::is_upgrade(req)) upgrade_ = std::make_unique<http::request<http::string_body>>(req);
    auto request = std::make_shared<HttpRequest>();
    request->method = std::string(req.method_string());
    request->target = std::string(req.target());
    request->headers.reserve(16);
    for (const auto& f : req)
      request->headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    request->has_body = parser_->chunked() || parser_->content_length().value_or(0) > 0;
    request->body = std::move(req.body());
    request->client = client_;
    parser_.reset();

    std::string path;
    Result<std::vector<std::pair<std::string, std::string>>> query = Status::InvalidArgument("malformed URI");
    try {
      Poco::URI uri(request->target);
      path = uri.getPath();
      query = uri.getQueryParameters();
    } catch (const Poco::Exception& e) {
      query = Status::InvalidArgument("malformed query string: " + e.message());
    }
    RouteMatch match = server_.router.Match(request->method, path);
    const bool health = match.route && match.route->lane == Lane::kHealth;
    const std::string route = match.route ? match.route->pattern : "unmatched";
    auto shed = [&](const char* reason, std::string message) {
      server_.metrics.RequestShed(reason);
      server_.metrics.ObserveHttp(route, request->method, 503, 0);
      HttpReply reply;
      reply.status = 503;
      reply.content_type = "application/json";
      reply.body = ErrorJson("unavailable", message);
      reply.Set("Retry-After", "1");
      reply.close = true;
      WriteReply(std::move(reply));
    };
    if (server_.draining) return shed("draining", "the server is shutting down; retry on another instance");
    if (reserve_ && !health) {
      return shed("connections", "too many open connections (server.max_connections = " +
                                     std::to_string(server_.max_connections) +
                                     ", max_connections_per_client = " +
                                     std::to_string(server_.settings.max_connections_per_client) +
                                     "); close idle ones or retry later");
    }
    auto job = [self = shared_from_this(), request, match = std::move(match), query = std::move(query),
                path = std::move(path), route]() mutable {
      HttpReply reply = self->Handle(*request, std::move(match), std::move(query), path, route);
      return std::function<void()>([self = std::move(self), reply = std::move(reply)]() mutable {
        net::post(self->stream_.get_executor(),
                  [self, reply = std::move(reply)]() mutable { self->WriteReply(std::move(reply)); });
      });
    };
    WorkPool& pool = health ? *server_.health : *server_.api;
    if (!pool.TrySubmit(std::move(job))) {
      shed("busy", "the server is busy: every handler thread is taken and " +
                       std::to_string(server_.settings.max_queued_requests) +
                       " requests wait ([server] handler_threads, max_queued_requests); retry later");
    }
  }

  // On a pool thread: the route's handler, and the error envelope for whatever goes wrong.
  HttpReply Handle(const HttpRequest& request, RouteMatch match,
                   Result<std::vector<std::pair<std::string, std::string>>> query, const std::string& path,
                   const std::string& route) {
    const auto started = Clock::now();
    HttpReply reply;
    Exchange x(request, reply, server_.app, std::move(match.params), std::move(query),
               server_.settings.max_body_bytes);
    const std::string* given_id = request.Header("X-Request-Id");
    x.request_id = given_id && IsId(*given_id) ? *given_id : NewId("req");
    bool handled = false;
    try {
      if (match.route) {
        if (Authorize(request, *match.route, x)) {
          handled = true;
          match.route->handler(x);
        }
      } else if (path == "/" || path == "/index.html" || path.rfind("/assets/", 0) == 0) {
        // The dashboard's files (GET only), which no route of the table names.
        const DashboardAssets& dashboard = server_.app.dashboard();
        if (request.method != "GET") {
          Poco::JSON::Object::Ptr details = new Poco::JSON::Object();
          Poco::JSON::Array::Ptr list = new Poco::JSON::Array();
          list->add("GET");
          details->set("allowed", list);
          reply.Set("Allow", "GET");
          x.SendError(405, "method_not_allowed",
                      "method " + Excerpt(request.method, 16) + " is not allowed on " + Excerpt(path, 200) +
                          "; allowed: GET",
                      details);
        } else if (const DashboardAsset* asset = dashboard.Find(path)) {
          ServeAsset(request, *asset, x);
        } else {
          x.SendError(404, "not_found",
                      path.rfind("/assets/", 0) != 0
                          ? dashboard.why()
                          : "no dashboard file " + Excerpt(path, 200) + " (this server's dashboard is " +
                                (dashboard.installed() ? "another build" : "not installed") + ")");
        }
      } else if (!match.allowed_methods.empty()) {
        std::string allow;
        Poco::JSON::Array::Ptr list = new Poco::JSON::Array();
        for (const auto& m : match.allowed_methods) {
          allow += (allow.empty() ? "" : ", ") + m;
          list->add(m);
        }
        Poco::JSON::Object::Ptr details = new Poco::JSON::Object();
        details->set("allowed", list);
        reply.Set("Allow", allow);
        x.SendError(405, "method_not_allowed",
                    "method " + request.method + " is not allowed on " + path + "; allowed: " + allow,
                    details);
      } else if (!match.bad_id.empty()) {
        x.SendError(404, "not_found",
                    "'" + Excerpt(match.bad_id, 80) +
                        "' is not an id: ids are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'");
      } else {
        x.SendError(404, "not_found",
                    "no route for " + Excerpt(request.method, 16) + " " +
                        Excerpt(path.empty() ? request.target : path, 200));
      }
    } catch (const std::exception& e) {
      LogError("unhandled error in " + request.method + " " + route + ": " + e.what());
      reply = HttpReply();
      x.SendError(500, "internal", "internal error; see the server log");
    } catch (...) {
      LogError("unhandled non-standard exception in " + request.method + " " + route);
      reply = HttpReply();
      x.SendError(500, "internal", "internal error; see the server log");
    }
    if (!x.sent()) x.SendError(500, "internal", "handler produced no response");
    reply.Set("X-Request-Id", x.request_id);
    if (handled && IsWrite(*match.route) && !x.principal.key_id.empty())
      AuditWrite(request, *match.route, x, reply);
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    server_.metrics.ObserveHttp(route, request.method, reply.status, seconds);
    if (LogDebugEnabled())
      LogDebug(request.method + " " + path + " " + std::to_string(reply.status) + " " +
               std::to_string(static_cast<int>(seconds * 1000)) + "ms " + request.client);
    return reply;
  }

  // A dashboard file: the page never cached, with its Content-Security-Policy; assets (named by
  // their content's hash) for a year; 304 for what the browser has.
  static void ServeAsset(const HttpRequest& request, const DashboardAsset& asset, Exchange& x) {
    x.response.Set("ETag", asset.etag);
    x.response.Set("X-Content-Type-Options", "nosniff");
    x.response.Set("Cache-Control", asset.immutable ? "public, max-age=31536000, immutable" : "no-cache");
    if (!asset.immutable) {
      x.response.Set("Content-Security-Policy", DashboardAssets::ContentSecurityPolicy());
      x.response.Set("Referrer-Policy", "no-referrer");
      x.response.Set("X-Frame-Options", "DENY");
    }
    const std::string* seen = request.Header("If-None-Match");
    if (seen && *seen == asset.etag) return x.SendEmpty(304);
    x.SendText(200, asset.content_type, asset.body);
  }

  // Whether the route's handler may run for this request: a key of the route's role whose
  // team sees the resource named by {id}; otherwise the error has been sent. The order is
  // what a caller may learn: a limited address learns nothing (429), a bad key only that it
  // is bad (401), another team's id nothing more than a missing one (404), and only then
  // whether the role suffices (403).
  bool Authorize(const HttpRequest& request, const Route& route, Exchange& x) {
    App& app = server_.app;
    const std::optional<Role> need = RequiredRole(route.access, app.config().auth.metrics_open);
    if (!need) return true;
    if (const std::int64_t wait = app.failed_auth().RetryAfter(request.client); wait > 0) {
      server_.metrics.AuthRefused("rate_limited");
      x.response.Set("Retry-After", std::to_string(wait));
      x.SendError(429, "rate_limited",
                  "too many failed authentications from this address ([auth] failed_per_minute = " +
                      std::to_string(app.config().auth.failed_per_minute) + "); retry in " +
                      std::to_string(wait) + " s");
      return false;
    }
    // A key in the headers, else a browser session's cookie (which names its key).
    const std::string* authorization = request.Header("Authorization");
    const std::string* x_api_key = request.Header("x-api-key");
    std::string cookie;
    if (!authorization && !x_api_key) {
      if (const std::string* header = request.Header("Cookie")) {
        if (std::optional<std::string> v = CookieValue(*header, kSessionCookie)) cookie = *v;
      }
    }
    AuthOutcome auth;
    if (!cookie.empty()) {
      std::optional<std::string> key_id = app.browser_sessions().KeyOf(cookie);
      if (key_id) {
        auth = app.auth().ByKeyId(*key_id);
      } else {
        auth.failure = AuthFailure::kUnknown;
        auth.message =
            "the session cookie is not valid (expired, altered, or of another install); sign in again";
      }
    } else {
      auth = app.auth().Authenticate(authorization, x_api_key);
    }
    if (auth.failure == AuthFailure::kStoreDown) {
      x.response.Set("Retry-After", "1");
      x.SendError(503, "unavailable", auth.message);
      return false;
    }
    if (auth.failure != AuthFailure::kNone) {
      static constexpr const char* kReason[] = {"",        "missing", "malformed", "unknown",
                                                "expired", "revoked", ""};
      server_.metrics.AuthRefused(kReason[static_cast<int>(auth.failure)]);
      AuditEvent e;
      e.source = request.client;
      e.request_id = x.request_id;
      e.action = "auth.failed";
      e.status = 401;
      e.outcome = "denied";
      // Never the key presented: it may be a real key with a typo.
      e.detail = std::string(kReason[static_cast<int>(auth.failure)]) + " key on " + request.method + " " +
                 route.pattern;
      app.audit().Record(std::move(e));
      // A request without any key is no guess; only a key that does not work counts.
      if (auth.failure != AuthFailure::kMissing) app.failed_auth().Failed(request.client);
      x.response.Set("WWW-Authenticate", "Bearer realm=\"paddock\"");
      x.SendError(401, "unauthenticated", auth.message);
      return false;
    }
    x.principal = std::move(auth.principal);
    x.session_cookie = cookie;
    // A write with a cookie must show it comes from a page that could read the CSRF token:
    // one of this origin (a cross-site form or fetch sends the cookie, never the token).
    if (!cookie.empty() && IsWrite(route)) {
      const std::string* token = request.Header(kCsrfHeader);
      if (!token || !app.browser_sessions().CsrfMatches(cookie, *token)) {
        server_.metrics.AuthRefused("csrf");
        AuditEvent e = AuditOf(request, route, x);
        e.status = 403;
        e.outcome = "denied";
        e.detail = token ? "wrong CSRF token with a session cookie" : "no CSRF token with a session cookie";
        app.audit().Record(std::move(e));
        x.SendError(403, "csrf",
                    std::string("a write with a session cookie needs its CSRF token in ") + kCsrfHeader +
                        " (from POST /api/auth/login or GET /api/me)");
        return false;
      }
    }
    app.audit().KeyUsed(x.principal, request.client, x.request_id);
    Result<std::string> team = app.teams().CheckVisible(x.principal, route.owner, x.Param("id"));
    if (!team.ok()) {
      x.SendError(team.status());
      return false;
    }
    x.resource_team = *team;
    if (!x.principal.AtLeast(*need)) {
      server_.metrics.AuthRefused("forbidden");
      AuditEvent e = AuditOf(request, route, x);
      e.status = 403;
      e.outcome = "denied";
      e.detail =
          "role " + std::string(ToString(x.principal.role)) + ", needs " + std::string(ToString(*need));
      app.audit().Record(std::move(e));
      x.SendError(403, "forbidden",
                  request.method + " " + route.pattern + " needs the role " + std::string(ToString(*need)) +
                      (*need == Role::kOperator ? "" : " or above") + "; this key ('" + x.principal.key_name +
                      "') is " + std::string(ToString(x.principal.role)));
      return false;
    }
    return true;
  }

  // An audit entry of a request by an authenticated key on `route`: who, from where, on what.
  static AuditEvent AuditOf(const HttpRequest& request, const Route& route, const Exchange& x) {
    AuditEvent e;
    e.team_id = x.resource_team;
    e.key_id = x.principal.key_id;
    e.source = request.client;
    e.request_id = x.request_id;
    e.action = request.method + " " + route.pattern;
    e.resource = x.Param("id");
    if (e.resource.empty()) e.resource = x.Param("name");  // a team secret's name
    return e;
  }

  // A create, change or delete that reached its handler, as the audit log keeps it: the team
  // acted on (the named resource's, the created one's, else the caller's), the resource (the
  // path's id, or the created one's from Location), and how it ended.
  void AuditWrite(const HttpRequest& request, const Route& route, Exchange& x, const HttpReply& reply) {
    AuditEvent e = AuditOf(request, route, x);
    e.status = reply.status;
    e.outcome = reply.status < 400 ? "ok" : "error";
    for (const auto& [name, value] : reply.headers) {
      if (name == "Location") e.resource = value.substr(value.rfind('/') + 1);
    }
    if (reply.status >= 400) e.detail = Excerpt(server_.app.redactor().Redact(x.error_message()), 200);
    server_.app.audit().Record(std::move(e));
  }

  // ---- writing a response -----------------------------------------------------------------

  void WriteReply(HttpReply reply) {
    if (state_ == State::kClosed) return;
    if (reply.stream && upgrade_) return StartWebSocket(std::move(reply));
    if (reply.stream) return StartStream(std::move(reply));
    upgrade_.reset();
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(reply.status),
                                                                   version_);
    res->set(http::field::server, "paddock");
    for (auto& [k, v] : reply.headers) res->set(k, v);
    if (!reply.content_type.empty()) res->set(http::field::content_type, reply.content_type);
    const size_t length = reply.body.size();
    if (!head_) res->body() = std::move(reply.body);
    const bool keep = keep_alive_ && !reply.close && !server_.draining && !reserve_;
    res->keep_alive(keep);
    if (reply.status != 204 && reply.status != 304) res->content_length(length);
    state_ = State::kWriting;
    stream_.expires_after(std::chrono::milliseconds(server_.settings.write_timeout_ms));
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep](beast::error_code ec, size_t) {
      if (ec) return self->OnReadError(ec, "write");
      if (keep) return self->WaitForNext();
      self->Linger();
    });
  }

  // Answers a request the server refuses before any handler (malformed, too large): the client
  // gets the error, then the connection closes.
  void Refuse(int status, std::string_view code, const std::string& message) {
    server_.metrics.ObserveHttp("unmatched", "", status, 0);
    HttpReply reply;
    reply.status = status;
    reply.content_type = "application/json";
    reply.body = ErrorJson(code, message);
    reply.close = true;
    parser_.reset();
    WriteReply(std::move(reply));
  }

  // Half-closes and reads (and drops) what the client still sends for a moment, so it reads our
  // answer instead of a reset.
  void Linger() {
    state_ = State::kClosing;
    ReleaseSlot();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    stream_.expires_after(kLinger);
    LingerRead();
  }
  void LingerRead() {
    stream_.async_read_some(net::buffer(sink_), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ > kLingerBytes) return self->Close();
      self->LingerRead();
    });
  }

  // ---- event streams ----------------------------------------------------------------------

  void StartStream(HttpReply reply) {
    chunked_ = version_ >= 11;
    stream_session_ = reply.stream->session_id;
    const std::int64_t after = reply.stream->after_seq;
    auto res = std::make_shared<http::response<http::empty_body>>(http::status::ok, version_);
    res->set(http::field::server, "paddock");
    for (auto& [k, v] : reply.headers) res->set(k, v);
    res->set(http::field::content_type, reply.content_type);
    if (chunked_) res->chunked(true);
    res->keep_alive(chunked_);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    state_ = State::kWriting;
    stream_.expires_after(std::chrono::milliseconds(server_.settings.write_timeout_ms));
    http::async_write_header(stream_, *sr,
                             [self = shared_from_this(), res, sr, after](beast::error_code ec, size_t) {
                               if (ec) return self->OnReadError(ec, "write");
                               self->OnStreamStarted(after);
                             });
  }

  // The same stream as WebSocket text messages, one event (its JSON) per message. Beast does the
  // handshake, framing, pings and close; its own timeouts replace the stream's deadlines.
  void StartWebSocket(HttpReply reply) {
    stream_session_ = reply.stream->session_id;
    const std::int64_t after = reply.stream->after_seq;
    stream_.expires_never();
    ws_.emplace(stream_);
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::milliseconds(server_.settings.write_timeout_ms);
    timeouts.idle_timeout = std::chrono::milliseconds(server_.settings.idle_timeout_ms);
    timeouts.keep_alive_pings = true;
    ws_->set_option(timeouts);
    ws_->set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "paddock"); }));
    state_ = State::kWriting;
    auto request = std::move(upgrade_);
    auto& ref = *request;
    ws_->async_accept(ref,
                      [self = shared_from_this(), request = std::move(request), after](beast::error_code ec) {
                        if (ec) return self->Close();
                        self->OnStreamStarted(after);
                      });
  }

  void OnStreamStarted(std::int64_t after) {
    state_ = State::kStreaming;
    {
      std::lock_guard lock(server_.mu);
      ++server_.streams;
    }
    counted_stream_ = true;
    server_.metrics.StreamOpened(1);
    if (server_.draining)
      return Cut("shutdown", ": the server is shutting down; reconnect with Last-Event-ID\n\n");
    if (ws_) {
      subscription_ = server_.hub->Subscribe(stream_session_, after, shared_from_this());
      return WebSocketRead();
    }
    Queue("retry: 2000\n\n");
    subscription_ = server_.hub->Subscribe(stream_session_, after, shared_from_this());
    // The client sends nothing more; a read that ends means it went away.
    stream_.socket().async_read_some(net::buffer(sink_),
                                     [self = shared_from_this()](beast::error_code, size_t) {
                                       if (self->state_ == State::kStreaming) self->Close();
                                     });
    ArmHeartbeat();
  }

  // Reads (and drops) what the client sends, so control frames are answered; an error or a close
  // ends the stream.
  void WebSocketRead() {
    ws_->async_read(ws_buffer_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->ws_buffer_.clear();
      if (ec) {
        if (self->state_ == State::kStreaming) self->Close();
        return;
      }
      self->WebSocketRead();
    });
  }

  void ArmHeartbeat() {
    heartbeat_.expires_after(kHeartbeat);
    heartbeat_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->state_ != State::kStreaming) return;
      if (!self->writing_ && Clock::now() - self->last_write_ >= kHeartbeat - std::chrono::seconds(1)) {
        self->Queue(": keep-alive\n\n");
      }
      self->ArmHeartbeat();
    });
  }

  void OnEvent(std::shared_ptr<const RenderedEvent> e) {
    if (state_ != State::kStreaming) return;
    pending_bytes_ += e->sse.size();
    pending_.push_back(Piece{std::move(e), {}});
    if (pending_bytes_ > static_cast<size_t>(server_.settings.stream_buffer_bytes)) {
      return Cut("slow", ": stream cut: this client reads too slowly (more than " +
                             std::to_string(server_.settings.stream_buffer_bytes) +
                             " bytes waiting); reconnect with Last-Event-ID\n\n");
    }
    Flush();
  }

  void Queue(std::string text) {
    pending_bytes_ += text.size();
    pending_.push_back(Piece{nullptr, std::move(text)});
    Flush();
  }

  // Ends the stream: what waits is dropped (the client resumes from the last event it got), the
  // comment says why, then the last chunk and close.
  void Cut(const char* reason, std::string comment) {
    if (state_ != State::kStreaming) return;
    server_.metrics.StreamCut(reason);
    Unsubscribe();
    state_ = State::kClosing;
    pending_.clear();
    pending_bytes_ = 0;
    pending_.push_back(Piece{nullptr, std::move(comment)});
    end_after_flush_ = true;
    Flush();
  }

  void Flush() {
    if (writing_ || pending_.empty()) return;
    if (ws_) return FlushWebSocket();
    inflight_.swap(pending_);
    pending_bytes_ = 0;
    buffers_.clear();
    const auto now_ms = NowMs();
    for (const Piece& p : inflight_) {
      if (p.event) {
        buffers_.emplace_back(p.event->sse.data(), p.event->sse.size());
        server_.metrics.EventDelivered(
            static_cast<double>(std::max<std::int64_t>(0, now_ms - p.event->created_at)) / 1000.0);
      } else {
        buffers_.emplace_back(p.text.data(), p.text.size());
      }
    }
    writing_ = true;
    stream_.expires_after(std::chrono::milliseconds(server_.settings.write_timeout_ms));
    auto done = [self = shared_from_this()](beast::error_code ec, size_t) { self->OnFlushed(ec); };
    if (chunked_) {
      net::async_write(stream_, http::make_chunk(buffers_), std::move(done));
    } else {
      net::async_write(stream_, buffers_, std::move(done));
    }
  }

  void FlushWebSocket() {
    Piece piece = std::move(pending_.front());
    pending_.pop_front();
    if (!piece.event) {  // the reason a stream ends: a close frame with it
      pending_.clear();
      pending_bytes_ = 0;
      writing_ = true;
      const bool slow = piece.text.find("too slowly") != std::string::npos;
      websocket::close_reason why(slow ? websocket::close_code::try_again_later
                                       : websocket::close_code::going_away);
      std::string text = piece.text.rfind("event: error", 0) == 0
                             ? std::string("event store unavailable")
                             : piece.text.substr(piece.text.find_first_not_of(": "));
      why.reason = text.substr(0, std::min<size_t>(120, text.find('\n')));
      ws_->async_close(why, [self = shared_from_this()](beast::error_code) { self->Close(); });
      return;
    }
    pending_bytes_ -= std::min(pending_bytes_, piece.event->sse.size());
    server_.metrics.EventDelivered(
        static_cast<double>(std::max<std::int64_t>(0, NowMs() - piece.event->created_at)) / 1000.0);
    inflight_.push_back(std::move(piece));
    writing_ = true;
    ws_->text(true);
    ws_->async_write(net::buffer(inflight_.front().event->json),
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnFlushed(ec); });
  }

  void OnFlushed(const beast::error_code& ec) {
    writing_ = false;
    inflight_.clear();
    last_write_ = Clock::now();
    if (ec) {
      if (ec == beast::error::timeout) {
        server_.metrics.ConnectionTimedOut("write");
        if (state_ == State::kStreaming) server_.metrics.StreamCut("slow");
      }
      return Close();
    }
    if (!pending_.empty()) return Flush();
    if (end_after_flush_) EndStream();
  }

  void EndStream() {
    if (ws_) return Close();
    if (!chunked_) return Linger();
    writing_ = true;
    stream_.expires_after(std::chrono::seconds(5));
    net::async_write(stream_, http::make_chunk_last(),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->writing_ = false;
                       if (ec) return self->Close();
                       self->Linger();
                     });
  }

  void Unsubscribe() {
    if (subscription_) server_.hub->Unsubscribe(subscription_);
    subscription_ = 0;
  }

  // ---- ending -----------------------------------------------------------------------------

  void OnDrain() {
    switch (state_) {
      case State::kHeader:
      case State::kIdle:
        return Close();
      case State::kStreaming:
        return Cut("shutdown", ": the server is shutting down; reconnect with Last-Event-ID\n\n");
      default:
        return;  // in flight: its response says Connection: close
    }
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    ReleaseSlot();
    Unsubscribe();
    heartbeat_.cancel();
    if (counted_stream_) {
      std::lock_guard lock(server_.mu);
      --server_.streams;
      counted_stream_ = false;
      server_.metrics.StreamOpened(-1);
    }
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  // The connection no longer serves requests: its place under max_connections and the
  // per-client limit is free from now, before the client can see the close, not when the last
  // handler lets go of it.
  void ReleaseSlot() {
    if (released_) return;
    released_ = true;
    std::lock_guard lock(server_.mu);
    --server_.total;
    if (reserve_) --server_.reserve_in_use;
    if (--server_.per_client[client_] <= 0) server_.per_client.erase(client_);
    server_.metrics.ConnectionOpened(-1);
  }

  struct Piece {
    std::shared_ptr<const RenderedEvent> event;
    std::string text;
  };

  HttpServer::Impl& server_;
  beast::tcp_stream stream_;
  std::string client_;
  const bool reserve_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::unique_ptr<http::request<http::string_body>> upgrade_;  // a WebSocket handshake's request
  std::optional<websocket::stream<beast::tcp_stream&>> ws_;
  beast::flat_buffer ws_buffer_;
  State state_ = State::kHeader;
  bool keep_alive_ = false;
  bool head_ = false;
  unsigned version_ = 11;
  std::array<char, 4096> sink_{};
  std::uint64_t lingered_ = 0;
  bool released_ = false;  // ReleaseSlot ran

  // Streaming.
  std::string stream_session_;
  EventHub::SubscriptionId subscription_ = 0;
  bool chunked_ = true;
  bool counted_stream_ = false;
  bool writing_ = false;
  bool end_after_flush_ = false;
  std::deque<Piece> pending_;
  std::deque<Piece> inflight_;
  std::vector<net::const_buffer> buffers_;
  size_t pending_bytes_ = 0;
  Clock::time_point last_write_ = Clock::now();
  net::steady_timer heartbeat_;
};

// ---- the listener -------------------------------------------------------------------------

void HttpServer::Impl::Accept() {
  net::io_context& loop = *loops[next_loop];
  next_loop = (next_loop + 1) % loops.size();
  acceptor->async_accept(
      loop, [this](beast::error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
}

void HttpServer::Impl::OnAccept(const beast::error_code& ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
  if (ec) {
    // Out of descriptors (or another transient failure): say so now and then, wait, go on.
    if (Clock::now() - last_accept_error > std::chrono::seconds(10)) {
      LogWarn("accept: " + ec.message() + " (" + std::to_string(total) + " connections open)");
      last_accept_error = Clock::now();
    }
    accept_pause->expires_after(std::chrono::milliseconds(50));
    accept_pause->async_wait([this](beast::error_code wec) {
      if (!wec) Accept();
    });
    return;
  }
  beast::error_code aec;
  auto peer = socket.remote_endpoint(aec);
  std::string client = aec ? std::string("unknown") : peer.address().to_string();
  bool reserve = false;
  bool refuse = false;
  {
    std::lock_guard lock(mu);
    const bool over =
        total >= max_connections || per_client[client] >= settings.max_connections_per_client || draining;
    if (over) {
      if (reserve_in_use < settings.health_reserve && !draining) {
        reserve = true;
        ++reserve_in_use;
      } else {
        refuse = true;
      }
    }
    if (!refuse) {
      ++total;
      ++per_client[client];
    } else if (per_client[client] == 0) {
      per_client.erase(client);
    }
  }
  if (refuse) {
    metrics.RequestShed("connections");
    socket.non_blocking(true, aec);
    socket.write_some(net::buffer(RefusedResponse()), aec);
    socket.shutdown(tcp::socket::shutdown_both, aec);
    socket.close(aec);
  } else {
    socket.set_option(tcp::no_delay(true), aec);
    metrics.ConnectionOpened(1);
    auto conn = std::make_shared<Connection>(*this, std::move(socket), std::move(client), reserve);
    {
      std::lock_guard lock(mu);
      open[conn.get()] = conn;
    }
    net::post(conn->executor(), [conn] { conn->Start(); });
  }
  Accept();
}

}  // namespace paddock

namespace paddock {

HttpServer::HttpServer(App& app, const Router& router, const ServerSettings& settings, int port)
    : impl_(std::make_unique<Impl>(app, router, settings, port)) {}

HttpServer::~HttpServer() {
  Stop();
  impl_->hub.reset();
}

Status HttpServer::Start() {
  Impl& s = *impl_;
  const ServerSettings& cfg = s.settings;
  // Every connection is a descriptor: the limit may not exceed what the process may open (with
  // room for the store, plugins and sandboxes' pipes).
  s.max_connections = cfg.max_connections;
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const auto room = static_cast<std::int64_t>(rl.rlim_cur) - 512;
    if (room < s.max_connections) {
      s.max_connections = static_cast<int>(std::max<std::int64_t>(16, room));
      LogWarn("[server] max_connections " + std::to_string(cfg.max_connections) +
              " is more than the open-files " + "limit allows (" + std::to_string(rl.rlim_cur) +
              "); serving at most " + std::to_string(s.max_connections));
    }
  }
  try {
    s.hub =
        std::make_unique<EventHub>(s.app.store(), s.metrics, &RenderForStreams, s.app.events().feed_live());
    s.app.events().AttachHub(s.hub.get());
    s.api = std::make_unique<WorkPool>(cfg.handler_threads, static_cast<size_t>(cfg.max_queued_requests));
    s.health = std::make_unique<WorkPool>(1, 64);
    for (int i = 0; i < cfg.io_threads; ++i) {
      s.loops.push_back(std::make_unique<net::io_context>(1));
      s.guards.push_back(net::make_work_guard(*s.loops.back()));
    }
    tcp::resolver resolver(*s.loops[0]);
    auto endpoints = resolver.resolve(cfg.listen, std::to_string(s.port),
                                      tcp::resolver::passive | tcp::resolver::numeric_service);
    if (endpoints.empty()) return Status::Unavailable("cannot resolve " + cfg.listen);
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    s.acceptor = std::make_unique<tcp::acceptor>(*s.loops[0]);
    s.acceptor->open(endpoint.protocol());
    // SO_REUSEADDR (a restart binds past TIME_WAIT) but not SO_REUSEPORT: no other socket may
    // share the port, so connections can never be spread over a listener that is not ours.
    s.acceptor->set_option(net::socket_base::reuse_address(true));
    s.acceptor->bind(endpoint);
    s.acceptor->listen(4096);
    s.bound_port = s.acceptor->local_endpoint().port();
    s.accept_pause = std::make_unique<net::steady_timer>(*s.loops[0]);
  } catch (const boost::system::system_error& e) {
    // Nothing runs yet: undo what was set up, so Stop() (and the destructor) have nothing to do.
    s.app.events().AttachHub(nullptr);
    s.acceptor.reset();
    s.guards.clear();
    s.loops.clear();
    return Status::Unavailable("cannot listen on " + cfg.listen + ":" + std::to_string(s.port) + ": " +
                               e.code().message());
  }
  for (auto& loop : s.loops) {
    s.threads.emplace_back([&l = *loop] {
      while (true) {
        try {
          l.run();
          return;
        } catch (const std::exception& e) {
          LogError(std::string("event loop: ") + e.what());
        }
      }
    });
  }
  net::post(*s.loops[0], [&s] { s.Accept(); });
  return Status::Ok();
}

int HttpServer::port() const { return impl_->bound_port; }

HttpServer::Counts HttpServer::counts() const {
  std::lock_guard lock(impl_->mu);
  return Counts{impl_->total, impl_->streams};
}

void HttpServer::Stop() {
  Impl& s = *impl_;
  if (s.stopped || s.threads.empty()) return;
  s.stopped = true;
  s.draining = true;
  std::promise<void> closed;
  net::post(*s.loops[0], [&s, &closed] {
    beast::error_code ec;
    if (s.acceptor) s.acceptor->close(ec);
    if (s.accept_pause) s.accept_pause->cancel();
    closed.set_value();
  });
  closed.get_future().wait();
  auto each_open = [&s](auto&& fn) {
    std::vector<std::shared_ptr<Connection>> open;
    {
      std::lock_guard lock(s.mu);
      for (auto& [ptr, weak] : s.open) {
        if (auto c = weak.lock()) open.push_back(std::move(c));
      }
    }
    for (auto& c : open) fn(*c);
  };
  each_open([](Connection& c) { c.Drain(); });
  {
    std::unique_lock lock(s.mu);
    s.all_closed.wait_for(lock, std::chrono::milliseconds(s.settings.shutdown_grace_ms),
                          [&] { return s.open.empty(); });
    if (!s.open.empty()) {
      LogWarn(std::to_string(s.open.size()) + " connections still open after [server] shutdown_grace (" +
              std::to_string(s.settings.shutdown_grace_ms) + "ms); closing them");
    }
  }
  each_open([](Connection& c) { c.ForceClose(); });
  s.api->Stop();
  s.health->Stop();
  for (auto& g : s.guards) g.reset();
  {
    std::unique_lock lock(s.mu);
    s.all_closed.wait_for(lock, std::chrono::seconds(2), [&] { return s.open.empty(); });
  }
  for (auto& loop : s.loops) loop->stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  s.app.events().AttachHub(nullptr);
  s.hub->Stop();
  // Destroy what lives on the loops while the accounting it reports to is still here.
  s.accept_pause.reset();
  s.acceptor.reset();
  s.guards.clear();
  s.loops.clear();
}

}  // namespace paddock
