// SandboxProvider: creates, executes in, inspects and destroys isolated sandboxes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "paddock/lifecycle.h"
#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock {

// What a provider's workspaces have promised of the disk they live on, and what that disk has.
// Workspace images are sparse: together they may promise more than the disk holds.
struct DiskCommitment {
  std::int64_t committed_bytes = 0;  // the sum of the workspaces' disk limits
  std::int64_t used_bytes = 0;       // what the workspaces hold now
  std::int64_t size_bytes = 0;       // the filesystem's size
  std::int64_t free_bytes = 0;       // what is still available on it
};

// A sandbox is cattle: the core may destroy and re-create it at any time. What must survive
// (the workspace) is keyed on the session id, not on the sandbox.
//
// Every sandbox runs paddock-runtime (runtime/PROTOCOL.md) as its init process; the core talks
// to it for exec, files and archives through one client. A provider only creates, locates,
// inspects and destroys sandboxes, and reports where each one's runtime listens.
// Thread safety: every method may be called concurrently from any thread.
class SandboxProvider : public Lifecycle {
 public:
  // Start() must not destroy sandboxes left behind by an earlier process: the core lists them
  // and decides which to reattach and which to destroy.

  // Creates a sandbox and returns once its runtime answers. kUnavailable when the host cannot
  // create one now; kInvalidArgument for a bad spec. An empty spec.session_id creates a warm
  // sandbox (see Claim).
  [[nodiscard]] virtual Result<SandboxInfo> Create(const SandboxSpec& spec) noexcept = 0;

  // Binds a warm sandbox to a session: from now on it serves that session's durable data.
  // kFailedPrecondition when the sandbox is already bound, or when it cannot take over the
  // session (for example because the session already has durable data elsewhere); the core
  // then creates a sandbox instead.
  [[nodiscard]] virtual Result<SandboxInfo> Claim(std::string_view id,
                                                  std::string_view session_id) noexcept = 0;

  // Current state. kNotFound for an id this provider never created or has destroyed; a
  // sandbox whose processes died reports state kGone.
  [[nodiscard]] virtual Result<SandboxInfo> Inspect(std::string_view id) noexcept = 0;

  // Kills every process of the sandbox and forgets it. Durable per-session data stays.
  // Idempotent: destroying an absent sandbox is Ok.
  [[nodiscard]] virtual Status Destroy(std::string_view id) noexcept = 0;

  // Every sandbox this provider knows of, running or not, including ones an earlier process
  // of this provider created.
  [[nodiscard]] virtual Result<std::vector<SandboxInfo>> List() noexcept = 0;

  // Suspends a running sandbox: its processes end, what it keeps on disk stays, and Resume
  // brings it back (with a new runtime endpoint, which Resume returns). Optional:
  // kUnimplemented when the provider cannot; the core then destroys idle sandboxes instead.
  [[nodiscard]] virtual Status Suspend(std::string_view id) noexcept {
    (void)id;
    return Status::Unimplemented("this sandbox provider cannot suspend sandboxes");
  }
  [[nodiscard]] virtual Result<SandboxInfo> Resume(std::string_view id) noexcept {
    (void)id;
    return Status::Unimplemented("this sandbox provider cannot resume sandboxes");
  }

  // Whether a session's workspace outlives its sandbox on this provider (a later Create for the
  // session sees it, and a session with data cannot Claim a warm sandbox). A provider whose
  // sandboxes keep nothing relies on the core's snapshots alone to carry a session's state.
  [[nodiscard]] virtual bool KeepsSessionData() const noexcept { return false; }

  // What the workspaces commit of the host's disk; nullopt when the provider does not keep
  // workspaces on a disk of its own (or cannot tell). Cheap enough for every metrics scrape.
  [[nodiscard]] virtual std::optional<DiskCommitment> Disk() const noexcept { return std::nullopt; }

  // Removes the durable per-session data (workspace). Idempotent.
  // REQUIRES: no sandbox of the session is running.
  [[nodiscard]] virtual Status DeleteSessionData(std::string_view session_id) noexcept {
    (void)session_id;
    return Status::Ok();
  }
};

using SandboxProviderPtr = std::unique_ptr<SandboxProvider>;

}  // namespace paddock
