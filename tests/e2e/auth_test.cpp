// Teams, keys and roles, from the side of whoever wants in: every route of the router's table
// is tried without a key, with malformed, unknown, expired and revoked keys, with another
// team's key on this team's resources, and with roles below the route's, on both stores. A
// route added to the table is tried the same way without anyone writing a test for it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "http/router.h"
#include "paddock/testing/assert.h"
#include "raw_http.h"
#include "testing.h"
#include "util/digest.h"

namespace paddock::testing {
namespace {

using Headers = std::map<std::string, std::string>;

Headers Bearer(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }
const Headers kNoKey = {{"Authorization", ""}};

// One install with two teams. alpha has an agent, a session with a finished run, and a key of
// every role; beta has an admin key.
class Tenancy : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ServerOptions o;
    if (GetParam() == "postgres") {
      schema_ = UniqueSchema();
      o.store_toml = PostgresStoreToml(schema_);
    }
    o.extra_toml = "[auth]\nfailed_per_minute = 0\n";
    server_ = std::make_unique<ServerProcess>(o);
    ASSERT_OK(server_->Start());
    for (const char* team : {"alpha", "beta"}) {
      auto r = server_->Request("POST", "/api/teams", std::string("{\"id\":\"") + team + "\"}");
      ASSERT_EQ(r.status, 201) << r.body;
    }
    for (const char* role : {"viewer", "member", "admin"}) {
      keys_[role] = MakeKey("alpha", role, &key_ids_[role]);
    }
    beta_admin_ = MakeKey("beta", "admin", nullptr);
    auto agent = server_->Request("POST", "/api/agents", R"({"name":"a","harness":"shell"})",
                                  "application/json", Bearer(keys_["member"]));
    ASSERT_EQ(agent.status, 201) << agent.body;
    agent_ = JsonField(agent.body, "id");
    ASSERT_EQ(JsonField(agent.body, "team_id"), "alpha");
    auto session = server_->Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent_ + "\"}",
                                    "application/json", Bearer(keys_["member"]));
    ASSERT_EQ(session.status, 201) << session.body;
    session_ = JsonField(session.body, "id");
    ASSERT_EQ(JsonField(session.body, "team_id"), "alpha");
    auto run = server_->Request("POST", "/api/sessions/" + session_ + "/messages", R"({"content":"true"})",
                                "application/json", Bearer(keys_["member"]));
    ASSERT_EQ(run.status, 202) << run.body;
    run_ = JsonField(run.body, "run_id");
    auto secret = server_->Request("PUT", "/api/secrets/ALPHA_TOKEN", R"({"value":"alpha-token-value-1"})",
                                   "application/json", Bearer(keys_["admin"]));
    ASSERT_EQ(secret.status, 200) << secret.body;
    ReadStream(
        server_->port(), "/api/sessions/" + session_ + "/events/stream", {},
        [](const std::vector<SseEvent>& ev) { return !ev.empty() && ev.back().type == "run.finished"; });
  }

  std::string MakeKey(const std::string& team, const std::string& role, std::string* id) {
    auto r = server_->Request(
        "POST", "/api/keys",
        "{\"name\":\"" + team + "-" + role + "\",\"role\":\"" + role + "\",\"team_id\":\"" + team + "\"}");
    EXPECT_EQ(r.status, 201) << r.body;
    if (id) *id = JsonField(r.body, "id");
    return JsonField(r.body, "key");
  }

  // The store the server uses, opened beside it (to plant what the API cannot make: a key
  // that has already expired).
  std::shared_ptr<SessionStore> Store() {
    Result<std::shared_ptr<SessionStore>> s = StoreBeside(*server_, schema_, dir_.path());
    EXPECT_OK(s);
    return s.ok() ? *s : nullptr;
  }

  // The route's path with its captures filled by alpha's resources, or by `missing` ids.
  std::string PathOf(const Route& r, bool missing = false) {
    std::string out;
    std::string pattern = r.pattern;
    for (size_t i = 0; i < pattern.size();) {
      if (pattern[i] != '{') {
        out += pattern[i++];
        continue;
      }
      size_t end = pattern.find('}', i);
      const std::string name = pattern.substr(i + 1, end - i - 1);
      i = end + 1;
      if (name == "run_id") {
        out += missing ? "run_missing" : run_;
        continue;
      }
      if (name == "name") {  // a secret's name, which is the caller's team's
        out += missing ? "NO_SUCH_SECRET" : "ALPHA_TOKEN";
        continue;
      }
      EXPECT_EQ(name, "id") << r.pattern << ": a capture this test does not know how to fill";
      switch (r.owner) {
        case Owner::kAgent:
          out += missing ? "agt_missing" : agent_;
          break;
        case Owner::kSession:
          out += missing ? "ses_missing" : session_;
          break;
        case Owner::kKey:
          out += missing ? "key_missing" : key_ids_["viewer"];
          break;
        case Owner::kTeam:
          out += missing ? "gamma" : "alpha";
          break;
        case Owner::kNone:
          ADD_FAILURE() << r.pattern << " captures {id} but names no owner: the server cannot check its team";
          out += "x";
      }
    }
    return out;
  }

  HttpResponse Call(const Route& r, const std::string& path, const Headers& headers) {
    if (std::string_view(r.pattern).ends_with("/stream")) {
      // A stream that is let through never ends: read its head for a moment and hang up.
      std::string raw = "GET " + path + " HTTP/1.1\r\nHost: t\r\n";
      for (const auto& [k, v] : WithKey(headers)) raw += k + ": " + v + "\r\n";
      std::string got = RawRequest(server_->port(), raw + "Connection: close\r\n\r\n", 2000);
      HttpResponse out;
      if (got.size() > 12) out.status = std::atoi(got.c_str() + 9);
      if (size_t head = got.find("\r\n\r\n"); head != std::string::npos) out.body = got.substr(head + 4);
      for (size_t at = got.find("\r\n"); at != std::string::npos && at < got.find("\r\n\r\n");) {
        size_t end = got.find("\r\n", at + 2);
        std::string line = got.substr(at + 2, end - at - 2);
        if (size_t colon = line.find(": "); colon != std::string::npos)
          out.headers[line.substr(0, colon)] = line.substr(colon + 2);
        at = end;
      }
      return out;
    }
    const bool body = std::string_view(r.method) != "GET" && std::string_view(r.method) != "DELETE";
    return server_->Request(r.method, path, body ? "{}" : "", "application/json", headers);
  }

  bool Keyed(const Route& r) { return RequiredRole(r.access, /*metrics_open=*/false).has_value(); }

  TempDir dir_;
  std::string schema_;
  std::unique_ptr<ServerProcess> server_;
  std::map<std::string, std::string> keys_;     // alpha's, by role
  std::map<std::string, std::string> key_ids_;  // their ids
  std::string beta_admin_;
  std::string agent_, session_, run_;
};

TEST_P(Tenancy, EveryRouteRefusesRequestsWithoutAWorkingKey) {
  // Keys that do not work, each for its own reason.
  auto revoked = MakeKey("alpha", "admin", nullptr);
  auto me = server_->Request("GET", "/api/me", "", "", Bearer(revoked));
  ASSERT_EQ(me.status, 200) << me.body;
  const std::string revoked_id = JsonField(me.body, "key_id");
  ASSERT_EQ(server_->Request("DELETE", "/api/keys/" + revoked_id).status, 200);
  auto store = Store();
  ASSERT_TRUE(store);
  ApiKey expired;
  expired.id = "key_expired";
  expired.team_id = "alpha";
  expired.name = "expired";
  expired.role = Role::kAdmin;
  const std::string expired_key = "pdk_expired-key-of-alpha-0123456789abcdefghij";
  expired.hash = Sha256Hex(expired_key);
  expired.prefix = expired_key.substr(0, 12);
  expired.created_at = NowMs() - 10000;
  expired.expires_at = NowMs() - 1000;
  ASSERT_OK(store->CreateApiKey(expired));
  const std::vector<std::pair<std::string, Headers>> bad = {
      {"no key", kNoKey},
      {"not a bearer", {{"Authorization", "Basic dXNlcjpwYXNz"}}},
      {"too short", Bearer("pdk_short")},
      {"not ascii", Bearer("pdk_" + std::string(40, '\xe9'))},
      {"too long", Bearer("pdk_" + std::string(300, 'a'))},
      {"unknown", Bearer("pdk_unknown-but-well-formed-0123456789abcdefghij")},
      {"unknown x-api-key", {{"x-api-key", "pdk_unknown-but-well-formed-0123456789abcdefghij"}}},
      {"expired", Bearer(expired_key)},
      {"revoked", Bearer(revoked)},
  };
  size_t keyed = 0;
  for (const Route& r : ApiRouter().routes()) {
    const std::string path = PathOf(r);
    if (!Keyed(r)) {
      // Open: health, and signing in and out (which answer about the request, not a key).
      const int status = Call(r, path, kNoKey).status;
      EXPECT_TRUE(status == 200 || status == 204 || status == 400 || status == 415)
          << r.method << " " << r.pattern << " is open: " << status;
      continue;
    }
    ++keyed;
    for (const auto& [why, headers] : bad) {
      auto got = Call(r, path, headers);
      EXPECT_EQ(got.status, 401) << r.method << " " << r.pattern << " with " << why << ": " << got.body;
      EXPECT_EQ(JsonField(got.body, "error.code"), "unauthenticated") << got.body;
      EXPECT_NE(got.headers["WWW-Authenticate"].find("Bearer"), std::string::npos) << r.pattern;
    }
  }
  EXPECT_GE(keyed, ApiRouter().routes().size() - 4);  // all but health and /api/auth/login, logout
  // The refusals changed nothing.
  EXPECT_EQ(server_->Request("GET", "/api/sessions/" + session_).status, 200);
  EXPECT_EQ(server_->Request("GET", "/api/agents/" + agent_).status, 200);
}

TEST_P(Tenancy, ABrowserSessionIsACookieThatWritesOnlyWithItsCsrfTokenAndEndsWithItsKey) {
  auto login = [&](const std::string& key, Headers extra = {}) {
    extra["Authorization"] = "";
    return server_->Request("POST", "/api/auth/login", "{\"key\":\"" + key + "\"}", "application/json",
                            extra);
  };
  auto r = login(keys_["member"]);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(JsonField(r.body, "role"), "member");
  EXPECT_EQ(JsonField(r.body, "team_id"), "alpha");
  const std::string csrf = JsonField(r.body, "csrf_token");
  EXPECT_EQ(csrf.size(), 48u) << r.body;
  const std::string set = r.headers["Set-Cookie"];
  for (const char* part :
       {"paddock_session=", "; Path=/", "; HttpOnly", "; SameSite=Strict", "; Max-Age=43200"})
    EXPECT_NE(set.find(part), std::string::npos) << part << " in " << set;
  EXPECT_EQ(set.find("Secure"), std::string::npos) << "plain HTTP: " << set;
  EXPECT_EQ(set.find(keys_["member"]), std::string::npos) << "the cookie holds the key";
  EXPECT_EQ(r.body.find(keys_["member"]), std::string::npos);
  const std::string cookie = set.substr(0, set.find(';'));
  auto with = [&](const std::string& c, const std::string& token = "") {
    Headers h = {{"Authorization", ""}, {"Cookie", "theme=dark; " + c}};
    if (!token.empty()) h["X-CSRF-Token"] = token;
    return h;
  };
  // Behind a TLS terminator the cookie is Secure.
  EXPECT_NE(login(keys_["member"], {{"X-Forwarded-Proto", "https"}}).headers["Set-Cookie"].find("; Secure"),
            std::string::npos);

  // It reads as its key does, and /api/me gives the page its token back.
  auto list = server_->Request("GET", "/api/sessions", "", "", with(cookie));
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_NE(list.body.find(session_), std::string::npos);
  auto me = server_->Request("GET", "/api/me", "", "", with(cookie));
  EXPECT_EQ(JsonField(me.body, "csrf_token"), csrf) << me.body;
  EXPECT_EQ(JsonField(server_->Request("GET", "/api/me", "", "", Bearer(keys_["member"])).body, "csrf_token"),
            "null");
  // A write needs the token: what a page of another origin can send with the cookie is refused.
  const std::string agent = R"({"name":"from a browser","harness":"shell"})";
  for (const std::string& token : {std::string(), std::string(48, '0'), csrf.substr(0, 47)}) {
    auto forged = server_->Request("POST", "/api/agents", agent, "application/json", with(cookie, token));
    EXPECT_EQ(forged.status, 403) << forged.body;
    EXPECT_EQ(JsonField(forged.body, "error.code"), "csrf") << forged.body;
  }
  auto made = server_->Request("POST", "/api/agents", agent, "application/json", with(cookie, csrf));
  EXPECT_EQ(made.status, 201) << made.body;
  // The role and the team are the key's.
  auto viewer = login(keys_["viewer"]);
  const std::string viewer_cookie =
      viewer.headers["Set-Cookie"].substr(0, viewer.headers["Set-Cookie"].find(';'));
  auto refused = server_->Request("POST", "/api/agents", agent, "application/json",
                                  with(viewer_cookie, JsonField(viewer.body, "csrf_token")));
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_EQ(JsonField(refused.body, "error.code"), "forbidden");
  auto beta = login(beta_admin_);
  const std::string beta_cookie = beta.headers["Set-Cookie"].substr(0, beta.headers["Set-Cookie"].find(';'));
  EXPECT_EQ(server_->Request("GET", "/api/sessions/" + session_, "", "", with(beta_cookie)).status, 404);
  EXPECT_EQ(server_->Request("GET", "/api/sessions", "", "", with(beta_cookie)).body.find(session_),
            std::string::npos);
  // Another's token does not write with this cookie.
  EXPECT_EQ(server_
                ->Request("POST", "/api/agents", agent, "application/json",
                          with(cookie, JsonField(beta.body, "csrf_token")))
                .status,
            403);
  // A cookie changed in any way, or made up, is no session.
  std::string altered = cookie;
  altered.back() = altered.back() == '0' ? '1' : '0';
  for (const std::string& bad : {altered, std::string("paddock_session=") + key_ids_["admin"] +
                                              ".9999999999.00." + std::string(48, '0')}) {
    auto got = server_->Request("GET", "/api/sessions", "", "", with(bad));
    EXPECT_EQ(got.status, 401) << bad << ": " << got.body;
    EXPECT_NE(JsonField(got.body, "error.message").find("sign in again"), std::string::npos) << got.body;
  }
  // Signing in with a key that does not work, or without one, says what is wrong.
  EXPECT_EQ(login("pdk_unknown-but-well-formed-0123456789abcdefghij").status, 401);
  auto empty = server_->Request("POST", "/api/auth/login", "{}", "application/json", kNoKey);
  EXPECT_EQ(empty.status, 400) << empty.body;
  EXPECT_NE(JsonField(empty.body, "error.message").find("'key'"), std::string::npos) << empty.body;
  // Signing out clears the cookie; revoking the key ends every session of it at once.
  auto out = server_->Request("POST", "/api/auth/logout", "", "", with(cookie));
  EXPECT_EQ(out.status, 204);
  EXPECT_NE(out.headers["Set-Cookie"].find("paddock_session=;"), std::string::npos)
      << out.headers["Set-Cookie"];
  EXPECT_NE(out.headers["Set-Cookie"].find("Max-Age=0"), std::string::npos);
  ASSERT_EQ(server_->Request("DELETE", "/api/keys/" + key_ids_["member"]).status, 200);
  auto after = server_->Request("GET", "/api/sessions", "", "", with(cookie));
  EXPECT_EQ(after.status, 401) << after.body;
  EXPECT_NE(JsonField(after.body, "error.message").find("revoked"), std::string::npos) << after.body;
}

TEST_P(Tenancy, AnotherTeamsIdsAnswerExactlyLikeIdsThatDoNotExist) {
  std::set<std::string> alpha_ids = {agent_, session_, run_, "ALPHA_TOKEN"};
  for (const auto& [role, id] : key_ids_) alpha_ids.insert(id);
  size_t owned = 0;
  for (const Route& r : ApiRouter().routes()) {
    if (!Keyed(r) || r.access == Access::kOperator || r.access == Access::kMetrics) continue;
    if (r.owner == Owner::kNone) {
      // Lists and the like: nothing of alpha's appears in what beta's admin is shown.
      if (std::string_view(r.method) != "GET") continue;
      auto got = Call(r, PathOf(r), Bearer(beta_admin_));
      EXPECT_EQ(got.status, 200) << r.pattern << ": " << got.body;
      for (const std::string& id : alpha_ids) {
        EXPECT_EQ(got.body.find(id), std::string::npos) << r.pattern << " shows beta alpha's " << id;
      }
      continue;
    }
    ++owned;
    auto theirs = Call(r, PathOf(r), Bearer(beta_admin_));
    auto missing = Call(r, PathOf(r, /*missing=*/true), Bearer(beta_admin_));
    EXPECT_EQ(theirs.status, 404) << r.method << " " << r.pattern << ": " << theirs.body;
    EXPECT_EQ(missing.status, 404) << r.method << " " << r.pattern << ": " << missing.body;
    // The same answer but for the id itself.
    std::string normalised = theirs.body;
    for (const auto& [from, to] :
         std::vector<std::pair<std::string, std::string>>{{agent_, "agt_missing"},
                                                          {session_, "ses_missing"},
                                                          {key_ids_["viewer"], "key_missing"},
                                                          {"'alpha'", "'gamma'"}}) {
      for (size_t at; (at = normalised.find(from)) != std::string::npos;)
        normalised.replace(at, from.size(), to);
    }
    EXPECT_EQ(normalised, missing.body) << r.method << " " << r.pattern;
  }
  EXPECT_GT(owned, 15u);
  // Creating a session on another team's agent is the same as on no agent at all.
  auto other = server_->Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent_ + "\"}",
                                "application/json", Bearer(beta_admin_));
  EXPECT_EQ(other.status, 404) << other.body;
  EXPECT_EQ(JsonField(other.body, "error.message"), "agent '" + agent_ + "' does not exist");
  // A secret's name is looked up in the caller's team: beta's admin deletes no alpha secret and
  // sees none, and ?team_id= is for operators.
  auto secret = server_->Request("DELETE", "/api/secrets/ALPHA_TOKEN", "", "", Bearer(beta_admin_));
  EXPECT_EQ(secret.status, 404) << secret.body;
  EXPECT_EQ(server_->Request("GET", "/api/secrets?team_id=alpha", "", "", Bearer(beta_admin_)).status, 404);
  auto theirs = server_->Request("GET", "/api/secrets?team_id=alpha");
  EXPECT_EQ(JsonField(theirs.body, "secrets.0.name"), "ALPHA_TOKEN") << theirs.body;
  // And beta's admin cannot make keys for alpha.
  auto key = server_->Request("POST", "/api/keys", R"({"name":"x","role":"admin","team_id":"alpha"})",
                              "application/json", Bearer(beta_admin_));
  EXPECT_EQ(key.status, 404) << key.body;
  // Nothing of alpha's changed.
  auto session = server_->Request("GET", "/api/sessions/" + session_);
  EXPECT_EQ(JsonField(session.body, "status"), "ready") << session.body;
  auto keys = server_->Request("GET", "/api/keys?team_id=alpha");
  EXPECT_EQ(keys.body.find("revoked_at\":\"20"), std::string::npos) << keys.body;
}

TEST_P(Tenancy, ARoleBelowTheRoutesIsRefusedWith403) {
  const std::vector<std::string> roles = {"viewer", "member", "admin"};
  size_t refused = 0;
  for (const Route& r : ApiRouter().routes()) {
    std::optional<Role> need = RequiredRole(r.access, false);
    if (!need) continue;
    for (size_t i = 0; i < roles.size(); ++i) {
      const Role role = *ParseRole(roles[i]);
      const bool allowed = static_cast<int>(role) >= static_cast<int>(*need);
      if (IsWrite(r)) {
        EXPECT_FALSE(role == Role::kViewer && allowed) << r.pattern << " lets a viewer write";
      }
      if (allowed) {
        // Reads a role may make answer; writes are not made here (they would change what the
        // other routes are tried on), and a stream would not end.
        if (IsWrite(r) || std::string(r.pattern).ends_with("/stream")) continue;
        auto got = Call(r, PathOf(r), Bearer(keys_[roles[i]]));
        EXPECT_EQ(got.status, 200) << roles[i] << " " << r.method << " " << r.pattern << ": " << got.body;
        continue;
      }
      ++refused;
      auto got = Call(r, PathOf(r), Bearer(keys_[roles[i]]));
      EXPECT_EQ(got.status, 403) << roles[i] << " " << r.method << " " << r.pattern << ": " << got.body;
      EXPECT_EQ(JsonField(got.body, "error.code"), "forbidden");
      EXPECT_NE(JsonField(got.body, "error.message").find(std::string(ToString(*need))), std::string::npos)
          << got.body;
    }
  }
  EXPECT_GT(refused, 20u);
  // A viewer reads alpha's session, and cannot send it a message.
  EXPECT_EQ(server_->Request("GET", "/api/sessions/" + session_, "", "", Bearer(keys_["viewer"])).status,
            200);
  auto runs = server_->Request("GET", "/api/sessions/" + session_ + "/runs");
  EXPECT_EQ(runs.body.find("\"id\"", runs.body.find(run_) + run_.size()), std::string::npos)
      << "a refused write made a run: " << runs.body;
  // An admin makes keys of its team up to admin, never an operator's.
  auto op = server_->Request("POST", "/api/keys", R"({"name":"x","role":"operator"})", "application/json",
                             Bearer(keys_["admin"]));
  EXPECT_EQ(op.status, 403) << op.body;
  auto member = server_->Request("POST", "/api/keys", R"({"name":"new member","role":"member"})",
                                 "application/json", Bearer(keys_["admin"]));
  ASSERT_EQ(member.status, 201) << member.body;
  EXPECT_EQ(JsonField(member.body, "team_id"), "alpha");
  EXPECT_EQ(server_->Request("GET", "/api/me", "", "", Bearer(JsonField(member.body, "key"))).status, 200);
}

TEST_P(Tenancy, AKeyIsShownOnceStoredAsAHashAndRevokedAtOnce) {
  auto made =
      server_->Request("POST", "/api/keys", R"({"name":"ci","role":"member","expires_in_seconds":3600})",
                       "application/json", Bearer(keys_["admin"]));
  ASSERT_EQ(made.status, 201) << made.body;
  const std::string key = JsonField(made.body, "key");
  const std::string id = JsonField(made.body, "id");
  EXPECT_EQ(key.rfind("pdk_", 0), 0u);
  EXPECT_GE(key.size(), 4u + 43u);  // 32 random bytes, base64url
  EXPECT_EQ(JsonField(made.body, "prefix"), key.substr(0, 12));
  EXPECT_NE(JsonField(made.body, "expires_at"), "");
  // Never again: not in its record, not in the list.
  auto record = server_->Request("GET", "/api/keys/" + id, "", "", Bearer(keys_["admin"]));
  ASSERT_EQ(record.status, 200);
  EXPECT_EQ(record.body.find(key), std::string::npos);
  EXPECT_EQ(JsonField(record.body, "key"), "");
  auto list = server_->Request("GET", "/api/keys", "", "", Bearer(keys_["admin"]));
  EXPECT_EQ(list.body.find(key), std::string::npos);
  EXPECT_NE(list.body.find(id), std::string::npos);
  // The store has its hash only.
  auto store = Store();
  ASSERT_TRUE(store);
  Result<ApiKey> stored = store->GetApiKey(id);
  ASSERT_OK(stored);
  EXPECT_EQ(stored->hash, Sha256Hex(key));
  EXPECT_EQ(stored->hash.find(key.substr(4)), std::string::npos);
  // x-api-key works as Bearer does; after the revocation neither does, on the next request.
  EXPECT_EQ(server_->Request("GET", "/api/me", "", "", {{"x-api-key", key}}).status, 200);
  EXPECT_EQ(server_->Request("GET", "/api/me", "", "", Bearer(key)).status, 200);
  auto revoked = server_->Request("DELETE", "/api/keys/" + id, "", "", Bearer(keys_["admin"]));
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_NE(JsonField(revoked.body, "revoked_at"), "");
  auto after = server_->Request("GET", "/api/me", "", "", Bearer(key));
  EXPECT_EQ(after.status, 401);
  EXPECT_NE(JsonField(after.body, "error.message").find("revoked"), std::string::npos) << after.body;
  // Revoking again keeps the first time.
  auto again = server_->Request("DELETE", "/api/keys/" + id, "", "", Bearer(keys_["admin"]));
  EXPECT_EQ(JsonField(again.body, "revoked_at"), JsonField(revoked.body, "revoked_at"));
  // A member may not revoke the admin's key, nor see keys.
  EXPECT_EQ(
      server_->Request("DELETE", "/api/keys/" + key_ids_["admin"], "", "", Bearer(keys_["member"])).status,
      403);
}

TEST_P(Tenancy, TheAuditLogSaysWhoDidWhatFromWhereAndKeepsTeamsApart) {
  EXPECT_EQ(
      server_->Request("GET", "/api/me", "", "", Bearer("pdk_a-guess-that-is-well-formed-0123456789abcdef"))
          .status,
      401);
  EXPECT_EQ(server_
                ->Request("POST", "/api/agents", R"({"name":"v","harness":"shell"})", "application/json",
                          Bearer(keys_["viewer"]))
                .status,
            403);
  Headers member = Bearer(keys_["member"]);
  member["X-Request-Id"] = "req-rename-1";
  auto renamed =
      server_->Request("PATCH", "/api/agents/" + agent_, R"({"name":"renamed"})", "application/json", member);
  ASSERT_EQ(renamed.status, 200) << renamed.body;
  EXPECT_EQ(renamed.headers["X-Request-Id"], "req-rename-1");
  EXPECT_EQ(server_->Request("GET", "/api/me").headers["X-Request-Id"].rfind("req_", 0), 0u);  // one is made

  auto alpha = server_->Request("GET", "/api/audit?limit=1000", "", "", Bearer(keys_["admin"]));
  ASSERT_EQ(alpha.status, 200) << alpha.body;
  auto entry = [&](const std::string& body, const std::string& action, const std::string& field,
                   const std::string& value) {
    for (int i = 0;; ++i) {
      const std::string at = "entries." + std::to_string(i);
      if (JsonField(body, at + ".action").empty()) return std::string();
      if (JsonField(body, at + ".action") == action && JsonField(body, at + "." + field) == value) return at;
    }
  };
  const std::string created = entry(alpha.body, "POST /api/agents", "resource", agent_);
  ASSERT_NE(created, "") << alpha.body;
  EXPECT_EQ(JsonField(alpha.body, created + ".team_id"), "alpha");
  EXPECT_EQ(JsonField(alpha.body, created + ".key_id"), key_ids_["member"]);
  EXPECT_EQ(JsonField(alpha.body, created + ".source"), "127.0.0.1");
  EXPECT_EQ(JsonField(alpha.body, created + ".outcome"), "ok");
  EXPECT_EQ(JsonField(alpha.body, created + ".status"), "201");
  const std::string patched = entry(alpha.body, "PATCH /api/agents/{id}", "request_id", "req-rename-1");
  ASSERT_NE(patched, "") << alpha.body;
  EXPECT_EQ(JsonField(alpha.body, patched + ".resource"), agent_);
  const std::string denied = entry(alpha.body, "POST /api/agents", "outcome", "denied");
  ASSERT_NE(denied, "") << alpha.body;
  EXPECT_EQ(JsonField(alpha.body, denied + ".key_id"), key_ids_["viewer"]);
  EXPECT_EQ(JsonField(alpha.body, denied + ".status"), "403");
  EXPECT_NE(entry(alpha.body, "key.new_address", "key_id", key_ids_["member"]), "") << alpha.body;
  EXPECT_NE(entry(alpha.body, "POST /api/sessions/{id}/messages", "resource", session_), "") << alpha.body;
  // A refused key belongs to no team: only operators see it, and never the key itself.
  EXPECT_EQ(entry(alpha.body, "auth.failed", "outcome", "denied"), "");
  auto all = server_->Request("GET", "/api/audit?limit=1000");
  const std::string failed = entry(all.body, "auth.failed", "outcome", "denied");
  ASSERT_NE(failed, "") << all.body;
  EXPECT_EQ(all.body.find("pdk_a-guess"), std::string::npos);
  EXPECT_NE(JsonField(all.body, failed + ".detail").find("unknown"), std::string::npos);
  // Beta's admin sees beta's only; a member sees none; teams are filtered for operators.
  auto beta = server_->Request("GET", "/api/audit?limit=1000", "", "", Bearer(beta_admin_));
  ASSERT_EQ(beta.status, 200);
  for (const std::string& id : {agent_, session_, key_ids_["member"], key_ids_["viewer"]})
    EXPECT_EQ(beta.body.find(id), std::string::npos) << id << " in " << beta.body;
  EXPECT_EQ(server_->Request("GET", "/api/audit?team_id=alpha", "", "", Bearer(beta_admin_)).status, 404);
  EXPECT_EQ(server_->Request("GET", "/api/audit", "", "", Bearer(keys_["member"])).status, 403);
  auto only_beta = server_->Request("GET", "/api/audit?team_id=beta&limit=1000");
  EXPECT_NE(entry(only_beta.body, "POST /api/keys", "team_id", "beta"), "") << only_beta.body;
  EXPECT_EQ(entry(only_beta.body, "POST /api/keys", "team_id", "alpha"), "") << only_beta.body;
  // Paged newest first without gaps.
  auto first = server_->Request("GET", "/api/audit?limit=2", "", "", Bearer(keys_["admin"]));
  const std::string cursor = JsonField(first.body, "next_cursor");
  ASSERT_NE(cursor, "");
  auto second =
      server_->Request("GET", "/api/audit?limit=2&cursor=" + cursor, "", "", Bearer(keys_["admin"]));
  EXPECT_LT(std::stoll(JsonField(second.body, "entries.0.id")),
            std::stoll(JsonField(first.body, "entries.1.id")));
}

INSTANTIATE_TEST_SUITE_P(Stores, Tenancy, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// ---- several processes -----------------------------------------------------------------------

// Two API servers on one PostgreSQL, each trusting what it looked up for an hour: a key revoked
// on one is refused by the other as soon as the notification arrives, not when its cache says.
TEST(Revocation, ReachesEveryProcessAtOnceNotWhenItsCacheRunsOut) {
  const std::string schema = UniqueSchema();
  auto options = [&] {
    ServerOptions o;
    o.args = {"serve", "--no-worker"};
    o.store_toml = PostgresStoreToml(schema);
    o.extra_toml = "[auth]\ncache_ttl = \"1h\"\n";
    return o;
  };
  ServerProcess a(options()), b(options());
  ASSERT_OK(a.Start());
  ASSERT_OK(b.Start());
  auto made = a.Request("POST", "/api/keys", R"({"name":"roaming","role":"viewer"})");
  ASSERT_EQ(made.status, 201) << made.body;
  const Headers key = Bearer(JsonField(made.body, "key"));
  ASSERT_EQ(b.Request("GET", "/api/me", "", "", key).status, 200);  // b has it cached now
  ASSERT_EQ(a.Request("DELETE", "/api/keys/" + JsonField(made.body, "id")).status, 200);
  EXPECT_EQ(a.Request("GET", "/api/me", "", "", key).status, 401);
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((status = b.Request("GET", "/api/me", "", "", key).status) == 200 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(status, 401) << "the other process still honours a revoked key";
}

// ---- one address guessing ------------------------------------------------------------------

TEST(FailedAuth, AnAddressThatKeepsFailingIsToldToWaitAndOthersAreNot) {
  ServerOptions o;
  o.extra_toml = "[auth]\nfailed_per_minute = 5\n";
  ServerProcess server(o);
  ASSERT_OK(server.Start());
  const Headers guess = Bearer("pdk_a-guess-that-is-well-formed-0123456789abcdef");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(server.Request("GET", "/api/sessions", "", "", guess).status, 401);
  auto limited = server.Request("GET", "/api/sessions", "", "", guess);
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_GE(std::stoi(limited.headers["Retry-After"]), 1);
  EXPECT_NE(JsonField(limited.body, "error.message").find("failed_per_minute"), std::string::npos);
  // While it waits, the address learns nothing, not even whether a key is right.
  EXPECT_EQ(server.Request("GET", "/api/sessions").status, 429);
  // Requests without any key are no guesses and do not count; health stays open.
  EXPECT_EQ(server.Request("GET", "/healthz", "", "", kNoKey).status, 200);
  // Another address is not held back.
  std::string other =
      RawRequest(server.port(),
                 "GET /api/sessions HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH "Connection: close\r\n\r\n",
                 5000, "127.0.0.2");
  EXPECT_EQ(other.rfind("HTTP/1.1 200", 0), 0u) << other.substr(0, 200);
}

// ---- the first key -------------------------------------------------------------------------

TEST(FirstKey, AFreshInstallMakesAnOperatorKeyOnlyItsUserCanRead) {
  ServerOptions o;
  o.env = {"PADDOCK_ADMIN_KEY="};  // none given
  ServerProcess server(o);
  ASSERT_OK(server.Start());
  const std::string path = server.data_dir() + "/admin.key";
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0) << server.log();
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string key;
  std::getline(std::ifstream(path), key);
  auto me = server.Request("GET", "/api/me", "", "", Bearer(key));
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(JsonField(me.body, "role"), "operator");
  EXPECT_EQ(JsonField(me.body, "team_id"), "default");
  EXPECT_EQ(server.log().find(key), std::string::npos) << "the key is in the log";
  // A restart keeps it and makes no other.
  EXPECT_EQ(server.Stop(), 0);
  ASSERT_OK(server.Start());
  std::string again;
  std::getline(std::ifstream(path), again);
  EXPECT_EQ(again, key);
  EXPECT_EQ(server.Request("GET", "/api/me", "", "", Bearer(key)).status, 200);
  auto keys = server.Request("GET", "/api/keys", "", "", Bearer(key));
  EXPECT_EQ(JsonField(keys.body, "keys.1.id"), "") << keys.body;
}

TEST(FirstKey, AnotherKeyInTheEnvironmentRotatesTheFirstOne) {
  ServerOptions o;
  o.env = {"PADDOCK_ADMIN_KEY=pdk_first-operator-key-0123456789abcdefghijklm"};
  ServerProcess server(o);
  ASSERT_OK(server.Start());
  const Headers first = Bearer("pdk_first-operator-key-0123456789abcdefghijklm");
  EXPECT_EQ(server.Request("GET", "/api/me", "", "", first).status, 200);
  // `paddock admin create-key` beside the running server: a key for a team's admin.
  auto [code, out] = RunCommand({PaddockBinary(), "admin", "create-key", "--name", "ops", "--role", "admin",
                                 "--config", server.config_path()});
  ASSERT_EQ(code, 0) << out;
  const std::string made = out.substr(out.rfind("pdk_"), 47);
  auto me = server.Request("GET", "/api/me", "", "", Bearer(made));
  EXPECT_EQ(me.status, 200) << me.body << "\n" << out;
  EXPECT_EQ(JsonField(me.body, "role"), "admin");
  // Restarted with another key in the variable: the new one works, the old one is revoked, and
  // the keys made meanwhile stay.
  EXPECT_EQ(server.Stop(), 0);
  server.SetEnv({"PADDOCK_ADMIN_KEY=pdk_second-operator-key-0123456789abcdefghijkl"});
  ASSERT_OK(server.Start());
  EXPECT_EQ(server.Request("GET", "/api/me", "", "", Bearer("pdk_second-operator-key-0123456789abcdefghijkl"))
                .status,
            200);
  auto old = server.Request("GET", "/api/me", "", "", first);
  EXPECT_EQ(old.status, 401);
  EXPECT_NE(JsonField(old.body, "error.message").find("revoked"), std::string::npos) << old.body;
  EXPECT_EQ(server.Request("GET", "/api/me", "", "", Bearer(made)).status, 200);
  // A key given that is not one is refused at start, naming where it came from.
  EXPECT_EQ(server.Stop(), 0);
  server.SetEnv({"PADDOCK_ADMIN_KEY=short"});
  Status refused = server.Start();
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("PADDOCK_ADMIN_KEY"), std::string::npos) << refused.message();
}

}  // namespace
}  // namespace paddock::testing
