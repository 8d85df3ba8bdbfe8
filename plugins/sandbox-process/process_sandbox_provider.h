// ProcessSandboxProvider: local sandboxes as bubblewrap jails running paddock-runtime as PID 1.
// State lives under `root`:
//   root/.lock                     held while a provider uses this root
//   root/sandboxes/<id>/state      key=value lines: pid, start time, session, token, limits...
//   root/sandboxes/<id>/bwrap.log  bubblewrap's and the runtime's stderr
//   root/sandboxes/<id>/run/       mounted at /run/paddock; the runtime's socket
//   root/volumes/<vol>/            a workspace (a mounted ext4 image <vol>.img with a disk limit)
//   root/workspaces/<session>      symlink to the session's volume, kept across sandboxes
//   root/spare/<bytes>/<vol>       symlink to a volume formatted and mounted ahead, not yet used
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

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
  // Formatted, mounted images kept ready per disk size, so a new workspace takes one instead of
  // waiting for mkfs and a loop mount (0: none).
  int spare_volumes = 2;
  // New images are refused once the images' sizes together would pass this many times the
  // sandbox root's filesystem (0: never refused). Past 1, a warning.
  int disk_overcommit = 4;
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
  std::optional<DiskCommitment> Disk() const noexcept override;

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
  // A formatted, mounted volume of that size, made now (nothing is taken from the spares).
  Result<std::string> MakeImageVolume(std::int64_t disk_bytes);
  // A spare of that size, mounted; nullopt when none is ready.
  std::optional<std::string> TakeSpare(std::int64_t disk_bytes);
  // Keeps config_.spare_volumes spares of every size asked for so far.
  void SpareLoop();
  void RemoveSpares();
  // kResourceExhausted when one more image of that size would pass disk_overcommit.
  // REQUIRES: disk_mu_.
  Status CheckCommitment(std::int64_t disk_bytes);
  // The workspace directory readable by all, owned by the uid sandboxes run as.
  Status OwnWorkspace(const std::string& dir) const;
  Status RemoveVolume(const std::string& volume);
  // The volume of a session's workspace, or "" when it has none.
  std::string SessionVolume(std::string_view session_id) const;

  ProcessConfig config_;
  Logger& logger_;
  Cgroups cgroups_;
  int lock_fd_ = -1;
  std::mutex mu_;  // serialises Claim/Destroy bookkeeping on disk

  std::mutex disk_mu_;  // a commitment check and the image it allows
  bool overcommitted_ = false;

  std::mutex spare_mu_;
  std::condition_variable spare_cv_;
  std::set<std::int64_t> spare_sizes_;  // sizes asked for since start
  int creating_ = 0;                    // Creates under way: spares wait for them (the CPU is theirs)
  bool spare_wanted_ = false;           // a spare was taken or a new size asked for since the loop looked
  bool stopping_ = false;
  std::thread spare_thread_;
};

}  // namespace paddock::plugins::sandbox_process
