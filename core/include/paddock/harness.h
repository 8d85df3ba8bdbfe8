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

  // The directory inside the sandbox where the packages of Harness::Needs are installed
  // (read-only; npm packages under node_modules/, their commands under node_modules/.bin/).
  // Empty when the harness needs nothing.
  virtual std::string tools_dir() const noexcept { return ""; }

  // Records what the model spent (one call per model response or per turn, as the agent
  // reports it; the host adds them up into the run and the session, and emits a "usage"
  // event). A non-ok Status means the store refused the write; the harness should stop.
  [[nodiscard]] virtual Status RecordUsage(const Usage& usage) noexcept {
    (void)usage;
    return Status::Unimplemented("this host does not record usage");
  }

  // The agent's own id for the conversation, as recorded by an earlier turn (empty if none).
  virtual std::string native_session_id() const noexcept { return ""; }
  // Records the agent's own id for the conversation so that later turns, in any sandbox, can
  // resume it.
  [[nodiscard]] virtual Status SetNativeSessionId(std::string_view id) noexcept {
    (void)id;
    return Status::Unimplemented("this host does not record native session ids");
  }
};

// What a harness needs in its sandboxes besides the base system. The host installs it once per
// distinct set (cached on disk, never per run) and mounts it read-only at kSandboxTools.
struct SandboxNeeds {
  // npm packages with pinned versions ("@openai/codex@0.169.0"), installed together.
  std::vector<std::string> npm;
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

  // What the sandboxes of `agent` need installed (default: nothing).
  [[nodiscard]] virtual SandboxNeeds Needs(const Agent& agent) const noexcept {
    (void)agent;
    return {};
  }
};

using HarnessPtr = std::unique_ptr<Harness>;

}  // namespace paddock
