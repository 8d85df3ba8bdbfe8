// HostTurnContext: what a harness sees of the host during one turn (TurnContext). Every event
// it emits is fenced by the run's lease; a refused write tells the executor why (lease lost, or
// the store unreachable), through the flags it is given.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "paddock/harness.h"
#include "paddock/session_store.h"
#include "runtime/runtime_client.h"
#include "util/cancel_signal.h"
#include "util/redactor.h"

namespace paddock {

class EventService;
class Metrics;

// A failed store write for a run: remember whether the run has moved on (its lease is gone) or
// the store is unreachable, and pass the status on.
Status NoteStoreError(Status s, std::atomic<bool>& lease_lost, std::atomic<bool>& store_down);

// The same for a read: a store that cannot be reached hands the run back (it is re-queued when
// its lease lapses) rather than failing it.
template <typename T>
Result<T> Noted(Result<T> r, std::atomic<bool>& lease_lost, std::atomic<bool>& store_down) {
  if (!r.ok()) (void)NoteStoreError(r.status(), lease_lost, store_down);
  return r;
}

class HostTurnContext final : public TurnContext {
 public:
  struct Flags {
    const CancelSignal& cancelled;  // also wakes a command's wait at once
    std::atomic<bool>& lease_lost;
    std::atomic<bool>& store_down;
  };

  struct Host {
    SessionStore& store;
    EventService& events;
    Metrics& metrics;
    RunLease lease;
    std::string tools_dir;
  };

  HostTurnContext(const Agent& agent, const Session& session, const Run& run, RuntimeClient runtime,
                  Host host, Flags flags, TurnResume resume);

  const Agent& agent() const noexcept override { return agent_; }
  const Session& session() const noexcept override { return session_; }
  const Run& run() const noexcept override { return run_; }
  Result<ExecResult> Exec(const ExecRequest& request, ExecObserver& observer) noexcept override;
  // "output" events pass through the stream redactor, so that a secret split across two
  // chunks of a stream never shows in either; anything else first shows what it holds back.
  Status Emit(std::string_view type, std::string_view data) noexcept override;
  // Shows what the stream redactor still holds (the turn ended).
  Status FlushOutput() noexcept;
  bool Cancelled() const noexcept override { return flags_.cancelled.IsSet() || flags_.lease_lost.load(); }
  const TurnResume& resume() const noexcept override { return resume_; }
  std::string tools_dir() const noexcept override { return host_.tools_dir; }
  Status RecordUsage(const Usage& usage) noexcept override;
  std::string native_session_id() const noexcept override;
  Status SetNativeSessionId(std::string_view id) noexcept override;

 private:
  Status Noted(Status s) const { return NoteStoreError(std::move(s), flags_.lease_lost, flags_.store_down); }
  // (stream, text) of an "output" event's data {"stream": ..., "text": ...}; nullopt for any
  // other shape, which is then stored as it is (and redacted as every event is).
  static std::optional<std::pair<std::string, std::string>> OutputChunk(std::string_view data);
  Status AppendOutput(const std::string& stream, const std::string& text);
  Status FlushOutputLocked();

  const Agent& agent_;
  const Session& session_;
  const Run& run_;
  RuntimeClient runtime_;
  Host host_;
  EventService& events_;
  Flags flags_;
  TurnResume resume_;
  mutable std::mutex native_mu_;
  std::string native_id_;
  std::mutex emit_mu_;
  StreamRedactor output_;  // guarded by emit_mu_
};

}  // namespace paddock
