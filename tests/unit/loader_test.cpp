// The plugin loader: every refusal path has a fixture plugin, and each refusal is one line that
// names the file, the check, and expected vs actual.
#include <gtest/gtest.h>

#include <filesystem>

#include "config/config.h"
#include "paddock/testing/assert.h"
#include "plugins/plugin_host.h"
#include "testing.h"

namespace paddock {
namespace {

using testing::FixtureDir;
using testing::PluginDir;
using testing::TempDir;

std::string Refusal(const std::string& kind, const std::string& name) {
  auto p = OpenPlugin(FixtureDir() + "/" + PluginFileName(kind, name), kind, name);
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kFailedPrecondition);
  const std::string m = p.status().message();
  EXPECT_EQ(m.find('\n'), std::string::npos) << "not one line: " << m;
  EXPECT_NE(m.find(PluginFileName(kind, name)), std::string::npos) << "does not name the file: " << m;
  return m;
}

TEST(Loader, RefusesAnotherAbiMajor) {
  EXPECT_NE(Refusal("store", "wrong_abi").find("ABI version 99.1, expected 1.x"), std::string::npos);
}

TEST(Loader, RefusesAnotherSdkHash) {
  std::string m = Refusal("store", "wrong_sdk");
  EXPECT_NE(m.find("SDK hash 0123456789abcdef, expected " PADDOCK_SDK_HASH), std::string::npos) << m;
}

TEST(Loader, RefusesAnotherToolchain) {
  std::string m = Refusal("store", "wrong_toolchain");
  EXPECT_NE(m.find("toolchain 'clang-3.4|libc++|cxx11abi=0', expected '" PADDOCK_TOOLCHAIN "'"),
            std::string::npos)
      << m;
}

TEST(Loader, RefusesAWorldWritableFile) {
  TempDir dir;
  const std::string copy = dir / "paddock-secrets-schema.so";
  std::filesystem::copy_file(FixtureDir() + "/paddock-secrets-schema.so", copy);
  std::filesystem::permissions(copy, std::filesystem::perms(0666));
  auto p = OpenPlugin(copy, "secrets", "schema");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("world-writable"), std::string::npos) << p.status().message();
  std::filesystem::permissions(copy, std::filesystem::perms(0644));
  EXPECT_OK(OpenPlugin(copy, "secrets", "schema"));
}

TEST(Loader, RefusesAKindOrNameOtherThanTheFileSays) {
  EXPECT_NE(Refusal("store", "misnamed").find("manifest names store.other, expected store.misnamed"),
            std::string::npos);
  EXPECT_NE(Refusal("gadget", "thing").find("unknown kind 'gadget'"), std::string::npos);
}

TEST(Loader, RefusesAFileWithoutManifest) {
  EXPECT_NE(Refusal("store", "no_manifest").find("no symbol paddock_plugin_manifest_v1"), std::string::npos);
}

TEST(Loader, RefusesDuplicateConfigKeys) {
  EXPECT_NE(Refusal("store", "duplicate_key").find("config key 'path' is declared twice"), std::string::npos);
}

TEST(Loader, RefusesAMissingFile) {
  auto p = OpenPlugin(FixtureDir() + "/paddock-store-absent.so", "store", "absent");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("file not found"), std::string::npos);
}

class FixtureConfig : public ::testing::Test {
 protected:
  Result<PluginObjects> Create(const std::string& toml) {
    PluginChoice c;
    c.kind = "secrets";
    c.name = "schema";
    auto section = ParseSectionText(toml, "secrets.config");
    EXPECT_OK(section);
    c.config = *section;
    c.config.source = "paddock.toml";
    return CreatePlugin(FixtureDir(), c, dir_.path());
  }
  TempDir dir_;
};

TEST_F(FixtureConfig, UnknownKeyIsRefusedWithTheAllowedKeys) {
  auto p = Create("token = \"t\"\ntokne = \"x\"\n");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      p.status().message().find(
          "paddock.toml:2: [secrets.config] unknown key 'tokne'; allowed: token, count, enabled, timeout, "
          "limit, hosts"),
      std::string::npos)
      << p.status().message();
  EXPECT_NE(p.status().message().find("paddock-secrets-schema.so"), std::string::npos);
}

TEST_F(FixtureConfig, WrongTypeIsRefused) {
  auto p = Create("token = \"t\"\ncount = \"three\"\n");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("key 'count' must be an integer, not the string \"three\""),
            std::string::npos)
      << p.status().message();
  p = Create("token = \"t\"\nhosts = [\"a\", 2]\n");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("key 'hosts' must be an array of strings"), std::string::npos);
}

TEST_F(FixtureConfig, MissingRequiredKeyIsRefused) {
  auto p = Create("count = 1\n");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("missing required key 'token'"), std::string::npos)
      << p.status().message();
}

TEST_F(FixtureConfig, ValidSectionReachesThePluginTypedWithDefaults) {
  auto p = Create("token = \"t0k\"\ntimeout = \"250ms\"\nlimit = \"2KiB\"\n");
  ASSERT_OK(p);
  ASSERT_TRUE(p->secrets);
  auto got = p->secrets->Resolve(SecretScope{});
  ASSERT_OK(got);
  std::map<std::string, std::string> v;
  for (const auto& s : *got) v[s.name] = s.value;
  EXPECT_EQ(v["TOKEN"], "t0k");
  EXPECT_EQ(v["COUNT"], "3");
  EXPECT_EQ(v["ENABLED"], "true");
  EXPECT_EQ(v["TIMEOUT_MS"], "250");
  EXPECT_EQ(v["LIMIT_BYTES"], "2048");
  EXPECT_EQ(v["HOSTS"], "a,b");
}

TEST_F(FixtureConfig, AValueOutsideItsRuleIsRefusedBeforeThePluginSeesIt) {
  auto p = Create("token = \"t\"\ncount = 11\n");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("paddock.toml:2: [secrets.config] key 'count' must be 1..10, not 11"),
            std::string::npos)
      << p.status().message();
  p = Create("token = \"t\"\nhosts = [\"a\", \"z\"]\n");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("key 'hosts' must be \"a\", \"b\" or \"c\", not \"z\""),
            std::string::npos)
      << p.status().message();
  EXPECT_OK(Create("token = \"t\"\ncount = 10\nhosts = [\"c\"]\n"));
}

TEST(Loader, APluginBuiltAgainstAbi1_0LoadsWithItsKeysAndNoRules) {
  TempDir dir;
  auto opened = OpenPlugin(FixtureDir() + "/paddock-secrets-old_minor.so", "secrets", "old_minor");
  ASSERT_OK(opened);
  PluginChoice c;
  c.kind = "secrets";
  c.name = "old_minor";
  auto section = ParseSectionText("token = \"t\"\ncount = 11\nlimit = \"1KiB\"\n", "secrets.config");
  ASSERT_OK(section);
  c.config = *section;
  // Its keys are validated (types, defaults) but it declared no rules: 11 reaches the plugin.
  auto p = CreatePlugin(FixtureDir(), c, dir.path());
  ASSERT_OK(p);
  auto got = p->secrets->Resolve(SecretScope{});
  ASSERT_OK(got);
  std::map<std::string, std::string> v;
  for (const auto& s : *got) v[s.name] = s.value;
  EXPECT_EQ(v["COUNT"], "11");
  EXPECT_EQ(v["LIMIT_BYTES"], "1024");
  EXPECT_EQ(v["HOSTS"], "a,b");
  EXPECT_EQ(p->summary.keys_json.find("bounds"), std::string::npos) << p->summary.keys_json;
  c.config = *ParseSectionText("token = 5\n", "secrets.config");
  EXPECT_FALSE(CreatePlugin(FixtureDir(), c, dir.path()).ok());
}

TEST(Loader, RefusesARuleForAnUndeclaredKey) {
  EXPECT_NE(Refusal("store", "bad_rule").find("config rule for undeclared key 'sise'"), std::string::npos);
}

TEST(Loader, AFactoryThatThrowsIsReportedNotFatal) {
  TempDir dir;
  PluginChoice c;
  c.kind = "secrets";
  c.name = "throws";
  c.config.name = "secrets.config";
  auto p = CreatePlugin(FixtureDir(), c, dir.path());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("create failed: factory threw: boom in factory"), std::string::npos)
      << p.status().message();
}

TEST(Loader, DiscoveryListsLoadableAndRefusedFiles) {
  Discovery d = DiscoverPlugins(FixtureDir());
  std::set<std::string> loadable;
  for (const auto& p : d.loadable) loadable.insert(p.kind + "." + p.name);
  EXPECT_EQ(loadable, (std::set<std::string>{"secrets.schema", "secrets.old_minor", "secrets.throws"}));
  EXPECT_EQ(d.refused.size(), 8u);
}

TEST(Loader, EveryBuiltPluginLoadsAndExportsOnlyTheTwoSymbols) {
  Discovery d = DiscoverPlugins(PluginDir());
  EXPECT_TRUE(d.refused.empty()) << d.refused.front();
  std::set<std::string> ids;
  for (const auto& p : d.loadable) {
    ids.insert(p.kind + "." + p.name);
    auto [code, out] = testing::RunCommand({"nm", "-D", "--defined-only", p.path});
    ASSERT_EQ(code, 0) << out;
    std::set<std::string> symbols;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      if (line.find(" T ") != std::string::npos) symbols.insert(line.substr(line.rfind(' ') + 1));
    }
    EXPECT_EQ(symbols, (std::set<std::string>{"paddock_plugin_create_v1", "paddock_plugin_manifest_v1"}))
        << p.path;
  }
  EXPECT_EQ(ids, (std::set<std::string>{"harness.claude-code", "harness.codex", "harness.opencode",
                                        "harness.shell", "sandbox.k8s", "sandbox.kind", "sandbox.process",
                                        "secrets.env", "secrets.store", "store.postgres", "store.sqlite"}));
}

}  // namespace
}  // namespace paddock
