#include "config/config.h"

#include <gtest/gtest.h>

#include "config/schema.h"
#include "paddock/testing/assert.h"

namespace paddock {
namespace {

constexpr char kMinimal[] = R"(
[secrets]
type = "env"
[store]
type = "sqlite"
[sandbox]
type = "process"
[[harness]]
type = "shell"
)";

TEST(Config, EmbeddedDefaultIsTheOneProcessSetup) {
  auto c = ParseConfig(EmbeddedConfigText(), kEmbeddedConfigName);
  ASSERT_OK(c);
  EXPECT_EQ(c->server.port, 3000);
  EXPECT_EQ(c->server.listen, "0.0.0.0");  // every route but health needs a key
  EXPECT_FALSE(c->auth.metrics_open);
  EXPECT_EQ(c->auth.failed_per_minute, 30);
  EXPECT_TRUE(c->worker.enabled);
  std::vector<std::string> plugins;
  for (const auto& p : c->plugins) plugins.push_back(p.kind + "." + p.name);
  EXPECT_EQ(plugins, (std::vector<std::string>{"secrets.env", "secrets.store", "store.sqlite",
                                               "sandbox.process", "harness.shell"}));
  EXPECT_FALSE(c->server.data_dir.empty());
}

TEST(Config, AProfileRelaxesTheSyscallFilterOnlyByName) {
  auto c = ParseConfig(std::string(kMinimal) + "[profiles.default]\n", "f.toml");
  ASSERT_OK(c);
  EXPECT_TRUE(c->profiles.front().hardening.seccomp);  // on unless turned off
  EXPECT_TRUE(c->profiles.front().hardening.seccomp_allow.empty());
  c = ParseConfig(std::string(kMinimal) +
                      "[profiles.prof]\nseccomp_allow = [\"perf_event_open\"]\nruntime_class = \"gvisor\"\n"
                      "[profiles.open]\nseccomp = \"off\"\n",
                  "f.toml");
  ASSERT_OK(c);
  auto profile = [&](const std::string& name) {
    for (const auto& p : c->profiles) {
      if (p.name == name) return p;
    }
    ADD_FAILURE() << "no profile " << name;
    return ProfileSettings{};
  };
  EXPECT_EQ(profile("prof").hardening.seccomp_allow, std::vector<std::string>{"perf_event_open"});
  EXPECT_EQ(profile("prof").hardening.runtime_class, "gvisor");
  EXPECT_FALSE(profile("open").hardening.seccomp);
  EXPECT_TRUE(profile("default").hardening.seccomp);
  c = ParseConfig(std::string(kMinimal) + "[profiles.default]\nseccomp_allow = [\"read\"]\n", "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(
                "seccomp_allow: 'read' is not refused by the default filter; it refuses: acct"),
            std::string::npos)
      << c.status().message();
  c = ParseConfig(std::string(kMinimal) + "[profiles.default]\nseccomp = \"lax\"\n", "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(
                "[profiles.default] key 'seccomp' must be \"default\" or \"off\", not \"lax\""),
            std::string::npos);
  c = ParseConfig(std::string(kMinimal) + "[profiles.default]\nruntime_class = \"GVisor!\"\n", "f.toml");
  ASSERT_FALSE(c.ok());
}

TEST(Config, EachSessionsShareOfTheStoreIsConfiguredAndChecked) {
  auto c = ParseConfig(kMinimal, "f.toml");
  ASSERT_OK(c);
  EXPECT_EQ(c->sessions.append_rate, 1000);
  EXPECT_EQ(c->sessions.append_bytes_rate, 16LL << 20);
  c = ParseConfig(std::string(kMinimal) + "[sessions]\nappend_rate = 0\nappend_bytes_rate = \"1MiB\"\n",
                  "f.toml");
  ASSERT_OK(c);
  EXPECT_EQ(c->sessions.append_rate, 0);
  EXPECT_EQ(c->sessions.append_bytes_rate, 1LL << 20);
  c = ParseConfig(std::string(kMinimal) + "[sessions]\nappend_rate = -5\n", "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("f.toml:11: [sessions] key 'append_rate' must be 0..1000000, not -5"),
            std::string::npos)
      << c.status().ToString();
}

TEST(Config, SyntaxErrorNamesFileLineAndColumn) {
  auto c = ParseConfig("[server]\nport = 3000\nlisten = \"x\n", "my.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message().rfind("my.toml:3:", 0), 0u) << c.status().message();
  EXPECT_NE(c.status().message().find("TOML syntax error"), std::string::npos);
}

TEST(Config, UnknownServerKeyListsTheAllowedOnes) {
  auto c = ParseConfig(std::string("[server]\nprot = 1\n") + kMinimal, "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("f.toml:2: [server] unknown key 'prot'; allowed: listen, port"),
            std::string::npos)
      << c.status().message();
}

TEST(Config, ARemoteEgressIsHostAndPortAndTheEgressRolesKeysAreRead) {
  auto c = ParseConfig(std::string(kMinimal) +
                           "[egress]\nremote = \"paddock-egress.paddock.svc:3128\"\nhealth_port = 3302\n"
                           "pass_key_file = \"/keys/egress-pass.key\"\n",
                       "f.toml");
  ASSERT_OK(c);
  EXPECT_EQ(c->egress.remote, "paddock-egress.paddock.svc:3128");
  EXPECT_EQ(c->egress.listen, "0.0.0.0");
  EXPECT_EQ(c->egress.health_port, 3302);
  EXPECT_EQ(c->egress.pass_key_file, "/keys/egress-pass.key");
  EXPECT_FALSE(c->egress_role);  // the command's, never the file's
  for (const char* bad : {"paddock-egress", "paddock-egress:", ":3128", "host:99999", "host:31x8"}) {
    auto refused = ParseConfig(std::string(kMinimal) + "[egress]\nremote = \"" + bad + "\"\n", "f.toml");
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("must be host:port"), std::string::npos)
        << refused.status().message();
  }
}

TEST(Config, QuotaDefaultsAreReadAndACostThatIsNotDollarsIsRefused) {
  auto c = ParseConfig(
      std::string(kMinimal) + "[quotas]\nsandboxes = 4\nruns_per_minute = 30\ncost_per_day_usd = \"7.25\"\n",
      "f.toml");
  ASSERT_OK(c);
  EXPECT_EQ(c->quotas.sandboxes, 4);
  EXPECT_EQ(c->quotas.open_sessions, 0);
  EXPECT_EQ(c->quotas.runs_per_minute, 30);
  EXPECT_EQ(c->quotas.cost_per_day_microusd, 7'250'000);
  for (const char* bad : {"\"-1\"", "\"1e3\"", "\"7.1234567\"", "\"\"", "\"$5\"", "\"2000000000\""}) {
    c = ParseConfig(std::string(kMinimal) + "[quotas]\ncost_per_day_usd = " + bad + "\n", "f.toml");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("cost_per_day_usd must be an amount of US dollars"),
              std::string::npos)
        << c.status().message();
  }
  c = ParseConfig(std::string(kMinimal) + "[quotas]\nsandboxes = -1\n", "f.toml");
  EXPECT_FALSE(c.ok());
}

TEST(Config, WrongTypeAndRangeAreRefused) {
  auto c = ParseConfig(std::string("[server]\nport = \"3000\"\n") + kMinimal, "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("key 'port' must be an integer, not the string \"3000\""),
            std::string::npos)
      << c.status().message();
  c = ParseConfig(std::string("[server]\nport = 70000\n") + kMinimal, "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("key 'port' must be 0..65535, not 70000"), std::string::npos);
  c = ParseConfig(std::string("[worker]\npoll_interval = \"soon\"\n") + kMinimal, "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("must be a duration"), std::string::npos) << c.status().message();
}

TEST(Config, MissingSectionsAndDuplicatesAreRefused) {
  auto c = ParseConfig("[store]\ntype = \"sqlite\"\n", "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("missing section [secrets]"), std::string::npos)
      << c.status().message();
  c = ParseConfig(std::string(kMinimal) + "[[harness]]\ntype = \"shell\"\n", "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("configured twice"), std::string::npos);
  c = ParseConfig(std::string(kMinimal) + "[extra]\nx = 1\n", "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("unknown section [extra]"), std::string::npos);
}

TEST(Config, PluginSectionsAreCarriedForTheirPlugin) {
  auto c = ParseConfig(std::string(kMinimal) + "", "f.toml");
  ASSERT_OK(c);
  auto with = ParseConfig(R"(
[secrets]
type = "env"
[store]
type = "sqlite"
[store.config]
path = "x.db"
busy_timeout = "2s"
[sandbox]
type = "process"
[[harness]]
type = "shell"
[harness.config]
shell = "/bin/bash"
)",
                          "f.toml");
  ASSERT_OK(with);
  const PluginChoice& store = with->plugins[1];
  EXPECT_EQ(store.config.name, "store.config");
  EXPECT_EQ(store.config.values.at("path").str, "x.db");
  EXPECT_EQ(store.config.values.at("busy_timeout").line, 8);
  EXPECT_EQ(with->plugins[3].config.values.at("shell").str, "/bin/bash");
}

TEST(Config, SeveralSecretsInjectorsAreAskedInTheOrderWritten) {
  const std::string rest =
      "[store]\ntype = \"sqlite\"\n[sandbox]\ntype = \"process\"\n[[harness]]\ntype = \"shell\"\n";
  auto c = ParseConfig(
      "[[secrets]]\ntype = \"store\"\n[secrets.config]\ngenerate_key = false\n"
      "[[secrets]]\ntype = \"env\"\n" +
          rest,
      "f.toml");
  ASSERT_OK(c);
  ASSERT_GE(c->plugins.size(), 2u);
  EXPECT_EQ(c->plugins[0].kind + "." + c->plugins[0].name, "secrets.store");
  EXPECT_EQ(c->plugins[1].kind + "." + c->plugins[1].name, "secrets.env");
  // A [secrets.config] after an entry is that entry's.
  EXPECT_FALSE(c->plugins[0].config.values.at("generate_key").b);
  EXPECT_EQ(c->plugins[0].config.values.at("generate_key").type, RawValue::Type::kBool);
  EXPECT_TRUE(c->plugins[1].config.values.empty());
  auto twice = ParseConfig("[[secrets]]\ntype = \"env\"\n[[secrets]]\ntype = \"env\"\n" + rest, "f.toml");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().message(), "f.toml:3: secrets 'env' is configured twice");
  auto untyped = ParseConfig("[[secrets]]\nkind = \"env\"\n" + rest, "f.toml");
  ASSERT_FALSE(untyped.ok());
  EXPECT_NE(untyped.status().message().find("type"), std::string::npos) << untyped.status().message();
}

TEST(Config, APluginBuiltOutOfTreeIsLoadedFromItsPath) {
  const std::string base = std::string(kMinimal) + "[[harness]]\ntype = \"echo\"\n";
  auto relative = ParseConfig(base + "path = \"build/paddock-harness-echo.so\"\n", "/etc/acme/paddock.toml");
  ASSERT_OK(relative);
  EXPECT_EQ(relative->plugins[4].path, "/etc/acme/build/paddock-harness-echo.so");
  EXPECT_EQ(relative->plugins[3].path, "");  // the others come from plugin_dir
  auto absolute =
      ParseConfig(base + "path = \"/opt/acme/paddock-harness-echo.so\"\n", "/etc/acme/paddock.toml");
  ASSERT_OK(absolute);
  EXPECT_EQ(absolute->plugins[4].path, "/opt/acme/paddock-harness-echo.so");
  // The loader insists on the file's name: refused here, at the line, not at load time.
  auto misnamed = ParseConfig(base + "path = \"/opt/acme/libecho.so\"\n", "f.toml");
  EXPECT_CODE(misnamed, kInvalidArgument);
  EXPECT_EQ(misnamed.status().message(),
            "f.toml:12: [harness] path must name a file called paddock-harness-echo.so, not libecho.so");
}

TEST(Schema, DurationsAndSizes) {
  EXPECT_EQ(ParseDurationMs("250ms"), 250);
  EXPECT_EQ(ParseDurationMs("5s"), 5000);
  EXPECT_EQ(ParseDurationMs("2m"), 120000);
  EXPECT_EQ(ParseDurationMs("1h"), 3600000);
  EXPECT_FALSE(ParseDurationMs("5"));
  EXPECT_FALSE(ParseDurationMs("s"));
  EXPECT_FALSE(ParseDurationMs("-1s"));
  EXPECT_EQ(ParseSizeBytes("1024"), 1024);
  EXPECT_EQ(ParseSizeBytes("1MiB"), 1 << 20);
  EXPECT_EQ(ParseSizeBytes("2KB"), 2000);
  EXPECT_FALSE(ParseSizeBytes("1 MiB"));
  EXPECT_FALSE(ParseSizeBytes("99999999999999999999"));
}

TEST(Config, EveryCoreSchemaIsSoundAndItsDefaultsObeyItsRules) {
  for (const auto& [name, schema] : CoreSchemas()) {
    EXPECT_OK(CheckSchema(schema)) << name;
    EXPECT_FALSE(schema.keys.empty()) << name;
  }
  const paddock_config_key keys[] = {{"n", PADDOCK_CONFIG_INT, 0, "0", "a count"},
                                     {"d", PADDOCK_CONFIG_DURATION, 0, "1s", "a wait"}};
  const paddock_config_rule too_small[] = {config::AtLeast("d", 2000)};
  Status s = CheckSchema({keys, too_small});
  EXPECT_NE(s.message().find("the default of key 'd' must be at least 2s, not 1s"), std::string::npos)
      << s.ToString();
  const paddock_config_rule zero_ok[] = {config::ZeroOr("n", 5, 9)};
  EXPECT_OK(CheckSchema({keys, zero_ok}));
  const paddock_config_rule list_on_int[] = {config::OneOf("n", "1,2")};
  EXPECT_FALSE(CheckSchema({keys, list_on_int}).ok());
}

TEST(Config, BoundsAreWrittenInTheUnitsOfTheKeyAndNameTheLine) {
  auto c = ParseConfig(std::string(kMinimal) + "[profiles.default]\nwarm = 1\ndisk = \"8MiB\"\n", "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(
                "f.toml:12: [profiles.default] key 'disk' must be 0 or at least 16MiB, not 8MiB"),
            std::string::npos)
      << c.status().ToString();
  c = ParseConfig(std::string(kMinimal) + "[worker]\nlease_ttl = \"500ms\"\n", "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("key 'lease_ttl' must be at least 1s, not 500ms"), std::string::npos)
      << c.status().ToString();
  c = ParseConfig(std::string(kMinimal) + "[server]\nlog_level = \"loud\"\n", "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("key 'log_level' must be \"debug\", \"info\", \"warn\" or \"error\""),
            std::string::npos)
      << c.status().ToString();
  c = ParseConfig(std::string(kMinimal) + "[worker]\nlease_ttl = \"10s\"\nheartbeat_interval = \"6s\"\n",
                  "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("heartbeat_interval must be at most half of lease_ttl"),
            std::string::npos);
  c = ParseConfig(std::string(kMinimal) + "[profiles.default]\nwarm = 0\ndisk = 0\npids = 16\n", "f.toml");
  ASSERT_OK(c);
}

}  // namespace
}  // namespace paddock
