// A real `paddock serve` on the test's store (the parameter: "sqlite" or "postgres") with two
// teams, alpha and beta, and a key of each asked-for role in each: what the tests that look at
// one team from the other's side start from.
#pragma once

#include <Poco/Base64Decoder.h>
#include <Poco/JSON/Object.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {

using Headers = std::map<std::string, std::string>;

// {"field": value} as JSON text.
inline std::string Json(const std::string& field, const std::string& value) {
  Poco::JSON::Object o;
  o.set(field, value);
  std::ostringstream ss;
  o.stringify(ss);
  return ss.str();
}

inline std::string Unbase64(const std::string& text) {
  std::istringstream in(text);
  Poco::Base64Decoder decoder(in);
  std::ostringstream out;
  out << decoder.rdbuf();
  return out.str();
}

inline Headers Bearer(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }

class TwoTeams : public ::testing::TestWithParam<std::string> {
 protected:
  // Starts `o` (its store set from the parameter; failed authentications unlimited, as the
  // tests make many) and makes the teams and their keys.
  void StartTeams(ServerOptions o, std::initializer_list<const char*> roles) {
    if (GetParam() == "postgres") {
      schema_ = UniqueSchema();
      o.store_toml = PostgresStoreToml(schema_);
    }
    o.extra_toml = "[auth]\nfailed_per_minute = 0\n" + o.extra_toml;
    server_ = std::make_unique<ServerProcess>(o);
    ASSERT_OK(server_->Start());
    for (const char* team : {"alpha", "beta"}) {
      ASSERT_EQ(server_->Request("POST", "/api/teams", std::string("{\"id\":\"") + team + "\"}").status, 201);
      for (const char* role : roles) {
        auto r = server_->Request(
            "POST", "/api/keys",
            std::string("{\"name\":\"k\",\"role\":\"") + role + "\",\"team_id\":\"" + team + "\"}");
        ASSERT_EQ(r.status, 201) << r.body;
        keys_[std::string(team) + "." + role] = JsonField(r.body, "key");
      }
    }
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  // A request with the key of `who` ("alpha.admin").
  HttpResponse As(const std::string& who, const std::string& method, const std::string& path,
                  const std::string& body = "", const Headers& extra = {}) {
    Headers h = Bearer(keys_.at(who));
    h.insert(extra.begin(), extra.end());
    return server_->Request(method, path, body, "application/json", h);
  }
  void SetSecret(const std::string& team, const std::string& name, const std::string& value) {
    auto r = As(team + ".admin", "PUT", "/api/secrets/" + name, Json("value", value));
    ASSERT_EQ(r.status, 200) << r.body;
  }
  std::string Agent(const std::string& team, const std::string& fields) {
    auto r =
        As(team + ".member", "POST", "/api/agents", "{\"name\":\"a\",\"harness\":\"shell\"" + fields + "}");
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonField(r.body, "id");
  }
  std::string Session(const std::string& team, const std::string& agent) {
    auto r = As(team + ".member", "POST", "/api/sessions", "{\"agent_id\":\"" + agent + "\"}");
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonField(r.body, "id");
  }
  // The command's stdout, through the session's sandbox.
  std::string Exec(const std::string& team, const std::string& session, const std::string& command) {
    auto r =
        As(team + ".member", "POST", "/api/sessions/" + session + "/sandbox/exec", Json("command", command));
    EXPECT_EQ(r.status, 200) << r.body;
    return JsonField(r.body, "stdout");
  }
  // Runs `command` as the session's message and waits for the run to finish.
  std::vector<SseEvent> Run(const std::string& team, const std::string& session, const std::string& command) {
    auto r = As(team + ".member", "POST", "/api/sessions/" + session + "/messages", Json("content", command));
    EXPECT_EQ(r.status, 202) << r.body;
    const std::string run = JsonField(r.body, "run_id");
    return ReadStream(server_->port(), "/api/sessions/" + session + "/events/stream",
                      Bearer(keys_.at(team + ".member")), [&](const std::vector<SseEvent>& ev) {
                        for (const auto& e : ev) {
                          if (e.type == "run.finished" && JsonField(e.data, "run_id") == run) return true;
                        }
                        return false;
                      });
  }

  // The server's store, opened beside it (as another process of the install would).
  std::shared_ptr<SessionStore> Store() {
    Result<std::shared_ptr<SessionStore>> s = StoreBeside(*server_, schema_, dir_.path());
    EXPECT_OK(s);
    return s.ok() ? *s : nullptr;
  }

  TempDir dir_;
  std::string schema_;
  std::unique_ptr<ServerProcess> server_;
  std::map<std::string, std::string> keys_;  // "alpha.admin" -> key
};

}  // namespace paddock::testing
