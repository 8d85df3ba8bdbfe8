// Egress passes from the side of someone who holds one and wants more: a pass opens the sandbox
// it was made for and no other, and nothing changed in it verifies.
#include "services/egress/egress_pass.h"

#include <Poco/Base64Encoder.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <sstream>

#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {
namespace {

std::string Basic(const std::string& user, const std::string& password) {
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.rdbuf()->setLineLength(0);
  encoder << user << ":" << password;
  encoder.close();
  return "Basic " + out.str();
}

TEST(EgressPass, APassOpensOnlyTheSandboxItWasMadeForAndNothingAltered) {
  TempDir dir;
  auto pass = EgressPass::Load(dir.path() + "/pass.key");
  ASSERT_OK(pass);
  struct stat st {};
  ASSERT_EQ(stat((dir.path() + "/pass.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const EgressCredentials c = (*pass)->Mint("ses_a", "sbx-1.paddock", "default");
  EXPECT_EQ(c.user, "ses_a");
  EXPECT_EQ(c.password.rfind("default.", 0), 0u);

  std::optional<EgressClaim> claim = EgressPass::Parse(Basic(c.user, c.password));
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->session_id, "ses_a");
  EXPECT_EQ(claim->profile, "default");
  EXPECT_TRUE((*pass)->Verify(*claim, "sbx-1.paddock"));
  // The session's sandbox since replaced, or none.
  EXPECT_FALSE((*pass)->Verify(*claim, "sbx-2.paddock"));
  EXPECT_FALSE((*pass)->Verify(*claim, ""));
  // Another session's name, another profile (a wider allow list), a changed digit.
  for (const auto& [user, password] :
       {std::pair<std::string, std::string>{"ses_b", c.password},
        {c.user, "wide" + c.password.substr(c.password.find('.'))},
        {c.user, c.password.substr(0, c.password.size() - 1) + (c.password.back() == '0' ? "1" : "0")}}) {
    std::optional<EgressClaim> altered = EgressPass::Parse(Basic(user, password));
    ASSERT_TRUE(altered) << user << ":" << password;
    EXPECT_FALSE((*pass)->Verify(*altered, "sbx-1.paddock")) << user << ":" << password;
  }
  // Another install's key.
  auto other = EgressPass::Load(dir.path() + "/other.key");
  ASSERT_OK(other);
  EXPECT_FALSE((*other)->Verify(*claim, "sbx-1.paddock"));
  // Not a pass at all.
  for (const std::string& h :
       {std::string(""), std::string("Bearer x"), std::string("Basic !!!"), Basic("ses_a", "nodot"),
        Basic("../etc", c.password), Basic("ses_a", "default.12")})
    EXPECT_FALSE(EgressPass::Parse(h)) << h;
  // Another process of the install loads the same key.
  auto again = EgressPass::Load(dir.path() + "/pass.key");
  ASSERT_OK(again);
  EXPECT_TRUE((*again)->Verify(*claim, "sbx-1.paddock"));
  // A key others may read is refused.
  chmod((dir.path() + "/pass.key").c_str(), 0644);
  EXPECT_CODE(EgressPass::Load(dir.path() + "/pass.key"), kFailedPrecondition);
}

}  // namespace
}  // namespace paddock::testing
