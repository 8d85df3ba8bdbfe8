// WarmPool alone, with in-process fakes for creating and destroying sandboxes: it fills each
// profile to its size, refills what is taken, retries a failing create, hands out the oldest
// first, takes back what a claim could not use, and leaves nothing behind when it stops.
#include "services/sandboxes/warm_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

namespace paddock {
namespace {

using namespace std::chrono_literals;

ProfileSettings Profile(const std::string& name, int warm) {
  ProfileSettings p;
  p.name = name;
  p.warm = warm;
  return p;
}

// Creates sandboxes "sb1", "sb2", ... (failing the first `fail_first` calls) and records what is
// destroyed.
struct FakeSandboxes {
  std::mutex mu;
  int created = 0;
  int fail_first = 0;
  std::set<std::string> alive;
  std::set<std::string> destroyed;

  WarmPool::CreateFn Create() {
    return [this](const ProfileSettings& profile) -> Result<SandboxInfo> {
      std::lock_guard lock(mu);
      if (fail_first > 0) {
        --fail_first;
        return Status::Unavailable("the host cannot create one now");
      }
      SandboxInfo info;
      info.id = "sb" + std::to_string(++created);
      info.profile = profile.name;
      alive.insert(info.id);
      return info;
    };
  }
  WarmPool::DestroyFn Destroy() {
    return [this](const SandboxInfo& info) {
      std::lock_guard lock(mu);
      alive.erase(info.id);
      destroyed.insert(info.id);
    };
  }
};

bool WaitFor(const std::function<bool()>& done) {
  for (auto until = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < until;) {
    if (done()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return done();
}

TEST(WarmPool, FillsEachProfileAndRefillsWhatIsTaken) {
  FakeSandboxes fake;
  WarmPool pool({Profile("default", 2), Profile("big", 1), Profile("none", 0)}, 10ms, fake.Create(),
                fake.Destroy());
  pool.Start();
  ASSERT_TRUE(WaitFor([&] { return pool.Count("default") == 2 && pool.Count("big") == 1; }));
  EXPECT_EQ(pool.Count("none"), 0);
  std::optional<SandboxInfo> first = pool.Take("default");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->profile, "default");
  ASSERT_TRUE(WaitFor([&] { return pool.Count("default") == 2; })) << "a taken sandbox is replaced";
  EXPECT_FALSE(pool.Ids().count(first->id)) << "a taken sandbox is the pool's no more";
  std::this_thread::sleep_for(50ms);
  std::lock_guard lock(fake.mu);
  EXPECT_EQ(fake.created, 4) << "never more than the profiles ask for";
}

TEST(WarmPool, HandsOutTheOldestFirstAndTakesBackWhatAClaimCouldNotUse) {
  FakeSandboxes fake;
  WarmPool pool({Profile("default", 2)}, 10ms, fake.Create(), fake.Destroy());
  pool.Start();
  ASSERT_TRUE(WaitFor([&] { return pool.Count("default") == 2; }));
  std::optional<SandboxInfo> a = pool.Take("default");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->id, "sb1");
  pool.PutBack("default", *a);
  std::optional<SandboxInfo> again = pool.Take("default");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->id, "sb1") << "put back at the front";
  EXPECT_FALSE(pool.Take("other").has_value()) << "a profile without a pool has nothing";
}

TEST(WarmPool, RetriesAFailingCreateAndDestroysWhatIsLeftWhenItStops) {
  FakeSandboxes fake;
  fake.fail_first = 3;
  {
    WarmPool pool({Profile("default", 2)}, 5ms, fake.Create(), fake.Destroy());
    pool.Start();
    ASSERT_TRUE(WaitFor([&] { return pool.Count("default") == 2; })) << "failures are retried";
    std::optional<SandboxInfo> taken = pool.Take("default");
    ASSERT_TRUE(taken.has_value());
    ASSERT_TRUE(WaitFor([&] { return pool.Count("default") == 2; }));
    pool.Stop();
    EXPECT_EQ(pool.Count("default"), 0);
    std::lock_guard lock(fake.mu);
    EXPECT_EQ(fake.alive, std::set<std::string>{taken->id}) << "only the taken one is left, its taker's";
  }
  std::lock_guard lock(fake.mu);
  EXPECT_EQ(fake.destroyed.size(), 2u);
}

TEST(WarmPool, StartsNoThreadWhenNoProfileIsWarm) {
  FakeSandboxes fake;
  WarmPool pool({Profile("default", 0)}, 5ms, fake.Create(), fake.Destroy());
  pool.Start();
  std::this_thread::sleep_for(30ms);
  std::lock_guard lock(fake.mu);
  EXPECT_EQ(fake.created, 0);
}

}  // namespace
}  // namespace paddock
