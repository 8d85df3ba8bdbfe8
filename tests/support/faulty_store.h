// FaultyStore: a SessionStore that passes every call to a real one, except the calls it is told
// to fail. A fault either stops the call before it reaches the store (nothing written, as when
// the database is unreachable) or lets it through and fails the answer (written, but the caller
// never hears so: the connection dropped after the commit). Tests put the services on one to
// see what they do on a bad day.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "paddock/session_store.h"

namespace paddock::testing {

class FaultyStore final : public SessionStore {
 public:
  enum class When { kBefore, kAfter };

  explicit FaultyStore(std::shared_ptr<SessionStore> inner) : inner_(std::move(inner)) {}

  // The next `times` calls of `method` (its name in SessionStore) fail with `status`.
  void Fail(const std::string& method, Status status, When when = When::kBefore, int times = 1) {
    std::lock_guard lock(mu_);
    faults_[method] = {std::move(status), when, times};
  }
  // Every call fails before it reaches the store, until Heal().
  void Outage(Status status) {
    std::lock_guard lock(mu_);
    outage_ = std::move(status);
  }
  void Heal() {
    std::lock_guard lock(mu_);
    outage_.reset();
    faults_.clear();
  }
  // How many calls of `method` were made (failed ones too).
  int Calls(const std::string& method) const {
    std::lock_guard lock(mu_);
    auto it = calls_.find(method);
    return it == calls_.end() ? 0 : it->second;
  }
  SessionStore& inner() { return *inner_; }

  Status Start() noexcept override { return inner_->Start(); }
  void Stop() noexcept override { inner_->Stop(); }
  Health GetHealth() const noexcept override { return inner_->GetHealth(); }
  bool SingleProcess() const noexcept override { return inner_->SingleProcess(); }
  void SetEventFeed(EventFeed* feed) noexcept override { inner_->SetEventFeed(feed); }

#define PADDOCK_FAULTY(R, Name, Params, Args)                 \
  R Name Params noexcept override {                           \
    return Call<R>(#Name, [&] { return inner_->Name Args; }); \
  }

  PADDOCK_FAULTY(Result<std::vector<std::string>>, Migrate, (), ())
  PADDOCK_FAULTY(Result<std::vector<std::string>>, AppliedMigrations, (), ())
  PADDOCK_FAULTY(Result<std::vector<std::string>>, PendingMigrations, (), ())
  PADDOCK_FAULTY(Status, CreateTeam, (const Team& team), (team))
  PADDOCK_FAULTY(Status, UpdateTeam, (const Team& team), (team))
  PADDOCK_FAULTY(Result<SealedSecret>, PutSealedSecret, (const SealedSecret& secret), (secret))
  PADDOCK_FAULTY(Result<SealedSecret>, GetSealedSecret, (std::string_view team_id, std::string_view name),
                 (team_id, name))
  PADDOCK_FAULTY(Result<std::vector<SealedSecret>>, ListSealedSecrets, (std::string_view team_id), (team_id))
  PADDOCK_FAULTY(Status, DeleteSealedSecret, (std::string_view team_id, std::string_view name),
                 (team_id, name))
  PADDOCK_FAULTY(Status, ResealSecret, (const SealedSecret& secret), (secret))
  PADDOCK_FAULTY(Result<Team>, GetTeam, (std::string_view id), (id))
  PADDOCK_FAULTY(Result<Page<Team>>, ListTeams, (const PageRequest& page), (page))
  PADDOCK_FAULTY(Result<TeamUsage>, GetTeamUsage,
                 (std::string_view team_id, TimestampMs runs_since, TimestampMs day),
                 (team_id, runs_since, day))
  PADDOCK_FAULTY(Status, CreateApiKey, (const ApiKey& key), (key))
  PADDOCK_FAULTY(Result<ApiKey>, FindApiKey, (std::string_view hash), (hash))
  PADDOCK_FAULTY(Result<ApiKey>, GetApiKey, (std::string_view id), (id))
  PADDOCK_FAULTY(Result<Page<ApiKey>>, ListApiKeys, (std::string_view team_id, const PageRequest& page),
                 (team_id, page))
  PADDOCK_FAULTY(Status, RevokeApiKey, (std::string_view id, TimestampMs at), (id, at))
  PADDOCK_FAULTY(Result<std::int64_t>, AppendAudit, (const AuditEvent& event), (event))
  PADDOCK_FAULTY(Result<Page<AuditEvent>>, ListAudit, (const AuditFilter& filter), (filter))
  PADDOCK_FAULTY(Result<std::int64_t>, PruneAudit, (TimestampMs before), (before))
  PADDOCK_FAULTY(Status, CreateAgent, (const Agent& agent), (agent))
  PADDOCK_FAULTY(Result<Agent>, GetAgent, (std::string_view id), (id))
  PADDOCK_FAULTY(Result<Page<Agent>>, ListAgents, (std::string_view team_id, const PageRequest& page),
                 (team_id, page))
  PADDOCK_FAULTY(Status, UpdateAgent, (const Agent& agent), (agent))
  PADDOCK_FAULTY(Status, DeleteAgent, (std::string_view id), (id))
  PADDOCK_FAULTY(Status, CreateSession, (const Session& session, const IdempotencyKey& idem), (session, idem))
  PADDOCK_FAULTY(Result<Session>, GetSession, (std::string_view id), (id))
  PADDOCK_FAULTY(Result<Page<Session>>, ListSessions, (const SessionFilter& filter), (filter))
  PADDOCK_FAULTY(Status, SetSessionStatus,
                 (std::string_view id, SessionStatus status, std::string_view reason), (id, status, reason))
  PADDOCK_FAULTY(Status, TransitionSession,
                 (std::string_view id, SessionStatus from, SessionStatus to, std::string_view reason),
                 (id, from, to, reason))
  PADDOCK_FAULTY(Status, SetSessionSandbox, (std::string_view id, std::string_view sandbox_id),
                 (id, sandbox_id))
  PADDOCK_FAULTY(Result<SessionCounts>, CountSessions, (), ())
  PADDOCK_FAULTY(Status, PurgeSession, (std::string_view id), (id))
  PADDOCK_FAULTY(Result<std::optional<IdempotencyRecord>>, FindIdempotencyKey,
                 (std::string_view scope, std::string_view key), (scope, key))
  PADDOCK_FAULTY(Result<std::int64_t>, PruneIdempotencyKeys, (TimestampMs before), (before))
  PADDOCK_FAULTY(Result<Event>, EnqueueRun,
                 (const Run& run, const NewEvent& event, const IdempotencyKey& idem), (run, event, idem))
  PADDOCK_FAULTY(Result<Run>, GetRun, (std::string_view id), (id))
  PADDOCK_FAULTY(Result<std::vector<Run>>, ListRuns, (std::string_view session_id, int limit),
                 (session_id, limit))
  PADDOCK_FAULTY(Result<std::optional<Run>>, ClaimNextRun,
                 (std::string_view worker_id, std::chrono::milliseconds lease), (worker_id, lease))
  PADDOCK_FAULTY(Result<Run>, HeartbeatRun, (const RunLease& lease, std::chrono::milliseconds extend),
                 (lease, extend))
  PADDOCK_FAULTY(Result<Event>, StartRun, (const RunLease& lease, const NewEvent& event), (lease, event))
  PADDOCK_FAULTY(Result<Event>, FinishRun,
                 (const RunLease& lease, RunStatus status, std::optional<int> exit_code,
                  std::string_view error, const NewEvent& event),
                 (lease, status, exit_code, error, event))
  PADDOCK_FAULTY(Result<Event>, RecordRunUsage,
                 (const RunLease& lease, const Usage& usage, const NewEvent& event), (lease, usage, event))
  PADDOCK_FAULTY(Status, SetNativeSessionId, (const RunLease& lease, std::string_view id), (lease, id))
  PADDOCK_FAULTY(Result<Run>, CancelRun,
                 (std::string_view id, std::string_view reason, const NewEvent& event), (id, reason, event))
  PADDOCK_FAULTY(Result<std::int64_t>, CountActiveRuns, (std::string_view session_id), (session_id))
  PADDOCK_FAULTY(Result<std::vector<Run>>, SweepExpiredLeases, (const SweepOptions& options), (options))
  PADDOCK_FAULTY(Result<Event>, AppendEvent, (std::string_view session_id, const NewEvent& event),
                 (session_id, event))
  PADDOCK_FAULTY(Result<std::vector<Event>>, ListEvents,
                 (std::string_view session_id, std::int64_t after_seq, int limit),
                 (session_id, after_seq, limit))
  PADDOCK_FAULTY(Result<SnapshotInfo>, PutSnapshot,
                 (const SnapshotInfo& info, std::string_view data, int keep, const RunLease* fence),
                 (info, data, keep, fence))
  PADDOCK_FAULTY(Result<std::optional<SnapshotInfo>>, LatestSnapshot, (std::string_view session_id),
                 (session_id))
  PADDOCK_FAULTY(Result<std::vector<SnapshotInfo>>, ListSnapshots, (std::string_view session_id),
                 (session_id))
  PADDOCK_FAULTY(Result<std::string>, ReadSnapshot, (std::string_view session_id, std::int64_t version),
                 (session_id, version))
  PADDOCK_FAULTY(Status, DeleteSnapshots, (std::string_view session_id), (session_id))
#undef PADDOCK_FAULTY

 private:
  struct Fault {
    Status status;
    When when = When::kBefore;
    int times = 0;
  };

  // The fault for this call of `method`, if any, counting it down.
  std::optional<Fault> Take(const char* method) {
    std::lock_guard lock(mu_);
    ++calls_[method];
    if (outage_) return Fault{*outage_, When::kBefore, 1};
    auto it = faults_.find(method);
    if (it == faults_.end()) return std::nullopt;
    Fault f = it->second;
    if (--it->second.times <= 0) faults_.erase(it);
    return f;
  }

  template <class R, class F>
  R Call(const char* method, F&& forward) noexcept {
    std::optional<Fault> fault = Take(method);
    if (fault && fault->when == When::kBefore) return R(fault->status);
    R result = forward();
    if (fault) return R(fault->status);
    return result;
  }

  std::shared_ptr<SessionStore> inner_;
  mutable std::mutex mu_;
  std::map<std::string, Fault> faults_;
  std::map<std::string, int> calls_;
  std::optional<Status> outage_;
};

}  // namespace paddock::testing
