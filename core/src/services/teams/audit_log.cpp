#include "services/teams/audit_log.h"

#include "util/log.h"

namespace paddock {
namespace {

// Past this many (key, address) pairs the memory of them starts again: the log then says a
// key was used from an address it was seen at before, never that it was not.
constexpr size_t kMaxSeen = 100000;
constexpr auto kPruneEvery = std::chrono::hours(1);

}  // namespace

AuditLog::AuditLog(SessionStore& store, std::chrono::milliseconds retention)
    : store_(store), retention_(retention) {}

void AuditLog::Record(AuditEvent event) {
  event.at = NowMs();
  if (Result<std::int64_t> id = store_.AppendAudit(event); !id.ok()) {
    LogError("audit: cannot record " + event.action + " by key '" + event.key_id + "' from " + event.source +
             " (request " + event.request_id + "): " + id.status().ToString());
  }
  if (retention_.count() <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    if (pruned_ != std::chrono::steady_clock::time_point{} && now - pruned_ < kPruneEvery) return;
    pruned_ = now;
  }
  Result<std::int64_t> pruned = store_.PruneAudit(NowMs() - retention_.count());
  if (!pruned.ok()) {
    LogWarn("audit: pruning past the retention: " + pruned.status().ToString());
  } else if (*pruned > 0) {
    LogInfo("audit: pruned " + std::to_string(*pruned) + " entries past the retention");
  }
}

void AuditLog::KeyUsed(const Principal& who, const std::string& source, const std::string& request_id) {
  {
    std::lock_guard lock(mu_);
    if (!seen_.emplace(who.key_id, source).second) return;
    if (seen_.size() > kMaxSeen) {
      seen_.clear();
      seen_.emplace(who.key_id, source);
    }
  }
  AuditEvent e;
  e.team_id = who.team_id;
  e.key_id = who.key_id;
  e.source = source;
  e.request_id = request_id;
  e.action = "key.new_address";
  e.resource = who.key_id;
  e.outcome = "ok";
  e.detail =
      "key '" + who.key_name + "' used from " + source + " for the first time since this process started";
  Record(std::move(e));
}

Result<Page<AuditEvent>> AuditLog::List(const Principal& who, const std::string& team_filter,
                                        const PageRequest& page) {
  AuditFilter f;
  f.page = page;
  f.team_id = who.ListTeam();
  if (!team_filter.empty()) {
    if (!who.Sees(team_filter)) return Status::NotFound("team '" + team_filter + "' does not exist");
    f.team_id = team_filter;
  }
  return store_.ListAudit(f);
}

}  // namespace paddock
