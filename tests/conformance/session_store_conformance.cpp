// The SessionStore conformance suite: what the core relies on from every store.
#include "paddock/testing/session_store_conformance.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "paddock/events.h"

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
RunLease LeaseOf(const Run& r) { return RunLease{r.id, r.generation}; }
constexpr std::chrono::milliseconds kLease{60'000};

std::string MakeSessionIn(SessionStore& store, const std::string& agent_id) {
  Session s = MakeSession(agent_id);
  EXPECT_OK(store.CreateSession(s, {}));
  return s.id;
}

// Remembers the newest seq it heard of per session.
class RecordingFeed final : public EventFeed {
 public:
  void OnAppended(std::string_view session_id, std::int64_t seq) noexcept override {
    std::lock_guard lock(mu_);
    auto& latest = latest_[std::string(session_id)];
    latest = std::max(latest, seq);
    cv_.notify_all();
  }
  void OnFeedState(bool live) noexcept override {
    std::lock_guard lock(mu_);
    live_ = live;
  }
  void OnKeyRevoked(std::string_view key_id) noexcept override {
    std::lock_guard lock(mu_);
    revoked_.emplace_back(key_id);
    cv_.notify_all();
  }
  bool WaitForRevoked(const std::string& key_id, std::chrono::seconds limit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(
        lock, limit, [&] { return std::find(revoked_.begin(), revoked_.end(), key_id) != revoked_.end(); });
  }
  bool WaitFor(const std::string& session_id, std::int64_t seq, std::chrono::seconds limit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return latest_[session_id] >= seq; });
  }
  bool live() {
    std::lock_guard lock(mu_);
    return live_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::int64_t> latest_;
  std::vector<std::string> revoked_;
  bool live_ = false;
};

ApiKey MakeKey(const std::string& team, Role role = Role::kMember) {
  ApiKey k;
  k.id = NewId("key");
  k.team_id = team;
  k.name = "k";
  k.role = role;
  k.prefix = "pdk_" + k.id.substr(4, 8);
  k.hash = "hash-of-" + k.id;
  k.created_at = NowMs();
  return k;
}

}  // namespace

TEST_P(SessionStoreConformance, MigrationsAreRecorded) {
  auto applied = store_->AppliedMigrations();
  ASSERT_OK(applied);
  EXPECT_FALSE(applied->empty());
}

TEST_P(SessionStoreConformance, TheMigrationsMakeTheDefaultTeamAndTeamsAreUnique) {
  Result<Team> d = store_->GetTeam(kDefaultTeam);
  ASSERT_OK(d);
  EXPECT_EQ(d->id, kDefaultTeam);
  const std::string id = "t" + NewId("x").substr(2, 20);
  ASSERT_OK(store_->CreateTeam(Team{id, "Team", NowMs(), {}, {}}));
  EXPECT_CODE(store_->CreateTeam(Team{id, "again", NowMs(), {}, {}}), kAlreadyExists);
  EXPECT_EQ(store_->GetTeam(id)->name, "Team");
  EXPECT_CODE(store_->GetTeam("nobody"), kNotFound);
  auto teams = store_->ListTeams(PageRequest{1000, ""});
  ASSERT_OK(teams);
  std::set<std::string> ids;
  for (const Team& t : teams->items) ids.insert(t.id);
  EXPECT_TRUE(ids.count(id) && ids.count(kDefaultTeam));
}

TEST_P(SessionStoreConformance, TeamsKeepTheirProfiles) {
  const std::string id = "p" + NewId("x").substr(2, 20);
  ASSERT_OK(store_->CreateTeam(Team{id, "P", NowMs(), {"default", "gpu"}, {}}));
  EXPECT_EQ(store_->GetTeam(id)->profiles, (std::vector<std::string>{"default", "gpu"}));
  ASSERT_OK(store_->UpdateTeam(Team{id, "Renamed", 0, {}, {}}));
  Result<Team> t = store_->GetTeam(id);
  ASSERT_OK(t);
  EXPECT_EQ(t->name, "Renamed");
  EXPECT_TRUE(t->profiles.empty());
  EXPECT_NE(t->created_at, 0);  // kept
  EXPECT_CODE(store_->UpdateTeam(Team{"nobody", "x", 0, {}, {}}), kNotFound);
}

TEST_P(SessionStoreConformance, TeamsKeepTheirQuotasWithZeroApartFromUnset) {
  const std::string id = "q" + NewId("x").substr(2, 20);
  TeamQuotas q;
  q.sandboxes = 2;
  q.tokens_per_day = 1'000'000;
  q.cost_per_day_microusd = 0;  // no limit for this team, whatever the default: kept apart from unset
  ASSERT_OK(store_->CreateTeam(Team{id, id, NowMs(), {}, q}));
  Result<Team> t = store_->GetTeam(id);
  ASSERT_OK(t);
  EXPECT_EQ(t->quotas.sandboxes, 2);
  EXPECT_EQ(t->quotas.tokens_per_day, 1'000'000);
  EXPECT_EQ(t->quotas.cost_per_day_microusd, 0);
  EXPECT_FALSE(t->quotas.open_sessions.has_value());
  EXPECT_FALSE(t->quotas.runs_per_minute.has_value());
  t->quotas = TeamQuotas{};
  t->quotas.runs_per_minute = 60;
  ASSERT_OK(store_->UpdateTeam(*t));
  t = store_->GetTeam(id);
  ASSERT_OK(t);
  EXPECT_FALSE(t->quotas.sandboxes.has_value());
  EXPECT_FALSE(t->quotas.cost_per_day_microusd.has_value());
  EXPECT_EQ(t->quotas.runs_per_minute, 60);
}

TEST_P(SessionStoreConformance, TeamUsageCountsOnlyThatTeamsSessionsSandboxesRunsAndSpend) {
  const std::string a = "u" + NewId("x").substr(2, 20);
  const std::string b = "u" + NewId("x").substr(2, 20);
  ASSERT_OK(store_->CreateTeam(Team{a, a, NowMs(), {}, {}}));
  ASSERT_OK(store_->CreateTeam(Team{b, b, NowMs(), {}, {}}));
  Agent agent_a = MakeAgent();
  agent_a.team_id = a;
  Agent agent_b = MakeAgent();
  agent_b.team_id = b;
  ASSERT_OK(store_->CreateAgent(agent_a));
  ASSERT_OK(store_->CreateAgent(agent_b));
  // a: one with a sandbox, one being provisioned, one suspended without, one closed, one failed.
  std::map<SessionStatus, std::string> of_a;
  for (SessionStatus st : {SessionStatus::kReady, SessionStatus::kProvisioning, SessionStatus::kSuspended,
                           SessionStatus::kClosed, SessionStatus::kFailed}) {
    Session s = MakeSession(agent_a.id);
    s.status = st;
    ASSERT_OK(store_->CreateSession(s, {}));
    of_a[st] = s.id;
  }
  ASSERT_OK(store_->SetSessionSandbox(of_a[SessionStatus::kReady], "sbx-1"));
  Session in_b = MakeSession(agent_b.id);
  ASSERT_OK(store_->CreateSession(in_b, {}));
  ASSERT_OK(store_->SetSessionSandbox(in_b.id, "sbx-2"));

  const TimestampMs now = NowMs();
  const TimestampMs day = now - now % 86'400'000;
  const TimestampMs recent = std::max(day, now - 10'000);
  // a: a run yesterday and one seconds ago; b: one now. Each spends.
  struct Sent {
    std::string session;
    TimestampMs at;
    Usage usage;
  };
  const std::vector<Sent> sent = {
      {of_a[SessionStatus::kReady], day - 60'000, Usage{"m", 100, 10, 1000, 0.25}},
      {of_a[SessionStatus::kReady], recent, Usage{"m", 7, 3, 0, std::nullopt}},
      {in_b.id, now, Usage{"m", 5000, 5000, 0, 9.0}},
  };
  for (const Sent& x : sent) {
    paddock::Run r = MakeRun(x.session);
    r.created_at = x.at;
    ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
    auto claimed = store_->ClaimNextRun("w", kLease);
    ASSERT_OK(claimed);
    ASSERT_TRUE(claimed->has_value());
    ASSERT_EQ((*claimed)->id, r.id);
    ASSERT_OK(store_->RecordRunUsage(LeaseOf(**claimed), x.usage, NewEvent{"", "usage", "{}"}));
    ASSERT_OK(store_->FinishRun(LeaseOf(**claimed), RunStatus::kSucceeded, 0, "", Finished()));
  }

  Result<TeamUsage> today = store_->GetTeamUsage(a, now - 60'000, day);
  ASSERT_OK(today);
  EXPECT_EQ(today->open_sessions, 3);
  EXPECT_EQ(today->sandboxes, 2);  // the bound one and the one being provisioned
  EXPECT_EQ(today->runs, 1);
  EXPECT_EQ(today->oldest_run_at, recent);
  EXPECT_EQ(today->tokens, 10);  // cache reads are not counted
  EXPECT_EQ(today->cost_microusd, 0);
  // Spend counts on the day the run was sent.
  Result<TeamUsage> yesterday = store_->GetTeamUsage(a, now - 60'000, day - 86'400'000);
  ASSERT_OK(yesterday);
  EXPECT_EQ(yesterday->tokens, 110);
  EXPECT_EQ(yesterday->cost_microusd, 250'000);
  Result<TeamUsage> theirs = store_->GetTeamUsage(b, now - 60'000, day);
  ASSERT_OK(theirs);
  EXPECT_EQ(theirs->open_sessions, 1);
  EXPECT_EQ(theirs->sandboxes, 1);
  EXPECT_EQ(theirs->runs, 1);
  EXPECT_EQ(theirs->tokens, 10'000);
  EXPECT_EQ(theirs->cost_microusd, 9'000'000);
  Result<TeamUsage> nobody = store_->GetTeamUsage("no-such-team", 0, 0);
  ASSERT_OK(nobody);
  EXPECT_EQ(nobody->open_sessions + nobody->sandboxes + nobody->runs + nobody->tokens, 0);
}

TEST_P(SessionStoreConformance, SealedSecretsAreKeptPerTeamVersionedAndResealedOnlyWhenUnchanged) {
  const std::string a = "s" + NewId("x").substr(2, 20);
  const std::string b = "s" + NewId("x").substr(2, 20);
  ASSERT_OK(store_->CreateTeam(Team{a, a, NowMs(), {}, {}}));
  ASSERT_OK(store_->CreateTeam(Team{b, b, NowMs(), {}, {}}));
  SealedSecret s{a, "TOKEN", 0, "k1", "sealed-1", 0, 1000};
  Result<SealedSecret> put = store_->PutSealedSecret(s);
  ASSERT_OK(put);
  EXPECT_EQ(put->version, 1);
  EXPECT_EQ(put->created_at, 1000);
  // The same name in another team is another secret.
  ASSERT_OK(store_->PutSealedSecret(SealedSecret{b, "TOKEN", 0, "k1", "sealed-b", 0, 1500}));
  s.sealed = "sealed-2";
  s.updated_at = 2000;
  put = store_->PutSealedSecret(s);
  ASSERT_OK(put);
  EXPECT_EQ(put->version, 2);
  EXPECT_EQ(put->created_at, 1000);
  EXPECT_EQ(put->updated_at, 2000);
  EXPECT_EQ(store_->GetSealedSecret(a, "TOKEN")->sealed, "sealed-2");
  EXPECT_EQ(store_->GetSealedSecret(b, "TOKEN")->sealed, "sealed-b");
  EXPECT_CODE(store_->GetSealedSecret(a, "OTHER"), kNotFound);
  EXPECT_CODE(store_->PutSealedSecret(SealedSecret{"no-such-team", "X", 0, "k", "v", 0, 1}), kNotFound);
  ASSERT_OK(store_->PutSealedSecret(SealedSecret{a, "ALPHA", 0, "k1", "sealed-a", 0, 3000}));
  Result<std::vector<SealedSecret>> listed = store_->ListSealedSecrets(a);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].name, "ALPHA");
  EXPECT_EQ((*listed)[1].name, "TOKEN");
  Result<std::vector<SealedSecret>> all = store_->ListSealedSecrets("");
  ASSERT_OK(all);
  EXPECT_GE(all->size(), 3u);
  // A reseal of version 1 lost to the change that made version 2: nothing changes.
  SealedSecret stale = *put;
  stale.version = 1;
  stale.key_id = "k2";
  stale.sealed = "resealed-old";
  EXPECT_CODE(store_->ResealSecret(stale), kFailedPrecondition);
  SealedSecret current = *put;
  current.key_id = "k2";
  current.sealed = "resealed";
  ASSERT_OK(store_->ResealSecret(current));
  Result<SealedSecret> got = store_->GetSealedSecret(a, "TOKEN");
  ASSERT_OK(got);
  EXPECT_EQ(got->key_id, "k2");
  EXPECT_EQ(got->sealed, "resealed");
  EXPECT_EQ(got->version, 2);
  ASSERT_OK(store_->DeleteSealedSecret(a, "TOKEN"));
  EXPECT_CODE(store_->DeleteSealedSecret(a, "TOKEN"), kNotFound);
  EXPECT_CODE(store_->ResealSecret(current), kFailedPrecondition);
  EXPECT_OK(store_->GetSealedSecret(b, "TOKEN"));
}

TEST_P(SessionStoreConformance, KeysAreFoundByHashListedByTeamAndRevokedOnce) {
  const std::string team = "k" + NewId("x").substr(2, 20);
  ASSERT_OK(store_->CreateTeam(Team{team, team, NowMs(), {}, {}}));
  ApiKey a = MakeKey(team, Role::kAdmin);
  a.expires_at = NowMs() + 60000;
  ASSERT_OK(store_->CreateApiKey(a));
  ApiKey b = MakeKey(kDefaultTeam);
  ASSERT_OK(store_->CreateApiKey(b));
  ApiKey same_hash = MakeKey(team);
  same_hash.hash = a.hash;
  EXPECT_CODE(store_->CreateApiKey(same_hash), kAlreadyExists);
  EXPECT_CODE(store_->CreateApiKey(MakeKey("no-such-team")), kNotFound);
  Result<ApiKey> found = store_->FindApiKey(a.hash);
  ASSERT_OK(found);
  EXPECT_EQ(found->id, a.id);
  EXPECT_EQ(found->team_id, team);
  EXPECT_EQ(found->role, Role::kAdmin);
  EXPECT_EQ(found->prefix, a.prefix);
  EXPECT_EQ(found->expires_at, a.expires_at);
  EXPECT_EQ(found->revoked_at, 0);
  EXPECT_CODE(store_->FindApiKey("no-such-hash"), kNotFound);
  auto of_team = store_->ListApiKeys(team, PageRequest{100, ""});
  ASSERT_OK(of_team);
  ASSERT_EQ(of_team->items.size(), 1u);
  EXPECT_EQ(of_team->items[0].id, a.id);
  RecordingFeed feed;
  store_->SetEventFeed(&feed);
  ASSERT_OK(store_->RevokeApiKey(a.id, 1000));
  EXPECT_TRUE(feed.WaitForRevoked(a.id, std::chrono::seconds(5)));
  ASSERT_OK(store_->RevokeApiKey(a.id, 2000));
  EXPECT_EQ(store_->GetApiKey(a.id)->revoked_at, 1000);
  EXPECT_EQ(store_->FindApiKey(a.hash)->revoked_at, 1000);
  EXPECT_CODE(store_->RevokeApiKey("key_nope", 1), kNotFound);
  EXPECT_EQ(store_->GetApiKey(b.id)->revoked_at, 0);
  store_->SetEventFeed(nullptr);
}

TEST_P(SessionStoreConformance, TheAuditLogAppendsInOrderFiltersByTeamAndPrunesByAge) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    AuditEvent e;
    e.at = 1000 + i;
    e.team_id = i % 2 ? "odd" : "even";
    e.key_id = "key_" + std::to_string(i);
    e.source = "10.0.0." + std::to_string(i);
    e.request_id = "req_" + std::to_string(i);
    e.action = "POST /api/agents";
    e.resource = "agt_" + std::to_string(i);
    e.status = 201;
    e.outcome = "ok";
    e.detail = "d" + std::to_string(i);
    Result<std::int64_t> id = store_->AppendAudit(e);
    ASSERT_OK(id);
    if (!ids.empty()) {
      EXPECT_GT(*id, ids.back());
    }
    ids.push_back(*id);
  }
  AuditFilter all;
  all.page.limit = 2;
  auto first = store_->ListAudit(all);
  ASSERT_OK(first);
  ASSERT_EQ(first->items.size(), 2u);
  EXPECT_EQ(first->items[0].id, ids[4]);  // newest first
  EXPECT_EQ(first->items[0].source, "10.0.0.4");
  EXPECT_EQ(first->items[0].request_id, "req_4");
  EXPECT_EQ(first->items[0].status, 201);
  EXPECT_EQ(first->items[0].detail, "d4");
  all.page.cursor = first->next_cursor;
  auto second = store_->ListAudit(all);
  ASSERT_OK(second);
  ASSERT_EQ(second->items.size(), 2u);
  EXPECT_EQ(second->items[0].id, ids[2]);
  AuditFilter odd;
  odd.team_id = "odd";
  auto of_odd = store_->ListAudit(odd);
  ASSERT_OK(of_odd);
  ASSERT_EQ(of_odd->items.size(), 2u);
  for (const AuditEvent& e : of_odd->items) EXPECT_EQ(e.team_id, "odd");
  AuditFilter bad;
  bad.page.cursor = "not-a-cursor";
  EXPECT_CODE(store_->ListAudit(bad), kInvalidArgument);
  auto pruned = store_->PruneAudit(1002);
  ASSERT_OK(pruned);
  EXPECT_EQ(*pruned, 2);
  AuditFilter rest;
  EXPECT_EQ(store_->ListAudit(rest)->items.size(), 3u);
}

TEST_P(SessionStoreConformance, AnAgentsSessionsAreOfItsTeamAndListsFilterByTeam) {
  const std::string team = "s" + NewId("x").substr(2, 20);
  ASSERT_OK(store_->CreateTeam(Team{team, team, NowMs(), {}, {}}));
  Agent theirs = MakeAgent("theirs");
  theirs.team_id = team;
  ASSERT_OK(store_->CreateAgent(theirs));
  Agent ours = MakeAgent("ours");
  ASSERT_OK(store_->CreateAgent(ours));
  Agent nowhere = MakeAgent("nowhere");
  nowhere.team_id = "no-such-team";
  EXPECT_CODE(store_->CreateAgent(nowhere), kNotFound);
  EXPECT_EQ(store_->GetAgent(theirs.id)->team_id, team);
  EXPECT_EQ(store_->GetAgent(ours.id)->team_id, kDefaultTeam);
  // The session's team is its agent's, whatever the caller said.
  Session s = MakeSession(theirs.id);
  s.team_id = kDefaultTeam;
  ASSERT_OK(store_->CreateSession(s, {}));
  EXPECT_EQ(store_->GetSession(s.id)->team_id, team);
  const std::string mine = MakeSessionIn(*store_, ours.id);
  auto agents = store_->ListAgents(team, PageRequest{100, ""});
  ASSERT_OK(agents);
  ASSERT_EQ(agents->items.size(), 1u);
  EXPECT_EQ(agents->items[0].id, theirs.id);
  SessionFilter f;
  f.team_id = team;
  auto sessions = store_->ListSessions(f);
  ASSERT_OK(sessions);
  ASSERT_EQ(sessions->items.size(), 1u);
  EXPECT_EQ(sessions->items[0].id, s.id);
  f.team_id = kDefaultTeam;
  auto defaults = store_->ListSessions(f);
  ASSERT_OK(defaults);
  for (const Session& x : defaults->items) EXPECT_NE(x.id, s.id);
  f.team_id.clear();
  auto every = store_->ListSessions(f);
  ASSERT_OK(every);
  std::set<std::string> all;
  for (const Session& x : every->items) all.insert(x.id);
  EXPECT_TRUE(all.count(s.id) && all.count(mine));
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
  EXPECT_FALSE(got->idle_timeout_seconds.has_value());  // the server's default

  a.name = "renamed";
  a.env = {{"C", "3"}};
  a.idle_timeout_seconds = 0;  // never
  ASSERT_OK(store_->UpdateAgent(a));
  got = store_->GetAgent(a.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->name, "renamed");
  EXPECT_EQ(got->env, (EnvMap{{"C", "3"}}));
  EXPECT_EQ(got->idle_timeout_seconds, std::optional<std::int64_t>(0));
  EXPECT_EQ(got->profile, "default");
  EXPECT_TRUE(got->secrets.empty());
  a.idle_timeout_seconds = 90;
  a.profile = "small";
  a.secrets = {{"GITHUB_TOKEN", false}, {"KUBECONFIG", true}};
  ASSERT_OK(store_->UpdateAgent(a));
  got = store_->GetAgent(a.id);
  EXPECT_EQ(got->idle_timeout_seconds, std::optional<std::int64_t>(90));
  EXPECT_EQ(got->profile, "small");
  EXPECT_EQ(got->secrets, a.secrets);

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
    auto got = store_->ListAgents("", page);
    ASSERT_OK(got);
    EXPECT_LE(got->items.size(), 2u);
    for (const Agent& a : got->items) EXPECT_TRUE(seen.insert(a.id).second) << "repeated " << a.id;
    page.cursor = got->next_cursor;
    ++pages;
  } while (!page.cursor.empty() && pages < 10);
  EXPECT_EQ(seen, created);
  EXPECT_EQ(pages, 3);
  EXPECT_CODE(store_->ListAgents("", PageRequest{0, ""}), kInvalidArgument);
  EXPECT_CODE(store_->ListAgents("", PageRequest{1001, ""}), kInvalidArgument);
}

TEST_P(SessionStoreConformance, AgentWithSessionsCannotBeDeleted) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  ASSERT_OK(store_->CreateSession(MakeSession(a.id), {}));
  EXPECT_CODE(store_->DeleteAgent(a.id), kFailedPrecondition);
  EXPECT_OK(store_->GetAgent(a.id));
}

TEST_P(SessionStoreConformance, SessionNeedsAnExistingAgent) {
  EXPECT_CODE(store_->CreateSession(MakeSession("agt_missing"), {}), kNotFound);
  EXPECT_CODE(store_->GetSession("ses_missing"), kNotFound);
}

TEST_P(SessionStoreConformance, SessionStatusSandboxAndCounts) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  s.status = SessionStatus::kProvisioning;
  ASSERT_OK(store_->CreateSession(s, {}));
  EXPECT_CODE(store_->CreateSession(s, {}), kAlreadyExists);
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

  ASSERT_OK(store_->CreateSession(MakeSession(a.id), {}));
  auto counts = store_->CountSessions();
  ASSERT_OK(counts);
  EXPECT_EQ(counts->by_status[static_cast<int>(SessionStatus::kFailed)], 1);
  EXPECT_EQ(counts->by_status[static_cast<int>(SessionStatus::kReady)], 1);
}

TEST_P(SessionStoreConformance, TransitionSessionIsACompareAndSet) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));  // ready
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
    ASSERT_OK(store_->CreateSession(s, {}));
    a_ids.push_back(s.id);
  }
  for (int i = 0; i < 2; ++i) ASSERT_OK(store_->CreateSession(MakeSession(b.id), {}));
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

TEST_P(SessionStoreConformance, RunsAreClaimedInArrivalOrderOnePerSessionUnderALease) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s1 = MakeSession(a.id);
  Session s2 = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s1, {}));
  ASSERT_OK(store_->CreateSession(s2, {}));
  paddock::Run r1 = MakeRun(s1.id), r2 = MakeRun(s1.id), r3 = MakeRun(s2.id);
  for (const paddock::Run* r : {&r1, &r2, &r3}) ASSERT_OK(store_->EnqueueRun(*r, Message(*r), {}));

  const TimestampMs before = NowMs();
  auto c = store_->ClaimNextRun("worker-a", kLease);
  ASSERT_OK(c);
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->id, r1.id);
  EXPECT_EQ((*c)->status, RunStatus::kRunning);
  EXPECT_EQ((*c)->attempt, 1);
  EXPECT_EQ((*c)->generation, 1);
  EXPECT_EQ((*c)->lease_owner, "worker-a");
  EXPECT_GE((*c)->lease_expires_at, before + kLease.count() - 1000);  // the store's clock may differ a little
  EXPECT_GT((*c)->started_at, 0);
  const paddock::Run first = **c;

  c = store_->ClaimNextRun("worker-b", kLease);  // s1 is busy: the next is s2's
  ASSERT_OK(c);
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->id, r3.id);

  c = store_->ClaimNextRun("worker-b", kLease);  // both sessions busy
  ASSERT_OK(c);
  EXPECT_FALSE(c->has_value());

  auto active = store_->CountActiveRuns(s1.id);
  ASSERT_OK(active);
  EXPECT_EQ(*active, 2);

  ASSERT_OK(store_->FinishRun(LeaseOf(first), RunStatus::kSucceeded, 0, "", Finished()));
  c = store_->ClaimNextRun("worker-a", kLease);
  ASSERT_OK(c);
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->id, r2.id);

  auto runs = store_->ListRuns(s1.id, 10);
  ASSERT_OK(runs);
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].id, r1.id);
  EXPECT_EQ((*runs)[0].status, RunStatus::kSucceeded);
  EXPECT_EQ((*runs)[0].exit_code, 0);
  EXPECT_CODE(store_->ListRuns(s1.id, 0), kInvalidArgument);
}

TEST_P(SessionStoreConformance, ConcurrentWorkersNeverRunTwoRunsOfASessionAndTakeEachOnce) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  constexpr int kSessions = 6, kRunsEach = 5, kWorkers = 4;
  std::vector<Session> sessions;
  std::map<std::string, std::vector<std::string>> queued;  // session -> run ids in order
  for (int i = 0; i < kSessions; ++i) {
    sessions.push_back(MakeSession(a.id));
    ASSERT_OK(store_->CreateSession(sessions.back(), {}));
  }
  for (int j = 0; j < kRunsEach; ++j) {
    for (const Session& s : sessions) {
      paddock::Run r = MakeRun(s.id);
      ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
      queued[s.id].push_back(r.id);
    }
  }
  std::mutex mu;
  std::map<std::string, int> running;                    // session -> runs in progress
  std::map<std::string, std::vector<std::string>> done;  // session -> run ids in finish order
  std::atomic<int> overlaps{0}, errors{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      int idle = 0;
      while (idle < 50) {
        auto c = store_->ClaimNextRun("worker-" + std::to_string(w), kLease);
        if (!c.ok()) {
          ++errors;
          return;
        }
        if (!c->has_value()) {
          ++idle;
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          continue;
        }
        idle = 0;
        const paddock::Run& r = **c;
        {
          std::lock_guard lock(mu);
          if (++running[r.session_id] > 1) ++overlaps;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        {
          std::lock_guard lock(mu);
          --running[r.session_id];
          done[r.session_id].push_back(r.id);
        }
        if (!store_->FinishRun(LeaseOf(r), RunStatus::kSucceeded, 0, "", Finished()).ok()) ++errors;
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(overlaps, 0);
  EXPECT_EQ(done, queued);  // every run once, each session's in arrival order
}

TEST_P(SessionStoreConformance, EveryWriteForARunIsFencedByItsLease) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));
  paddock::Run r = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
  auto c = store_->ClaimNextRun("w", kLease);
  ASSERT_OK(c);
  ASSERT_TRUE(c->has_value());
  const RunLease lease = LeaseOf(**c);
  const RunLease stale{r.id, lease.generation - 1}, future{r.id, lease.generation + 1};

  EXPECT_CODE(store_->StartRun(stale, NewEvent{r.id, "run.started", "{}"}), kAborted);
  EXPECT_CODE(store_->HeartbeatRun(future, kLease), kAborted);
  EXPECT_CODE(store_->AppendEvent(s.id, NewEvent{r.id, "output", "{}", future.generation}), kAborted);
  EXPECT_CODE(store_->FinishRun(stale, RunStatus::kSucceeded, 0, "", Finished()), kAborted);
  EXPECT_CODE(store_->FinishRun(lease, RunStatus::kRunning, std::nullopt, "", Finished()), kInvalidArgument);
  EXPECT_CODE(store_->FinishRun(RunLease{"run_missing", 1}, RunStatus::kFailed, std::nullopt, "", Finished()),
              kNotFound);
  auto events = store_->ListEvents(s.id, 0, 100);
  ASSERT_OK(events);
  EXPECT_EQ(events->size(), 1u);  // only the message: every refused write wrote nothing
  EXPECT_EQ(store_->GetRun(r.id)->status, RunStatus::kRunning);

  auto started = store_->StartRun(lease, NewEvent{"", "run.started", "{}"});
  ASSERT_OK(started);
  EXPECT_EQ(started->run_id, r.id);  // filled in by the store
  EXPECT_EQ(store_->GetSession(s.id)->status, SessionStatus::kRunning);
  ASSERT_OK(store_->AppendEvent(s.id, NewEvent{r.id, "output", "{\"text\":\"hi\"}", lease.generation}));
  auto finished = store_->FinishRun(lease, RunStatus::kFailed, 3, "exit 3", Finished());
  ASSERT_OK(finished);
  EXPECT_EQ(finished->seq, 4);
  EXPECT_EQ(finished->run_id, r.id);
  EXPECT_EQ(finished->type, "run.finished");
  EXPECT_EQ(store_->GetSession(s.id)->status, SessionStatus::kReady);
  auto got = store_->GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->status, RunStatus::kFailed);
  EXPECT_EQ(got->exit_code, 3);
  EXPECT_EQ(got->error, "exit 3");
  EXPECT_GT(got->finished_at, 0);
  // Terminal: the first outcome stands, and the run takes no more fenced writes.
  EXPECT_CODE(store_->FinishRun(lease, RunStatus::kSucceeded, 0, "", Finished()), kAborted);
  EXPECT_CODE(store_->AppendEvent(s.id, NewEvent{r.id, "output", "{}", lease.generation}), kAborted);
  EXPECT_EQ(store_->GetRun(r.id)->status, RunStatus::kFailed);
  EXPECT_EQ(store_->ListEvents(s.id, 0, 100)->size(), 4u);
}

TEST_P(SessionStoreConformance, UsageAddsUpPerRunAndPerSessionAndIsFenced) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));
  EXPECT_EQ(store_->GetSession(s.id)->usage.input_tokens, 0);
  EXPECT_FALSE(store_->GetSession(s.id)->usage.cost_usd.has_value());
  std::vector<std::string> runs;
  for (int i = 0; i < 2; ++i) {
    paddock::Run r = MakeRun(s.id);
    ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
    auto c = store_->ClaimNextRun("w", kLease);
    ASSERT_OK(c);
    ASSERT_TRUE(c->has_value());
    const RunLease lease = LeaseOf(**c);
    const RunLease stale{r.id, lease.generation - 1};
    Usage u{"model-a", 100, 10, 5, std::nullopt};
    EXPECT_CODE(store_->RecordRunUsage(stale, u, NewEvent{r.id, "usage", "{}"}), kAborted);
    EXPECT_CODE(store_->SetNativeSessionId(stale, "stale"), kAborted);
    auto e = store_->RecordRunUsage(lease, u, NewEvent{"", "usage", "{}"});
    ASSERT_OK(e);
    EXPECT_EQ(e->type, "usage");
    EXPECT_EQ(e->run_id, r.id);
    // A second response of the same turn, from another model, with a cost.
    ASSERT_OK(store_->RecordRunUsage(lease, Usage{"model-b", 50, 20, 0, 0.25}, NewEvent{"", "usage", "{}"}));
    ASSERT_OK(store_->SetNativeSessionId(lease, "native-" + std::to_string(i)));
    ASSERT_OK(store_->FinishRun(lease, RunStatus::kSucceeded, 0, "", Finished()));
    EXPECT_CODE(store_->RecordRunUsage(lease, u, NewEvent{"", "usage", "{}"}), kAborted);  // finished
    runs.push_back(r.id);
  }
  auto run = store_->GetRun(runs[0]);
  ASSERT_OK(run);
  EXPECT_EQ(run->usage.model, "model-b");
  EXPECT_EQ(run->usage.input_tokens, 150);
  EXPECT_EQ(run->usage.output_tokens, 30);
  EXPECT_EQ(run->usage.cache_read_tokens, 5);
  ASSERT_TRUE(run->usage.cost_usd.has_value());
  EXPECT_DOUBLE_EQ(*run->usage.cost_usd, 0.25);
  auto listed = store_->ListRuns(s.id, 10);
  ASSERT_OK(listed);
  EXPECT_EQ(listed->back().usage.input_tokens, 150);
  auto session = store_->GetSession(s.id);
  ASSERT_OK(session);
  EXPECT_EQ(session->usage.input_tokens, 300);
  EXPECT_EQ(session->usage.output_tokens, 60);
  EXPECT_EQ(session->usage.cache_read_tokens, 10);
  EXPECT_DOUBLE_EQ(session->usage.cost_usd.value_or(0), 0.5);
  EXPECT_EQ(session->usage.model, "model-b");
  EXPECT_EQ(session->native_session_id, "native-1");
  auto page = store_->ListSessions(SessionFilter{});
  ASSERT_OK(page);
  EXPECT_EQ(page->items.front().native_session_id, "native-1");
  // Events: per run the message, two usages, run.finished (refused writes wrote nothing).
  EXPECT_EQ(store_->ListEvents(s.id, 0, 100)->size(), 8u);
}

TEST_P(SessionStoreConformance, HeartbeatExtendsTheLeaseAndCarriesCancelRequests) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));
  paddock::Run r = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
  auto c = store_->ClaimNextRun("w", std::chrono::milliseconds(1000));
  ASSERT_OK(c);
  ASSERT_TRUE(c->has_value());
  auto beat = store_->HeartbeatRun(LeaseOf(**c), std::chrono::minutes(10));
  ASSERT_OK(beat);
  EXPECT_GE(beat->lease_expires_at, (*c)->lease_expires_at + 9 * 60 * 1000);
  EXPECT_FALSE(beat->cancel_requested);

  auto cancelled = store_->CancelRun(r.id, "by request", Finished());
  ASSERT_OK(cancelled);
  EXPECT_EQ(cancelled->status, RunStatus::kRunning);  // its worker stops it
  EXPECT_TRUE(cancelled->cancel_requested);
  beat = store_->HeartbeatRun(LeaseOf(**c), kLease);
  ASSERT_OK(beat);
  EXPECT_TRUE(beat->cancel_requested);
  ASSERT_OK(store_->FinishRun(LeaseOf(**c), RunStatus::kCancelled, std::nullopt, "by request", Finished()));
}

TEST_P(SessionStoreConformance, CancellingAQueuedRunEndsItWithItsEvent) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));
  paddock::Run r = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
  auto cancelled = store_->CancelRun(r.id, "by request", Finished());
  ASSERT_OK(cancelled);
  EXPECT_EQ(cancelled->status, RunStatus::kCancelled);
  EXPECT_EQ(cancelled->error, "by request");
  EXPECT_GT(cancelled->finished_at, 0);
  auto events = store_->ListEvents(s.id, 1, 100);
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].type, "run.finished");
  EXPECT_EQ((*events)[0].run_id, r.id);
  EXPECT_CODE(store_->CancelRun(r.id, "again", Finished()), kFailedPrecondition);
  EXPECT_CODE(store_->CancelRun("run_missing", "x", Finished()), kNotFound);
  EXPECT_EQ(store_->ListEvents(s.id, 0, 100)->size(), 2u);
  auto none = store_->ClaimNextRun("w", kLease);
  ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());
}

TEST_P(SessionStoreConformance, AnExpiredLeaseIsInterruptedRequeuedAndItsOldHolderFenced) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));
  paddock::Run r = MakeRun(s.id), later = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
  ASSERT_OK(store_->EnqueueRun(later, Message(later), {}));
  auto c = store_->ClaimNextRun("dead-worker", std::chrono::milliseconds(0));
  ASSERT_OK(c);
  ASSERT_TRUE(c->has_value());
  const RunLease old = LeaseOf(**c);
  ASSERT_OK(store_->StartRun(old, NewEvent{"", "run.started", "{}"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));

  // A live lease is left alone.
  paddock::Run other = MakeRun(MakeSessionIn(*store_, a.id));
  ASSERT_OK(store_->EnqueueRun(other, Message(other), {}));
  auto live = store_->ClaimNextRun("live-worker", kLease);
  ASSERT_OK(live);
  ASSERT_TRUE(live->has_value());

  SweepOptions options;
  options.max_attempts = 3;
  options.reason = "worker went quiet";
  auto swept = store_->SweepExpiredLeases(options);
  ASSERT_OK(swept);
  ASSERT_EQ(swept->size(), 1u);
  EXPECT_EQ((*swept)[0].id, r.id);
  EXPECT_EQ((*swept)[0].status, RunStatus::kQueued);
  EXPECT_EQ((*swept)[0].generation, old.generation + 1);
  EXPECT_EQ(store_->GetRun(other.id)->status, RunStatus::kRunning);
  EXPECT_EQ(store_->GetSession(s.id)->status, SessionStatus::kReady);

  auto events = store_->ListEvents(s.id, 3, 100);
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].type, "run.interrupted");
  EXPECT_EQ((*events)[0].run_id, r.id);
  EXPECT_EQ((*events)[0].data, RunInterruptedData(1, "worker went quiet", "queued"));

  // The old holder wakes up: nothing it writes lands.
  EXPECT_CODE(store_->AppendEvent(s.id, NewEvent{r.id, "output", "{}", old.generation}), kAborted);
  EXPECT_CODE(store_->FinishRun(old, RunStatus::kSucceeded, 0, "", Finished()), kAborted);
  EXPECT_CODE(store_->HeartbeatRun(old, kLease), kAborted);

  // It is claimed again before the session's later run, as attempt 2.
  auto again = store_->ClaimNextRun("new-worker", kLease);
  ASSERT_OK(again);
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ((*again)->id, r.id);
  EXPECT_EQ((*again)->attempt, 2);
  EXPECT_EQ((*again)->generation, old.generation + 2);
  EXPECT_CODE(store_->FinishRun(old, RunStatus::kSucceeded, 0, "", Finished()), kAborted);
  ASSERT_OK(store_->FinishRun(LeaseOf(**again), RunStatus::kSucceeded, 0, "", Finished()));
}

TEST_P(SessionStoreConformance, SweepFailsARunOnItsLastAttemptAndHonoursCancelRequests) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));
  paddock::Run r = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
  SweepOptions options;
  options.max_attempts = 2;
  options.reason = "lost";
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto c = store_->ClaimNextRun("w", std::chrono::milliseconds(0));
    ASSERT_OK(c);
    ASSERT_TRUE(c->has_value());
    EXPECT_EQ((*c)->attempt, attempt);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_OK(store_->SweepExpiredLeases(options));
  }
  auto got = store_->GetRun(r.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->status, RunStatus::kFailed);
  EXPECT_NE(got->error.find("2 attempt"), std::string::npos) << got->error;
  auto events = store_->ListEvents(s.id, 0, 100);
  ASSERT_OK(events);
  std::vector<std::string> types;
  for (const Event& e : *events) types.push_back(e.type);
  EXPECT_EQ(types,
            (std::vector<std::string>{"message.user", "run.interrupted", "run.interrupted", "run.finished"}));
  EXPECT_EQ(events->back().data, RunFinishedData(RunStatus::kFailed, std::nullopt, got->error));

  // A run whose cancel was requested and whose worker vanished ends cancelled, not re-queued.
  paddock::Run c2 = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(c2, Message(c2), {}));
  ASSERT_OK(store_->ClaimNextRun("w", std::chrono::milliseconds(0)));
  ASSERT_OK(store_->CancelRun(c2.id, "by request", Finished()));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_OK(store_->SweepExpiredLeases(options));
  EXPECT_EQ(store_->GetRun(c2.id)->status, RunStatus::kCancelled);

  // options.all: every running run, expired or not (a single-process store at start-up).
  paddock::Run c3 = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(c3, Message(c3), {}));
  ASSERT_OK(store_->ClaimNextRun("w", kLease));
  options.all = true;
  auto all = store_->SweepExpiredLeases(options);
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(store_->GetRun(c3.id)->status, RunStatus::kQueued);
}

TEST_P(SessionStoreConformance, ConcurrentSweepersHandleEachExpiredRunOnce) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  constexpr int kRuns = 12;
  std::vector<std::string> sessions;
  for (int i = 0; i < kRuns; ++i) {
    sessions.push_back(MakeSessionIn(*store_, a.id));
    paddock::Run r = MakeRun(sessions.back());
    ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
    auto c = store_->ClaimNextRun("w", std::chrono::milliseconds(0));
    ASSERT_OK(c);
    ASSERT_TRUE(c->has_value());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::atomic<int> handled{0}, errors{0};
  std::vector<std::thread> sweepers;
  for (int i = 0; i < 3; ++i) {
    sweepers.emplace_back([&] {
      auto swept = store_->SweepExpiredLeases(SweepOptions{});
      if (swept.ok()) {
        handled += static_cast<int>(swept->size());
      } else {
        ++errors;
      }
    });
  }
  for (auto& t : sweepers) t.join();
  auto rest = store_->SweepExpiredLeases(SweepOptions{});  // whatever a busy sweeper skipped
  ASSERT_OK(rest);
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(handled + static_cast<int>(rest->size()), kRuns);
  for (const std::string& id : sessions) {
    auto events = store_->ListEvents(id, 0, 100);
    ASSERT_OK(events);
    ASSERT_EQ(events->size(), 2u);
    EXPECT_EQ((*events)[1].type, "run.interrupted");
  }
}

TEST_P(SessionStoreConformance, IdempotencyKeysAreRecordedWithTheirResourceAtomically) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  const IdempotencyKey key{"sessions", "key-1", "hash-1"};
  auto none = store_->FindIdempotencyKey("sessions", "key-1");
  ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());
  ASSERT_OK(store_->CreateSession(s, key));
  auto found = store_->FindIdempotencyKey("sessions", "key-1");
  ASSERT_OK(found);
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->resource_id, s.id);
  EXPECT_EQ((*found)->request_hash, "hash-1");
  // The same key again: refused, and the second session is not created.
  Session twin = MakeSession(a.id);
  EXPECT_CODE(store_->CreateSession(twin, key), kAlreadyExists);
  EXPECT_CODE(store_->GetSession(twin.id), kNotFound);
  // Keys are scoped.
  ASSERT_OK(store_->CreateSession(twin, IdempotencyKey{"elsewhere", "key-1", "h"}));

  const IdempotencyKey msg{"messages:" + s.id, "m-1", "hash"};
  paddock::Run r = MakeRun(s.id), r2 = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(r, Message(r), msg));
  EXPECT_CODE(store_->EnqueueRun(r2, Message(r2), msg), kAlreadyExists);
  EXPECT_CODE(store_->GetRun(r2.id), kNotFound);
  EXPECT_EQ(store_->ListEvents(s.id, 0, 100)->size(), 1u);  // no second message either
  EXPECT_EQ((*store_->FindIdempotencyKey(msg.scope, msg.key))->resource_id, r.id);

  auto pruned = store_->PruneIdempotencyKeys(NowMs() - 60'000);
  ASSERT_OK(pruned);
  EXPECT_EQ(*pruned, 0);
  pruned = store_->PruneIdempotencyKeys(NowMs() + 60'000);
  ASSERT_OK(pruned);
  EXPECT_EQ(*pruned, 3);
  EXPECT_FALSE(store_->FindIdempotencyKey("sessions", "key-1")->has_value());
}

TEST_P(SessionStoreConformance, MigratingAgainAppliesNothing) {
  auto again = store_->Migrate();
  ASSERT_OK(again);
  EXPECT_TRUE(again->empty());
  auto pending = store_->PendingMigrations();
  ASSERT_OK(pending);
  EXPECT_TRUE(pending->empty());
}

TEST_P(SessionStoreConformance, TheEventFeedHearsOfEveryAppend) {
  RecordingFeed feed;
  store_->SetEventFeed(&feed);
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));
  paddock::Run r = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
  ASSERT_OK(store_->AppendEvent(s.id, NewEvent{"", "output", "{}"}));
  auto c = store_->ClaimNextRun("w", kLease);
  ASSERT_OK(c);
  ASSERT_OK(store_->FinishRun(LeaseOf(**c), RunStatus::kSucceeded, 0, "", Finished()));
  // Notifications may travel through the database (another connection): wait for them.
  EXPECT_TRUE(feed.WaitFor(s.id, 3, std::chrono::seconds(30)));
  EXPECT_TRUE(feed.live());
  store_->SetEventFeed(nullptr);
}

TEST_P(SessionStoreConformance, EventSeqIsGapFreeUnderConcurrentAppends) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));
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
  ASSERT_OK(store_->CreateSession(s, {}));
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

TEST_P(SessionStoreConformance, SnapshotsAreVersionedPrunedReadBackWholeAndFenced) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));
  auto none = store_->LatestSnapshot(s.id);
  ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());

  // Archives larger than one chunk, with every byte value, come back byte for byte.
  auto archive = [](int n, char seed) {
    std::string data(static_cast<size_t>(n), '\0');
    for (int i = 0; i < n; ++i) data[static_cast<size_t>(i)] = static_cast<char>((i * 131 + seed) & 0xff);
    return data;
  };
  const std::string big = archive(static_cast<int>(kSnapshotChunkBytes) * 2 + 12345, 7);
  SnapshotInfo info;
  info.session_id = s.id;
  info.run_id = "run_1";
  info.sha256 = "abc";
  info.gzip = true;
  info.paths = {"/workspace", "/home/paddock/.state"};
  info.workspace = info.native = true;
  std::vector<std::int64_t> versions;
  for (int i = 0; i < 4; ++i) {
    auto put = store_->PutSnapshot(info, i == 3 ? big : archive(100 + i, static_cast<char>(i)), 3, nullptr);
    ASSERT_OK(put);
    versions.push_back(put->version);
    EXPECT_GT(put->created_at, 0);
  }
  EXPECT_EQ(versions, (std::vector<std::int64_t>{1, 2, 3, 4}));
  auto latest = store_->LatestSnapshot(s.id);
  ASSERT_OK(latest);
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->version, 4);
  EXPECT_EQ((*latest)->size_bytes, static_cast<std::int64_t>(big.size()));
  EXPECT_EQ((*latest)->paths, info.paths);
  EXPECT_TRUE((*latest)->gzip);
  EXPECT_TRUE((*latest)->workspace);
  EXPECT_EQ((*latest)->run_id, "run_1");
  auto read = store_->ReadSnapshot(s.id, 4);
  ASSERT_OK(read);
  EXPECT_TRUE(*read == big);
  EXPECT_EQ(*store_->ReadSnapshot(s.id, 2), archive(101, 1));
  // keep = 3: version 1 is pruned.
  auto all = store_->ListSnapshots(s.id);
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].version, 4);
  EXPECT_EQ((*all)[2].version, 2);
  EXPECT_CODE(store_->ReadSnapshot(s.id, 1), kNotFound);
  // An empty archive (everything left out) is a version too, saying so.
  SnapshotInfo empty = info;
  empty.paths.clear();
  empty.workspace = empty.native = false;
  empty.omitted = "everything: over max_size";
  auto e = store_->PutSnapshot(empty, "", 3, nullptr);
  ASSERT_OK(e);
  EXPECT_EQ(e->size_bytes, 0);
  EXPECT_EQ(store_->LatestSnapshot(s.id)->value().omitted, "everything: over max_size");
  EXPECT_TRUE((*store_->LatestSnapshot(s.id))->paths.empty());
  EXPECT_EQ(*store_->ReadSnapshot(s.id, e->version), "");

  // Fenced by a run's lease: a worker that lost the run writes nothing.
  paddock::Run r = MakeRun(s.id);
  ASSERT_OK(store_->EnqueueRun(r, Message(r), {}));
  auto c = store_->ClaimNextRun("w", kLease);
  ASSERT_OK(c);
  const RunLease lease = LeaseOf(**c), stale{r.id, lease.generation - 1};
  EXPECT_CODE(store_->PutSnapshot(info, "stale", 3, &stale), kAborted);
  EXPECT_EQ((*store_->LatestSnapshot(s.id))->version, e->version);
  auto fenced = store_->PutSnapshot(info, "fresh", 3, &lease);
  ASSERT_OK(fenced);
  EXPECT_EQ(fenced->version, e->version + 1);

  EXPECT_CODE(store_->PutSnapshot(info, "x", 0, nullptr), kInvalidArgument);
  SnapshotInfo orphan = info;
  orphan.session_id = "ses_missing";
  EXPECT_CODE(store_->PutSnapshot(orphan, "x", 3, nullptr), kNotFound);

  ASSERT_OK(store_->DeleteSnapshots(s.id));
  ASSERT_OK(store_->DeleteSnapshots(s.id));  // idempotent
  EXPECT_TRUE(store_->ListSnapshots(s.id)->empty());
  EXPECT_FALSE(store_->LatestSnapshot(s.id)->has_value());
}

TEST_P(SessionStoreConformance, ConcurrentSnapshotWritersGetDistinctVersions) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, {}));
  SnapshotInfo info;
  info.session_id = s.id;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::int64_t> versions;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto put = store_->PutSnapshot(info, "data", 100, nullptr);
        ASSERT_OK(put);
        std::lock_guard lock(mu);
        versions.insert(put->version);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(versions.size(), 20u);
  EXPECT_EQ(*versions.rbegin(), 20);
}

TEST_P(SessionStoreConformance, PurgeRemovesTheSessionAndEverythingOfItOnly) {
  Agent a = MakeAgent();
  ASSERT_OK(store_->CreateAgent(a));
  Session s = MakeSession(a.id), other = MakeSession(a.id);
  ASSERT_OK(store_->CreateSession(s, IdempotencyKey{"sessions", "k-purge", "h"}));
  ASSERT_OK(store_->CreateSession(other, {}));
  for (const Session* x : {&s, &other}) {
    paddock::Run r = MakeRun(x->id);
    ASSERT_OK(store_->EnqueueRun(r, Message(r), IdempotencyKey{"messages:" + x->id, "k-msg", "h"}));
    ASSERT_OK(store_->AppendEvent(x->id, NewEvent{"", "output", "{}"}));
    SnapshotInfo info;
    info.session_id = x->id;
    ASSERT_OK(store_->PutSnapshot(info, "archive", 3, nullptr));
  }
  ASSERT_OK(store_->PurgeSession(s.id));
  EXPECT_CODE(store_->GetSession(s.id), kNotFound);
  EXPECT_TRUE(store_->ListRuns(s.id, 100)->empty());
  EXPECT_TRUE(store_->ListEvents(s.id, 0, 100)->empty());
  EXPECT_TRUE(store_->ListSnapshots(s.id)->empty());
  EXPECT_FALSE(store_->FindIdempotencyKey("sessions", "k-purge")->has_value());
  EXPECT_FALSE(store_->FindIdempotencyKey("messages:" + s.id, "k-msg")->has_value());
  ASSERT_OK(store_->PurgeSession(s.id));  // idempotent
  // The other session is untouched, and the agent can go once its last session does.
  EXPECT_OK(store_->GetSession(other.id));
  EXPECT_EQ(store_->ListRuns(other.id, 100)->size(), 1u);
  EXPECT_EQ(store_->ListEvents(other.id, 0, 100)->size(), 2u);
  EXPECT_EQ(store_->ListSnapshots(other.id)->size(), 1u);
  EXPECT_TRUE(store_->FindIdempotencyKey("messages:" + other.id, "k-msg")->has_value());
  EXPECT_CODE(store_->DeleteAgent(a.id), kFailedPrecondition);
  ASSERT_OK(store_->PurgeSession(other.id));
  EXPECT_OK(store_->DeleteAgent(a.id));
}

}  // namespace paddock::testing
