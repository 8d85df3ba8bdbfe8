// What a quota check costs the request it guards: QuotaService::AdmitRun (the team's usage read
// from the store: open sessions, sandboxes, the minute's runs, the day's tokens and cost) next
// to the read every message already makes (SessionStore::GetSession), in alternating rounds,
// on a sqlite store holding a busy day: two teams, each with open sessions and runs sent today
// with their usage recorded.
//
//   build/bin/quota_bench [RUNS_PER_TEAM]     (default 5000; 2000 measured calls each)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "baselines.h"
#include "metrics/metrics.h"
#include "paddock/events.h"
#include "services/teams/quota_service.h"
#include "testing.h"
#include "util/ids.h"

using namespace paddock;
using namespace paddock::testing;

int main(int argc, char** argv) {
  const int runs_per_team = argc > 1 ? std::atoi(argv[1]) : 5000;
  constexpr int kSessions = 200;
  constexpr int kCalls = 2000;
  TempDir dir;
  auto loaded = LoadStore("sqlite", "", dir.path());
  if (!loaded.ok()) {
    std::fprintf(stderr, "quota_bench: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  SessionStore& store = **loaded;
  std::vector<Session> sessions;
  for (const char* team : {"busy", "other"}) {
    TeamQuotas q;
    q.sandboxes = 1000;
    q.open_sessions = 1000;
    q.runs_per_minute = 1'000'000;
    q.tokens_per_day = 1'000'000'000'000LL;
    q.cost_per_day_microusd = 1'000'000'000'000LL;
    if (!store.CreateTeam(Team{team, team, NowMs(), {}, q}).ok()) return 1;
    Agent a;
    a.id = NewId("agt");
    a.name = "a";
    a.harness = "shell";
    a.team_id = team;
    a.created_at = a.updated_at = NowMs();
    if (!store.CreateAgent(a).ok()) return 1;
    std::vector<std::string> ids;
    for (int i = 0; i < kSessions; ++i) {
      Session s;
      s.id = NewId("ses");
      s.agent_id = a.id;
      s.status = SessionStatus::kReady;
      s.created_at = s.updated_at = NowMs();
      if (!store.CreateSession(s, {}).ok()) return 1;
      if (i % 2 == 0) (void)store.SetSessionSandbox(s.id, "sbx-" + s.id);
      ids.push_back(s.id);
    }
    sessions.push_back(*store.GetSession(ids.front()));
    const TimestampMs day = UtcDayStart(NowMs());
    for (int i = 0; i < runs_per_team; ++i) {
      Run r;
      r.id = NewId("run");
      r.session_id = ids[static_cast<size_t>(i) % ids.size()];
      r.content = "x";
      r.created_at = day + (NowMs() - day) * i / runs_per_team;
      if (!store.EnqueueRun(r, NewEvent{r.id, "message.user", "{}"}, {}).ok()) return 1;
      auto claimed = store.ClaimNextRun("bench", std::chrono::milliseconds(60000));
      if (!claimed.ok() || !claimed->has_value()) return 1;
      const RunLease lease{(*claimed)->id, (*claimed)->generation};
      (void)store.RecordRunUsage(lease, Usage{"m", 1000, 200, 0, 0.01}, NewEvent{"", "usage", "{}"});
      (void)store.FinishRun(lease, RunStatus::kSucceeded, 0, "", NewEvent{"", "run.finished", "{}"});
    }
  }
  Metrics metrics;
  QuotaService quotas(store, QuotaSettings{}, metrics);
  std::vector<double> admit, read;
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < kCalls / 10; ++i) {
      const Session& s = sessions[static_cast<size_t>(i) % sessions.size()];
      auto t0 = Clock::now();
      auto got = store.GetSession(s.id);
      read.push_back(Ms(Clock::now() - t0));
      t0 = Clock::now();
      auto admitted = quotas.AdmitRun(*got, nullptr);
      admit.push_back(Ms(Clock::now() - t0));
      if (!admitted.ok()) {
        std::fprintf(stderr, "quota_bench: %s\n", admitted.status().ToString().c_str());
        return 1;
      }
    }
  }
  std::printf("quota_bench: sqlite, 2 teams x %d open sessions x %d runs today, %d calls each\n", kSessions,
              runs_per_team, kCalls);
  std::printf("  baseline GetSession         p50 %7.3f ms  p99 %7.3f ms\n", Percentile(read, 0.5),
              Percentile(read, 0.99));
  std::printf(
      "  QuotaService::AdmitRun      p50 %7.3f ms  p99 %7.3f ms   p50 %.1fx, p99 %.1fx the baseline\n",
      Percentile(admit, 0.5), Percentile(admit, 0.99), Percentile(admit, 0.5) / Percentile(read, 0.5),
      Percentile(admit, 0.99) / Percentile(read, 0.99));
  return 0;
}
