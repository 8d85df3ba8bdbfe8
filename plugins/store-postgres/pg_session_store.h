// PostgresSessionStore: the production SessionStore. A pool of libpq connections, leases on
// the database's clock, and LISTEN/NOTIFY so that every process sharing the database hears of
// every append.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "paddock/plugin/sdk.h"
#include "pg_db.h"
#include "pg_notify_batcher.h"

namespace paddock::plugins::store_postgres {

class PostgresSessionStore final : public SessionStore {
 public:
  PostgresSessionStore(PoolOptions options, Logger& logger);
  ~PostgresSessionStore() override;

  Status Start() noexcept override;
  void Stop() noexcept override;
  Health GetHealth() const noexcept override;

  Result<std::vector<std::string>> Migrate() noexcept override;
  Result<std::vector<std::string>> AppliedMigrations() noexcept override;
  Result<std::vector<std::string>> PendingMigrations() noexcept override;
  bool SingleProcess() const noexcept override { return false; }

  Status CreateTeam(const Team& team) noexcept override;
  Result<Team> GetTeam(std::string_view id) noexcept override;
  Status UpdateTeam(const Team& team) noexcept override;
  Result<SealedSecret> PutSealedSecret(const SealedSecret& secret) noexcept override;
  Result<SealedSecret> GetSealedSecret(std::string_view team_id, std::string_view name) noexcept override;
  Result<std::vector<SealedSecret>> ListSealedSecrets(std::string_view team_id) noexcept override;
  Status DeleteSealedSecret(std::string_view team_id, std::string_view name) noexcept override;
  Status ResealSecret(const SealedSecret& secret) noexcept override;
  Result<Page<Team>> ListTeams(const PageRequest& page) noexcept override;
  Result<TeamUsage> GetTeamUsage(std::string_view team_id, TimestampMs runs_since,
                                 TimestampMs day) noexcept override;
  Status CreateApiKey(const ApiKey& key) noexcept override;
  Result<ApiKey> FindApiKey(std::string_view hash) noexcept override;
  Result<ApiKey> GetApiKey(std::string_view id) noexcept override;
  Result<Page<ApiKey>> ListApiKeys(std::string_view team_id, const PageRequest& page) noexcept override;
  Status RevokeApiKey(std::string_view id, TimestampMs at) noexcept override;

  Result<std::int64_t> AppendAudit(const AuditEvent& event) noexcept override;
  Result<Page<AuditEvent>> ListAudit(const AuditFilter& filter) noexcept override;
  Result<std::int64_t> PruneAudit(TimestampMs before) noexcept override;

  Status CreateAgent(const Agent& agent) noexcept override;
  Result<Agent> GetAgent(std::string_view id) noexcept override;
  Result<Page<Agent>> ListAgents(std::string_view team_id, const PageRequest& page) noexcept override;
  Status UpdateAgent(const Agent& agent) noexcept override;
  Status DeleteAgent(std::string_view id) noexcept override;

  Status CreateSession(const Session& session, const IdempotencyKey& idem) noexcept override;
  Result<Session> GetSession(std::string_view id) noexcept override;
  Result<Page<Session>> ListSessions(const SessionFilter& filter) noexcept override;
  Status SetSessionStatus(std::string_view id, SessionStatus status,
                          std::string_view reason) noexcept override;
  Status TransitionSession(std::string_view id, SessionStatus from, SessionStatus to,
                           std::string_view reason) noexcept override;
  Status SetSessionSandbox(std::string_view id, std::string_view sandbox_id) noexcept override;
  Result<SessionCounts> CountSessions() noexcept override;
  Status PurgeSession(std::string_view id) noexcept override;

  Result<SnapshotInfo> PutSnapshot(const SnapshotInfo& info, std::string_view data, int keep,
                                   const RunLease* fence) noexcept override;
  Result<std::optional<SnapshotInfo>> LatestSnapshot(std::string_view session_id) noexcept override;
  Result<std::vector<SnapshotInfo>> ListSnapshots(std::string_view session_id) noexcept override;
  Result<std::string> ReadSnapshot(std::string_view session_id, std::int64_t version) noexcept override;
  Status DeleteSnapshots(std::string_view session_id) noexcept override;

  Result<std::optional<IdempotencyRecord>> FindIdempotencyKey(std::string_view scope,
                                                              std::string_view key) noexcept override;
  Result<std::int64_t> PruneIdempotencyKeys(TimestampMs before) noexcept override;

  Result<Event> EnqueueRun(const Run& run, const NewEvent& event,
                           const IdempotencyKey& idem) noexcept override;
  Result<Run> GetRun(std::string_view id) noexcept override;
  Result<std::vector<Run>> ListRuns(std::string_view session_id, int limit) noexcept override;
  Result<std::optional<Run>> ClaimNextRun(std::string_view worker_id,
                                          std::chrono::milliseconds lease) noexcept override;
  Result<Run> HeartbeatRun(const RunLease& lease, std::chrono::milliseconds extend) noexcept override;
  Result<Event> StartRun(const RunLease& lease, const NewEvent& event) noexcept override;
  Result<Event> FinishRun(const RunLease& lease, RunStatus status, std::optional<int> exit_code,
                          std::string_view error, const NewEvent& event) noexcept override;
  Result<Event> RecordRunUsage(const RunLease& lease, const Usage& usage,
                               const NewEvent& event) noexcept override;
  Status SetNativeSessionId(const RunLease& lease, std::string_view id) noexcept override;
  Result<Run> CancelRun(std::string_view id, std::string_view reason,
                        const NewEvent& event) noexcept override;
  Result<std::int64_t> CountActiveRuns(std::string_view session_id) noexcept override;
  Result<std::vector<Run>> SweepExpiredLeases(const SweepOptions& options) noexcept override;

  Result<Event> AppendEvent(std::string_view session_id, const NewEvent& event) noexcept override;
  Result<std::vector<Event>> ListEvents(std::string_view session_id, std::int64_t after_seq,
                                        int limit) noexcept override;
  void SetEventFeed(EventFeed* feed) noexcept override;

 private:
  // Appends on `conn` (inside the caller's transaction, or alone); `event.generation` fences it.
  // With notify=false the statement sends no NOTIFY (the caller hands the seq to notify_).
  Result<Event> AppendOn(PgConnection& conn, std::string_view session_id, const NewEvent& event,
                         bool notify = true);
  // Why a fenced write for `lease` found no row: kNotFound, or kAborted naming the run's state.
  Status LeaseRefusal(PgConnection& conn, const RunLease& lease);
  // Locks the run while it runs under `lease` and returns its session id; else LeaseRefusal.
  Result<std::string> LockLeasedRun(PgConnection& conn, const RunLease& lease);
  Result<Run> GetRunOn(PgConnection& conn, std::string_view id, bool for_update = false);
  Result<Agent> GetAgentOn(PgConnection& conn, std::string_view id);
  Status WriteAgentEnv(PgConnection& conn, const Agent& agent);
  Status RecordKey(PgConnection& conn, const IdempotencyKey& idem, std::string_view resource_id);
  Status EndRun(PgConnection& conn, const Run& run, RunStatus status, std::optional<int> exit_code,
                std::string_view error);
  Result<std::vector<std::string>> AppliedOn(PgConnection& conn);
  Result<std::vector<SnapshotInfo>> SnapshotsOn(PgConnection& conn, std::string_view session_id, int limit);
  void ListenLoop();

  PoolOptions options_;
  Logger& logger_;
  mutable PgPool pool_;
  std::string channel_;  // NOTIFY channel: "paddock:<schema>"
  NotifyBatcher notify_;

  std::mutex feed_mu_;
  EventFeed* feed_ = nullptr;
  std::atomic<bool> listening_{false};
  std::atomic<bool> stopping_{false};
  std::thread listener_;
};

}  // namespace paddock::plugins::store_postgres
