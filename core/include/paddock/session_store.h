// SessionStore: the durable record of agents, sessions, runs and events. Everything the web
// and worker processes know lives here; they keep nothing else between requests.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "paddock/lifecycle.h"
#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock {

// Counts of sessions by status, for metrics.
struct SessionCounts {
  std::int64_t by_status[6] = {0, 0, 0, 0, 0, 0};  // indexed by SessionStatus
};

// Thread safety: every method may be called concurrently from any thread.
// Errors: kUnavailable means the backing database could not be reached and the call may be
// repeated; no method leaves a half-written change behind when it fails.
class SessionStore : public Lifecycle {
 public:
  // Start() applies pending migrations, in order, and records each in schema_migrations.

  // ---- agents ----
  // Inserts `agent`. kAlreadyExists when the id is taken. REQUIRES: !agent.id.empty()
  [[nodiscard]] virtual Status CreateAgent(const Agent& agent) noexcept = 0;
  // The agent, or kNotFound.
  [[nodiscard]] virtual Result<Agent> GetAgent(std::string_view id) noexcept = 0;
  // Agents ordered by id, newest first (ids sort by creation time).
  [[nodiscard]] virtual Result<Page<Agent>> ListAgents(const PageRequest& page) noexcept = 0;
  // Replaces every field but id and created_at. kNotFound when absent.
  [[nodiscard]] virtual Status UpdateAgent(const Agent& agent) noexcept = 0;
  // Removes the agent. kNotFound when absent; kFailedPrecondition while sessions refer to it.
  [[nodiscard]] virtual Status DeleteAgent(std::string_view id) noexcept = 0;

  // ---- sessions ----
  // Inserts `session` (last_seq is ignored and starts at 0). kAlreadyExists when the id is
  // taken; kNotFound when session.agent_id names no agent.
  [[nodiscard]] virtual Status CreateSession(const Session& session) noexcept = 0;
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

  // ---- runs ----
  // Appends `run` (queued) behind the session's other runs and, in the same transaction,
  // `event` (the user's message) to the session's log; returns the stored event. Either both
  // are written or neither. kNotFound when the session is absent; kAlreadyExists when the run
  // id is taken.
  [[nodiscard]] virtual Result<Event> EnqueueRun(const Run& run, const NewEvent& event) noexcept = 0;
  [[nodiscard]] virtual Result<Run> GetRun(std::string_view id) noexcept = 0;
  // The session's runs in arrival order,, at most `limit` (1..1000).
  [[nodiscard]] virtual Result<std::vector<Run>> ListRuns(std::string_view session_id,
                                                          int limit) noexcept = 0;
  // Atomically takes the oldest queued run whose session has no running run, marks it
  // running (started_at, attempt+1) and returns it; nullopt when there is none. Runs of one
  // session are handed out one at a time, in arrival order.
  [[nodiscard]] virtual Result<std::optional<Run>> ClaimNextRun() noexcept = 0;
  // Moves a run to a terminal status and, in the same transaction, appends `event` (its
  // "run.finished") to the session's log; returns the stored event. So the next run of the session
  // can never be claimed before this one's end is in the log. kNotFound when the run is absent;
  // kFailedPrecondition, writing nothing, when it is already terminal (the first outcome wins).
  // REQUIRES: IsTerminal(status)
  [[nodiscard]] virtual Result<Event> FinishRun(std::string_view id, RunStatus status,
                                                std::optional<int> exit_code, std::string_view error,
                                                const NewEvent& event) noexcept = 0;
  // Number of runs of the session that are queued or running.
  [[nodiscard]] virtual Result<std::int64_t> CountActiveRuns(std::string_view session_id) noexcept = 0;
  // Every run left `running` (by a process that died) becomes `failed` with `reason`, and for each
  // a copy of `event` (with run_id set to the run's) is appended to its session's log, all in one
  // transaction; returns the runs. Used at start-up by a process that owns every run of its store.
  [[nodiscard]] virtual Result<std::vector<Run>> FailRunningRuns(std::string_view reason,
                                                                 const NewEvent& event) noexcept = 0;

  // ---- events ----
  // Appends an event with the next seq of the session (1, 2, 3, ... with no gap, even under
  // concurrent appends) and returns it. kNotFound when the session is absent.
  [[nodiscard]] virtual Result<Event> AppendEvent(std::string_view session_id,
                                                  const NewEvent& event) noexcept = 0;
  // Events with seq > after_seq, in seq order, at most `limit` (1..1000).
  [[nodiscard]] virtual Result<std::vector<Event>> ListEvents(std::string_view session_id,
                                                              std::int64_t after_seq, int limit) noexcept = 0;

  // ---- maintenance ----
  // Names of the applied migrations, in the order they were applied.
  [[nodiscard]] virtual Result<std::vector<std::string>> AppliedMigrations() noexcept = 0;
};

using SessionStorePtr = std::unique_ptr<SessionStore>;

}  // namespace paddock
