// ProcessSandboxProvider: local sandboxes as bubblewrap jails. State lives under `root`:
//   root/.lock                     held while a provider uses this root
//   root/sandboxes/<id>/state      "pid start_time session_id created_at"
//   root/sandboxes/<id>/bwrap.log  bubblewrap's stderr
//   root/workspaces/<session_id>/  the session's /workspace, kept across sandboxes
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "jail.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugins::sandbox_process {

struct ProcessConfig {
  std::string root;
  JailOptions jail;
  bool destroy_on_stop = false;
};

class ProcessSandboxProvider final : public SandboxProvider {
 public:
  ProcessSandboxProvider(ProcessConfig config, Logger& logger);
  ~ProcessSandboxProvider() override;

  Status Start() noexcept override;
  void Stop() noexcept override;
  Health GetHealth() const noexcept override;

  Result<SandboxInfo> Create(const SandboxSpec& spec) noexcept override;
  Result<SandboxInfo> Inspect(std::string_view id) noexcept override;
  Result<ExecResult> Exec(std::string_view id, const ExecRequest& request,
                          ExecObserver& observer) noexcept override;
  Status Destroy(std::string_view id) noexcept override;
  Result<std::vector<SandboxInfo>> List() noexcept override;
  Status DeleteSessionData(std::string_view session_id) noexcept override;

 private:
  struct Record {
    SandboxInfo info;
    JailProcess jail;
  };
  Result<Record> Load(std::string_view id) const;
  std::string SandboxDir(std::string_view id) const;
  std::string WorkspaceDir(std::string_view session_id) const;

  ProcessConfig config_;
  Logger& logger_;
  int lock_fd_ = -1;
  std::mutex mu_;  // serialises Create/Destroy bookkeeping on disk
};

}  // namespace paddock::plugins::sandbox_process
