#include "services/events/append_share.h"

#include <gtest/gtest.h>

namespace paddock {
namespace {

using std::chrono::milliseconds;

TEST(AppendShare, ASessionWithinItsShareNeverWaits) {
  AppendShare share(100, 0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(share.Take("ses_a", 10).count(), 0) << i;  // a second's worth
}

TEST(AppendShare, ASessionOverItsShareWaitsForWhatItOwes) {
  AppendShare share(100, 0);
  for (int i = 0; i < 100; ++i) (void)share.Take("ses_a", 10);
  // The bucket is empty: each further event owes 10 ms at 100 events/s, and the debt grows.
  auto first = share.Take("ses_a", 10), second = share.Take("ses_a", 10);
  EXPECT_GT(first, milliseconds(5));
  EXPECT_LE(first, milliseconds(11));
  EXPECT_GT(second, first + milliseconds(5));
}

TEST(AppendShare, OneSessionsFloodDoesNotTouchAnothersShare) {
  AppendShare share(100, 1 << 20);
  for (int i = 0; i < 1000; ++i) (void)share.Take("ses_noisy", 1000);
  EXPECT_GT(share.Take("ses_noisy", 1000), milliseconds(1000));
  EXPECT_EQ(share.Take("ses_quiet", 1000).count(), 0);
}

TEST(AppendShare, BytesAreSharedToo) {
  AppendShare share(0, 1000);  // 1000 bytes/s, any number of events
  EXPECT_EQ(share.Take("ses_a", 1000).count(), 0);
  auto wait = share.Take("ses_a", 500);  // half a second's worth over
  EXPECT_GT(wait, milliseconds(400));
  EXPECT_LE(wait, milliseconds(500));
}

TEST(AppendShare, ZeroRatesMeanNoLimit) {
  AppendShare share(0, 0);
  for (int i = 0; i < 100000; ++i) ASSERT_EQ(share.Take("ses_a", 1 << 20).count(), 0);
}

}  // namespace
}  // namespace paddock
