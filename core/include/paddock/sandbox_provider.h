// SandboxProvider: creates, executes in, inspects and destroys isolated sandboxes.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "paddock/lifecycle.h"
#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock {

// A sandbox is cattle: the core may destroy and re-create it at any time. What must survive
// (the workspace) is keyed on the session id, not on the sandbox.
// Thread safety: every method may be called concurrently from any thread, also for the same
// sandbox (several execs at once are allowed).
class SandboxProvider : public Lifecycle {
 public:
  // Start() may destroy sandboxes left behind by an earlier process of this provider.

  // Creates a sandbox and returns once it accepts Exec. kUnavailable when the host cannot
  // create one now; kInvalidArgument for a bad spec.
  // REQUIRES: !spec.session_id.empty()
  [[nodiscard]] virtual Result<SandboxInfo> Create(const SandboxSpec& spec) noexcept = 0;

  // Current state. kNotFound for an id this provider never created or has destroyed; a
  // sandbox whose processes died reports state kGone.
  [[nodiscard]] virtual Result<SandboxInfo> Inspect(std::string_view id) noexcept = 0;

  // Runs a command inside the sandbox and streams its output to `observer`, returning when
  // the command has exited. A non-zero exit code is a successful call.
  // kNotFound / kFailedPrecondition when the sandbox is absent or not running.
  [[nodiscard]] virtual Result<ExecResult> Exec(std::string_view id, const ExecRequest& request,
                                                ExecObserver& observer) noexcept = 0;

  // Kills every process of the sandbox and forgets it. Durable per-session data stays.
  // Idempotent: destroying an absent sandbox is Ok.
  [[nodiscard]] virtual Status Destroy(std::string_view id) noexcept = 0;

  // Every sandbox this provider knows of, running or not.
  [[nodiscard]] virtual Result<std::vector<SandboxInfo>> List() noexcept = 0;

  // Removes the durable per-session data (workspace). Idempotent.
  // REQUIRES: no sandbox of the session is running.
  [[nodiscard]] virtual Status DeleteSessionData(std::string_view session_id) noexcept {
    (void)session_id;
    return Status::Ok();
  }
};

using SandboxProviderPtr = std::unique_ptr<SandboxProvider>;

}  // namespace paddock
