// The dashboard in a real browser: Debian's chromium driven by playwright-core
// (tests/browser/signin.mjs) against a real `paddock serve` with the dashboard it built.
// Screenshots go to <build>/browser-artifacts/.
#include <gtest/gtest.h>

#include <filesystem>

#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {
namespace {

TEST(DashboardBrowser, AKeySignsInMembersMakeAgentsViewersOnlyReadAndSigningOutEndsIt) {
  ServerProcess server;  // the dashboard from beside the binary: <build>/dashboard
  ASSERT_OK(server.Start());
  auto team = server.Request("POST", "/api/teams", R"({"id":"blue"})");
  ASSERT_EQ(team.status, 201) << team.body;
  auto key = server.Request("POST", "/api/keys", R"({"name":"dana","role":"member","team_id":"blue"})");
  ASSERT_EQ(key.status, 201) << key.body;
  const std::string member = JsonField(key.body, "key");
  auto viewer_key = server.Request("POST", "/api/keys", R"({"name":"vic","role":"viewer","team_id":"blue"})");
  ASSERT_EQ(viewer_key.status, 201) << viewer_key.body;
  const std::string viewer = JsonField(viewer_key.body, "key");
  const std::map<std::string, std::string> as = {{"Authorization", "Bearer " + member}};
  auto agent =
      server.Request("POST", "/api/agents", R"({"name":"shell","harness":"shell"})", "application/json", as);
  ASSERT_EQ(agent.status, 201) << agent.body;
  auto session =
      server.Request("POST", "/api/sessions", "{\"agent_id\":\"" + JsonField(agent.body, "id") + "\"}",
                     "application/json", as);
  ASSERT_EQ(session.status, 201) << session.body;
  const std::string artifacts =
      std::filesystem::path(PaddockBinary()).parent_path().parent_path() / "browser-artifacts";
  auto [code, out] = RunCommand({"node", SourceDir() + "/tests/browser/signin.mjs",
                                 "http://127.0.0.1:" + std::to_string(server.port()), member,
                                 JsonField(session.body, "id"), artifacts, viewer});
  EXPECT_EQ(code, 0) << out << "\n" << server.log();
  EXPECT_NE(out.find("\"ok\":true"), std::string::npos) << out;
  std::cout << out;
  for (const char* shot : {"signin.png", "sessions.png", "agents.png"})
    EXPECT_TRUE(std::filesystem::exists(artifacts + "/" + shot)) << shot;
  // What the page did went through the API under the member's key: the agent it made and
  // deleted is in the audit log.
  auto audit = server.Request("GET", "/api/audit?team_id=blue&limit=100");
  EXPECT_NE(audit.body.find("POST /api/agents"), std::string::npos) << audit.body;
  EXPECT_NE(audit.body.find("DELETE /api/agents/{id}"), std::string::npos) << audit.body;
  // The key never reached the log.
  EXPECT_EQ(server.log().find(member), std::string::npos);
}

}  // namespace
}  // namespace paddock::testing
