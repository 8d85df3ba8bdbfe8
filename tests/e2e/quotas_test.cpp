// Team quotas from the side of the team that wants more than it is given, and of the team next
// to it that must not notice: a new session or message past a quota is 429 with Retry-After and
// the quota's name, writes nothing, and leaves other teams alone; usage is the team admins' to
// see and in /metrics by team. A real `paddock serve` with real sandboxes, on both stores; the
// day's spend comes from a worker writing usage through the store as every worker does.
#include <gtest/gtest.h>

#include <thread>

#include "paddock/testing/assert.h"
#include "testing.h"
#include "two_teams.h"

namespace paddock::testing {
namespace {

class Quotas : public TwoTeams {
 protected:
  void Start(bool worker) {
    ServerOptions o;
    if (!worker) o.args = {"serve", "--no-worker"};
    o.extra_toml = "[profiles.default]\nwarm = 0\n";
    StartTeams(o, {"member", "admin"});
    for (const char* team : {"alpha", "beta"}) {
      auto agent =
          As(std::string(team) + ".member", "POST", "/api/agents", R"({"name":"a","harness":"shell"})");
      ASSERT_EQ(agent.status, 201) << agent.body;
      agents_[team] = JsonField(agent.body, "id");
    }
  }

  HttpResponse Operator(const std::string& method, const std::string& path, const std::string& body = "") {
    return server_->Request(method, path, body);
  }
  HttpResponse NewSession(const std::string& team, Headers extra = {}) {
    return As(team + ".member", "POST", "/api/sessions", "{\"agent_id\":\"" + agents_.at(team) + "\"}",
              extra);
  }
  HttpResponse Message(const std::string& team, const std::string& session) {
    return As(team + ".member", "POST", "/api/sessions/" + session + "/messages", R"({"content":"true"})");
  }
  void SetQuotas(const std::string& team, const std::string& quotas) {
    auto r = Operator("PATCH", "/api/teams/" + team, "{\"quotas\":" + quotas + "}");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // The report's line for `quota`, as "used/limit/source".
  std::string Line(const std::string& team, const std::string& quota) {
    auto r = As(team + ".admin", "GET", "/api/teams/" + team + "/quotas");
    EXPECT_EQ(r.status, 200) << r.body;
    for (int i = 0; i < 5; ++i) {
      const std::string at = "quotas." + std::to_string(i) + ".";
      if (JsonField(r.body, at + "name") == quota) {
        return JsonField(r.body, at + "used") + "/" + JsonField(r.body, at + "limit") + "/" +
               JsonField(r.body, at + "source");
      }
    }
    return "missing";
  }
  static void ExpectRefused(const HttpResponse& r, const std::string& quota) {
    EXPECT_EQ(r.status, 429) << r.body;
    EXPECT_EQ(JsonField(r.body, "error.details.quota"), quota) << r.body;
    EXPECT_NE(JsonField(r.body, "error.message").find("quota '" + quota + "'"), std::string::npos) << r.body;
    auto retry = r.headers.find("Retry-After");
    ASSERT_NE(retry, r.headers.end());
    EXPECT_EQ(retry->second, JsonField(r.body, "error.details.retry_after_seconds"));
    EXPECT_GE(std::stoll(retry->second), 1);
  }
  size_t OpenSessions(const std::string& team) {
    auto r = As(team + ".member", "GET", "/api/sessions?limit=100");
    size_t n = 0;
    for (int i = 0; i < 100; ++i) {
      const std::string status = JsonField(r.body, "sessions." + std::to_string(i) + ".status");
      if (status.empty()) break;
      n += status != "closed" && status != "failed";
    }
    return n;
  }
  std::map<std::string, std::string> agents_;  // team -> its agent
};

TEST_P(Quotas, OnlyOperatorsSetThemAndBadValuesAreRefusedWithTheReason) {
  Start(/*worker=*/true);
  struct Bad {
    std::string body, says;
  };
  for (const Bad& b : std::vector<Bad>{{R"({"quotas":{"gpus":1}})", "no quota 'gpus'"},
                                       {R"({"quotas":{"sandboxes":-1}})", "must be 0 to"},
                                       {R"({"quotas":{"sandboxes":1.5}})", "whole number"},
                                       {R"({"quotas":{"runs_per_minute":"60"}})", "whole number"},
                                       {R"({"quotas":{"cost_per_day_usd":"5"}})", "US dollars"},
                                       {R"({"quotas":{"cost_per_day_usd":-0.01}})", "must be 0 to"},
                                       {R"({"quotas":[1]})", "object of quotas"}}) {
    auto r = Operator("PATCH", "/api/teams/alpha", b.body);
    EXPECT_EQ(r.status, 400) << b.body;
    EXPECT_NE(JsonField(r.body, "error.message").find(b.says), std::string::npos) << b.body << " " << r.body;
  }
  EXPECT_EQ(As("alpha.admin", "PATCH", "/api/teams/alpha", R"({"quotas":{"sandboxes":100}})").status, 403);
  // Nothing of the refused ones was kept.
  auto team = As("alpha.admin", "GET", "/api/teams/alpha");
  EXPECT_EQ(JsonField(team.body, "quotas.sandboxes"), "null") << team.body;
  SetQuotas("alpha", R"({"sandboxes":3,"cost_per_day_usd":12.5})");
  team = As("alpha.admin", "GET", "/api/teams/alpha");
  EXPECT_EQ(JsonField(team.body, "quotas.sandboxes"), "3") << team.body;
  EXPECT_EQ(JsonField(team.body, "quotas.cost_per_day_usd"), "12.5") << team.body;
  // Naming one keeps the others; null goes back to the default.
  SetQuotas("alpha", R"({"sandboxes":null,"open_sessions":0})");
  team = As("alpha.admin", "GET", "/api/teams/alpha");
  EXPECT_EQ(JsonField(team.body, "quotas.sandboxes"), "null");
  EXPECT_EQ(JsonField(team.body, "quotas.open_sessions"), "0");
  EXPECT_EQ(JsonField(team.body, "quotas.cost_per_day_usd"), "12.5");
  // Usage is for the team's admins and operators: not members, not other teams.
  EXPECT_EQ(As("alpha.member", "GET", "/api/teams/alpha/quotas").status, 403);
  EXPECT_EQ(As("beta.admin", "GET", "/api/teams/alpha/quotas").status, 404);
  EXPECT_EQ(Operator("GET", "/api/teams/alpha/quotas").status, 200);
  EXPECT_EQ(Operator("GET", "/api/teams/nobody/quotas").status, 404);
}

TEST_P(Quotas, SessionsAndSandboxesStopAtTheTeamsQuotaAndTheTeamNextDoorCarriesOn) {
  Start(/*worker=*/true);
  SetQuotas("alpha", R"({"sandboxes":1,"open_sessions":2})");
  auto first = NewSession("alpha", {{"Idempotency-Key", "first-session"}});
  ASSERT_EQ(first.status, 201) << first.body;
  // A second sandbox would be one too many: refused, and nothing written.
  ExpectRefused(NewSession("alpha"), "sandboxes");
  EXPECT_EQ(OpenSessions("alpha"), 1u);
  // The retry of the request that was admitted is its replay, not a refusal.
  auto replay = NewSession("alpha", {{"Idempotency-Key", "first-session"}});
  EXPECT_EQ(replay.status, 201) << replay.body;
  EXPECT_EQ(JsonField(replay.body, "id"), JsonField(first.body, "id"));
  // Beta has no quota: its sessions go on.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(NewSession("beta").status, 201);

  SetQuotas("alpha", R"({"sandboxes":5})");
  auto second = NewSession("alpha");
  ASSERT_EQ(second.status, 201) << second.body;
  ExpectRefused(NewSession("alpha"), "open_sessions");
  EXPECT_EQ(OpenSessions("alpha"), 2u);
  EXPECT_EQ(Line("alpha", "open_sessions"), "2/2/team");
  EXPECT_EQ(Line("alpha", "sandboxes"), "2/5/team");
  EXPECT_EQ(Line("alpha", "runs_per_minute"), "0/0/default");
  EXPECT_EQ(Line("beta", "open_sessions"), "3/0/default");

  auto metrics = Operator("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("paddock_team_quota_used{quota=\"open_sessions\",team=\"alpha\"} 2"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("paddock_team_quota_limit{quota=\"sandboxes\",team=\"alpha\"} 5"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("paddock_quota_refused_total{quota=\"sandboxes\",team=\"alpha\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("paddock_quota_refused_total{quota=\"open_sessions\",team=\"alpha\"} 1"),
            std::string::npos);
  EXPECT_EQ(metrics.body.find("paddock_quota_refused_total{quota=\"open_sessions\",team=\"beta\"}"),
            std::string::npos);

  // Closing one frees its place.
  ASSERT_EQ(As("alpha.member", "DELETE", "/api/sessions/" + JsonField(first.body, "id")).status, 200);
  EXPECT_EQ(NewSession("alpha").status, 201);
}

TEST_P(Quotas, MessagesStopAtRunsPerMinuteUntilTheOldestLeavesTheMinute) {
  Start(/*worker=*/true);
  SetQuotas("alpha", R"({"runs_per_minute":2})");
  auto session = NewSession("alpha");
  ASSERT_EQ(session.status, 201);
  const std::string id = JsonField(session.body, "id");
  EXPECT_EQ(Message("alpha", id).status, 202);
  EXPECT_EQ(Message("alpha", id).status, 202);
  auto refused = Message("alpha", id);
  ExpectRefused(refused, "runs_per_minute");
  EXPECT_LE(std::stoll(refused.headers["Retry-After"]), 60);
  // Nothing half-written: two runs, two user messages.
  auto runs = As("alpha.member", "GET", "/api/sessions/" + id + "/runs");
  EXPECT_EQ(JsonField(runs.body, "runs.2.id"), "") << runs.body;
  EXPECT_NE(JsonField(runs.body, "runs.1.id"), "") << runs.body;
  auto beta = NewSession("beta");
  ASSERT_EQ(beta.status, 201);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Message("beta", JsonField(beta.body, "id")).status, 202);
  EXPECT_EQ(Line("alpha", "runs_per_minute"), "2/2/team");
}

TEST_P(Quotas, TheDaysTokensAndCostStopMessagesUntilTheUtcDayEnds) {
  Start(/*worker=*/false);  // this test is the worker: it writes each run's usage through the store
  std::shared_ptr<SessionStore> store = Store();
  ASSERT_NE(store, nullptr);
  SetQuotas("alpha", R"({"tokens_per_day":1000})");
  SetQuotas("beta", R"({"cost_per_day_usd":0.5})");
  auto work = [&](const Usage& usage) {
    auto claimed = store->ClaimNextRun("quota-test-worker", std::chrono::milliseconds(60000));
    ASSERT_OK(claimed);
    ASSERT_TRUE(claimed->has_value());
    const RunLease lease{(*claimed)->id, (*claimed)->generation};
    ASSERT_OK(store->RecordRunUsage(lease, usage, NewEvent{"", "usage", "{}"}));
    ASSERT_OK(store->FinishRun(lease, RunStatus::kSucceeded, 0, "", NewEvent{"", "run.finished", "{}"}));
  };
  const std::string a = JsonField(NewSession("alpha").body, "id");
  const std::string b = JsonField(NewSession("beta").body, "id");
  ASSERT_EQ(Message("alpha", a).status, 202);
  work(Usage{"m", 600, 500, 9000, std::nullopt});  // cache reads are not counted
  ASSERT_EQ(Message("beta", b).status, 202);
  work(Usage{"m", 10, 10, 0, 0.75});

  const TimestampMs now = NowMs();
  const std::int64_t to_midnight = (86'400'000 - now % 86'400'000) / 1000;
  auto over_tokens = Message("alpha", a);
  ExpectRefused(over_tokens, "tokens_per_day");
  EXPECT_NEAR(std::stoll(over_tokens.headers["Retry-After"]), to_midnight, 5);
  auto over_cost = Message("beta", b);
  ExpectRefused(over_cost, "cost_per_day_usd");
  EXPECT_NE(JsonField(over_cost.body, "error.message").find("spent $0.75"), std::string::npos)
      << over_cost.body;
  EXPECT_EQ(Line("alpha", "tokens_per_day"), "1100/1000/team");
  EXPECT_EQ(Line("beta", "cost_per_day_usd"), "0.75/0.5/team");
  // Each team's spend is its own: alpha's tokens do not count against beta, nor beta's cost against alpha.
  EXPECT_EQ(Line("beta", "tokens_per_day"), "20/0/default");
  // 0: no limit for the team.
  SetQuotas("alpha", R"({"tokens_per_day":0})");
  EXPECT_EQ(Message("alpha", a).status, 202);
}

INSTANTIATE_TEST_SUITE_P(Stores, Quotas, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace paddock::testing
