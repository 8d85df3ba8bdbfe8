// Router: the one table that maps method + path pattern to a handler. Tells "no such path"
// (404) from "path exists, method does not" (405).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "services/teams/team_service.h"

namespace paddock {

class Exchange;
using Handler = void (*)(Exchange&);

// Which threads run a route's handler: the bounded API pool, or the health lane that keeps
// answering (its own thread, its own connection reserve) when the API pool is full.
enum class Lane { kApi, kHealth };

// Who may call a route. Every route but kOpen needs a valid key (401 without one); the role
// must be at least the one named (403 otherwise). kMetrics is kOpen or kOperator by [auth]
// metrics.
enum class Access { kOpen, kRead, kWrite, kAdmin, kOperator, kMetrics };

struct Route {
  const char* method;
  const char* pattern;  // "/api/sessions/{id}": segments in braces capture
  Access access;
  // What {id} names: the server checks that the caller's team sees it before the handler runs
  // (404 otherwise, as for an id that does not exist).
  Owner owner;
  Handler handler;
  Lane lane = Lane::kApi;
};

// The least role a route needs (kViewer for kRead, ...); nullopt for kOpen.
std::optional<Role> RequiredRole(Access access, bool metrics_open);
// Whether the route changes something (a viewer may not call it).
inline bool IsWrite(const Route& r) { return std::string_view(r.method) != "GET"; }

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
