// The sandboxes room's parts alone, on a real SQLite store in this process and an in-memory
// sandbox provider: the Reconciler destroys exactly the sandboxes nobody is bound to (and the
// data of closed sessions), sparing the bound, the young and the warm, and stops on a
// provider that cannot list; the IdleWatch names a session idle only after its timeout (the
// agent's over the server's), and Touch and Forget reset it; SessionLocks give one mutex per
// session.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "paddock/testing/assert.h"
#include "services/sandboxes/idle_watch.h"
#include "services/sandboxes/reconciler.h"
#include "services/sandboxes/session_locks.h"
#include "services/sandboxes/warm_pool.h"
#include "testing.h"

namespace paddock {
namespace {

using namespace std::chrono_literals;

// Sandboxes as entries in a map; `fail_list` makes List fail as a provider whose host is
// unreachable would.
class MemoryProvider final : public SandboxProvider {
 public:
  SandboxInfo Add(const std::string& id, const std::string& session, TimestampMs created_at) {
    std::lock_guard lock(mu_);
    SandboxInfo info;
    info.id = id;
    info.session_id = session;
    info.state = SandboxState::kRunning;
    info.created_at = created_at;
    sandboxes_[id] = info;
    return info;
  }
  Result<SandboxInfo> Create(const SandboxSpec& spec) noexcept override {
    return Add("mem_" + std::to_string(++next_), spec.session_id, NowMs());
  }
  Result<SandboxInfo> Claim(std::string_view id, std::string_view session_id) noexcept override {
    std::lock_guard lock(mu_);
    auto it = sandboxes_.find(std::string(id));
    if (it == sandboxes_.end()) return Status::NotFound("no sandbox");
    it->second.session_id = std::string(session_id);
    return it->second;
  }
  Result<SandboxInfo> Inspect(std::string_view id) noexcept override {
    std::lock_guard lock(mu_);
    auto it = sandboxes_.find(std::string(id));
    if (it == sandboxes_.end()) return Status::NotFound("no sandbox");
    return it->second;
  }
  Status Destroy(std::string_view id) noexcept override {
    std::lock_guard lock(mu_);
    sandboxes_.erase(std::string(id));
    destroyed.insert(std::string(id));
    return Status::Ok();
  }
  Result<std::vector<SandboxInfo>> List() noexcept override {
    std::lock_guard lock(mu_);
    if (fail_list) return Status::Unavailable("the host does not answer");
    std::vector<SandboxInfo> out;
    for (const auto& [id, info] : sandboxes_) out.push_back(info);
    return out;
  }
  Status DeleteSessionData(std::string_view session_id) noexcept override {
    std::lock_guard lock(mu_);
    data_deleted.insert(std::string(session_id));
    return Status::Ok();
  }

  std::set<std::string> destroyed;
  std::set<std::string> data_deleted;
  bool fail_list = false;

 private:
  std::mutex mu_;
  std::map<std::string, SandboxInfo> sandboxes_;
  int next_ = 0;
};

class SandboxRooms : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = testing::LoadStore("sqlite", "", dir_.path());
    ASSERT_OK(loaded);
    store_ = *loaded;
  }
  Agent MakeAgent(const std::string& id, std::optional<std::int64_t> idle_seconds = std::nullopt) {
    Agent a;
    a.id = id;
    a.name = id;
    a.harness = "shell";
    a.idle_timeout_seconds = idle_seconds;
    a.created_at = NowMs();
    EXPECT_OK(store_->CreateAgent(a));
    return a;
  }
  // A ready session of `agent`, bound to `sandbox` (or to none).
  void MakeSession(const std::string& id, const std::string& agent, const std::string& sandbox) {
    Session s;
    s.id = id;
    s.agent_id = agent;
    s.created_at = s.updated_at = NowMs();
    ASSERT_OK(store_->CreateSession(s, IdempotencyKey{}));
    ASSERT_OK(store_->TransitionSession(id, SessionStatus::kProvisioning, SessionStatus::kReady, ""));
    if (!sandbox.empty()) {
      ASSERT_OK(store_->SetSessionSandbox(id, sandbox));
    }
  }

  testing::TempDir dir_;
  std::shared_ptr<SessionStore> store_;
};

TEST_F(SandboxRooms, ReconcilerDestroysOnlyWhatNobodyIsBoundTo) {
  MemoryProvider provider;
  SessionLocks locks;
  WarmPool warm({}, 1s, nullptr, nullptr);
  std::vector<std::string> destroyed_through_manager;
  Reconciler reconciler(*store_, provider, locks, warm, [&](const SandboxInfo& info) {
    destroyed_through_manager.push_back(info.id);
    return provider.Destroy(info.id);
  });
  MakeAgent("agt_1");
  const TimestampMs old = NowMs() - 60000;
  provider.Add("sb_bound", "ses_a", old);
  MakeSession("ses_a", "agt_1", "sb_bound");
  provider.Add("sb_left_behind", "ses_b", old);  // ses_b is bound to another sandbox now
  provider.Add("sb_other", "ses_b", old);
  MakeSession("ses_b", "agt_1", "sb_other");
  provider.Add("sb_closed", "ses_c", old);
  MakeSession("ses_c", "agt_1", "sb_closed");
  ASSERT_OK(store_->TransitionSession("ses_c", SessionStatus::kReady, SessionStatus::kClosed, "closed"));
  provider.Add("sb_unknown", "ses_gone", old);  // no such session at all
  provider.Add("sb_young", "ses_young", NowMs());
  provider.Add("sb_warm", "", old);

  auto n = reconciler.Run(10s);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(provider.destroyed, (std::set<std::string>{"sb_left_behind", "sb_closed", "sb_unknown"}));
  EXPECT_EQ(destroyed_through_manager.size(), 3u) << "every destroy goes through the manager's door";
  // The closed and the unknown session's data go; a live session's data stays.
  EXPECT_EQ(provider.data_deleted, (std::set<std::string>{"ses_c", "ses_gone"}));
  // Again: nothing more to do.
  n = reconciler.Run(10s);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 0);

  provider.fail_list = true;
  n = reconciler.Run(10s);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kUnavailable);
}

TEST_F(SandboxRooms, ReconcilerSparesASandboxBoundWhileItWaitedForTheSessionLock) {
  MemoryProvider provider;
  SessionLocks locks;
  WarmPool warm({}, 1s, nullptr, nullptr);
  Reconciler reconciler(*store_, provider, locks, warm,
                        [&](const SandboxInfo& info) { return provider.Destroy(info.id); });
  MakeAgent("agt_1");
  provider.Add("sb_new", "ses_a", NowMs() - 60000);
  MakeSession("ses_a", "agt_1", "");
  // An Ensure holds the session's lock and binds sb_new while the reconciler waits for it.
  auto held = locks.For("ses_a");
  std::unique_lock binding(*held);
  std::thread reconcile([&] { EXPECT_OK(reconciler.Run(10s)); });
  std::this_thread::sleep_for(100ms);
  ASSERT_OK(store_->SetSessionSandbox("ses_a", "sb_new"));
  binding.unlock();
  reconcile.join();
  EXPECT_TRUE(provider.destroyed.empty()) << "destroyed a sandbox bound under the lock it waited for";
}

TEST_F(SandboxRooms, IdleWatchNamesASessionIdleOnlyPastItsTimeout) {
  MakeAgent("agt_server");    // the server's timeout applies
  MakeAgent("agt_never", 0);  // never idle
  MakeAgent("agt_short", 2);  // 2 s, over the server's
  MakeSession("ses_server", "agt_server", "");
  MakeSession("ses_never", "agt_never", "");
  MakeSession("ses_short", "agt_short", "");
  IdleWatch watch(*store_, 300ms, [](const std::string&) {});
  for (const char* s : {"ses_server", "ses_never", "ses_short"}) watch.Touch(s);
  EXPECT_TRUE(watch.Idle().empty());
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(watch.Idle(), std::vector<std::string>{"ses_server"});
  watch.Touch("ses_server");  // it did something: its clock starts again
  EXPECT_TRUE(watch.Idle().empty());
  std::this_thread::sleep_for(1700ms);
  std::vector<std::string> idle = watch.Idle();
  EXPECT_EQ(std::set<std::string>(idle.begin(), idle.end()),
            (std::set<std::string>{"ses_server", "ses_short"}));
  watch.Forget("ses_server");
  watch.Forget("ses_short");
  EXPECT_TRUE(watch.Idle().empty());
}

TEST_F(SandboxRooms, IdleWatchHandsIdleSessionsToSuspendFromItsThread) {
  MakeAgent("agt_1");
  MakeSession("ses_1", "agt_1", "");
  std::mutex mu;
  std::vector<std::string> suspended;
  IdleWatch watch(*store_, 200ms, [&](const std::string& id) {
    std::lock_guard lock(mu);
    suspended.push_back(id);
  });
  watch.Start();
  watch.Touch("ses_1");
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard lock(mu);
      if (!suspended.empty()) break;
    }
    std::this_thread::sleep_for(50ms);
  }
  watch.Stop();
  std::lock_guard lock(mu);
  ASSERT_FALSE(suspended.empty());
  EXPECT_EQ(suspended.front(), "ses_1");
}

TEST(SessionLocks, OneMutexPerSessionAsLongAsSomeoneHoldsIt) {
  SessionLocks locks;
  auto a = locks.For("ses_a");
  EXPECT_EQ(a, locks.For("ses_a"));
  EXPECT_NE(a, locks.For("ses_b"));
  std::unique_lock hold(*a);
  bool other_went_on = false;
  std::thread t([&] {
    std::lock_guard g(*locks.For("ses_b"));
    other_went_on = true;
  });
  t.join();
  EXPECT_TRUE(other_went_on) << "one session's lock held up another's";
  EXPECT_FALSE(locks.For("ses_a")->try_lock());
  // Many sessions come and go; a held lock survives the sweeps.
  for (int i = 0; i < 1000; ++i) (void)locks.For("ses_" + std::to_string(i));
  EXPECT_EQ(a, locks.For("ses_a"));
}

}  // namespace
}  // namespace paddock
