#include "process_sandbox_provider.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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

std::string RandomHex(size_t bytes) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  std::string out;
  while (out.size() < bytes * 2) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
    out += buf;
  }
  return out.substr(0, bytes * 2);
}

bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

// Every ancestor of `path` must let `uid` through, or bubblewrap (running as `uid`) cannot
// mount it.
Status CheckTraversable(const fs::path& path, uid_t uid, const std::string& what) {
  for (fs::path p = fs::absolute(path).parent_path();; p = p.parent_path()) {
    struct stat st {};
    if (stat(p.c_str(), &st) == 0) {
      bool ok = st.st_uid == uid ? (st.st_mode & S_IXUSR) : (st.st_mode & S_IXOTH);
      if (!ok) {
        return Status::FailedPrecondition(
            what + " '" + path.string() + "' is not reachable by uid " + std::to_string(uid) + " (" +
            p.string() +
            " has no search permission for it); choose a path under a "
            "world-searchable directory such as /var/lib/paddock, or set run_as_uid");
      }
    }
    if (p == p.root_path()) break;
  }
  return Status::Ok();
}

bool Mounted(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string id, parent, dev, root, mountpoint;
    ss >> id >> parent >> dev >> root >> mountpoint;
    if (mountpoint == path) return true;
  }
  return false;
}

std::string Bytes(std::int64_t n) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(n) / (1024.0 * 1024 * 1024));
  return buf;
}

Status RunTool(const std::vector<std::string>& argv) {
  ChildSpec spec;
  spec.argv = argv;
  spec.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  std::string output;
  RunLimits limits;
  limits.timeout = std::chrono::seconds(30);
  PADDOCK_ASSIGN_OR_RETURN(ExecResult r, RunAndStream(spec, limits, [&](ExecStream, std::string_view c) {
                             if (output.size() < 2000) output.append(c);
                           }));
  if (r.exit_code != 0) {
    while (!output.empty() && output.back() == '\n') output.pop_back();
    return Status::Unavailable(argv[0] + " failed (exit " + std::to_string(r.exit_code) + "): " + output);
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

Status ProcessSandboxProvider::Start() noexcept {
  return Guard([&]() -> Status {
    std::error_code ec;
    for (const char* sub : {"/sandboxes", "/workspaces", "/volumes", "/spare"})
      fs::create_directories(config_.root + sub, ec);
    if (ec) return Status::FailedPrecondition("cannot create " + config_.root + ": " + ec.message());
    fs::permissions(config_.root, fs::perms(0755), ec);
    fs::permissions(config_.root + "/sandboxes", fs::perms(0711), ec);
    fs::permissions(config_.root + "/volumes", fs::perms(0711), ec);
    fs::permissions(config_.root + "/workspaces", fs::perms(0711), ec);
    if (config_.jail.host_creds) {
      uid_t uid = config_.jail.host_creds->uid;
      PADDOCK_RETURN_IF_ERROR(CheckTraversable(config_.root + "/volumes/x", uid, "sandbox root"));
      PADDOCK_RETURN_IF_ERROR(CheckTraversable(config_.jail.runtime, uid, "paddock-runtime"));
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
    cgroups_ = Cgroups::Detect();
    if (cgroups_.mode() == CgroupMode::kNone) {
      logger_.Warn("sandbox limits fall back to rlimits: " + cgroups_.none_reason());
    } else {
      logger_.Info("sandbox limits through " + cgroups_.Label());
    }
    // Sandboxes of an earlier process stay: the core reattaches or destroys them. Its spares go
    // (they may predate a reboot, or a change of mkfs); new ones are made as sizes are asked for.
    RemoveSpares();
    if (config_.spare_volumes > 0 && config_.disk_quota && geteuid() == 0) {
      {
        std::lock_guard lock(spare_mu_);
        stopping_ = false;
      }
      spare_thread_ = std::thread([this] { SpareLoop(); });
    }
    return Status::Ok();
  });
}

void ProcessSandboxProvider::Stop() noexcept {
  if (lock_fd_ < 0) return;
  {
    std::lock_guard lock(spare_mu_);
    stopping_ = true;
  }
  spare_cv_.notify_all();
  if (spare_thread_.joinable()) spare_thread_.join();
  RemoveSpares();
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

Status ProcessSandboxProvider::OwnWorkspace(const std::string& dir) const {
  std::error_code ec;
  fs::permissions(dir, fs::perms(0755), ec);
  if (config_.jail.host_creds &&
      chown(dir.c_str(), config_.jail.host_creds->uid, config_.jail.host_creds->gid) != 0) {
    return Status::Internal("chown " + dir + ": " + strerror(errno));
  }
  return Status::Ok();
}

std::optional<DiskCommitment> ProcessSandboxProvider::Disk() const noexcept {
  try {
    DiskCommitment d;
    struct statvfs fsinfo {};
    if (statvfs(config_.root.c_str(), &fsinfo) != 0) return std::nullopt;
    d.size_bytes = static_cast<std::int64_t>(fsinfo.f_blocks) * static_cast<std::int64_t>(fsinfo.f_frsize);
    d.free_bytes = static_cast<std::int64_t>(fsinfo.f_bavail) * static_cast<std::int64_t>(fsinfo.f_frsize);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(config_.root + "/volumes", ec)) {
      if (entry.path().extension() != ".img") continue;
      struct stat st {};
      if (stat(entry.path().c_str(), &st) != 0) continue;
      d.committed_bytes += st.st_size;
      d.used_bytes += static_cast<std::int64_t>(st.st_blocks) * 512;
    }
    return d;
  } catch (...) {
    return std::nullopt;
  }
}

Status ProcessSandboxProvider::CheckCommitment(std::int64_t disk_bytes) {
  std::optional<DiskCommitment> d = Disk();
  if (!d || d->size_bytes <= 0) return Status::Ok();
  const std::int64_t after = d->committed_bytes + disk_bytes;
  if (config_.disk_overcommit > 0 && after > config_.disk_overcommit * d->size_bytes) {
    return Status::ResourceExhausted(
        "workspace images would promise " + Bytes(after) + " of the " + Bytes(d->size_bytes) +
        " disk under " + config_.root +
        ", past disk_overcommit = " + std::to_string(config_.disk_overcommit) +
        "; close sessions to free workspaces, or raise [sandbox.config] disk_overcommit");
  }
  if (after > d->size_bytes && !overcommitted_) {
    logger_.Warn("workspace images now promise " + Bytes(after) + " of the " + Bytes(d->size_bytes) +
                 " disk under " + config_.root + " (" + Bytes(d->free_bytes) +
                 " free): sessions writing that much will find the disk full");
  }
  overcommitted_ = after > d->size_bytes;
  return Status::Ok();
}

Result<std::string> ProcessSandboxProvider::MakeImageVolume(std::int64_t disk_bytes) {
  const std::string volume = "vol_" + RandomHex(8);
  const std::string dir = config_.root + "/volumes/" + volume;
  const std::string image = dir + ".img";
  Status made = [&]() -> Status {
    std::error_code ec;
    {
      std::lock_guard lock(disk_mu_);
      PADDOCK_RETURN_IF_ERROR(CheckCommitment(disk_bytes));
      fs::create_directory(dir, ec);
      if (ec) return Status::Unavailable("create " + dir + ": " + ec.message());
      int fd = open(image.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) return Status::Unavailable("create " + image + ": " + strerror(errno));
      int truncated = ftruncate(fd, disk_bytes);
      close(fd);
      if (truncated != 0) return Status::Unavailable("size " + image + ": " + strerror(errno));
    }
    PADDOCK_RETURN_IF_ERROR(RunTool(
        {config_.mkfs, "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1", image}));
    PADDOCK_RETURN_IF_ERROR(RunTool({config_.mount, "-o", "loop,nosuid,nodev", image, dir}));
    fs::remove(dir + "/lost+found", ec);
    return OwnWorkspace(dir);
  }();
  if (!made.ok()) {
    (void)RemoveVolume(volume);
    return made;
  }
  return volume;
}

std::optional<std::string> ProcessSandboxProvider::TakeSpare(std::int64_t disk_bytes) {
  const std::string dir = config_.root + "/spare/" + std::to_string(disk_bytes);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string volume = entry.path().filename().string();
    // Whoever unlinks the mark owns the volume.
    if (unlink(entry.path().c_str()) != 0) continue;
    const std::string vdir = config_.root + "/volumes/" + volume;
    if (!ValidName(volume) || !fs::exists(vdir + ".img", ec)) continue;
    if (!Mounted(vdir)) {
      (void)RemoveVolume(volume);
      continue;
    }
    return volume;
  }
  return std::nullopt;
}

void ProcessSandboxProvider::SpareLoop() {
  std::unique_lock lock(spare_mu_);
  while (!stopping_) {
    spare_wanted_ = false;
    bool short_of_disk = false;
    for (std::int64_t size : std::set<std::int64_t>(spare_sizes_)) {
      const std::string dir = config_.root + "/spare/" + std::to_string(size);
      std::error_code ec;
      fs::create_directories(dir, ec);
      for (;;) {
        int have = 0;
        for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir, ec)) ++have;
        if (stopping_ || ec || have >= config_.spare_volumes) break;
        if (creating_ > 0) {
          spare_cv_.wait(lock, [&] { return stopping_ || creating_ == 0; });
          continue;
        }
        lock.unlock();
        Result<std::string> volume = MakeImageVolume(size);
        if (volume.ok()) {
          fs::create_symlink("../../volumes/" + *volume, dir + "/" + *volume, ec);
          if (ec) (void)RemoveVolume(*volume);
        }
        lock.lock();
        if (!volume.ok() || ec) {
          logger_.Warn("cannot prepare a spare workspace image: " +
                       (volume.ok() ? ec.message() : volume.status().ToString()));
          short_of_disk = true;
          break;
        }
      }
    }
    // Woken when a spare is taken or a new size is asked for; retried after a failure.
    spare_cv_.wait_for(lock, short_of_disk ? std::chrono::seconds(10) : std::chrono::seconds(60),
                       [&] { return stopping_ || spare_wanted_; });
  }
}

void ProcessSandboxProvider::RemoveSpares() {
  std::error_code ec;
  for (const auto& size_dir : fs::directory_iterator(config_.root + "/spare", ec)) {
    std::error_code ec2;
    for (const auto& entry : fs::directory_iterator(size_dir.path(), ec2)) {
      if (unlink(entry.path().c_str()) == 0) (void)RemoveVolume(entry.path().filename().string());
    }
    fs::remove(size_dir.path(), ec2);
  }
}

Result<std::string> ProcessSandboxProvider::NewVolume(
    std::int64_t disk_bytes, std::vector<std::pair<std::string, std::string>>& limits) {
  if (disk_bytes > 0 && config_.disk_quota && geteuid() == 0) {
    std::optional<std::string> spare = TakeSpare(disk_bytes);
    if (config_.spare_volumes > 0) {
      {
        std::lock_guard lock(spare_mu_);
        spare_sizes_.insert(disk_bytes);
        spare_wanted_ = true;
      }
      spare_cv_.notify_all();
    }
    Result<std::string> volume = spare ? Result<std::string>(*spare) : MakeImageVolume(disk_bytes);
    if (!volume.ok()) {
      return volume.status().Annotate(
          "preparing a workspace with a disk limit (set disk_quota = false to do without)");
    }
    limits.emplace_back("disk", std::to_string(disk_bytes) + " (ext4 image)");
    return *volume;
  }
  const std::string volume = "vol_" + RandomHex(8);
  const std::string dir = config_.root + "/volumes/" + volume;
  std::error_code ec;
  fs::create_directory(dir, ec);
  if (ec) return Status::Unavailable("create " + dir + ": " + ec.message());
  if (disk_bytes > 0) limits.emplace_back("disk", std::to_string(disk_bytes) + " (rlimit fsize, per file)");
  PADDOCK_RETURN_IF_ERROR(OwnWorkspace(dir));
  return volume;
}

Status ProcessSandboxProvider::RemoveVolume(const std::string& volume) {
  if (!ValidName(volume)) return Status::Ok();
  const std::string dir = config_.root + "/volumes/" + volume;
  if (Mounted(dir) && umount2(dir.c_str(), MNT_DETACH) != 0) {
    return Status::Internal("umount " + dir + ": " + strerror(errno));
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::remove(dir + ".img", ec);
  if (ec) return Status::Internal("remove " + dir + ": " + ec.message());
  return Status::Ok();
}

std::string ProcessSandboxProvider::SessionVolume(std::string_view session_id) const {
  std::error_code ec;
  fs::path link = config_.root + "/workspaces/" + std::string(session_id);
  if (!fs::is_symlink(link, ec)) return "";
  return fs::read_symlink(link, ec).filename().string();
}

Result<SandboxInfo> ProcessSandboxProvider::Create(const SandboxSpec& spec) noexcept {
  return Guard([&]() -> Result<SandboxInfo> {
    if (!spec.session_id.empty() && !ValidName(spec.session_id)) {
      return Status::InvalidArgument("session id must be 1-128 letters, digits, '-' or '_'");
    }
    if (spec.limits.memory_bytes < 0 || spec.limits.pids < 0 || spec.limits.disk_bytes < 0 ||
        spec.limits.cpus < 0) {
      return Status::InvalidArgument("sandbox limits must not be negative");
    }
    {
      std::lock_guard lock(spare_mu_);
      ++creating_;
    }
    struct Done {
      ProcessSandboxProvider* self;
      ~Done() {
        {
          std::lock_guard lock(self->spare_mu_);
          --self->creating_;
        }
        self->spare_cv_.notify_all();
      }
    } done{this};
    Record r;
    r.info.id = "psb_" + RandomHex(8);
    r.info.session_id = spec.session_id;
    r.info.profile = spec.profile;
    r.info.egress_dir = spec.egress_dir;
    r.info.runtime.token = RandomHex(24);
    const std::string dir = SandboxDir(r.info.id);
    std::error_code ec;
    fs::create_directories(dir + "/run", ec);
    if (ec) return Status::Unavailable("create " + dir + ": " + ec.message());
    fs::permissions(dir, fs::perms(0711), ec);
    if (config_.jail.host_creds) {
      if (chown((dir + "/run").c_str(), config_.jail.host_creds->uid, config_.jail.host_creds->gid) != 0) {
        return Status::Internal("chown " + dir + "/run: " + strerror(errno));
      }
    }
    bool new_volume = false;
    auto fail = [&](Status s) -> Status {
      cgroups_.Remove(r.info.id);
      if (new_volume) (void)RemoveVolume(r.volume);
      fs::remove_all(dir, ec);
      return s;
    };
    // The workspace: the session's volume, or a new one (a warm sandbox's waits for its claim).
    if (!spec.session_id.empty()) r.volume = SessionVolume(spec.session_id);
    if (r.volume.empty()) {
      Result<std::string> volume = NewVolume(spec.limits.disk_bytes, r.info.limits);
      if (!volume.ok()) return fail(volume.status());
      r.volume = *volume;
      new_volume = true;
    } else if (spec.limits.disk_bytes > 0) {
      const std::string vdir = config_.root + "/volumes/" + r.volume;
      if (fs::exists(vdir + ".img") && !Mounted(vdir)) {  // after a reboot
        Status m = RunTool({config_.mount, "-o", "loop,nosuid,nodev", vdir + ".img", vdir});
        if (!m.ok()) return fail(m);
      }
      r.info.limits.emplace_back("disk",
                                 std::to_string(spec.limits.disk_bytes) +
                                     (fs::exists(vdir + ".img") ? " (ext4 image)" : " (not enforced)"));
    }
    JailSpec jail;
    jail.workspace = config_.root + "/volumes/" + r.volume;
    jail.run_dir = dir + "/run";
    jail.egress_dir = spec.egress_dir;
    jail.ro_mounts = spec.ro_mounts;
    jail.egress_port = spec.egress_port;
    jail.host_network = spec.host_network;
    jail.tmp_bytes = spec.limits.disk_bytes;
    jail.token = r.info.runtime.token;
    if (cgroups_.mode() != CgroupMode::kNone) {
      Result<std::vector<std::string>> procs = cgroups_.Create(r.info.id, spec.limits, r.info.limits);
      if (!procs.ok()) return fail(procs.status());
      jail.join_cgroups = *procs;
    } else {
      // The last resort: per-process limits.
      if (spec.limits.memory_bytes > 0) {
        jail.rlimits.emplace_back(RLIMIT_AS, static_cast<unsigned long>(spec.limits.memory_bytes));
        r.info.limits.emplace_back("memory",
                                   std::to_string(spec.limits.memory_bytes) + " (rlimit as, per process)");
      }
      if (spec.limits.pids > 0) {
        jail.rlimits.emplace_back(RLIMIT_NPROC, static_cast<unsigned long>(spec.limits.pids));
        r.info.limits.emplace_back("pids", std::to_string(spec.limits.pids) + " (rlimit nproc, per user)");
      }
      if (spec.limits.cpus > 0) r.info.limits.emplace_back("cpus", "not enforced (no cgroups)");
    }
    if (spec.limits.disk_bytes > 0 && !fs::exists(config_.root + "/volumes/" + r.volume + ".img")) {
      jail.rlimits.emplace_back(RLIMIT_FSIZE, static_cast<unsigned long>(spec.limits.disk_bytes));
    }
    if (spec.host_network) {
      logger_.Warn("sandbox " + r.info.id + " shares the host network (profile '" + spec.profile +
                   "' has host_network = true)");
      r.info.limits.emplace_back("network", "host (not isolated)");
    } else {
      r.info.limits.emplace_back("network", spec.egress_dir.empty() ? "none" : "egress proxy only");
    }
    jail.hardening = spec.hardening;
    r.info.limits.emplace_back("seccomp", Describe(spec.hardening));
    r.info.limits.emplace_back("user namespaces", spec.hardening.seccomp ? "none nested" : "allowed");
    if (!spec.hardening.seccomp || !spec.hardening.seccomp_allow.empty()) {
      logger_.Warn("sandbox " + r.info.id + ": profile '" + spec.profile +
                   "' relaxes the syscall filter: " + Describe(spec.hardening));
    }
    Result<JailProcess> started = StartJail(config_.jail, jail, dir + "/bwrap.log");
    if (!started.ok()) return fail(started.status());
    r.jail = *started;
    r.info.state = SandboxState::kRunning;
    r.info.created_at = NowMs();
    r.info.detail = "pid " + std::to_string(r.jail.pid);
    r.info.runtime.address = "unix:" + dir + "/run/runtime.sock";
    Status saved = Save(r);
    if (!saved.ok()) {
      (void)KillJail(r.jail);
      return fail(saved);
    }
    if (!spec.session_id.empty() && new_volume) {
      fs::create_symlink("../volumes/" + r.volume, config_.root + "/workspaces/" + spec.session_id, ec);
      if (ec) {
        (void)KillJail(r.jail);
        return fail(Status::Unavailable("cannot record the session's workspace: " + ec.message()));
      }
    }
    return r.info;
  });
}

Result<SandboxInfo> ProcessSandboxProvider::Claim(std::string_view id, std::string_view session_id) noexcept {
  return Guard([&]() -> Result<SandboxInfo> {
    if (!ValidName(session_id))
      return Status::InvalidArgument("session id must be 1-128 letters, digits, '-' or '_'");
    std::lock_guard lock(mu_);
    PADDOCK_ASSIGN_OR_RETURN(Record r, Load(id));
    if (!r.info.session_id.empty()) {
      return Status::FailedPrecondition("sandbox '" + std::string(id) + "' is already bound to a session");
    }
    if (r.info.state != SandboxState::kRunning) {
      return Status::FailedPrecondition("sandbox '" + std::string(id) + "' is not running");
    }
    // A session that already has a workspace keeps it; a warm sandbox cannot take it over.
    std::error_code ec;
    fs::create_symlink("../volumes/" + r.volume, config_.root + "/workspaces/" + std::string(session_id), ec);
    if (ec) {
      return Status::FailedPrecondition("session '" + std::string(session_id) + "' already has a workspace");
    }
    r.info.session_id = std::string(session_id);
    Status saved = Save(r);
    if (!saved.ok()) {
      fs::remove(config_.root + "/workspaces/" + std::string(session_id), ec);
      return saved;
    }
    return r.info;
  });
}

Status ProcessSandboxProvider::Save(const Record& r) const {
  const std::string dir = SandboxDir(r.info.id);
  std::string text;
  text += "pid=" + std::to_string(r.jail.pid) + "\n";
  text += "start_time=" + std::to_string(r.jail.start_time) + "\n";
  text += "session=" + r.info.session_id + "\n";
  text += "profile=" + r.info.profile + "\n";
  text += "created_at=" + std::to_string(r.info.created_at) + "\n";
  text += "token=" + r.info.runtime.token + "\n";
  text += "volume=" + r.volume + "\n";
  text += "egress_dir=" + r.info.egress_dir + "\n";
  for (const auto& [k, v] : r.info.limits) text += "limit." + k + "=" + v + "\n";
  const std::string tmp = dir + "/state.tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Unavailable("cannot record sandbox state in " + dir + ": " + strerror(errno));
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), (dir + "/state").c_str()) != 0) {
    return Status::Unavailable("cannot record sandbox state in " + dir);
  }
  return Status::Ok();
}

Result<ProcessSandboxProvider::Record> ProcessSandboxProvider::Load(std::string_view id) const {
  auto missing = [&] { return Status::NotFound("sandbox '" + std::string(id) + "' does not exist"); };
  if (!ValidName(id)) return missing();
  std::ifstream in(SandboxDir(id) + "/state");
  if (!in) return missing();
  Record r;
  r.info.id = std::string(id);
  std::string line;
  bool has_pid = false;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    try {
      if (k == "pid") {
        r.jail.pid = static_cast<pid_t>(std::stol(v));
        has_pid = true;
      } else if (k == "start_time") {
        r.jail.start_time = std::stoull(v);
      } else if (k == "session") {
        r.info.session_id = v;
      } else if (k == "profile") {
        r.info.profile = v;
      } else if (k == "created_at") {
        r.info.created_at = std::stoll(v);
      } else if (k == "token") {
        r.info.runtime.token = v;
      } else if (k == "volume") {
        r.volume = v;
      } else if (k == "egress_dir") {
        r.info.egress_dir = v;
      } else if (k.rfind("limit.", 0) == 0) {
        r.info.limits.emplace_back(k.substr(6), v);
      }
    } catch (const std::exception&) {
      return missing();
    }
  }
  if (!has_pid) return missing();
  r.info.runtime.address = "unix:" + SandboxDir(id) + "/run/runtime.sock";
  r.info.state = JailAlive(r.jail) ? SandboxState::kRunning : SandboxState::kGone;
  r.info.detail = "pid " + std::to_string(r.jail.pid);
  // A count, so that a caller comparing two looks can tell a new kill.
  if (long kills = cgroups_.OomKills(r.info.id); kills > 0)
    r.info.detail += ", out of memory (" + std::to_string(kills) + " process(es) killed)";
  return r;
}

Result<SandboxInfo> ProcessSandboxProvider::Inspect(std::string_view id) noexcept {
  return Guard([&]() -> Result<SandboxInfo> {
    PADDOCK_ASSIGN_OR_RETURN(Record r, Load(id));
    return r.info;
  });
}

Status ProcessSandboxProvider::Destroy(std::string_view id) noexcept {
  return Guard([&]() -> Status {
    std::lock_guard lock(mu_);
    Result<Record> r = Load(id);
    if (!r.ok()) return r.status().code() == StatusCode::kNotFound ? Status::Ok() : r.status();
    PADDOCK_RETURN_IF_ERROR(KillJail(r->jail));
    cgroups_.Remove(r->info.id);
    // A warm sandbox's workspace belongs to no session.
    if (r->info.session_id.empty()) PADDOCK_RETURN_IF_ERROR(RemoveVolume(r->volume));
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
    const std::string link = config_.root + "/workspaces/" + std::string(session_id);
    std::error_code ec;
    if (fs::is_symlink(link, ec)) {
      PADDOCK_RETURN_IF_ERROR(RemoveVolume(SessionVolume(session_id)));
      fs::remove(link, ec);
    } else {
      fs::remove_all(link, ec);  // a workspace from before volumes
    }
    if (ec) return Status::Internal("remove workspace: " + ec.message());
    return Status::Ok();
  });
}

}  // namespace paddock::plugins::sandbox_process
