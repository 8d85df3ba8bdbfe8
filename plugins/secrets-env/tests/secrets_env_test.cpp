#include <gtest/gtest.h>

#include <cstdlib>

#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {
namespace {

TEST(SecretsEnv, PrefixedVariablesBecomeSandboxVariablesWithThePrefixStripped) {
  setenv("CONTAINER_ENV_API_TOKEN", "tok-123", 1);
  setenv("CONTAINER_ENV_", "no name", 1);
  setenv("UNRELATED_TOKEN", "nope", 1);
  TempDir dir;
  auto secrets = LoadSecrets("env", "", dir.path());
  ASSERT_OK(secrets);
  auto resolved = (*secrets)->Resolve(SecretScope{"", "agt", "ses", {}});
  ASSERT_OK(resolved);
  std::map<std::string, std::string> got;
  for (const Secret& s : *resolved) got[s.name] = s.value;
  EXPECT_EQ(got["API_TOKEN"], "tok-123");
  EXPECT_EQ(got.count("UNRELATED_TOKEN"), 0u);
  EXPECT_EQ(got.count(""), 0u);
  unsetenv("CONTAINER_ENV_API_TOKEN");
  unsetenv("CONTAINER_ENV_");
}

TEST(SecretsEnv, PrefixIsConfigurable) {
  setenv("MYCO_SECRET_DB_PASSWORD", "hunter2", 1);
  TempDir dir;
  auto secrets = LoadSecrets("env", "prefix = \"MYCO_SECRET_\"", dir.path());
  ASSERT_OK(secrets);
  auto resolved = (*secrets)->Resolve(SecretScope{});
  ASSERT_OK(resolved);
  ASSERT_EQ(resolved->size(), 1u);
  EXPECT_EQ((*resolved)[0].name, "DB_PASSWORD");
  EXPECT_EQ((*resolved)[0].value, "hunter2");
  EXPECT_FALSE(LoadSecrets("env", "prefix = \"\"", dir.path()).ok());
}

}  // namespace
}  // namespace paddock::testing
