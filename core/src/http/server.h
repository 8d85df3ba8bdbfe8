// HttpServer: Poco's HTTP server with the API router, one error envelope for everything that
// goes wrong, and request metrics.
#pragma once

#include <memory>
#include <string>

#include "paddock/status.h"

namespace paddock {

class App;
class Router;

class HttpServer {
 public:
  // `router`: ApiRouter() for `serve`, WorkerRouter() for `worker`.
  HttpServer(App& app, const Router& router, std::string listen, int port, int max_connections,
             std::int64_t max_body_bytes);
  ~HttpServer();

  // Binds and starts accepting. kUnavailable when the address cannot be bound.
  Status Start();
  // The bound port (useful with port 0).
  int port() const;
  // Stops accepting and closes open connections.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace paddock
