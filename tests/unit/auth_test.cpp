// Keys as text, the failed-authentication limiter and the key cache, on their own.
#include <gtest/gtest.h>

#include <set>

#include "faulty_store.h"
#include "paddock/testing/assert.h"
#include "services/teams/api_key.h"
#include "services/teams/authenticator.h"
#include "services/teams/failed_auth.h"
#include "testing.h"
#include "util/ids.h"

namespace paddock::testing {
namespace {

TEST(ApiKeys, AreRandomWellFormedAndKnownOnlyByTheirHash) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    NewKeyText k = GenerateKey();
    EXPECT_EQ(k.key.rfind("pdk_", 0), 0u);
    EXPECT_EQ(k.key.size(), 4u + 43u);  // base64url of 32 bytes, unpadded
    EXPECT_TRUE(WellFormedKey(k.key));
    EXPECT_EQ(k.prefix, k.key.substr(0, kKeyPrefixShown));
    EXPECT_EQ(k.hash, HashKey(k.key));
    EXPECT_EQ(k.hash.size(), 64u);
    EXPECT_EQ(
        k.key.find_first_not_of("pdk_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-", 0),
        std::string::npos)
        << k.key;
    EXPECT_TRUE(seen.insert(k.key).second);
  }
  EXPECT_FALSE(WellFormedKey("pdk_short"));
  EXPECT_FALSE(WellFormedKey(std::string(257, 'a')));
  EXPECT_FALSE(WellFormedKey("pdk_with a space in the middle of it 0123456789"));
  EXPECT_FALSE(WellFormedKey(std::string("pdk_nul\0in-it-0123456789abcdefghijklmnopq", 40)));
}

TEST(FailedAuthLimiter, LetsABurstThroughThenRefillsAtTheRate) {
  FailedAuthLimiter limiter(6);  // one try every 10 s, burst 6
  auto t0 = FailedAuthLimiter::Clock::now();
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(limiter.RetryAfter("a", t0), 0);
    limiter.Failed("a", t0);
  }
  EXPECT_EQ(limiter.RetryAfter("a", t0), 10);
  EXPECT_EQ(limiter.RetryAfter("b", t0), 0);  // per address
  EXPECT_EQ(limiter.RetryAfter("a", t0 + std::chrono::seconds(5)), 5);
  EXPECT_EQ(limiter.RetryAfter("a", t0 + std::chrono::seconds(10)), 0);
  FailedAuthLimiter off(0);
  for (int i = 0; i < 100; ++i) off.Failed("a", t0);
  EXPECT_EQ(off.RetryAfter("a", t0), 0);
}

TEST(FailedAuthLimiter, ForgetsAddressesThatStoppedFailingWhenFull) {
  FailedAuthLimiter limiter(60, /*max_addresses=*/100);
  auto t0 = FailedAuthLimiter::Clock::now();
  for (int i = 0; i < 100; ++i) limiter.Failed("old" + std::to_string(i), t0);
  // A minute later every old bucket is full again: a new address makes room by forgetting them.
  limiter.Failed("new", t0 + std::chrono::minutes(2));
  EXPECT_LE(limiter.tracked(), 100u);
  // Even when every tracked address is failing now, the table stays bounded.
  for (int i = 0; i < 500; ++i) {
    for (int j = 0; j < 60; ++j) limiter.Failed("busy" + std::to_string(i), t0 + std::chrono::minutes(3));
  }
  EXPECT_LE(limiter.tracked(), 100u);
}

class KeyCache : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = LoadStore("sqlite", "", dir_.path());
    ASSERT_OK(loaded);
    store_ = std::make_unique<FaultyStore>(*loaded);
    NewKeyText text = GenerateKey();
    key_ = text.key;
    record_.id = NewId("key");
    record_.team_id = kDefaultTeam;
    record_.name = "k";
    record_.role = Role::kMember;
    record_.prefix = text.prefix;
    record_.hash = text.hash;
    record_.created_at = NowMs();
    ASSERT_OK(store_->CreateApiKey(record_));
  }
  TempDir dir_;
  std::unique_ptr<FaultyStore> store_;
  std::string key_;
  ApiKey record_;
};

TEST_F(KeyCache, LooksAKeyUpOnceAndForgetsItWhenRevokedOrTheFeedIsDown) {
  Authenticator auth(*store_, std::chrono::hours(1));
  for (int i = 0; i < 10; ++i) {
    AuthOutcome a = auth.Check(key_);
    ASSERT_EQ(a.failure, AuthFailure::kNone) << a.message;
    EXPECT_EQ(a.principal.key_id, record_.id);
    EXPECT_EQ(a.principal.role, Role::kMember);
  }
  EXPECT_EQ(store_->Calls("FindApiKey"), 1);
  // A revocation told by the feed: the next check goes to the store and is refused.
  ASSERT_OK(store_->inner().RevokeApiKey(record_.id, NowMs()));
  auth.OnKeyRevoked(record_.id);
  EXPECT_EQ(auth.Check(key_).failure, AuthFailure::kRevoked);
  EXPECT_EQ(store_->Calls("FindApiKey"), 2);
  EXPECT_EQ(auth.cached(), 0u);  // a revoked key is not cached
}

TEST_F(KeyCache, WhileNotificationsAreDownEveryCheckAsksTheStore) {
  Authenticator auth(*store_, std::chrono::hours(1));
  ASSERT_EQ(auth.Check(key_).failure, AuthFailure::kNone);
  auth.OnFeedState(false);
  ASSERT_OK(store_->inner().RevokeApiKey(record_.id, NowMs()));  // nobody is told
  EXPECT_EQ(auth.Check(key_).failure, AuthFailure::kRevoked);
  auth.OnFeedState(true);
  EXPECT_EQ(auth.Check(key_).failure, AuthFailure::kRevoked);
}

TEST_F(KeyCache, AStoreThatCannotBeReachedIsNotAnUnknownKey) {
  Authenticator auth(*store_, std::chrono::milliseconds(0));
  store_->Outage(Status::Unavailable("the database is down"));
  AuthOutcome a = auth.Check(key_);
  EXPECT_EQ(a.failure, AuthFailure::kStoreDown) << a.message;
  store_->Heal();
  EXPECT_EQ(auth.Check(key_).failure, AuthFailure::kNone);
  EXPECT_EQ(auth.Check("pdk_unknown-but-well-formed-0123456789abcdefghij").failure, AuthFailure::kUnknown);
  EXPECT_EQ(auth.Authenticate(nullptr, nullptr).failure, AuthFailure::kMissing);
  const std::string basic = "Basic " + key_;
  EXPECT_EQ(auth.Authenticate(&basic, nullptr).failure, AuthFailure::kMalformed);
  const std::string bearer = "bearer  " + key_ + " ";
  EXPECT_EQ(auth.Authenticate(&bearer, nullptr).failure, AuthFailure::kNone);
  EXPECT_EQ(auth.Authenticate(nullptr, &key_).failure, AuthFailure::kNone);
}

}  // namespace
}  // namespace paddock::testing
