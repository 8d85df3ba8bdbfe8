#include "http/router.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include "http/handlers.h"
#include "http/input.h"

namespace paddock {
namespace {

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

enum class Fit { kNo, kYes, kBadId };

// Whether `path` has the pattern's shape; a {capture} must hold an id. `bad_id` is the first
// capture that did not (with kBadId: the path is the route's but for that).
Fit MatchPattern(std::string_view pattern, std::string_view path, std::map<std::string, std::string>& params,
                 std::string& bad_id) {
  auto ps = Split(pattern);
  auto xs = Split(path);
  if (ps.size() != xs.size()) return Fit::kNo;
  std::map<std::string, std::string> captured;
  bad_id.clear();
  for (size_t i = 0; i < ps.size(); ++i) {
    if (ps[i].size() > 2 && ps[i].front() == '{' && ps[i].back() == '}') {
      if (xs[i].empty()) return Fit::kNo;
      std::string decoded;
      try {
        Poco::URI::decode(std::string(xs[i]), decoded);
      } catch (const Poco::Exception&) {
        decoded.clear();
      }
      if (!IsId(decoded)) {
        if (bad_id.empty()) bad_id = std::string(xs[i]);
        continue;
      }
      captured[std::string(ps[i].substr(1, ps[i].size() - 2))] = decoded;
    } else if (ps[i] != xs[i]) {
      return Fit::kNo;
    }
  }
  if (!bad_id.empty()) return Fit::kBadId;
  params = std::move(captured);
  return Fit::kYes;
}

}  // namespace

RouteMatch Router::Match(std::string_view method, std::string_view path) const {
  RouteMatch m;
  if (path.empty() || path.front() != '/') return m;
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  for (const Route& r : routes_) {
    std::map<std::string, std::string> params;
    std::string bad;
    const Fit fit = MatchPattern(r.pattern, path, params, bad);
    if (fit == Fit::kBadId && m.bad_id.empty()) m.bad_id = bad;
    if (fit != Fit::kYes) continue;
    if (method == r.method || (method == "HEAD" && std::string_view(r.method) == "GET")) {
      m.route = &r;
      m.params = std::move(params);
      return m;
    }
    m.allowed_methods.push_back(r.method);
  }
  return m;
}

std::optional<Role> RequiredRole(Access access, bool metrics_open) {
  switch (access) {
    case Access::kOpen:
      return std::nullopt;
    case Access::kRead:
      return Role::kViewer;
    case Access::kWrite:
      return Role::kMember;
    case Access::kAdmin:
      return Role::kAdmin;
    case Access::kOperator:
      return Role::kOperator;
    case Access::kMetrics:
      return metrics_open ? std::nullopt : std::optional<Role>(Role::kOperator);
  }
  return Role::kOperator;
}

const Router& ApiRouter() {
  using A = Access;
  using O = Owner;
  static const Router router({
      {"GET", "/healthz", A::kOpen, O::kNone, &handlers::Healthz, Lane::kHealth},
      {"GET", "/readyz", A::kOpen, O::kNone, &handlers::Readyz, Lane::kHealth},
      {"GET", "/metrics", A::kMetrics, O::kNone, &handlers::MetricsText, Lane::kHealth},
      {"GET", "/api/openapi.json", A::kRead, O::kNone, &handlers::OpenApi},
      {"GET", "/api/plugins", A::kRead, O::kNone, &handlers::ListPlugins},
      {"GET", "/api/me", A::kRead, O::kNone, &handlers::Me},
      {"POST", "/api/auth/login", A::kOpen, O::kNone, &handlers::Login},
      {"POST", "/api/auth/logout", A::kOpen, O::kNone, &handlers::Logout},
      {"POST", "/api/teams", A::kOperator, O::kNone, &handlers::CreateTeam},
      {"GET", "/api/teams", A::kRead, O::kNone, &handlers::ListTeams},
      {"GET", "/api/teams/{id}", A::kRead, O::kTeam, &handlers::GetTeam},
      {"PATCH", "/api/teams/{id}", A::kOperator, O::kTeam, &handlers::UpdateTeam},
      {"GET", "/api/teams/{id}/quotas", A::kAdmin, O::kTeam, &handlers::GetTeamQuotas},
      {"GET", "/api/secrets", A::kRead, O::kNone, &handlers::ListSecrets},
      {"PUT", "/api/secrets/{name}", A::kAdmin, O::kNone, &handlers::SetSecret},
      {"DELETE", "/api/secrets/{name}", A::kAdmin, O::kNone, &handlers::DeleteSecret},
      {"POST", "/api/keys", A::kAdmin, O::kNone, &handlers::CreateKey},
      {"GET", "/api/keys", A::kAdmin, O::kNone, &handlers::ListKeys},
      {"GET", "/api/keys/{id}", A::kAdmin, O::kKey, &handlers::GetKey},
      {"DELETE", "/api/keys/{id}", A::kAdmin, O::kKey, &handlers::RevokeKey},
      {"GET", "/api/audit", A::kAdmin, O::kNone, &handlers::ListAudit},
      {"POST", "/api/agents", A::kWrite, O::kNone, &handlers::CreateAgent},
      {"GET", "/api/agents", A::kRead, O::kNone, &handlers::ListAgents},
      {"GET", "/api/agents/{id}", A::kRead, O::kAgent, &handlers::GetAgent},
      {"PATCH", "/api/agents/{id}", A::kWrite, O::kAgent, &handlers::UpdateAgent},
      {"DELETE", "/api/agents/{id}", A::kWrite, O::kAgent, &handlers::DeleteAgent},
      {"POST", "/api/sessions", A::kWrite, O::kNone, &handlers::CreateSession},
      {"GET", "/api/sessions", A::kRead, O::kNone, &handlers::ListSessions},
      {"GET", "/api/sessions/{id}", A::kRead, O::kSession, &handlers::GetSession},
      {"DELETE", "/api/sessions/{id}", A::kWrite, O::kSession, &handlers::DeleteSession},
      {"POST", "/api/sessions/{id}/messages", A::kWrite, O::kSession, &handlers::SendMessage},
      {"GET", "/api/sessions/{id}/messages", A::kRead, O::kSession, &handlers::Transcript},
      {"GET", "/api/sessions/{id}/events", A::kRead, O::kSession, &handlers::ListEvents},
      {"GET", "/api/sessions/{id}/events/stream", A::kRead, O::kSession, &handlers::StreamEvents},
      {"GET", "/api/sessions/{id}/runs", A::kRead, O::kSession, &handlers::ListRuns},
      {"POST", "/api/sessions/{id}/runs/{run_id}/cancel", A::kWrite, O::kSession, &handlers::CancelRun},
      {"GET", "/api/sessions/{id}/sandbox", A::kRead, O::kSession, &handlers::GetSandbox},
      {"POST", "/api/sessions/{id}/sandbox/exec", A::kWrite, O::kSession, &handlers::ExecInSandbox},
      {"POST", "/api/sessions/{id}/restart", A::kWrite, O::kSession, &handlers::RestartSession},
      {"GET", "/api/sessions/{id}/snapshots", A::kRead, O::kSession, &handlers::ListSnapshots},
  });
  return router;
}

const Router& WorkerRouter() {
  static const Router router({
      {"GET", "/healthz", Access::kOpen, Owner::kNone, &handlers::Healthz, Lane::kHealth},
      {"GET", "/readyz", Access::kOpen, Owner::kNone, &handlers::Readyz, Lane::kHealth},
      {"GET", "/metrics", Access::kOpen, Owner::kNone, &handlers::MetricsText, Lane::kHealth},
  });
  return router;
}

}  // namespace paddock
