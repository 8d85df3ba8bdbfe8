// SessionService: sessions, the messages that become runs, and the transcript.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "paddock/session_store.h"
#include "services/runs/transcript.h"
#include "services/teams/principal.h"
#include "services/teams/quota_service.h"

namespace paddock {

class EventService;
class Metrics;
class Redactor;
class RunExecutor;
class SandboxManager;
class WorkerPool;

enum class OnBusy { kQueue, kReject, kInterrupt };

// The result of a request that may carry an Idempotency-Key: the resource, and whether an earlier
// request with the same key created it (the response is then a replay).
template <class T>
struct Idempotent {
  T value;
  bool replayed = false;
};

class SessionService {
 public:
  // `sandboxes`, `executor` and `workers` are null in a process that runs no worker (and so no
  // sandboxes): its sessions start suspended, and the worker that runs their first message
  // provisions a sandbox.
  // `quotas` (may be null: none) admits each new session and message.
  SessionService(SessionStore& store, EventService& events, SandboxManager* sandboxes, Metrics& metrics,
                 RunExecutor* executor, WorkerPool* workers, QuotaService* quotas);

  // Creates a session (status provisioning) and starts provisioning its sandbox; without
  // sandboxes in this process, creates it suspended. kNotFound when the agent does not exist
  // or is of a team `who` does not see. With an idempotency key (may be empty; keys are
  // per team), a repeat of the same request returns the session the first one created; the
  // key with another agent_id is kFailedPrecondition. kResourceExhausted over a quota of the
  // team's, with *refused saying which and when to retry (a replay is never refused).
  Result<Idempotent<Session>> Create(const Principal& who, const std::string& agent_id,
                                     const std::string& idempotency_key, QuotaRefusal* refused = nullptr);
  Result<Session> Get(const std::string& id);
  Result<Page<Session>> List(const SessionFilter& filter);

  // Closes the session: cancels its runs, destroys its sandbox, workspace and snapshots, keeps
  // the history. Idempotent: closing a closed session returns it unchanged.
  Result<Session> Close(const std::string& id);
  // Closes the session, then removes it and everything of it (runs, events, snapshots). Ok
  // when it does not exist (any more).
  Status Purge(const std::string& id);

  // The session's stored snapshots, newest first.
  Result<std::vector<SnapshotInfo>> Snapshots(const std::string& session_id);

  // Queues a run for `content`. kFailedPrecondition when the session is closed or failed, or
  // (on_busy=reject) while another run is queued or running.
  // With an idempotency key and quotas, as Create.
  Result<Idempotent<Run>> Send(const std::string& session_id, const std::string& content, OnBusy on_busy,
                               const std::string& idempotency_key, QuotaRefusal* refused = nullptr);

  Result<std::vector<Run>> Runs(const std::string& session_id, int limit);
  // Cancels a queued run at once, and asks a running one to stop (its worker, in whatever
  // process, does within a heartbeat); kFailedPrecondition when it already finished.
  Result<Run> CancelRun(const std::string& session_id, const std::string& run_id);

  // The sandbox bound to the session, as its provider sees it. kNotFound when none is bound.
  Result<SandboxInfo> Sandbox(const std::string& session_id);

  // Runs a command in the session's sandbox outside any run (an operator's look inside), with
  // the session's environment; output is kept up to `max_output` bytes per stream. Recorded as a
  // "sandbox.exec" event (command and exit code, not the output). kFailedPrecondition when the
  // session is closed or failed.
  struct ExecOutput {
    ExecResult result;
    std::string stdout_text;
    std::string stderr_text;
    bool truncated = false;
  };
  Result<ExecOutput> Exec(const std::string& session_id, const ExecRequest& request, size_t max_output);

  // Replaces the session's sandbox with a new one; the workspace stays. kFailedPrecondition
  // while a run is queued or running, or when the session is closed or failed.
  Result<Session> Restart(const std::string& session_id);

  // The conversation: user messages and each run's output, rebuilt from the event log.
  Result<std::vector<TranscriptEntry>> Transcript(const std::string& session_id);

 private:
  Status CancelActiveRuns(const std::string& session_id, const std::string& reason);
  // kFailedPrecondition naming the status when the session is closed or failed.
  Result<Session> Usable(const std::string& session_id);
  // Cancels (queued) or asks to stop (running) a run, through the store.
  Result<Run> Cancel(const std::string& run_id, const std::string& reason);
  // This process's sandboxes, or kFailedPrecondition saying that it runs none.
  Result<SandboxManager*> Sandboxes();

  SessionStore& store_;
  EventService& events_;
  SandboxManager* sandboxes_;
  Metrics& metrics_;
  RunExecutor* executor_;
  WorkerPool* workers_;
  QuotaService* quotas_;
};

}  // namespace paddock
