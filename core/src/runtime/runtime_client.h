// RuntimeClient: the one client of paddock-runtime (runtime/PROTOCOL.md). Every exec, file
// and archive operation on any provider's sandbox goes through it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock {

class CancelSignal;

struct RuntimeHealth {
  std::string version;
  int pid = 0;
  int uid = 0;
};

struct RuntimeProcess {
  std::string id;
  int pid = 0;
  std::vector<std::string> argv;
  bool running = false;
  std::optional<int> exit_code;
};

struct RuntimeLogs {
  std::string data;
  std::uint64_t next_offset = 0;
  bool running = false;
};

struct RuntimeFileStat {
  std::string path;
  std::string type;  // "file", "directory", "symlink", "other"
  std::int64_t size = 0;
  std::string mode;  // octal, "0644"
};

// Thread safety: a client holds no connection between calls; every method may be called
// concurrently. Errors: kUnavailable when the runtime cannot be reached (the sandbox may be
// gone), kPermissionDenied for a refused token, and the runtime's 4xx as kInvalidArgument
// (400), kNotFound (404) and so on, with the runtime's message.
class RuntimeClient {
 public:
  explicit RuntimeClient(RuntimeEndpoint endpoint,
                         std::chrono::milliseconds connect_timeout = std::chrono::seconds(5));

  Result<RuntimeHealth> Health() const;

  // Replaces the session environment added to every later command (after a claim: the
  // session's env and secrets, which are never baked into a warm sandbox).
  Status SetEnv(const EnvMap& env) const;

  // Runs a command to completion, streaming its output. The command is killed
  // (result.cancelled) as soon as `stop` is set, or when the observer says Cancelled() after
  // output it was given (its own state changes only then); nothing is looked at on a timer.
  Result<ExecResult> Exec(const ExecRequest& request, ExecObserver& observer,
                          const CancelSignal* stop = nullptr) const;

  Result<RuntimeProcess> StartProcess(const std::vector<std::string>& argv, const EnvMap& env,
                                      const std::string& cwd = "") const;
  Result<std::vector<RuntimeProcess>> ListProcesses() const;
  Result<RuntimeLogs> ProcessLogs(const std::string& id, std::uint64_t offset = 0) const;
  Status SignalProcess(const std::string& id, const std::string& signal) const;

  Status PutFile(const std::string& path, std::string_view content, const std::string& mode = "0644") const;
  Result<std::string> GetFile(const std::string& path) const;
  Result<RuntimeFileStat> Stat(const std::string& path) const;
  Result<std::vector<RuntimeFileStat>> List(const std::string& path) const;
  Status Remove(const std::string& path, bool recursive = false) const;

  // A tar of `paths` (absolute inside the sandbox; absent ones are skipped), and its restore
  // under "/". Archive: kResourceExhausted when it would be larger than max_bytes (> 0).
  // Restore: the `clean` directories are emptied first, so they end up holding exactly what the
  // archive holds.
  Result<std::string> Archive(const std::vector<std::string>& paths, bool gzip = false,
                              std::int64_t max_bytes = 0) const;
  Status Restore(std::string_view archive, const std::vector<std::string>& clean = {}) const;

  const RuntimeEndpoint& endpoint() const { return endpoint_; }

 private:
  struct Response {
    int status = 0;
    std::string body;
  };
  Result<Response> Call(const std::string& method, const std::string& path, std::string_view body,
                        const std::string& content_type) const;

  RuntimeEndpoint endpoint_;
  std::chrono::milliseconds connect_timeout_;
};

}  // namespace paddock
