// ProcessSandboxProvider: local sandboxes as bubblewrap jails running paddock-runtime as PID 1.
// State lives under `root`:
//   root/.lock                     held while a provider uses this root
//   root/sandboxes/<id>/state      key=value lines: pid, start time, session, token, limits...
//   root/sandboxes/<id>/bwrap.log  bubblewrap's and the runtime's stderr
//   root/sandboxes/<id>/run/       mounted at /run/paddock; the runtime's socket
//   root/volumes/<vol>/            a workspace (a mounted ext4 image <vol>.img with a disk limit)
//   root/workspaces/<session>      symlink to the session's volume, kept across sandboxes
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "cgroups.h"
#include "jail.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugins::sandbox_process {

struct ProcessConfig {
  std::string root;
  JailOptions jail;
  bool destroy_on_stop = false;
  bool disk_quota = true;  // enforce disk limits with a loop-mounted image (needs root)
  std::string mkfs;        // mkfs.ext4
  std::string mount;       // mount
};

class ProcessSandboxProvider final : public SandboxProvider {
 public:
  ProcessSandboxProvider(ProcessConfig config, Logger& logger);
  ~ProcessSandboxProvider() override;

  Status Start() noexcept override;
  void Stop() noexcept override;
  Health GetHealth() const noexcept override;

  Result<SandboxInfo> Create(const SandboxSpec& spec) noexcept override;
  Result<SandboxInfo> Claim(std::string_view id, std::string_view session_id) noexcept override;
  Result<SandboxInfo> Inspect(std::string_view id) noexcept override;
  Status Destroy(std::string_view id) noexcept override;
  Result<std::vector<SandboxInfo>> List() noexcept override;
  Status DeleteSessionData(std::string_view session_id) noexcept override;
  bool KeepsSessionData() const noexcept override { return true; }

 private:
  struct Record {
    SandboxInfo info;
    JailProcess jail;
    std::string volume;
  };
  Result<Record> Load(std::string_view id) const;
  Status Save(const Record& r) const;
  std::string SandboxDir(std::string_view id) const;
  // Creates a volume (with a disk limit: a formatted, mounted image); returns its name.
  Result<std::string> NewVolume(std::int64_t disk_bytes,
                                std::vector<std::pair<std::string, std::string>>& limits);
  Status RemoveVolume(const std::string& volume);
  // The volume of a session's workspace, or "" when it has none.
  std::string SessionVolume(std::string_view session_id) const;

  ProcessConfig config_;
  Logger& logger_;
  Cgroups cgroups_;
  int lock_fd_ = -1;
  std::mutex mu_;  // serialises Claim/Destroy bookkeeping on disk
};

}  // namespace paddock::plugins::sandbox_process
