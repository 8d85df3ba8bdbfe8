// Router: the one table that maps method + path pattern to a handler. Tells "no such path"
// (404) from "path exists, method does not" (405).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace paddock {

class Exchange;
using Handler = void (*)(Exchange&);

// Which threads run a route's handler: the bounded API pool, or the health lane that keeps
// answering (its own thread, its own connection reserve) when the API pool is full.
enum class Lane { kApi, kHealth };

struct Route {
  const char* method;
  const char* pattern;  // "/api/sessions/{id}": segments in braces capture
  Handler handler;
  Lane lane = Lane::kApi;
};

// A {capture} holds an id (IsId, http/input.h), or the path matches no route.
struct RouteMatch {
  const Route* route = nullptr;  // set on a full match
  std::map<std::string, std::string> params;
  std::vector<std::string> allowed_methods;  // non-empty when only the path matched
  std::string bad_id;                        // a route's path but for this segment, which is no id (as sent)
};

class Router {
 public:
  explicit Router(std::vector<Route> routes) : routes_(std::move(routes)) {}
  // `path` without the query string.
  RouteMatch Match(std::string_view method, std::string_view path) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// Every route of the API.
const Router& ApiRouter();
// What `paddock worker` serves: health, readiness and metrics.
const Router& WorkerRouter();

}  // namespace paddock
