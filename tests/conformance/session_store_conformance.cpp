// The SessionStore conformance suite: what the core relies on from every store.
#include "paddock/testing/session_store_conformance.h"

#include <algorithm>
#include <set>
#include <thread>

#include "util/ids.h"

namespace paddock::testing {
namespace {

Agent MakeAgent(const std::string& name = "agent") {
  Agent a;
  a.id = NewId("agt");
  a.name = name;
  a.harness = "shell";
  a.env = {{"A", "1"}, {"B", "two"}};
  a.created_at = a.updated_at = NowMs();
  return a;
}

Session MakeSession(const std::string& agent_id) {
  Session s;
  s.id = NewId("ses");
  s.agent_id = agent_id;
  s.status = SessionStatus::kReady;
  s.created_at = s.updated_at = NowMs();
  return s;
}

Run MakeRun(const std::string& session_id, const std::string& content = "echo hi") {
  paddock::Run r;
  r.id = NewId("run");
  r.session_id = session_id;
  r.content = content;
  r.created_at = NowMs();
  return r;
}

NewEvent Message(const Run& r) { return NewEvent{r.id, "message.user", "{\"content\":\"x\"}"}; }
NewEvent Finished() { return NewEvent{"", "run.finished", "{\"status\":\"done\"}"}; }

}  // namespace

TEST_P(SessionStoreConformance, MigrationsAreRecorded) {
  auto applied = store_->AppliedMigrations();
  ASSERT_OK(applied);
  EXPECT_FALSE(applied->empty());
}

TEST_P(SessionStoreConformance, AgentRoundTripUpdateAndDelete) {
  Agent a = MakeAgent();
  a.model = "m";
  a.prompt = "be brief";
  a.run_timeout_seconds = 42;
  ASSERT_OK(store_->CreateAgent(a));
  EXPECT_CODE(store_->CreateAgent(a), kAlreadyExists);

  auto got = store_->GetAgent(a.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->name, "agent");
  EXPECT_EQ(got->model, "m");
  EXPECT_EQ(got->prompt, "be brief");
  EXPECT_EQ(got->run_timeout_seconds, 42);
  EXPECT_EQ(got->env, a.env);

  a.name = "renamed";
  a.env = {{"C", "3"}};
  ASSERT_OK(store_->UpdateAgent(a));
  got = store_->GetAgent(a.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->name, "renamed");
  EXPECT_EQ(got->env, (EnvMap{{"C", "3"}}));

  ASSERT_OK(store_->DeleteAgent(a.id));
  EXPECT_CODE(store_->GetAgent(a.id), kNotFound);
  EXPECT_CODE(store_->DeleteAgent(a.id), kNotFound);
  EXPECT_CODE(store_->UpdateAgent(a), kNotFound);
}

TEST_P(SessionStoreConformance, ListAgentsPagesWithoutGapsOrRepeats) {
  std::set<std::string> created;
  for (int i = 0; i < 5; ++i) {
    Agent a = MakeAgent("a" + std::to_string(i));
    ASSERT_OK(store_->CreateAgent(a));
    created.insert(a.id);
  }
  std::set<std::string> seen;
  PageRequest page{2, ""};
  int pages = 0;
  do {
    auto got = store_->ListAgents(page);
    ASSERT_OK(got);
    EXPECT_LE(got->items.size(), 2u);
    for (const Agent& a : got->items) EXPECT_TRUE(seen.insert(a.id).second) << "repeated " << a.id;
    page.cursor = got->next_cursor;
    ++pages;
  } while (!page.cursor.empty() && pages < 10);
  EXPECT_EQ(seen, created);
  EXPECT_EQ(pages, 3);
  EXPECT_CODE(store_->ListAgents(PageRequest{0, ""}), kInvalidArgument);
  EXPECT_CODE(store_->ListAgents(PageRequest{1001, ""}), kInvalidArgument);
}

TEST_P(SessionStoreConformance, AgentWithSessionsCannotBeDeleted) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  ASSERT_OK(store_->CreateSession(MakeSession(a.id)));
  EXPECT_CODE(store_->DeleteAgent(a.id), kFailedPrecondition);
  EXPECT_OK(store_->GetAgent(a.id));
}

TEST_P(SessionStoreConformance, SessionNeedsAnExistingAgent) {
  EXPECT_CODE(store_->CreateSession(MakeSession("agt_missing")), kNotFound);
  EXPECT_CODE(store_->GetSession("ses_missing"), kNotFound);
}

TEST_P(SessionStoreConformance, SessionStatusSandboxAndCounts) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  s.status = SessionStatus::kProvisioning;
  ASSERT_OK(store_->CreateSession(s));
  EXPECT_CODE(store_->CreateSession(s), kAlreadyExists);
  ASSERT_OK(store_->SetSessionSandbox(s.id, "sbx1"));
  ASSERT_OK(store_->SetSessionStatus(s.id, SessionStatus::kFailed, "no room"));
  auto got = store_->GetSession(s.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->sandbox_id, "sbx1");
  EXPECT_EQ(got->status, SessionStatus::kFailed);
  EXPECT_EQ(got->status_reason, "no room");
  EXPECT_EQ(got->last_seq, 0);
  EXPECT_CODE(store_->SetSessionStatus("ses_missing", SessionStatus::kReady, ""), kNotFound);
  EXPECT_CODE(store_->SetSessionSandbox("ses_missing", "x"), kNotFound);

  ASSERT_OK(store_->CreateSession(MakeSession(a.id)));
  auto counts = store_->CountSessions();
  ASSERT_OK(counts);
  EXPECT_EQ(counts->by_status[static_cast<int>(SessionStatus::kFailed)], 1);
  EXPECT_EQ(counts->by_status[static_cast<int>(SessionStatus::kReady)], 1);
}

TEST_P(SessionStoreConformance, TransitionSessionIsACompareAndSet) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s));  // ready
  ASSERT_OK(store_->TransitionSession(s.id, SessionStatus::kReady, SessionStatus::kRunning, ""));
  ASSERT_OK(store_->SetSessionStatus(s.id, SessionStatus::kClosed, "closed"));
  // A late "the run is done" must not reopen the closed session.
  EXPECT_CODE(store_->TransitionSession(s.id, SessionStatus::kRunning, SessionStatus::kReady, ""),
              kFailedPrecondition);
  auto got = store_->GetSession(s.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->status, SessionStatus::kClosed);
  EXPECT_EQ(got->status_reason, "closed");
  EXPECT_CODE(store_->TransitionSession("ses_missing", SessionStatus::kReady, SessionStatus::kRunning, ""),
              kNotFound);
}

TEST_P(SessionStoreConformance, ListSessionsFiltersAndPages) {
  Agent a = MakeAgent("a");
  Agent b = MakeAgent("b");
  ASSERT_OK(store_->CreateAgent(a));
  ASSERT_OK(store_->CreateAgent(b));
  std::vector<std::string> a_ids;
  for (int i = 0; i < 3; ++i) {
    Session s = MakeSession(a.id);
    ASSERT_OK(store_->CreateSession(s));
    a_ids.push_back(s.id);
  }
  for (int i = 0; i < 2; ++i) ASSERT_OK(store_->CreateSession(MakeSession(b.id)));
  ASSERT_OK(store_->SetSessionStatus(a_ids[1], SessionStatus::kClosed, ""));

  SessionFilter f;
  f.agent_id = a.id;
  auto got = store_->ListSessions(f);
  ASSERT_OK(got);
  ASSERT_EQ(got->items.size(), 3u);
  EXPECT_TRUE(got->next_cursor.empty());
  // Newest first.
  EXPECT_EQ(got->items.front().id, a_ids.back());

  f.status = SessionStatus::kClosed;
  got = store_->ListSessions(f);
  ASSERT_OK(got);
  ASSERT_EQ(got->items.size(), 1u);
  EXPECT_EQ(got->items[0].id, a_ids[1]);

  SessionFilter all;
  all.page.limit = 2;
  std::set<std::string> seen;
  for (int i = 0; i < 5; ++i) {
    got = store_->ListSessions(all);
    ASSERT_OK(got);
    for (const Session& s : got->items) EXPECT_TRUE(seen.insert(s.id).second);
    if (got->next_cursor.empty()) break;
    all.page.cursor = got->next_cursor;
  }
  EXPECT_EQ(seen.size(), 5u);
}

TEST_P(SessionStoreConformance, RunsAreClaimedInArrivalOrderOnePerSession) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s1 = MakeSession(a.id);
  Session s2 = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s1));
  ASSERT_OK(store_->CreateSession(s2));
  paddock::Run r1 = MakeRun(s1.id), r2 = MakeRun(s1.id), r3 = MakeRun(s2.id);
  for (const paddock::Run* r : {&r1, &r2, &r3}) ASSERT_OK(store_->EnqueueRun(*r, Message(*r)));

  auto c = store_->ClaimNextRun();
  ASSERT_OK(c);
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->id, r1.id);
  EXPECT_EQ((*c)->status, RunStatus::kRunning);
  EXPECT_EQ((*c)->attempt, 1);
  EXPECT_GT((*c)->started_at, 0);

  c = store_->ClaimNextRun();  // s1 is busy: the next is s2's
  ASSERT_OK(c);
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->id, r3.id);

  c = store_->ClaimNextRun();  // both sessions busy
  ASSERT_OK(c);
  EXPECT_FALSE(c->has_value());

  auto active = store_->CountActiveRuns(s1.id);
  ASSERT_OK(active);
  EXPECT_EQ(*active, 2);

  ASSERT_OK(store_->FinishRun(r1.id, RunStatus::kSucceeded, 0, "", Finished()));
  c = store_->ClaimNextRun();
  ASSERT_OK(c);
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->id, r2.id);

  auto runs = store_->ListRuns(s1.id, 10);
  ASSERT_OK(runs);
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].id, r1.id);
  EXPECT_EQ((*runs)[0].status, RunStatus::kSucceeded);
  EXPECT_EQ((*runs)[0].exit_code, 0);
}

TEST_P(SessionStoreConformance, FinishingIsFinalTerminalOnlyAndWritesItsEvent) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s));
  paddock::Run r = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(r, Message(r)));
  EXPECT_CODE(store_->FinishRun(r.id, RunStatus::kRunning, std::nullopt, "", Finished()), kInvalidArgument);
  auto e = store_->FinishRun(r.id, RunStatus::kCancelled, std::nullopt, "by request", Finished());
  ASSERT_OK(e);
  EXPECT_EQ(e->seq, 2);
  EXPECT_EQ(e->run_id, r.id);  // filled in by the store
  EXPECT_EQ(e->type, "run.finished");
  EXPECT_CODE(store_->FinishRun(r.id, RunStatus::kSucceeded, 0, "", Finished()), kFailedPrecondition);
  auto got = store_->GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->status, RunStatus::kCancelled);
  EXPECT_EQ(got->error, "by request");
  EXPECT_FALSE(got->exit_code.has_value());
  EXPECT_GT(got->finished_at, 0);
  auto events = store_->ListEvents(s.id, 0, 100);
  ASSERT_OK(events);
  EXPECT_EQ(events->size(), 2u);  // the refused second finish wrote nothing
  EXPECT_CODE(store_->FinishRun("run_missing", RunStatus::kFailed, std::nullopt, "", Finished()), kNotFound);
}

TEST_P(SessionStoreConformance, EnqueueWritesRunAndMessageTogether) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s));
  paddock::Run r = MakeRun(s.id, "ls");
  auto e = store_->EnqueueRun(r, Message(r));
  ASSERT_OK(e);
  EXPECT_EQ(e->seq, 1);
  EXPECT_EQ(e->run_id, r.id);
  EXPECT_EQ(e->type, "message.user");
  // A second enqueue of the same id writes neither the run nor the event.
  EXPECT_CODE(store_->EnqueueRun(r, Message(r)), kAlreadyExists);
  auto events = store_->ListEvents(s.id, 0, 100);
  ASSERT_OK(events);
  EXPECT_EQ(events->size(), 1u);
  paddock::Run orphan = MakeRun("ses_missing");
  EXPECT_CODE(store_->EnqueueRun(orphan, Message(orphan)), kNotFound);
  EXPECT_CODE(store_->GetRun(orphan.id), kNotFound);
}

TEST_P(SessionStoreConformance, FailRunningRunsMarksOnlyRunningOnesAndLogsEach) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s));
  paddock::Run r1 = MakeRun(s.id), r2 = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(r1, Message(r1)));
  ASSERT_OK(store_->EnqueueRun(r2, Message(r2)));
  ASSERT_OK(store_->ClaimNextRun());
  auto failed = store_->FailRunningRuns("cut off", Finished());
  ASSERT_OK(failed);
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].id, r1.id);
  EXPECT_EQ(store_->GetRun(r1.id)->status, RunStatus::kFailed);
  EXPECT_EQ(store_->GetRun(r1.id)->error, "cut off");
  EXPECT_EQ(store_->GetRun(r2.id)->status, RunStatus::kQueued);
  auto events = store_->ListEvents(s.id, 2, 100);
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].type, "run.finished");
  EXPECT_EQ((*events)[0].run_id, r1.id);
}

TEST_P(SessionStoreConformance, EventSeqIsGapFreeUnderConcurrentAppends) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s));
  constexpr int kThreads = 8, kEach = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        NewEvent e{"", "output", "{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}"};
        if (!store_->AppendEvent(s.id, e).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  std::vector<Event> all;
  std::int64_t after = 0;
  for (;;) {
    auto page = store_->ListEvents(s.id, after, 100);
    ASSERT_OK(page);
    if (page->empty()) break;
    for (const Event& e : *page) all.push_back(e);
    after = page->back().seq;
  }
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
  std::set<std::string> payloads;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].seq, static_cast<std::int64_t>(i + 1));
    payloads.insert(all[i].data);
  }
  EXPECT_EQ(payloads.size(), all.size());
  EXPECT_EQ(store_->GetSession(s.id)->last_seq, kThreads * kEach);
}

TEST_P(SessionStoreConformance, ListEventsHonoursAfterAndLimit) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s));
  for (int i = 0; i < 10; ++i) ASSERT_OK(store_->AppendEvent(s.id, NewEvent{"", "output", "{}"}));
  auto page = store_->ListEvents(s.id, 4, 3);
  ASSERT_OK(page);
  ASSERT_EQ(page->size(), 3u);
  EXPECT_EQ((*page)[0].seq, 5);
  EXPECT_EQ((*page)[2].seq, 7);
  EXPECT_CODE(store_->ListEvents(s.id, 0, 0), kInvalidArgument);
  EXPECT_CODE(store_->AppendEvent("ses_missing", NewEvent{"", "output", "{}"}), kNotFound);
  page = store_->ListEvents("ses_missing", 0, 10);
  ASSERT_OK(page);
  EXPECT_TRUE(page->empty());
}

}  // namespace paddock::testing
