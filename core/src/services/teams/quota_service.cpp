#include "services/teams/quota_service.h"

#include <functional>

#include "metrics/metrics.h"
#include "util/money.h"

namespace paddock {
namespace {

constexpr TimestampMs kMinute = 60'000;
constexpr TimestampMs kDay = 86'400'000;
// Counting quotas free up when a session closes or goes idle: a guess at when to look again.
constexpr std::int64_t kRetryCountingS = 30;

std::int64_t SecondsUntil(TimestampMs at, TimestampMs now) {
  return std::max<std::int64_t>(1, (at - now + 999) / 1000);
}

std::string Usd(std::int64_t micros) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "$%.2f", MicrosToUsd(micros));
  return buf;
}

}  // namespace

TimestampMs UtcDayStart(TimestampMs ms) { return ms - ms % kDay; }

QuotaService::QuotaService(SessionStore& store, QuotaSettings defaults, Metrics& metrics)
    : store_(store), defaults_(defaults), metrics_(metrics) {}

std::mutex& QuotaService::LockOf(const std::string& team_id) {
  return locks_[std::hash<std::string>{}(team_id) % locks_.size()];
}

Result<std::vector<QuotaLine>> QuotaService::Lines(const Team& team, TimestampMs now) {
  const TimestampMs day = UtcDayStart(now);
  PADDOCK_ASSIGN_OR_RETURN(TeamUsage u, store_.GetTeamUsage(team.id, now - kMinute, day));
  const TeamQuotas& q = team.quotas;
  auto line = [](const char* name, const std::optional<std::int64_t>& own, std::int64_t fallback,
                 std::int64_t used, TimestampMs resets_at) {
    return QuotaLine{name, own.value_or(fallback), used, own.has_value(), resets_at};
  };
  std::vector<QuotaLine> lines = {
      line("sandboxes", q.sandboxes, defaults_.sandboxes, u.sandboxes, 0),
      line("open_sessions", q.open_sessions, defaults_.open_sessions, u.open_sessions, 0),
      line("runs_per_minute", q.runs_per_minute, defaults_.runs_per_minute, u.runs,
           u.runs > 0 ? u.oldest_run_at + kMinute : 0),
      line("tokens_per_day", q.tokens_per_day, defaults_.tokens_per_day, u.tokens, day + kDay),
      line("cost_per_day_usd", q.cost_per_day_microusd, defaults_.cost_per_day_microusd, u.cost_microusd,
           day + kDay),
  };
  for (const QuotaLine& l : lines) {
    const bool money = l.name == "cost_per_day_usd";
    metrics_.SetTeamQuota(team.id, l.name, money ? MicrosToUsd(l.limit) : static_cast<double>(l.limit),
                          money ? MicrosToUsd(l.used) : static_cast<double>(l.used));
  }
  return lines;
}

Result<QuotaService::Admission> QuotaService::Admit(const std::string& team_id, bool session, bool sandbox,
                                                    bool run, QuotaRefusal* refused) {
  Admission held(LockOf(team_id));
  PADDOCK_ASSIGN_OR_RETURN(Team team, store_.GetTeam(team_id));
  const TimestampMs now = NowMs();
  PADDOCK_ASSIGN_OR_RETURN(std::vector<QuotaLine> lines, Lines(team, now));
  for (const QuotaLine& l : lines) {
    if (l.limit <= 0) continue;
    std::string why;
    std::int64_t retry = kRetryCountingS;
    const std::string who = "team '" + team_id + "'";
    const std::string limit = std::to_string(l.limit);
    if (l.name == "sandboxes" && sandbox && l.used + 1 > l.limit) {
      why = who + " has " + std::to_string(l.used) + " sandboxes, its quota 'sandboxes' of " + limit +
            " at once; close a session (or wait for an idle one to be suspended) and retry";
    } else if (l.name == "open_sessions" && session && l.used + 1 > l.limit) {
      why = who + " has " + std::to_string(l.used) + " open sessions, its quota 'open_sessions' of " + limit +
            "; close one and retry";
    } else if (l.name == "runs_per_minute" && run && l.used + 1 > l.limit) {
      retry = SecondsUntil(l.resets_at, now);
      why = who + " sent " + std::to_string(l.used) +
            " messages in the last minute, its quota 'runs_per_minute' of " + limit + "; retry in " +
            std::to_string(retry) + " s";
    } else if (l.name == "tokens_per_day" && run && l.used >= l.limit) {
      retry = SecondsUntil(l.resets_at, now);
      why = who + " used " + std::to_string(l.used) +
            " model tokens today (UTC), its quota 'tokens_per_day' of " + limit + "; it resets in " +
            std::to_string(retry) + " s";
    } else if (l.name == "cost_per_day_usd" && run && l.used >= l.limit) {
      retry = SecondsUntil(l.resets_at, now);
      why = who + " spent " + Usd(l.used) + " on models today (UTC), its quota 'cost_per_day_usd' of " +
            Usd(l.limit) + "; it resets in " + std::to_string(retry) + " s";
    }
    if (why.empty()) continue;
    metrics_.QuotaRefused(team_id, l.name);
    if (refused) *refused = QuotaRefusal{l.name, retry};
    return Status::ResourceExhausted(why);
  }
  return held;
}

Result<QuotaService::Admission> QuotaService::AdmitSession(const std::string& team_id, bool with_sandbox,
                                                           QuotaRefusal* refused) {
  return Admit(team_id, /*session=*/true, with_sandbox, /*run=*/false, refused);
}

Result<QuotaService::Admission> QuotaService::AdmitRun(const Session& session, QuotaRefusal* refused) {
  return Admit(session.team_id, /*session=*/false, /*sandbox=*/session.sandbox_id.empty(), /*run=*/true,
               refused);
}

Result<std::vector<QuotaLine>> QuotaService::Report(const std::string& team_id) {
  PADDOCK_ASSIGN_OR_RETURN(Team team, store_.GetTeam(team_id));
  return Lines(team, NowMs());
}

void QuotaService::Export() {
  PageRequest page{1000, ""};
  for (int pages = 0; pages < 100; ++pages) {
    Result<Page<Team>> teams = store_.ListTeams(page);
    if (!teams.ok()) return;
    for (const Team& t : teams->items) (void)Lines(t, NowMs());
    if (teams->next_cursor.empty()) return;
    page.cursor = teams->next_cursor;
  }
}

}  // namespace paddock
