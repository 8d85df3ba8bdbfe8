// The session and event services on a bad day: a real SQLite store in this process behind a
// FaultyStore that fails chosen calls, either before they reach the database (nothing written)
// or after (written, but the answer lost). Whatever fails, the caller gets the store's error,
// nothing is left half-done, and a retry (with the same Idempotency-Key where there is one)
// ends in the state one successful call would have made.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "faulty_store.h"
#include "metrics/metrics.h"
#include "paddock/testing/assert.h"
#include "services/events/event_service.h"
#include "services/sessions/session_service.h"
#include "testing.h"
#include "util/redactor.h"

namespace paddock {
namespace {

using testing::FaultyStore;

class StoreFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = testing::LoadStore("sqlite", "", dir_.path());
    ASSERT_OK(loaded);
    store_ = std::make_unique<FaultyStore>(*loaded);
    events_ = std::make_unique<EventService>(*store_, redactor_, metrics_);
    // No sandboxes and no worker in this process: sessions start suspended and runs stay queued.
    sessions_ =
        std::make_unique<SessionService>(*store_, *events_, nullptr, metrics_, nullptr, nullptr, nullptr);
    Agent a;
    a.id = "agt_faults";
    a.name = "faults";
    a.harness = "shell";
    a.created_at = NowMs();
    ASSERT_OK(store_->CreateAgent(a));
  }
  const Principal owner_{"key_test", "test", kDefaultTeam, Role::kAdmin};
  std::string NewSession() {
    auto made = sessions_->Create(owner_, "agt_faults", "");
    EXPECT_OK(made);
    return made.ok() ? made->value.id : "";
  }
  std::vector<std::string> Types(const std::string& session) {
    std::vector<std::string> out;
    auto listed = store_->inner().ListEvents(session, 0, 1000);
    EXPECT_OK(listed);
    if (listed.ok()) {
      for (const Event& e : *listed) out.push_back(e.type + "#" + std::to_string(e.seq));
    }
    return out;
  }
  std::vector<Session> AllSessions() {
    auto page = store_->inner().ListSessions(SessionFilter{});
    EXPECT_OK(page);
    return page.ok() ? page->items : std::vector<Session>{};
  }

  testing::TempDir dir_;
  Redactor redactor_;
  Metrics metrics_;
  std::unique_ptr<FaultyStore> store_;
  std::unique_ptr<EventService> events_;
  std::unique_ptr<SessionService> sessions_;
};

TEST_F(StoreFaults, AFailedAppendIsReportedAndTheLogStaysGapFree) {
  const std::string session = NewSession();
  store_->Fail("AppendEvent", Status::NoSpace("disk full"));
  Result<Event> refused = events_->Append(session, "", "note", R"({"n":1})");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kNoSpace);
  // Written, but the answer lost: the caller hears of the failure, the event is there once.
  store_->Fail("AppendEvent", Status::Unavailable("connection dropped"), FaultyStore::When::kAfter);
  Result<Event> lost = events_->Append(session, "", "note", R"({"n":2})");
  EXPECT_EQ(lost.status().code(), StatusCode::kUnavailable);
  Result<Event> next = events_->Append(session, "", "note", R"({"n":3})");
  ASSERT_OK(next);
  EXPECT_EQ(next->seq, 3);
  EXPECT_EQ(Types(session), (std::vector<std::string>{"session.created#1", "note#2", "note#3"}));
}

TEST_F(StoreFaults, ASessionWhoseCreationCannotBeRecordedIsNotLeftBehind) {
  store_->Fail("CreateSession", Status::Unavailable("database unreachable"));
  auto first = sessions_->Create(owner_, "agt_faults", "key-1");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(AllSessions().empty());
  // The row is written but its first event is not: the session is taken back with its key.
  store_->Fail("AppendEvent", Status::NoSpace("disk full"));
  auto second = sessions_->Create(owner_, "agt_faults", "key-1");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kNoSpace);
  EXPECT_TRUE(AllSessions().empty());
  // The retry with the same key makes one session, whose log starts with its creation.
  auto retry = sessions_->Create(owner_, "agt_faults", "key-1");
  ASSERT_OK(retry);
  EXPECT_FALSE(retry->replayed);
  ASSERT_EQ(AllSessions().size(), 1u);
  EXPECT_EQ(Types(retry->value.id), (std::vector<std::string>{"session.created#1"}));
}

TEST_F(StoreFaults, AMessageWhoseAnswerWasLostIsQueuedOnceOnRetry) {
  const std::string session = NewSession();
  store_->Fail("EnqueueRun", Status::Unavailable("connection dropped"), FaultyStore::When::kAfter);
  auto lost = sessions_->Send(session, "echo hi", OnBusy::kQueue, "msg-1");
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.status().code(), StatusCode::kUnavailable);
  auto retry = sessions_->Send(session, "echo hi", OnBusy::kQueue, "msg-1");
  ASSERT_OK(retry);
  EXPECT_TRUE(retry->replayed);
  auto runs = sessions_->Runs(session, 100);
  ASSERT_OK(runs);
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].id, retry->value.id);
  EXPECT_EQ(Types(session), (std::vector<std::string>{"session.created#1", "message.user#2"}));
  // Refused before the store: nothing queued, and the same key is free for the retry.
  store_->Fail("EnqueueRun", Status::Unavailable("database unreachable"));
  EXPECT_FALSE(sessions_->Send(session, "echo again", OnBusy::kQueue, "msg-2").ok());
  auto again = sessions_->Send(session, "echo again", OnBusy::kQueue, "msg-2");
  ASSERT_OK(again);
  EXPECT_FALSE(again->replayed);
  ASSERT_OK(sessions_->Runs(session, 100));
  EXPECT_EQ(sessions_->Runs(session, 100)->size(), 2u);
}

TEST_F(StoreFaults, AFailedCloseIsFinishedByTheNextOne) {
  const std::string session = NewSession();
  ASSERT_OK(sessions_->Send(session, "sleep 100", OnBusy::kQueue, ""));
  SnapshotInfo snap;
  snap.session_id = session;
  snap.run_id = "run_before";
  ASSERT_OK(store_->PutSnapshot(snap, "archive", 3, nullptr));
  store_->Fail("CancelRun", Status::Unavailable("database unreachable"));
  auto failed = sessions_->Close(session);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  // Closed to new messages already...
  auto refused = sessions_->Send(session, "echo late", OnBusy::kQueue, "");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  // ...and the next Close cancels the run, drops the snapshots and says so once.
  auto closed = sessions_->Close(session);
  ASSERT_OK(closed);
  EXPECT_EQ(closed->status, SessionStatus::kClosed);
  EXPECT_EQ(closed->status_reason, "closed by request");
  auto runs = sessions_->Runs(session, 100);
  ASSERT_OK(runs);
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].status, RunStatus::kCancelled);
  auto snaps = store_->inner().ListSnapshots(session);
  ASSERT_OK(snaps);
  EXPECT_TRUE(snaps->empty());
  const std::vector<std::string> types = Types(session);
  ASSERT_OK(sessions_->Close(session));  // closing a closed session changes nothing
  EXPECT_EQ(Types(session), types);
  ASSERT_FALSE(types.empty());
  EXPECT_EQ(types.back(), "session.closed#" + std::to_string(types.size()));
}

TEST_F(StoreFaults, AnOutageAnswersUnavailableEverywhereAndChangesNothing) {
  const std::string session = NewSession();
  ASSERT_OK(sessions_->Send(session, "echo one", OnBusy::kQueue, ""));
  const std::vector<std::string> before = Types(session);
  store_->Outage(Status::Unavailable("postgres unavailable: cannot connect"));
  EXPECT_EQ(sessions_->Create(owner_, "agt_faults", "").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(sessions_->Send(session, "echo two", OnBusy::kQueue, "k").status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(sessions_->Close(session).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(sessions_->Get(session).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(events_->Append(session, "", "note", "{}").status().code(), StatusCode::kUnavailable);
  EXPECT_GT(store_->Calls("GetSession"), 0);
  store_->Heal();
  EXPECT_EQ(Types(session), before);
  EXPECT_EQ(AllSessions().size(), 1u);
  auto s = sessions_->Get(session);
  ASSERT_OK(s);
  EXPECT_EQ(s->status, SessionStatus::kSuspended);
}

}  // namespace
}  // namespace paddock
