// A real `paddock serve` on the test's store (the parameter: "sqlite" or "postgres") with two
// teams, alpha and beta, and a key of each asked-for role in each: what the tests that look at
// one team from the other's side start from.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <map>
#include <memory>
#include <string>

#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {

using Headers = std::map<std::string, std::string>;

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
