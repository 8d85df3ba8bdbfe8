#include "cgroups.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace paddock::plugins::sandbox_process {
namespace {

namespace fs = std::filesystem;
constexpr char kRoot[] = "/sys/fs/cgroup";

bool WriteFile(const std::string& path, const std::string& value, std::string* error = nullptr) {
  std::ofstream out(path);
  out << value;
  out.flush();
  if (!out) {
    if (error) *error = path + ": " + strerror(errno);
    return false;
  }
  return true;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// This process's cgroup path per hierarchy, from /proc/self/cgroup ("" key: the v2 one).
std::vector<std::pair<std::string, std::string>> OwnCgroups() {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    auto a = line.find(':');
    auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    std::stringstream ss(controllers);
    std::string c;
    if (controllers.empty()) out.emplace_back("", path);
    while (std::getline(ss, c, ',')) out.emplace_back(c, path);
  }
  return out;
}

std::string Own(const std::vector<std::pair<std::string, std::string>>& own, const std::string& controller) {
  for (const auto& [c, p] : own) {
    if (c == controller) return p == "/" ? "" : p;
  }
  return "";
}

}  // namespace

Cgroups Cgroups::Detect() {
  Cgroups g;
  if (geteuid() != 0) {
    g.none_reason_ = "the server does not run as root";
    return g;
  }
  auto own = OwnCgroups();
  std::string controllers = ReadFile(std::string(kRoot) + "/cgroup.controllers");
  if (controllers.find("memory") != std::string::npos && controllers.find("pids") != std::string::npos) {
    // cgroup v2: sandboxes go in <own>/paddock-sandboxes. A cgroup with processes cannot hand
    // controllers to children, so the server first moves itself into a leaf of its own.
    std::string own_dir = std::string(kRoot) + Own(own, "");
    std::string parent = own_dir + "/paddock-sandboxes";
    std::error_code ec;
    fs::create_directories(parent, ec);
    std::string error;
    auto enable = [&](const std::string& dir) {
      return WriteFile(dir + "/cgroup.subtree_control", "+memory +pids +cpu", &error);
    };
    if (!enable(own_dir)) {
      fs::create_directories(own_dir + "/paddock-server", ec);
      if (WriteFile(own_dir + "/paddock-server/cgroup.procs", std::to_string(getpid()), &error))
        enable(own_dir);
    }
    if (!ec && enable(parent)) {
      g.mode_ = CgroupMode::kV2;
      g.v2_parent_ = parent;
      return g;
    }
    g.none_reason_ = "cgroup v2 is there but cannot be delegated: " + error;
    return g;
  }
  for (const char* c : {"memory", "pids", "cpu"}) {
    std::string dir = std::string(kRoot) + "/" + c + Own(own, c) + "/paddock";
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
      g.none_reason_ = "cannot create " + dir + ": " + ec.message();
      g.v1_parents_.clear();
      return g;
    }
    g.v1_parents_.emplace_back(c, dir);
  }
  if (!g.v1_parents_.empty()) g.mode_ = CgroupMode::kV1;
  return g;
}

Result<std::vector<std::string>> Cgroups::Create(
    const std::string& id, const SandboxLimits& limits,
    std::vector<std::pair<std::string, std::string>>& in_force) const {
  std::vector<std::string> procs;
  std::string error;
  const std::string how = " (" + Label() + ")";
  auto fail = [&]() -> Status {
    Remove(id);
    return Status::Unavailable("cannot set up the sandbox's cgroup: " + error);
  };
  if (mode_ == CgroupMode::kV2) {
    std::string dir = v2_parent_ + "/" + id;
    std::error_code ec;
    fs::create_directory(dir, ec);
    if (ec) {
      error = dir + ": " + ec.message();
      return fail();
    }
    if (limits.memory_bytes > 0) {
      if (!WriteFile(dir + "/memory.max", std::to_string(limits.memory_bytes), &error)) return fail();
      (void)WriteFile(dir + "/memory.swap.max", "0");
      in_force.emplace_back("memory", std::to_string(limits.memory_bytes) + how);
    }
    if (limits.pids > 0) {
      if (!WriteFile(dir + "/pids.max", std::to_string(limits.pids), &error)) return fail();
      in_force.emplace_back("pids", std::to_string(limits.pids) + how);
    }
    if (limits.cpus > 0) {
      long quota = static_cast<long>(limits.cpus * 100000);
      if (!WriteFile(dir + "/cpu.max", std::to_string(quota) + " 100000", &error)) return fail();
      in_force.emplace_back("cpus", std::to_string(limits.cpus) + how);
    }
    procs.push_back(dir + "/cgroup.procs");
    return procs;
  }
  if (mode_ == CgroupMode::kV1) {
    for (const auto& [controller, parent] : v1_parents_) {
      std::string dir = parent + "/" + id;
      std::error_code ec;
      fs::create_directory(dir, ec);
      if (ec) {
        error = dir + ": " + ec.message();
        return fail();
      }
      if (controller == "memory" && limits.memory_bytes > 0) {
        if (!WriteFile(dir + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes), &error))
          return fail();
        if (fs::exists(dir + "/memory.memsw.limit_in_bytes")) {
          (void)WriteFile(dir + "/memory.memsw.limit_in_bytes", std::to_string(limits.memory_bytes));
        }
        in_force.emplace_back("memory", std::to_string(limits.memory_bytes) + how);
      } else if (controller == "pids" && limits.pids > 0) {
        if (!WriteFile(dir + "/pids.max", std::to_string(limits.pids), &error)) return fail();
        in_force.emplace_back("pids", std::to_string(limits.pids) + how);
      } else if (controller == "cpu" && limits.cpus > 0) {
        if (!WriteFile(dir + "/cpu.cfs_period_us", "100000", &error) ||
            !WriteFile(dir + "/cpu.cfs_quota_us", std::to_string(static_cast<long>(limits.cpus * 100000)),
                       &error)) {
          return fail();
        }
        in_force.emplace_back("cpus", std::to_string(limits.cpus) + how);
      }
      procs.push_back(dir + "/cgroup.procs");
    }
  }
  return procs;
}

void Cgroups::Remove(const std::string& id) const {
  std::vector<std::string> dirs;
  if (mode_ == CgroupMode::kV2) dirs.push_back(v2_parent_ + "/" + id);
  for (const auto& [c, parent] : v1_parents_) dirs.push_back(parent + "/" + id);
  for (const auto& dir : dirs) {
    // A cgroup can only go once its last process has been reaped; that takes a moment.
    for (int i = 0; i < 100 && fs::exists(dir); ++i) {
      if (rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

long Cgroups::OomKills(const std::string& id) const {
  if (mode_ == CgroupMode::kV2) {
    std::string events = ReadFile(v2_parent_ + "/" + id + "/memory.events");
    auto at = events.find("oom_kill ");
    return at == std::string::npos ? 0 : std::atol(events.c_str() + at + 9);
  }
  for (const auto& [c, parent] : v1_parents_) {
    if (c != "memory") continue;
    std::string ctl = ReadFile(parent + "/" + id + "/memory.oom_control");
    auto at = ctl.find("oom_kill ");
    return at == std::string::npos ? 0 : std::atol(ctl.c_str() + at + 9);
  }
  return 0;
}

}  // namespace paddock::plugins::sandbox_process
