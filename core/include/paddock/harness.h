// Harness: drives one kind of agent inside a sandbox for one turn, and turns what it does
// into events.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

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

  // Whether this turn resumes an interrupted attempt, and how the sandbox got the session's
  // state back. A harness resumes its agent natively (say, `--resume <id>`) when it can.
  virtual const TurnResume& resume() const noexcept = 0;
};

struct RehydrateOutcome {
  int replayed = 0;  // messages of the transcript the harness gave to its agent
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

  // Absolute paths inside the sandbox (under kSandboxWorkspace or kSandboxHome) where the
  // agent keeps its native resume state (say, the CLI's session files). After every run the
  // host archives them with the workspace and restores them into any later sandbox.
  [[nodiscard]] virtual std::vector<std::string> NativeStatePaths(const Agent& agent) const noexcept = 0;

  // Called before a turn in a new sandbox of a session that has history but no snapshot with
  // its native state (the first run was lost, or the snapshot was over the size cap): rebuild
  // what the agent needs from `transcript` (earlier messages, oldest first). The turn runs
  // next, with ctx.resume().restored == "transcript". A non-ok Status fails the run.
  [[nodiscard]] virtual Result<RehydrateOutcome> Rehydrate(
      TurnContext& ctx, const std::vector<TranscriptMessage>& transcript) noexcept = 0;
};

using HarnessPtr = std::unique_ptr<Harness>;

}  // namespace paddock
