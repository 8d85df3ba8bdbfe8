// SessionStore: the durable record of agents, sessions, runs and events. Everything the web
// and worker processes know lives here; they keep nothing else between requests.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "paddock/lifecycle.h"
#include "paddock/snapshot_store.h"
#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock {

// Counts of sessions by status, for metrics.
// What one team uses now, for its quotas (TeamQuotas).
struct TeamUsage {
  std::int64_t open_sessions = 0;  // neither closed nor failed
  std::int64_t sandboxes = 0;      // open sessions with a sandbox bound or being provisioned
  std::int64_t runs = 0;           // runs sent at or after `runs_since`
  TimestampMs oldest_run_at = 0;   // the first of those; 0 when there is none
  std::int64_t tokens = 0;         // input + output tokens of the team's runs sent on UTC day `day`
  std::int64_t cost_microusd = 0;  // their cost (RecordRunUsage adds to both, by the run's day)
};

struct SessionCounts {
  std::int64_t by_status[6] = {0, 0, 0, 0, 0, 0};  // indexed by SessionStatus
};

// Told of every event appended to the store, by this process or (for a shared store) any
// other. Calls come from a thread of the store's and must return quickly.
class EventFeed {
 public:
  virtual ~EventFeed() = default;
  virtual void OnAppended(std::string_view session_id, std::int64_t seq) noexcept = 0;
  // live=false: notifications may be missed from now on (say, the connection that carries
  // them dropped), so waiters must poll; live=true: they flow again, and any missed meanwhile
  // must be caught up by re-reading.
  virtual void OnFeedState(bool live) noexcept = 0;
  // An API key was revoked (by any process of a shared store): caches of it must go.
  virtual void OnKeyRevoked(std::string_view key_id) noexcept { (void)key_id; }
};

// Thread safety: every method may be called concurrently from any thread, and, for a store
// shared by several processes, from any number of processes at once.
// A SessionStore also keeps the sessions' snapshots (SnapshotStore), in its own tables.
// Errors: kUnavailable means the backing database could not be reached and the call may be
// repeated; no method leaves a half-written change behind when it fails.
class SessionStore : public Lifecycle, public SnapshotStore {
 public:
  // Start() connects; it does not change the schema. Migrate() does.

  // ---- schema ----
  // Applies the pending migrations in order, each in its own transaction and recorded in
  // schema_migrations, under a lock that makes concurrent callers (other processes too) wait
  // for each other; returns the names it applied. When one fails, its changes are rolled back
  // and the error names it and carries the database's message.
  [[nodiscard]] virtual Result<std::vector<std::string>> Migrate() noexcept = 0;
  // Names of the applied migrations, in the order they were applied.
  [[nodiscard]] virtual Result<std::vector<std::string>> AppliedMigrations() noexcept = 0;
  // Names of the migrations this plugin has that are not applied yet.
  [[nodiscard]] virtual Result<std::vector<std::string>> PendingMigrations() noexcept = 0;
  // True when no other process can use this store at the same time (an embedded database), so
  // a run found running at start-up was left by a process that is gone.
  [[nodiscard]] virtual bool SingleProcess() const noexcept = 0;

  // ---- teams and API keys ----
  // The migrations create the team kDefaultTeam. kAlreadyExists when the id is taken.
  [[nodiscard]] virtual Status CreateTeam(const Team& team) noexcept = 0;
  [[nodiscard]] virtual Result<Team> GetTeam(std::string_view id) noexcept = 0;
  // Replaces the team's name, profiles and quotas. kNotFound when absent.
  [[nodiscard]] virtual Status UpdateTeam(const Team& team) noexcept = 0;
  // Teams ordered by id, descending.
  [[nodiscard]] virtual Result<Page<Team>> ListTeams(const PageRequest& page) noexcept = 0;
  // What the team uses (zeros for a team with nothing, or none of that id); `day` is the start
  // of a UTC day (a multiple of 86400000 ms).
  [[nodiscard]] virtual Result<TeamUsage> GetTeamUsage(std::string_view team_id, TimestampMs runs_since,
                                                       TimestampMs day) noexcept = 0;
  // Inserts `key`. kAlreadyExists when its id or hash is taken; kNotFound when its team is
  // absent.
  [[nodiscard]] virtual Status CreateApiKey(const ApiKey& key) noexcept = 0;
  // The key with that hash (revoked and expired ones too: the caller decides), or kNotFound.
  [[nodiscard]] virtual Result<ApiKey> FindApiKey(std::string_view hash) noexcept = 0;
  [[nodiscard]] virtual Result<ApiKey> GetApiKey(std::string_view id) noexcept = 0;
  // Keys of `team_id` (empty: of every team), newest first.
  [[nodiscard]] virtual Result<Page<ApiKey>> ListApiKeys(std::string_view team_id,
                                                         const PageRequest& page) noexcept = 0;
  // Sets revoked_at (once: revoking a revoked key keeps the first time) and tells every
  // process's feed (EventFeed::OnKeyRevoked). kNotFound when absent.
  [[nodiscard]] virtual Status RevokeApiKey(std::string_view id, TimestampMs at) noexcept = 0;

  // ---- audit log ----
  // Appends `event` (its id is assigned) and returns the id.
  [[nodiscard]] virtual Result<std::int64_t> AppendAudit(const AuditEvent& event) noexcept = 0;
  // Entries matching `filter`, newest first.
  [[nodiscard]] virtual Result<Page<AuditEvent>> ListAudit(const AuditFilter& filter) noexcept = 0;
  // Removes entries older than `before`; returns how many.
  [[nodiscard]] virtual Result<std::int64_t> PruneAudit(TimestampMs before) noexcept = 0;

  // ---- sealed team secrets (kept for a SecretInjector; values are encrypted before) ----
  // Inserts or replaces (team_id, name) with key_id and sealed; version becomes the previous
  // one + 1 (1 when new), created_at is kept on replace, updated_at is secret.updated_at.
  // Returns what is stored. kNotFound when the team is absent.
  [[nodiscard]] virtual Result<SealedSecret> PutSealedSecret(const SealedSecret& secret) noexcept = 0;
  // The secret, or kNotFound.
  [[nodiscard]] virtual Result<SealedSecret> GetSealedSecret(std::string_view team_id,
                                                             std::string_view name) noexcept = 0;
  // The secrets of `team_id` (empty: of every team), ordered by team and name.
  [[nodiscard]] virtual Result<std::vector<SealedSecret>> ListSealedSecrets(
      std::string_view team_id) noexcept = 0;
  // Removes it. kNotFound when absent.
  [[nodiscard]] virtual Status DeleteSealedSecret(std::string_view team_id,
                                                  std::string_view name) noexcept = 0;
  // Replaces key_id and sealed (re-encrypted under another key) of (team_id, name) if it is
  // still at secret.version; version and dates stay. kFailedPrecondition, changing nothing,
  // when it changed or is gone meanwhile.
  [[nodiscard]] virtual Status ResealSecret(const SealedSecret& secret) noexcept = 0;

  // ---- agents ----
  // Inserts `agent`. kAlreadyExists when the id is taken; kNotFound when its team is absent.
  // REQUIRES: !agent.id.empty()
  [[nodiscard]] virtual Status CreateAgent(const Agent& agent) noexcept = 0;
  // The agent, or kNotFound.
  [[nodiscard]] virtual Result<Agent> GetAgent(std::string_view id) noexcept = 0;
  // Agents of `team_id` (empty: of every team) ordered by id, newest first (ids sort by
  // creation time).
  [[nodiscard]] virtual Result<Page<Agent>> ListAgents(std::string_view team_id,
                                                       const PageRequest& page) noexcept = 0;
  // Replaces every field but id and created_at. kNotFound when absent.
  [[nodiscard]] virtual Status UpdateAgent(const Agent& agent) noexcept = 0;
  // Removes the agent. kNotFound when absent; kFailedPrecondition while sessions refer to it.
  [[nodiscard]] virtual Status DeleteAgent(std::string_view id) noexcept = 0;

  // ---- sessions ----
  // Inserts `session` (last_seq is ignored and starts at 0; team_id is the agent's, whatever
  // it says) and, when idem.key is set, records the key for it in the same transaction.
  // kAlreadyExists when the id is taken or the key is already recorded (nothing is written
  // then: look the key up); kNotFound when session.agent_id names no agent.
  [[nodiscard]] virtual Status CreateSession(const Session& session, const IdempotencyKey& idem) noexcept = 0;
  // The session, or kNotFound.
  [[nodiscard]] virtual Result<Session> GetSession(std::string_view id) noexcept = 0;
  // Sessions matching `filter`, newest first.
  [[nodiscard]] virtual Result<Page<Session>> ListSessions(const SessionFilter& filter) noexcept = 0;
  // Sets status and reason (and updated_at). kNotFound when absent.
  [[nodiscard]] virtual Status SetSessionStatus(std::string_view id, SessionStatus status,
                                                std::string_view reason) noexcept = 0;
  // Sets status and reason only if the status is `from` now (compare and set), so that two
  // writers cannot undo each other's transition (say, a finished run reopening a closed
  // session). kFailedPrecondition, changing nothing, when the status is another; kNotFound.
  [[nodiscard]] virtual Status TransitionSession(std::string_view id, SessionStatus from, SessionStatus to,
                                                 std::string_view reason) noexcept = 0;
  // Binds a sandbox id to the session; empty unbinds. kNotFound when absent.
  [[nodiscard]] virtual Status SetSessionSandbox(std::string_view id,
                                                 std::string_view sandbox_id) noexcept = 0;
  [[nodiscard]] virtual Result<SessionCounts> CountSessions() noexcept = 0;
  // Removes the session and everything of it — runs, events, snapshots, idempotency keys —
  // in one transaction. Idempotent: Ok when it is already gone.
  [[nodiscard]] virtual Status PurgeSession(std::string_view id) noexcept = 0;

  // ---- idempotency keys ----
  // The record of (scope, key), or nullopt.
  [[nodiscard]] virtual Result<std::optional<IdempotencyRecord>> FindIdempotencyKey(
      std::string_view scope, std::string_view key) noexcept = 0;
  // Forgets keys recorded before `before`; returns how many.
  [[nodiscard]] virtual Result<std::int64_t> PruneIdempotencyKeys(TimestampMs before) noexcept = 0;

  // ---- runs ----
  // Appends `run` (queued) behind the session's other runs and, in the same transaction,
  // `event` (the user's message) to the session's log, and records idem (when its key is set)
  // for the run; returns the stored event. Either all is written or nothing. kNotFound when
  // the session is absent; kAlreadyExists when the run id is taken or the key is recorded.
  [[nodiscard]] virtual Result<Event> EnqueueRun(const Run& run, const NewEvent& event,
                                                 const IdempotencyKey& idem) noexcept = 0;
  [[nodiscard]] virtual Result<Run> GetRun(std::string_view id) noexcept = 0;
  // The session's runs in arrival order, at most `limit` (1..1000).
  [[nodiscard]] virtual Result<std::vector<Run>> ListRuns(std::string_view session_id,
                                                          int limit) noexcept = 0;
  // Atomically takes the oldest queued run whose session has no running run and no older
  // queued run, marks it running (started_at, attempt+1, generation+1) and leases it to
  // `worker_id` for `lease`; nullopt when there is none. However many workers claim at once,
  // a session never has two running runs, and its runs start in arrival order.
  [[nodiscard]] virtual Result<std::optional<Run>> ClaimNextRun(std::string_view worker_id,
                                                                std::chrono::milliseconds lease) noexcept = 0;
  // Extends the lease to now + `lease` and returns the run (whose cancel_requested the worker
  // acts on). kAborted when the run is no longer running under this generation.
  [[nodiscard]] virtual Result<Run> HeartbeatRun(const RunLease& lease,
                                                 std::chrono::milliseconds extend) noexcept = 0;
  // Appends `event` ("run.started") and moves the session from ready to running (if it is
  // ready), in one transaction, fenced by `lease`: kAborted, writing nothing, when the run is
  // no longer running under that generation.
  [[nodiscard]] virtual Result<Event> StartRun(const RunLease& lease, const NewEvent& event) noexcept = 0;
  // Moves a running run to a terminal status, the session from running back to ready, and
  // appends `event` (its "run.finished"), in one transaction, fenced by `lease` (kAborted,
  // writing nothing, when the run is no longer running under that generation). So the next
  // run of the session can never be claimed before this one's end is in the log.
  // REQUIRES: IsTerminal(status)
  [[nodiscard]] virtual Result<Event> FinishRun(const RunLease& lease, RunStatus status,
                                                std::optional<int> exit_code, std::string_view error,
                                                const NewEvent& event) noexcept = 0;
  // Adds `usage` to the run's and its session's totals (tokens add up, the model is replaced,
  // cost adds up when given) and appends `event` (its "usage"), in one transaction, fenced by
  // `lease` (kAborted, writing nothing, when the run has moved on). Returns the stored event.
  [[nodiscard]] virtual Result<Event> RecordRunUsage(const RunLease& lease, const Usage& usage,
                                                     const NewEvent& event) noexcept = 0;
  // Records the agent's own id for the run's session (Session::native_session_id), fenced by
  // `lease` like RecordRunUsage.
  [[nodiscard]] virtual Status SetNativeSessionId(const RunLease& lease, std::string_view id) noexcept = 0;
  // Cancels a run on behalf of a user. A queued run becomes cancelled with `reason` at once,
  // with `event` (its "run.finished") appended in the same transaction; a running one gets
  // cancel_requested, which its worker sees at its next heartbeat (or the sweeper, if the
  // worker is gone). Returns the run as it is afterwards. kFailedPrecondition when it is
  // already terminal; kNotFound.
  [[nodiscard]] virtual Result<Run> CancelRun(std::string_view id, std::string_view reason,
                                              const NewEvent& event) noexcept = 0;
  // Number of runs of the session that are queued or running.
  [[nodiscard]] virtual Result<std::int64_t> CountActiveRuns(std::string_view session_id) noexcept = 0;
  // Every running run whose lease expired (every running run, with options.all) is
  // interrupted: a "run.interrupted" event is appended, the session goes from running back to
  // ready, and the run is queued again with generation+1 (so its old worker is fenced off) —
  // or, when cancel was requested, it ends cancelled; or, on its max_attempts-th attempt, it
  // ends failed with a reason naming the attempts; both with a "run.finished" event. Each run
  // is handled in one transaction; concurrent sweepers skip runs another is handling. Returns
  // the runs as they are afterwards.
  [[nodiscard]] virtual Result<std::vector<Run>> SweepExpiredLeases(const SweepOptions& options) noexcept = 0;

  // ---- events ----
  // Appends an event with the next seq of the session (1, 2, 3, ... with no gap, even under
  // concurrent appends) and returns it. kNotFound when the session is absent; kAborted for a
  // fenced event (generation set) whose run has moved on.
  [[nodiscard]] virtual Result<Event> AppendEvent(std::string_view session_id,
                                                  const NewEvent& event) noexcept = 0;
  // Events with seq > after_seq, in seq order, at most `limit` (1..1000).
  [[nodiscard]] virtual Result<std::vector<Event>> ListEvents(std::string_view session_id,
                                                              std::int64_t after_seq, int limit) noexcept = 0;
  // Sets (or, with nullptr, clears) the one feed told of appends. The feed must outlive the
  // store's Stop() or be cleared before it is destroyed.
  virtual void SetEventFeed(EventFeed* feed) noexcept = 0;
};

using SessionStorePtr = std::unique_ptr<SessionStore>;

}  // namespace paddock
