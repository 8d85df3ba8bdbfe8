// /api/auth: a browser signs in with an API key and gets a session cookie (the dashboard).
#include "http/exchange.h"
#include "http/handlers.h"
#include "http/input.h"
#include "services/app.h"
#include "services/teams/audit_log.h"
#include "services/teams/authenticator.h"
#include "services/teams/browser_sessions.h"
#include "services/teams/failed_auth.h"

namespace paddock::handlers {
namespace {

// Secure when the browser reached us over TLS: a terminator in front says so.
std::string CookieAttributes(Exchange& x, std::int64_t max_age_s) {
  const std::string* proto = x.request.Header("X-Forwarded-Proto");
  return "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age_s) +
         (proto && *proto == "https" ? "; Secure" : "");
}

}  // namespace

void Login(Exchange& x) {
  if (Status s = x.CheckQuery({}); !s.ok()) return x.SendError(s);
  App& app = x.app;
  if (const std::int64_t wait = app.failed_auth().RetryAfter(x.request.client); wait > 0) {
    x.response.Set("Retry-After", std::to_string(wait));
    return x.SendError(
        429, "rate_limited",
        "too many failed authentications from this address; retry in " + std::to_string(wait) + " s");
  }
  auto body = x.JsonBody();
  if (!body) return;
  if (Status s = CheckFields(*body, {"key"}); !s.ok()) return x.SendError(s);
  Result<std::optional<std::string>> key = StringField(*body, "key", 256);
  if (!key.ok()) return x.SendError(key.status());
  if (!key->has_value()) return x.SendError(Status::InvalidArgument("field 'key' is required: an API key"));
  AuthOutcome auth = app.auth().Check(**key);
  if (auth.failure == AuthFailure::kStoreDown) {
    x.response.Set("Retry-After", "1");
    return x.SendError(503, "unavailable", auth.message);
  }
  AuditEvent e;
  e.source = x.request.client;
  e.request_id = x.request_id;
  if (auth.failure != AuthFailure::kNone) {
    app.failed_auth().Failed(x.request.client);
    e.action = "auth.failed";
    e.status = 401;
    e.outcome = "denied";
    e.detail = "sign-in with a key that does not work";  // never the key: it may be one with a typo
    app.audit().Record(std::move(e));
    return x.SendError(401, "unauthenticated", auth.message);
  }
  const Principal& p = auth.principal;
  BrowserSession session = app.browser_sessions().Issue(p.key_id);
  e.team_id = p.team_id;
  e.key_id = p.key_id;
  e.action = "auth.login";
  e.status = 200;
  e.outcome = "ok";
  app.audit().Record(std::move(e));
  x.response.Set("Set-Cookie", std::string(kSessionCookie) + "=" + session.cookie +
                                   CookieAttributes(x, app.browser_sessions().ttl_s()));
  x.response.Set("Cache-Control", "no-store");
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("key_id", p.key_id);
  o->set("key_name", p.key_name);
  o->set("team_id", p.team_id);
  o->set("role", std::string(ToString(p.role)));
  o->set("csrf_token", session.csrf_token);
  o->set("expires_at", session.expires_s * 1000);
  x.SendJson(200, o);
}

void Logout(Exchange& x) {
  if (Status s = x.CheckQuery({}); !s.ok()) return x.SendError(s);
  x.response.Set("Set-Cookie", std::string(kSessionCookie) + "=" + CookieAttributes(x, 0));
  x.response.Set("Cache-Control", "no-store");
  x.SendEmpty(204);
}

}  // namespace paddock::handlers
