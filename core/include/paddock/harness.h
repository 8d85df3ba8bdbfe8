// Harness: drives one kind of agent inside a sandbox for one turn, and turns what it does
// into events.
#pragma once

#include <memory>
#include <string_view>

#include "paddock/lifecycle.h"
#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock {

// What the host gives a harness for one turn. Implemented by the host.
// Thread safety: may be used from the thread that called RunTurn and threads it starts, until
// RunTurn returns.
class TurnContext {
 public:
  virtual ~TurnContext() = default;

  virtual const Agent& agent() const noexcept = 0;
  virtual const Session& session() const noexcept = 0;
  virtual const Run& run() const noexcept = 0;

  // Runs a command in the session's sandbox. The host adds the agent's environment and the
  // resolved secrets to request.env (the request's own entries win), and applies the run's
  // timeout when the request has none.
  [[nodiscard]] virtual Result<ExecResult> Exec(const ExecRequest& request,
                                                ExecObserver& observer) noexcept = 0;

  // Appends an event for this run. `data` must be a JSON object. The host redacts secret
  // values before anything is stored. Returns the store's error if the append failed; the
  // harness should then stop the turn.
  [[nodiscard]] virtual Status Emit(std::string_view type, std::string_view data) noexcept = 0;

  // True once the run was cancelled; the harness should stop as soon as it can.
  [[nodiscard]] virtual bool Cancelled() const noexcept = 0;
};

struct TurnOutcome {
  RunStatus status = RunStatus::kSucceeded;  // kSucceeded, kFailed or kCancelled
  std::optional<int> exit_code;
  std::string error;  // for kFailed: one line saying why
};

// Thread safety: RunTurn is called concurrently for different sessions; never twice at once
// for the same session.
class Harness : public Lifecycle {
 public:
  // Runs one turn: the user's message is ctx.run().content. Returns the outcome; a non-ok
  // Status means the harness could not drive the turn at all (the run fails with it).
  [[nodiscard]] virtual Result<TurnOutcome> RunTurn(TurnContext& ctx) noexcept = 0;
};

using HarnessPtr = std::unique_ptr<Harness>;

}  // namespace paddock
