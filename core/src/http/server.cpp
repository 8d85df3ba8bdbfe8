#include "http/server.h"

#include <Poco/JSON/Array.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>

#include <chrono>

#include "http/exchange.h"
#include "http/router.h"
#include "metrics/metrics.h"
#include "services/app.h"
#include "util/log.h"

namespace paddock {
namespace {

class Dispatcher final : public Poco::Net::HTTPRequestHandler {
 public:
  Dispatcher(App& app, const Router& router, std::int64_t max_body_bytes)
      : app_(app), router_(router), max_body_bytes_(max_body_bytes) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    auto started = std::chrono::steady_clock::now();
    // Parse the URI once: the path picks the route, the query goes to the handler.
    std::string path;
    Result<std::vector<std::pair<std::string, std::string>>> query = Status::InvalidArgument("malformed URI");
    try {
      Poco::URI uri(request.getURI());
      path = uri.getPath();
      query = uri.getQueryParameters();
    } catch (const Poco::Exception& e) {
      query = Status::InvalidArgument("malformed query string: " + e.message());
    }
    RouteMatch match = router_.Match(request.getMethod(), path);
    std::string route = match.route ? match.route->pattern : "unmatched";
    Exchange x(request, response, app_, std::move(match.params), std::move(query), max_body_bytes_);
    try {
      if (match.route) {
        match.route->handler(x);
      } else if (!match.allowed_methods.empty()) {
        std::string allow;
        Poco::JSON::Array::Ptr list = new Poco::JSON::Array();
        for (const auto& m : match.allowed_methods) {
          allow += (allow.empty() ? "" : ", ") + m;
          list->add(m);
        }
        Poco::JSON::Object::Ptr details = new Poco::JSON::Object();
        details->set("allowed", list);
        response.set("Allow", allow);
        x.SendError(405, "method_not_allowed",
                    "method " + request.getMethod() + " is not allowed on " + path + "; allowed: " + allow,
                    details);
      } else {
        x.SendError(404, "not_found",
                    "no route for " + request.getMethod() + " " + (path.empty() ? request.getURI() : path));
      }
    } catch (const std::exception& e) {
      LogError("unhandled error in " + request.getMethod() + " " + route + ": " + e.what());
      if (!x.sent() && !response.sent()) {
        try {
          x.SendError(500, "internal", "internal error; see the server log");
        } catch (...) {
        }
      }
    } catch (...) {
      LogError("unhandled non-standard exception in " + request.getMethod() + " " + route);
    }
    if (!x.sent() && !response.sent()) {
      try {
        x.SendError(500, "internal", "handler produced no response");
      } catch (...) {
      }
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const int status = x.status() ? x.status() : 500;
    app_.metrics().ObserveHttp(route, request.getMethod(), status, seconds);
    LogDebug(request.getMethod() + " " + path + " " + std::to_string(status) + " " +
             std::to_string(static_cast<int>(seconds * 1000)) + "ms " + request.clientAddress().toString());
  }

 private:
  App& app_;
  const Router& router_;
  std::int64_t max_body_bytes_;
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Factory(App& app, const Router& router, std::int64_t max_body_bytes)
      : app_(app), router_(router), max_body_bytes_(max_body_bytes) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new Dispatcher(app_, router_, max_body_bytes_);
  }

 private:
  App& app_;
  const Router& router_;
  std::int64_t max_body_bytes_;
};

}  // namespace

struct HttpServer::Impl {
  App& app;
  const Router& router;
  std::string listen;
  int port;
  int max_connections;
  std::int64_t max_body_bytes;
  std::unique_ptr<Poco::ThreadPool> pool;
  std::unique_ptr<Poco::Net::ServerSocket> socket;
  std::unique_ptr<Poco::Net::HTTPServer> server;
};

HttpServer::HttpServer(App& app, const Router& router, std::string listen, int port, int max_connections,
                       std::int64_t max_body_bytes)
    : impl_(new Impl{app, router, std::move(listen), port, max_connections, max_body_bytes, nullptr, nullptr,
                     nullptr}) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  try {
    impl_->socket = std::make_unique<Poco::Net::ServerSocket>();
    // SO_REUSEADDR (a restart binds past TIME_WAIT) but not SO_REUSEPORT: no other socket may
    // share the port, so connections can never be spread over a listener that is not ours.
    impl_->socket->bind(Poco::Net::SocketAddress(impl_->listen, static_cast<Poco::UInt16>(impl_->port)), true,
                        false);
    impl_->socket->listen(256);
    auto params = new Poco::Net::HTTPServerParams();
    params->setMaxThreads(impl_->max_connections);
    params->setMaxQueued(256);
    params->setKeepAlive(true);
    params->setTimeout(Poco::Timespan(30, 0));
    params->setServerName("paddock");
    impl_->pool = std::make_unique<Poco::ThreadPool>(2, impl_->max_connections + 1);
    impl_->server = std::make_unique<Poco::Net::HTTPServer>(
        new Factory(impl_->app, impl_->router, impl_->max_body_bytes), *impl_->pool, *impl_->socket, params);
    impl_->server->start();
  } catch (const Poco::Exception& e) {
    return Status::Unavailable("cannot listen on " + impl_->listen + ":" + std::to_string(impl_->port) +
                               ": " + e.displayText());
  }
  return Status::Ok();
}

int HttpServer::port() const { return impl_->socket ? impl_->socket->address().port() : 0; }

void HttpServer::Stop() {
  if (impl_->server) {
    impl_->server->stopAll(true);
    impl_->server.reset();
  }
  if (impl_->pool) {
    impl_->pool->joinAll();
    impl_->pool.reset();
  }
}

}  // namespace paddock
