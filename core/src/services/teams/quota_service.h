// QuotaService: what a team may use — its own TeamQuotas over the install's [quotas] defaults —
// against what it uses (SessionStore::GetTeamUsage), checked when a request would use more: a
// new session (an open session, and a sandbox when this process provisions one at once) and a
// message (a run, the day's tokens and cost, and a sandbox when the session has none bound).
//
// Admission holds a lock (per team, in this process) until the caller has written what it was
// admitted for, so two requests on one process cannot both take the last unit. Processes
// sharing a store check independently: each can let one request past the limit at the same
// instant (docs/architecture.md, "Quotas are checked at admission").
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "paddock/session_store.h"

namespace paddock {

class Metrics;

// One quota of one team.
struct QuotaLine {
  std::string name;           // sandboxes, open_sessions, runs_per_minute, tokens_per_day, cost_per_day_usd
  std::int64_t limit = 0;     // 0: none (cost in millionths of a dollar)
  std::int64_t used = 0;      // against it, now
  bool team_set = false;      // the team's own value, not the install's default
  TimestampMs resets_at = 0;  // per-period quotas: when the oldest use leaves the window; else 0
};

// Why a request was refused, for the response's Retry-After.
struct QuotaRefusal {
  std::string quota;
  std::int64_t retry_after_s = 0;
};

class QuotaService {
 public:
  using Admission = std::unique_lock<std::mutex>;

  QuotaService(SessionStore& store, QuotaSettings defaults, Metrics& metrics);

  // A new session of `team_id`, with a sandbox at once when `with_sandbox`. kResourceExhausted
  // naming the quota (and filling *refused) when over it; hold the admission until written.
  Result<Admission> AdmitSession(const std::string& team_id, bool with_sandbox, QuotaRefusal* refused);
  // A message to `session`: a run, the day's spend, and a sandbox when none is bound.
  Result<Admission> AdmitRun(const Session& session, QuotaRefusal* refused);

  // Every quota of the team with its limit and use (also sets the team's gauges).
  Result<std::vector<QuotaLine>> Report(const std::string& team_id);
  // Sets the gauges of every team (on a /metrics scrape).
  void Export();

 private:
  Result<std::vector<QuotaLine>> Lines(const Team& team, TimestampMs now);
  Result<Admission> Admit(const std::string& team_id, bool session, bool sandbox, bool run,
                          QuotaRefusal* refused);
  std::mutex& LockOf(const std::string& team_id);

  SessionStore& store_;
  QuotaSettings defaults_;
  Metrics& metrics_;
  std::array<std::mutex, 64> locks_;
};

// Start of the UTC day of `ms`, and of the next one.
TimestampMs UtcDayStart(TimestampMs ms);

}  // namespace paddock
