// HttpServer: the front door. Boost.Beast over Asio: a few event-loop threads accept, read whole
// requests under deadlines and write responses and event streams; handlers run on a bounded
// pool (and /healthz, /readyz, /metrics on their own lane). When full it answers 503 with
// Retry-After at once instead of queueing without end. docs/architecture.md, "Serving".
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "config/config.h"
#include "paddock/status.h"

namespace paddock {

class App;
class Connection;
class Router;

class HttpServer {
 public:
  // `router`: ApiRouter() for `serve`, WorkerRouter() for `worker`. `port` overrides
  // settings.port (the worker's port).
  HttpServer(App& app, const Router& router, const ServerSettings& settings, int port);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. kUnavailable when the address cannot be bound.
  Status Start();
  // The bound port (useful with port 0).
  int port() const;
  // Stops accepting, lets requests in flight finish and ends event streams (with a final
  // comment) within settings.shutdown_grace, then closes what is left.
  void Stop();

  struct Counts {
    int connections = 0;
    int streams = 0;
  };
  Counts counts() const;

 private:
  friend class Connection;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace paddock
