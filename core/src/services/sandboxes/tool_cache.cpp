#include "services/sandboxes/tool_cache.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <thread>

#include "paddock/process.h"
#include "util/digest.h"
#include "util/log.h"

namespace paddock {

namespace fs = std::filesystem;

namespace {

// npm's environment: the server's, without the values meant for sandboxes.
std::vector<std::string> ToolEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    if (kv.rfind("CONTAINER_ENV_", 0) == 0 || kv.rfind("PADDOCK_", 0) == 0) continue;
    env.emplace_back(kv);
  }
  return env;
}

}  // namespace

ToolCache::ToolCache(std::string root, std::string npm, std::chrono::milliseconds install_timeout)
    : root_(std::move(root)), npm_(std::move(npm)), timeout_(install_timeout) {}

std::string ToolCache::Key(const SandboxNeeds& needs) {
  std::vector<std::string> sorted = needs.npm;
  std::sort(sorted.begin(), sorted.end());
  std::string joined;
  for (const std::string& p : sorted) joined += p + "\n";
  return "npm-" + Sha256Hex(joined).substr(0, 16);
}

void ToolCache::Stop() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  if (running_pid_ > 0) ::kill(-static_cast<pid_t>(running_pid_), SIGKILL);  // npm and what it started
}

Result<std::string> ToolCache::Ensure(const SandboxNeeds& needs) {
  if (needs.npm.empty()) return std::string();
  for (const std::string& p : needs.npm) {
    if (p.empty() || p.front() == '-' || p.find_first_of(" \t\n") != std::string::npos) {
      return Status::InvalidArgument("not an npm package spec: '" + p + "'");
    }
  }
  const std::string key = Key(needs);
  const std::string dir = root_ + "/" + key;
  const std::string inside = std::string(kSandboxTools) + "/" + key;
  std::shared_ptr<std::mutex> one;
  {
    std::lock_guard lock(mu_);
    auto& m = installing_[key];
    if (!m) m = std::make_shared<std::mutex>();
    one = m;
  }
  std::lock_guard lock(*one);
  std::error_code ec;
  if (fs::exists(dir + "/.complete", ec)) return inside;
  PADDOCK_RETURN_IF_ERROR(Install(needs, dir));
  return inside;
}

Status ToolCache::Install(const SandboxNeeds& needs, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return Status::Internal("cannot create " + root_ + ": " + ec.message());
  fs::permissions(root_, fs::perms(0755), ec);
  const std::string tmp = dir + ".installing-" + std::to_string(getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return Status::Internal("cannot create " + tmp + ": " + ec.message());
  fs::permissions(tmp, fs::perms(0755), ec);
  std::string list;
  for (const std::string& p : needs.npm) list += (list.empty() ? "" : " ") + p;
  LogInfo("installing sandbox tools " + list + " into " + dir);
  auto started = std::chrono::steady_clock::now();

  std::optional<std::string> npm = process::FindExecutable(npm_);
  if (!npm) {
    fs::remove_all(tmp, ec);
    return Status::FailedPrecondition("cannot run " + npm_ + " to install " + list + ": not found in PATH");
  }
  process::ChildSpec spec;
  spec.argv = {*npm,         "install",           "--prefix",        tmp, "--no-audit", "--no-fund",
               "--omit=dev", "--no-package-lock", "--loglevel=error"};
  spec.argv.insert(spec.argv.end(), needs.npm.begin(), needs.npm.end());
  spec.env = ToolEnvironment();
  spec.cwd = tmp;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Status::Unavailable(std::string("pipe: ") + strerror(errno));
  spec.fds = {{out[1], 1}, {out[1], 2}};
  std::string output;
  int code = -1;
  pid_t pid = 0;
  {
    std::unique_lock running(mu_);
    if (stopping_) {
      close(out[0]);
      close(out[1]);
      fs::remove_all(tmp, ec);
      return Status::Unavailable("the server is stopping");
    }
    Result<pid_t> started_npm = process::Spawn(spec);
    close(out[1]);
    if (!started_npm.ok()) {
      close(out[0]);
      fs::remove_all(tmp, ec);
      return Status::FailedPrecondition("cannot run " + npm_ + " to install " + list + ": " +
                                        started_npm.status().message());
    }
    pid = *started_npm;
    running_pid_ = pid;
  }
  std::atomic<bool> done{false};
  std::mutex wait_mu;
  std::condition_variable cv;
  std::thread watchdog([&] {
    std::unique_lock lock(wait_mu);
    if (!cv.wait_for(lock, timeout_, [&] { return done.load(); })) ::kill(-pid, SIGKILL);
  });
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) output.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  {
    std::lock_guard running(mu_);
    running_pid_ = 0;
  }
  {
    std::lock_guard lock(wait_mu);
    done = true;
  }
  cv.notify_all();
  watchdog.join();
  if (code != 0) {
    fs::remove_all(tmp, ec);
    if (output.size() > 2000) output = output.substr(output.size() - 2000);
    return Status::FailedPrecondition("installing " + list + " with npm failed (exit " +
                                      std::to_string(code) + "): " + output);
  }
  // Everything readable by the unprivileged uid sandboxes run as.
  for (auto it = fs::recursive_directory_iterator(tmp, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_symlink(ec)) continue;
    fs::perms p = it->status(ec).permissions();
    fs::permissions(it->path(),
                    p | fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read |
                        (it->is_directory(ec) || (p & fs::perms::owner_exec) != fs::perms::none
                             ? fs::perms::group_exec | fs::perms::others_exec
                             : fs::perms::none),
                    ec);
  }
  std::ofstream(tmp + "/.complete") << list << "\n";
  fs::rename(tmp, dir, ec);
  if (ec) {
    // Another process finished the same set first: use it.
    fs::remove_all(tmp, ec);
    if (!fs::exists(dir + "/.complete", ec)) return Status::Internal("cannot move " + tmp + " to " + dir);
  }
  LogInfo("installed sandbox tools " + list + " in " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - started)
                             .count()) +
          " ms");
  return Status::Ok();
}

}  // namespace paddock
