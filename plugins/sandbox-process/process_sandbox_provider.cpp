#include "process_sandbox_provider.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace paddock::plugins::sandbox_process {
namespace {

namespace fs = std::filesystem;
using plugin::Guard;

std::string RandomId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[24];
  std::snprintf(buf, sizeof buf, "psb_%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

bool ValidEnvName(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

// Every ancestor of `path` must let `uid` through, or bubblewrap (running as `uid`) cannot
// mount the workspace.
Status CheckTraversable(const fs::path& path, uid_t uid) {
  for (fs::path p = fs::absolute(path);; p = p.parent_path()) {
    struct stat st {};
    if (stat(p.c_str(), &st) == 0) {
      bool ok = st.st_uid == uid ? (st.st_mode & S_IXUSR) : (st.st_mode & S_IXOTH);
      if (!ok) {
        return Status::FailedPrecondition(
            "sandbox root '" + path.string() + "' is not reachable by uid " + std::to_string(uid) + " (" +
            p.string() +
            " has no search permission for it); choose a root under a "
            "world-searchable directory such as /var/lib/paddock, or set run_as_uid");
      }
    }
    if (p == p.root_path()) break;
  }
  return Status::Ok();
}

}  // namespace

ProcessSandboxProvider::ProcessSandboxProvider(ProcessConfig config, Logger& logger)
    : config_(std::move(config)), logger_(logger) {}

ProcessSandboxProvider::~ProcessSandboxProvider() { Stop(); }

std::string ProcessSandboxProvider::SandboxDir(std::string_view id) const {
  return config_.root + "/sandboxes/" + std::string(id);
}

std::string ProcessSandboxProvider::WorkspaceDir(std::string_view session_id) const {
  return config_.root + "/workspaces/" + std::string(session_id);
}

Status ProcessSandboxProvider::Start() noexcept {
  return Guard([&]() -> Status {
    std::error_code ec;
    fs::create_directories(config_.root + "/sandboxes", ec);
    fs::create_directories(config_.root + "/workspaces", ec);
    if (ec) return Status::FailedPrecondition("cannot create " + config_.root + ": " + ec.message());
    fs::permissions(config_.root, fs::perms(0755), ec);
    fs::permissions(config_.root + "/workspaces", fs::perms(0711), ec);
    if (config_.jail.host_creds) {
      PADDOCK_RETURN_IF_ERROR(CheckTraversable(config_.root + "/workspaces", config_.jail.host_creds->uid));
    }
    std::string lock_path = config_.root + "/.lock";
    lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) return Status::FailedPrecondition("open " + lock_path + ": " + strerror(errno));
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      close(lock_fd_);
      lock_fd_ = -1;
      return Status::FailedPrecondition("sandbox root " + config_.root +
                                        " is in use by another paddock process");
    }
    // Sandboxes of an earlier process are orphans: nothing can reach their sessions through
    // them any more, and the core re-creates a sandbox on the next run.
    PADDOCK_ASSIGN_OR_RETURN(std::vector<SandboxInfo> leftovers, List());
    for (const SandboxInfo& s : leftovers) {
      logger_.Info("destroying sandbox " + s.id + " left by an earlier process");
      PADDOCK_RETURN_IF_ERROR(Destroy(s.id));
    }
    return Status::Ok();
  });
}

void ProcessSandboxProvider::Stop() noexcept {
  if (lock_fd_ < 0) return;
  if (config_.destroy_on_stop) {
    if (auto all = List(); all.ok()) {
      for (const SandboxInfo& s : *all) (void)Destroy(s.id);
    }
  }
  close(lock_fd_);
  lock_fd_ = -1;
}

Health ProcessSandboxProvider::GetHealth() const noexcept {
  if (lock_fd_ < 0) return {HealthState::kDown, "provider is not started"};
  return {};
}

Result<SandboxInfo> ProcessSandboxProvider::Create(const SandboxSpec& spec) noexcept {
  return Guard([&]() -> Result<SandboxInfo> {
    if (!ValidName(spec.session_id)) {
      return Status::InvalidArgument("session id must be 1-128 letters, digits, '-' or '_'");
    }
    const std::string id = RandomId();
    const std::string dir = SandboxDir(id);
    const std::string workspace = WorkspaceDir(spec.session_id);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Status::Unavailable("create " + dir + ": " + ec.message());
    if (!fs::exists(workspace)) {
      fs::create_directories(workspace, ec);
      if (ec) return Status::Unavailable("create " + workspace + ": " + ec.message());
      fs::permissions(workspace, fs::perms(0755), ec);
      if (config_.jail.host_creds &&
          chown(workspace.c_str(), config_.jail.host_creds->uid, config_.jail.host_creds->gid) != 0) {
        return Status::Internal("chown " + workspace + ": " + strerror(errno));
      }
    }
    Result<JailProcess> jail = StartJail(config_.jail, workspace, dir + "/bwrap.log");
    if (!jail.ok()) {
      fs::remove_all(dir, ec);
      return jail.status();
    }
    SandboxInfo info;
    info.id = id;
    info.session_id = spec.session_id;
    info.state = SandboxState::kRunning;
    info.created_at = NowMs();
    info.detail = "pid " + std::to_string(jail->pid);
    std::ofstream state(dir + "/state.tmp");
    state << jail->pid << ' ' << jail->start_time << ' ' << spec.session_id << ' ' << info.created_at << '\n';
    state.close();
    fs::rename(dir + "/state.tmp", dir + "/state", ec);
    if (!state || ec) {
      (void)KillJail(*jail);
      fs::remove_all(dir, ec);
      return Status::Unavailable("cannot record sandbox state in " + dir);
    }
    return info;
  });
}

Result<ProcessSandboxProvider::Record> ProcessSandboxProvider::Load(std::string_view id) const {
  if (!ValidName(id)) return Status::NotFound("sandbox '" + std::string(id) + "' does not exist");
  std::ifstream in(SandboxDir(id) + "/state");
  Record r;
  if (!(in >> r.jail.pid >> r.jail.start_time >> r.info.session_id >> r.info.created_at)) {
    return Status::NotFound("sandbox '" + std::string(id) + "' does not exist");
  }
  r.info.id = std::string(id);
  r.info.state = JailAlive(r.jail) ? SandboxState::kRunning : SandboxState::kGone;
  r.info.detail = "pid " + std::to_string(r.jail.pid);
  return r;
}

Result<SandboxInfo> ProcessSandboxProvider::Inspect(std::string_view id) noexcept {
  return Guard([&]() -> Result<SandboxInfo> {
    PADDOCK_ASSIGN_OR_RETURN(Record r, Load(id));
    return r.info;
  });
}

Result<ExecResult> ProcessSandboxProvider::Exec(std::string_view id, const ExecRequest& request,
                                                ExecObserver& observer) noexcept {
  return Guard([&]() -> Result<ExecResult> {
    if (request.argv.empty()) return Status::InvalidArgument("exec needs a non-empty argv");
    PADDOCK_ASSIGN_OR_RETURN(Record r, Load(id));
    if (r.info.state != SandboxState::kRunning) {
      return Status::FailedPrecondition("sandbox '" + std::string(id) + "' is not running");
    }
    SpawnSpec spec;
    spec.argv = JailExecArgv(config_.jail, r.jail, request);
    std::map<std::string, std::string> env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"},
                                              {"HOME", "/workspace"}};
    for (const auto& [k, v] : request.env) {
      if (!ValidEnvName(k)) return Status::InvalidArgument("invalid environment variable name '" + k + "'");
      env[k] = v;
    }
    for (const auto& [k, v] : env) spec.env.push_back(k + "=" + v);
    RunLimits limits;
    limits.timeout = request.timeout;
    limits.cancelled = [&observer] { return observer.Cancelled(); };
    auto forward = [&observer](ExecStream s, std::string_view c) { observer.OnOutput(s, c); };
    PADDOCK_ASSIGN_OR_RETURN(ExecResult result, RunAndStream(std::move(spec), limits, forward));
    // A command that failed because its sandbox died under it is the sandbox's failure, not the
    // command's: say so, so that the caller can replace the sandbox.
    if (result.exit_code != 0 && !result.timed_out && !result.cancelled && !JailAlive(r.jail)) {
      return Status::Unavailable("sandbox '" + std::string(id) + "' went away during the command");
    }
    return result;
  });
}

Status ProcessSandboxProvider::Destroy(std::string_view id) noexcept {
  return Guard([&]() -> Status {
    std::lock_guard lock(mu_);
    Result<Record> r = Load(id);
    if (!r.ok()) return r.status().code() == StatusCode::kNotFound ? Status::Ok() : r.status();
    PADDOCK_RETURN_IF_ERROR(KillJail(r->jail));
    std::error_code ec;
    fs::remove_all(SandboxDir(id), ec);
    if (ec) return Status::Internal("remove " + SandboxDir(id) + ": " + ec.message());
    return Status::Ok();
  });
}

Result<std::vector<SandboxInfo>> ProcessSandboxProvider::List() noexcept {
  return Guard([&]() -> Result<std::vector<SandboxInfo>> {
    std::vector<SandboxInfo> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(config_.root + "/sandboxes", ec)) {
      Result<Record> r = Load(entry.path().filename().string());
      if (r.ok()) out.push_back(r->info);
    }
    if (ec) return Status::Unavailable("list " + config_.root + "/sandboxes: " + ec.message());
    return out;
  });
}

Status ProcessSandboxProvider::DeleteSessionData(std::string_view session_id) noexcept {
  return Guard([&]() -> Status {
    if (!ValidName(session_id)) return Status::InvalidArgument("invalid session id");
    std::error_code ec;
    fs::remove_all(WorkspaceDir(session_id), ec);
    if (ec) return Status::Internal("remove workspace: " + ec.message());
    return Status::Ok();
  });
}

}  // namespace paddock::plugins::sandbox_process
