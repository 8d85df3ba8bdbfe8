// ToolCache: installs what harnesses need in their sandboxes (SandboxNeeds) once per distinct
// set, on the host, and says where a sandbox sees it. Every sandbox mounts root() read-only at
// kSandboxTools; a set lives in <root>/<key>, key = a hash of its sorted packages. An install
// goes to a temporary directory first and is renamed into place whole, so a crash never leaves
// a half-installed set that looks complete, and processes sharing a root never see one.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "paddock/harness.h"
#include "paddock/status.h"

namespace paddock {

class ToolCache {
 public:
  ToolCache(std::string root, std::string npm, std::chrono::milliseconds install_timeout);

  const std::string& root() const { return root_; }

  // Installs `needs` unless already installed and returns the directory a sandbox sees it at
  // ("" when there is nothing to install). Concurrent calls for one set install it once.
  Result<std::string> Ensure(const SandboxNeeds& needs);

  // Kills an install in progress (it fails) and refuses new ones: the process is stopping.
  void Stop();

  // The key of a set (exposed for tests and logs).
  static std::string Key(const SandboxNeeds& needs);

 private:
  Status Install(const SandboxNeeds& needs, const std::string& dir);

  std::string root_;
  std::string npm_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  bool stopping_ = false;
  long running_pid_ = 0;  // the npm in progress, if any (guarded by mu_)
  std::map<std::string, std::shared_ptr<std::mutex>> installing_;  // by key
};

}  // namespace paddock
