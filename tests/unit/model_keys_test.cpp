// The bindings model keys get by default: each key goes to the endpoint its harnesses send it
// to, in the header they send it in, and nowhere else; a plain-HTTP endpoint gets none.
#include "services/vault/model_keys.h"

#include <gtest/gtest.h>

#include "paddock/vault.h"

namespace paddock {
namespace {

TEST(ModelKeys, AnHttpsGatewayBindsEveryModelKeyToItAsTheProvidersSendThem) {
  ModelKeys k = ModelKeyBindings("https://llm.internal:4443", "https://llm.internal:4443/v1");
  EXPECT_TRUE(k.warnings.empty());
  ASSERT_EQ(k.bindings.size(), 4u);
  const VaultBinding& anthropic = k.bindings.at("ANTHROPIC_API_KEY");
  EXPECT_EQ(anthropic.form, VaultForm::kHeader);
  EXPECT_EQ(anthropic.field, "x-api-key");
  EXPECT_EQ(anthropic.format, "{}");
  EXPECT_EQ(k.bindings.at("ANTHROPIC_AUTH_TOKEN").field, "Authorization");
  EXPECT_EQ(k.bindings.at("ANTHROPIC_AUTH_TOKEN").format, "Bearer {}");
  EXPECT_EQ(k.bindings.at("OPENAI_API_KEY").format, "Bearer {}");
  const VaultBinding& gateway = k.bindings.at("LITELLM_API_KEY");
  EXPECT_EQ(gateway.hosts, std::vector<std::string>{"llm.internal:4443"});
  EXPECT_EQ(gateway.format, "Bearer {}");
  for (const auto& [name, b] : k.bindings) {
    EXPECT_TRUE(VaultCovers(b, "llm.internal", 4443)) << name;
    EXPECT_FALSE(VaultCovers(b, "llm.internal", 443)) << name;
    EXPECT_FALSE(VaultCovers(b, "evil.example", 4443)) << name;
    EXPECT_TRUE(b.agents.empty()) << name;
  }
}

TEST(ModelKeys, WithoutEndpointsTheKeysGoToTheProvidersOwnApisOnly) {
  ModelKeys k = ModelKeyBindings("", "");
  EXPECT_TRUE(k.warnings.empty());
  EXPECT_TRUE(VaultCovers(k.bindings.at("ANTHROPIC_API_KEY"), "api.anthropic.com", 443));
  EXPECT_FALSE(VaultCovers(k.bindings.at("ANTHROPIC_API_KEY"), "api.openai.com", 443));
  EXPECT_TRUE(VaultCovers(k.bindings.at("OPENAI_API_KEY"), "api.openai.com", 443));
  EXPECT_FALSE(VaultCovers(k.bindings.at("OPENAI_API_KEY"), "api.anthropic.com", 443));
  const VaultBinding& gateway = k.bindings.at("LITELLM_API_KEY");
  EXPECT_TRUE(VaultCovers(gateway, "api.anthropic.com", 443));
  EXPECT_TRUE(VaultCovers(gateway, "api.openai.com", 443));
}

TEST(ModelKeys, APlainHttpEndpointsKeysGoInAsValuesAndTheServerSaysSo) {
  ModelKeys k = ModelKeyBindings("http://llm.internal:4000", "https://api.openai.com/v1");
  EXPECT_EQ(k.bindings.count("ANTHROPIC_API_KEY"), 0u);
  EXPECT_EQ(k.bindings.count("ANTHROPIC_AUTH_TOKEN"), 0u);
  EXPECT_EQ(k.bindings.count("OPENAI_API_KEY"), 1u);
  // The gateway's key is sent to both; a placeholder would not work at the plain one.
  EXPECT_EQ(k.bindings.count("LITELLM_API_KEY"), 0u);
  ASSERT_EQ(k.warnings.size(), 2u);
  EXPECT_NE(k.warnings[0].find("ANTHROPIC_API_KEY"), std::string::npos) << k.warnings[0];
  EXPECT_NE(k.warnings[0].find("http://llm.internal:4000"), std::string::npos) << k.warnings[0];
  EXPECT_NE(k.warnings[1].find("LITELLM_API_KEY"), std::string::npos) << k.warnings[1];
}

}  // namespace
}  // namespace paddock
