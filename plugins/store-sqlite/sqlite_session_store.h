// SqliteSessionStore: the embedded SessionStore. One database file in WAL mode, one
// connection serialised by a mutex; meant for a single paddock process.
#pragma once

#include <sqlite3.h>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "paddock/plugin/sdk.h"
#include "sqlite_db.h"

namespace paddock::plugins::store_sqlite {

struct SqliteConfig {
  std::string path;  // database file
  std::int64_t busy_timeout_ms = 5000;
  bool exclusive = true;  // flock <path>.lock: one process per database
};

class SqliteSessionStore final : public SessionStore {
 public:
  SqliteSessionStore(SqliteConfig config, Logger& logger);
  ~SqliteSessionStore() override;

  Status Start() noexcept override;
  void Stop() noexcept override;
  Health GetHealth() const noexcept override;

  Result<std::vector<std::string>> Migrate() noexcept override;
  Result<std::vector<std::string>> AppliedMigrations() noexcept override;
  Result<std::vector<std::string>> PendingMigrations() noexcept override;
  bool SingleProcess() const noexcept override { return true; }

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
  // One write: `body` runs under mu_ in one BEGIN IMMEDIATE transaction; when it succeeds the
  // transaction commits and the events it appended are told to the feed, otherwise it rolls back.
  template <class F>
  auto Write(F&& body) noexcept -> decltype(body()) {
    using R = decltype(body());
    return plugin::Guard([&]() -> R {
      std::lock_guard lock(mu_);
      appended_.clear();
      Transaction tx(db_);
      PADDOCK_RETURN_IF_ERROR(tx.begin_status());
      R out = body();
      if (!out.ok()) return out;
      PADDOCK_RETURN_IF_ERROR(tx.Commit());
      Notify();
      return out;
    });
  }
  Result<Agent> GetAgentLocked(std::string_view id);
  Status CheckTeamLocked(std::string_view team_id);
  Status WriteAgentEnv(const Agent& agent);
  Result<Run> GetRunLocked(std::string_view id);
  // Appends within the caller's transaction; the event is remembered and told to the feed by
  // Notify() once the caller has committed.
  Result<Event> AppendEventLocked(std::string_view session_id, const NewEvent& event);
  // An event of `run`, whose lease the caller has checked in this transaction.
  Result<Event> AppendForRunLocked(const Run& run, const NewEvent& event);
  void Notify();
  // The run, when it is running under lease.generation; kAborted (or kNotFound) otherwise.
  Result<Run> CheckLeaseLocked(const RunLease& lease);
  Status RecordKeyLocked(const IdempotencyKey& idem, std::string_view resource_id);
  Result<std::vector<std::string>> AppliedLocked();
  Result<std::vector<SnapshotInfo>> SnapshotsLocked(std::string_view session_id, int limit);
  Status DeleteSnapshotsLocked(std::string_view session_id, std::int64_t below_version);

  SqliteConfig config_;
  Logger& logger_;
  mutable std::mutex mu_;
  sqlite3* db_ = nullptr;
  mutable StatementCache cache_;  // every use under mu_
  int lock_fd_ = -1;              // flock on <path>.lock: one process per database
  EventFeed* feed_ = nullptr;
  std::vector<std::pair<std::string, std::int64_t>> appended_;  // since the last Notify()
};

}  // namespace paddock::plugins::store_sqlite
