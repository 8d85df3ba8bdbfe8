// Team secrets from the side of whoever wants one that is not theirs: values go in and never come
// out of the API; a sandbox gets the secrets its agent names, of its own team, and nothing of
// another team's in its environment, its files, its processes or its snapshots; profiles are
// the team's to use. Real bubblewrap sandboxes behind a real `paddock serve`, on both stores.
#include <Poco/Base64Decoder.h>
#include <Poco/JSON/Object.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "paddock/testing/assert.h"
#include "testing.h"
#include "two_teams.h"

namespace paddock::testing {
namespace {

// Each team's values: long and unlike each other, so that finding one is no accident.
const std::string kAlphaEnv = "alpha-env-value-3f9d1c7a";
const std::string kAlphaFile = "alpha-file-value-8b2e4d60";
const std::string kAlphaUnnamed = "alpha-unnamed-value-51ac09e2";
const std::string kAlphaShared = "alpha-shared-value-7d03b5f1";
const std::string kBetaEnv = "beta-env-value-c41f8a92";
const std::string kBetaFile = "beta-file-value-0e6d2b7c";
const std::string kBetaShared = "beta-shared-value-96b7e013";

class TeamSecrets : public TwoTeams {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.extra_toml = "[profiles.default]\n[profiles.small]\nmemory = \"256MiB\"\nwarm = 0\n";
    StartTeams(o, {"viewer", "member", "admin"});
  }

  bool WaitForStatus(const std::string& team, const std::string& session, const std::string& status) {
    for (int i = 0; i < 300; ++i) {
      if (JsonField(As(team + ".viewer", "GET", "/api/sessions/" + session).body, "status") == status)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
};

TEST_P(TeamSecrets, AValueGoesInAndNeverComesOutOfTheApi) {
  auto set = As("alpha.admin", "PUT", "/api/secrets/DEPLOY_TOKEN", Json("value", kAlphaEnv));
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(set.headers["Cache-Control"], "no-store");
  EXPECT_EQ(JsonField(set.body, "name"), "DEPLOY_TOKEN");
  EXPECT_EQ(JsonField(set.body, "team_id"), "alpha");
  EXPECT_EQ(JsonField(set.body, "version"), "1");
  EXPECT_EQ(set.body.find(kAlphaEnv), std::string::npos) << set.body;
  auto again = As("alpha.admin", "PUT", "/api/secrets/DEPLOY_TOKEN", Json("value", kAlphaShared));
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(JsonField(again.body, "version"), "2");
  EXPECT_EQ(JsonField(again.body, "created_at"), JsonField(set.body, "created_at"));
  // Listed by name, version and dates; a viewer may see the names.
  auto list = As("alpha.viewer", "GET", "/api/secrets");
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(JsonField(list.body, "secrets.0.name"), "DEPLOY_TOKEN");
  EXPECT_EQ(JsonField(list.body, "secrets.0.version"), "2");
  EXPECT_EQ(JsonField(list.body, "secrets.1.name"), "");
  for (const std::string& v : {kAlphaEnv, kAlphaShared}) EXPECT_EQ(list.body.find(v), std::string::npos);
  // Only an admin writes.
  EXPECT_EQ(As("alpha.member", "PUT", "/api/secrets/X_TOKEN", Json("value", kAlphaFile)).status, 403);
  EXPECT_EQ(As("alpha.member", "DELETE", "/api/secrets/DEPLOY_TOKEN").status, 403);
  // Bad input: the message says what to fix, and nothing is kept.
  const std::vector<std::tuple<std::string, std::string, std::string>> bad = {
      {"/api/secrets/SHORT", Json("value", "1234567"), "at least 8 bytes"},
      {"/api/secrets/9LIVES", Json("value", kAlphaFile), "not a valid variable name"},
      {"/api/secrets/NUL", "{\"value\":\"abcdefgh\\u0000ijk\"}", "NUL"},
      {"/api/secrets/NONE", "{}", "field 'value' is required"},
      {"/api/secrets/EXTRA", "{\"value\":\"abcdefghij\",\"as\":\"file\"}", "as"},
      {"/api/secrets/NUMBER", "{\"value\":12345678}", "value"},
      {"/api/secrets/BIG", Json("value", std::string(64 * 1024 + 1, 'x')), "65536 bytes"},
  };
  for (const auto& [path, body, says] : bad) {
    auto r = As("alpha.admin", "PUT", path, body);
    EXPECT_EQ(r.status, 400) << path << ": " << r.body;
    EXPECT_NE(JsonField(r.body, "error.message").find(says), std::string::npos) << path << ": " << r.body;
  }
  // A name that is no id matches no route, as anywhere in the API.
  auto dotted = As("alpha.admin", "PUT", "/api/secrets/not.a.name", Json("value", kAlphaFile));
  EXPECT_EQ(dotted.status, 404) << dotted.body;
  EXPECT_NE(JsonField(dotted.body, "error.message").find("is not an id"), std::string::npos) << dotted.body;
  list = As("alpha.admin", "GET", "/api/secrets");
  EXPECT_EQ(JsonField(list.body, "secrets.1.name"), "") << list.body;
  // The store holds it sealed: the value is nowhere in it.
  auto store = Store();
  ASSERT_TRUE(store);
  Result<SealedSecret> sealed = store->GetSealedSecret("alpha", "DEPLOY_TOKEN");
  ASSERT_OK(sealed);
  EXPECT_EQ(sealed->sealed.find(kAlphaShared), std::string::npos);
  EXPECT_EQ(sealed->version, 2);
  EXPECT_FALSE(sealed->key_id.empty());
  // Writes are in the audit log, without the value.
  auto audit = As("alpha.admin", "GET", "/api/audit?limit=100");
  EXPECT_NE(audit.body.find("PUT /api/secrets/{name}"), std::string::npos) << audit.body;
  EXPECT_NE(audit.body.find("\"resource\":\"DEPLOY_TOKEN\""), std::string::npos) << audit.body;
  EXPECT_EQ(audit.body.find(kAlphaShared), std::string::npos);
  // Deleted once; the second time it does not exist.
  EXPECT_EQ(As("alpha.admin", "DELETE", "/api/secrets/DEPLOY_TOKEN").status, 204);
  auto gone = As("alpha.admin", "DELETE", "/api/secrets/DEPLOY_TOKEN");
  EXPECT_EQ(gone.status, 404) << gone.body;
  EXPECT_NE(JsonField(gone.body, "error.message").find("DEPLOY_TOKEN"), std::string::npos) << gone.body;
  // An operator acts on a team by ?team_id=; a team that does not exist is 404.
  EXPECT_EQ(server_->Request("PUT", "/api/secrets/OPS_TOKEN?team_id=beta", Json("value", kBetaEnv)).status,
            200);
  EXPECT_EQ(JsonField(As("beta.viewer", "GET", "/api/secrets").body, "secrets.0.name"), "OPS_TOKEN");
  EXPECT_EQ(server_->Request("PUT", "/api/secrets/OPS_TOKEN?team_id=gamma", Json("value", kBetaEnv)).status,
            404);
}

TEST_P(TeamSecrets, ASandboxGetsWhatItsAgentNamesOfItsOwnTeamAndNothingOfAnothers) {
  SetSecret("alpha", "ALPHA_ENV", kAlphaEnv);
  SetSecret("alpha", "ALPHA_FILE", kAlphaFile);
  SetSecret("alpha", "ALPHA_UNNAMED", kAlphaUnnamed);
  SetSecret("alpha", "SHARED", kAlphaShared);
  SetSecret("beta", "BETA_ENV", kBetaEnv);
  SetSecret("beta", "BETA_FILE", kBetaFile);
  SetSecret("beta", "SHARED", kBetaShared);
  // beta's sandbox is up first and keeps a process alive with its secrets in its environment.
  const std::string beta =
      Session("beta", Agent("beta", R"(,"secrets":["BETA_ENV",{"name":"BETA_FILE","as":"file"},"SHARED"])"));
  Exec("beta", beta, "(sleep 300 &) ; true");
  ASSERT_EQ(Exec("beta", beta, "cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c '[s]leep 300'"), "1\n");
  EXPECT_EQ(Unbase64(Exec("beta", beta, "printf %s \"$BETA_ENV:$SHARED\" | base64 -w0")),
            kBetaEnv + ":" + kBetaShared);
  EXPECT_EQ(Unbase64(Exec("beta", beta, "base64 -w0 /tmp/paddock-secrets/BETA_FILE")), kBetaFile);

  const std::string agent =
      Agent("alpha", R"(,"secrets":["ALPHA_ENV",{"name":"ALPHA_FILE","as":"file"},"SHARED"])");
  auto shown = As("alpha.viewer", "GET", "/api/agents/" + agent);
  EXPECT_EQ(JsonField(shown.body, "secrets.1.name"), "ALPHA_FILE") << shown.body;
  EXPECT_EQ(JsonField(shown.body, "secrets.1.as"), "file") << shown.body;
  const std::string alpha = Session("alpha", agent);
  // What it was given, and how.
  EXPECT_EQ(Unbase64(Exec("alpha", alpha, "printf %s \"$ALPHA_ENV:$SHARED\" | base64 -w0")),
            kAlphaEnv + ":" + kAlphaShared);
  EXPECT_EQ(Exec("alpha", alpha, "echo ${ALPHA_FILE-unset} ${ALPHA_UNNAMED-unset} ${BETA_ENV-unset}"),
            "unset unset unset\n");
  const std::string uid = Exec("alpha", alpha, "id -u");
  EXPECT_EQ(
      Exec("alpha", alpha, "ls -A /tmp/paddock-secrets; stat -c '%a %u' /tmp/paddock-secrets/ALPHA_FILE"),
      "ALPHA_FILE\n400 " + uid);
  EXPECT_EQ(Unbase64(Exec("alpha", alpha, "base64 -w0 /tmp/paddock-secrets/ALPHA_FILE")), kAlphaFile);
  // Everything the sandbox can read that might hold a value: every process's environment and
  // command line, the secrets folder, the workspace, home and /tmp. Shown base64-encoded, since
  // the server redacts every value it knows from output.
  const std::string everything = Unbase64(
      Exec("alpha", alpha,
           "{ for p in /proc/[0-9]*; do cat $p/environ $p/cmdline; echo; done; "
           "find /tmp /workspace \"$HOME\" -xdev -type f -exec cat {} + ; } 2>/dev/null | base64 -w0"));
  ASSERT_GT(everything.size(), 1000u);
  EXPECT_NE(everything.find(kAlphaEnv), std::string::npos) << "the probe sees nothing";
  for (const std::string& theirs : {kBetaEnv, kBetaFile, kBetaShared, kAlphaUnnamed}) {
    EXPECT_EQ(everything.find(theirs), std::string::npos) << theirs << " is readable in alpha's sandbox";
  }
  // Nor is the key that opens every team's secrets, which lives beside the server.
  const std::string key_file = server_->data_dir() + "/secrets-store/secrets.key";
  std::string key;
  std::ifstream keys(key_file);
  while (std::getline(keys, key) && (key.empty() || key[0] == '#')) {
  }
  ASSERT_GE(key.size(), 40u) << key_file;
  EXPECT_EQ(everything.find(key), std::string::npos);
  EXPECT_EQ(Exec("alpha", alpha, "cat " + key_file + " >/dev/null 2>&1 && echo readable || echo absent"),
            "absent\n");
  // beta's sleeping process is in no process list of alpha's.
  EXPECT_EQ(Exec("alpha", alpha, "cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c '[s]leep 300'"), "0\n");
  // A value that reaches output is redacted from the event, the API's answer and the log.
  std::vector<SseEvent> events =
      Run("alpha", alpha, "echo \"token=$ALPHA_ENV\"; cat /tmp/paddock-secrets/ALPHA_FILE");
  std::string out;
  for (const auto& e : events) out += e.data;
  EXPECT_NE(out.find("token="), std::string::npos) << out;
  EXPECT_EQ(out.find(kAlphaEnv), std::string::npos) << out;
  EXPECT_EQ(out.find(kAlphaFile), std::string::npos) << out;
  EXPECT_EQ(Exec("alpha", alpha, "echo $ALPHA_ENV").find(kAlphaEnv), std::string::npos);
  EXPECT_EQ(server_->log().find(kAlphaEnv), std::string::npos);
  EXPECT_EQ(server_->log().find(kBetaFile), std::string::npos);
  // The run's snapshot holds neither team's secrets: /tmp/paddock-secrets is not kept, and
  // nothing of beta's was ever there to keep.
  auto store = Store();
  ASSERT_TRUE(store);
  Result<std::optional<SnapshotInfo>> latest = store->LatestSnapshot(alpha);
  ASSERT_OK(latest);
  ASSERT_TRUE(latest->has_value());
  for (const std::string& p : (*latest)->paths) EXPECT_EQ(p.rfind("/tmp", 0), std::string::npos) << p;
  Result<std::string> archive = store->ReadSnapshot(alpha, (*latest)->version);
  ASSERT_OK(archive);
  const std::string tarball = dir_ / "snapshot.tar.gz";
  std::ofstream(tarball, std::ios::binary) << *archive;
  auto [code, contents] = RunCommand({"sh", "-c", "tar -xzOf " + tarball + " | base64 -w0"});
  ASSERT_EQ(code, 0) << contents;
  const std::string unpacked = Unbase64(contents);
  for (const std::string& v : {kAlphaEnv, kAlphaFile, kAlphaShared, kBetaEnv, kBetaFile, kBetaShared}) {
    EXPECT_EQ(unpacked.find(v), std::string::npos) << v << " is in alpha's snapshot";
  }
  // Each injection is in the team's audit log, by name and version; beta's admin sees none of
  // alpha's.
  auto audit = As("alpha.admin", "GET", "/api/audit?limit=200");
  EXPECT_NE(audit.body.find("secret.injected"), std::string::npos) << audit.body;
  EXPECT_NE(audit.body.find("ALPHA_FILE v1 (file)"), std::string::npos) << audit.body;
  auto theirs = As("beta.admin", "GET", "/api/audit?limit=200");
  EXPECT_EQ(theirs.body.find("ALPHA_"), std::string::npos) << theirs.body;
}

TEST_P(TeamSecrets, ASecretTheTeamDoesNotHaveStopsTheSandboxWithItsName) {
  // beta having one of that name changes nothing for alpha.
  SetSecret("beta", "MISSING_TOKEN", kBetaEnv);
  const std::string agent = Agent("alpha", R"(,"secrets":["MISSING_TOKEN"])");
  const std::string session = Session("alpha", agent);
  ASSERT_TRUE(WaitForStatus("alpha", session, "failed")) << server_->log();
  auto failed = As("alpha.viewer", "GET", "/api/sessions/" + session);
  EXPECT_NE(JsonField(failed.body, "status_reason")
                .find("names the secret 'MISSING_TOKEN', which team 'alpha' does not have"),
            std::string::npos)
      << failed.body;
  auto r = As("alpha.member", "POST", "/api/sessions/" + session + "/sandbox/exec", Json("command", "true"));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(JsonField(r.body, "error.message").find("MISSING_TOKEN"), std::string::npos) << r.body;
  // Once alpha has it, a new session gets it.
  SetSecret("alpha", "MISSING_TOKEN", kAlphaEnv);
  EXPECT_EQ(Unbase64(Exec("alpha", Session("alpha", agent), "printf %s \"$MISSING_TOKEN\" | base64 -w0")),
            kAlphaEnv);
  // An agent names its secrets carefully or is refused.
  for (const auto& [fields, says] : std::vector<std::pair<std::string, std::string>>{
           {R"(,"secrets":["1BAD"])", "1BAD"},
           {R"(,"secrets":["A_TOKEN","A_TOKEN"])", "twice"},
           {R"(,"secrets":[{"name":"A_TOKEN","as":"disk"}])", "as"},
           {R"(,"secrets":"A_TOKEN")", "secrets"},
           {R"(,"env":{"A_TOKEN":"x"},"secrets":["A_TOKEN"])", "env"},
       }) {
    auto bad =
        As("alpha.member", "POST", "/api/agents", "{\"name\":\"a\",\"harness\":\"shell\"" + fields + "}");
    EXPECT_EQ(bad.status, 400) << fields << ": " << bad.body;
    EXPECT_NE(JsonField(bad.body, "error.message").find(says), std::string::npos) << bad.body;
  }
}

TEST_P(TeamSecrets, ATeamUsesOnlyTheProfilesItIsAllowed) {
  // Every configured profile until an operator says otherwise.
  const std::string small = Agent("alpha", R"(,"profile":"small")");
  EXPECT_EQ(JsonField(As("alpha.viewer", "GET", "/api/agents/" + small).body, "profile"), "small");
  auto unknown =
      As("alpha.member", "POST", "/api/agents", R"({"name":"a","harness":"shell","profile":"gpu"})");
  EXPECT_EQ(unknown.status, 400) << unknown.body;
  EXPECT_NE(JsonField(unknown.body, "error.message").find("'gpu' is not a configured profile"),
            std::string::npos);
  // Only operators set a team's profiles, and only to configured ones.
  EXPECT_EQ(As("alpha.admin", "PATCH", "/api/teams/alpha", R"({"profiles":["default"]})").status, 403);
  auto bad = server_->Request("PATCH", "/api/teams/alpha", R"({"profiles":["gpu"]})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  auto set = server_->Request("PATCH", "/api/teams/alpha", R"({"profiles":["default"]})");
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(JsonField(set.body, "profiles.0"), "default");
  EXPECT_EQ(JsonField(As("alpha.viewer", "GET", "/api/teams/alpha").body, "profiles.0"), "default");
  // Now alpha cannot name small, for a new agent or an old one; beta still can.
  auto refused =
      As("alpha.member", "POST", "/api/agents", R"({"name":"a","harness":"shell","profile":"small"})");
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_NE(JsonField(refused.body, "error.message").find("may not use the sandbox profile 'small'"),
            std::string::npos)
      << refused.body;
  EXPECT_EQ(As("alpha.member", "PATCH", "/api/agents/" + Agent("alpha", ""), R"({"profile":"small"})").status,
            403);
  Agent("beta", R"(,"profile":"small")");
  // The agent made before keeps its profile on paper, but gets no sandbox under it.
  const std::string session = Session("alpha", small);
  ASSERT_TRUE(WaitForStatus("alpha", session, "failed")) << server_->log();
  auto failed = As("alpha.viewer", "GET", "/api/sessions/" + session);
  EXPECT_NE(JsonField(failed.body, "status_reason").find("may not use the sandbox profile 'small'"),
            std::string::npos)
      << failed.body;
}

INSTANTIATE_TEST_SUITE_P(Stores, TeamSecrets, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace paddock::testing
