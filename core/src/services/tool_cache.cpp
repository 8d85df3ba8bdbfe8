#include "services/tool_cache.h"

#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <Poco/StreamCopier.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <thread>

#include "util/digest.h"
#include "util/log.h"

namespace paddock {

namespace fs = std::filesystem;

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
  if (running_pid_ > 0) ::kill(static_cast<pid_t>(running_pid_), SIGKILL);
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

  Poco::Process::Args args = {"install",           "--prefix",        tmp,
                              "--no-audit",        "--no-fund",       "--omit=dev",
                              "--no-package-lock", "--loglevel=error"};
  args.insert(args.end(), needs.npm.begin(), needs.npm.end());
  Poco::Pipe out;
  std::string output;
  int code = -1;
  try {
    std::unique_lock running(mu_);
    if (stopping_) {
      fs::remove_all(tmp, ec);
      return Status::Unavailable("the server is stopping");
    }
    Poco::ProcessHandle ph = Poco::Process::launch(npm_, args, tmp, nullptr, &out, &out);
    running_pid_ = ph.id();
    running.unlock();
    std::atomic<bool> done{false};
    std::mutex wait_mu;
    std::condition_variable cv;
    std::thread watchdog([&] {
      std::unique_lock lock(wait_mu);
      if (!cv.wait_for(lock, timeout_, [&] { return done.load(); })) Poco::Process::kill(ph);
    });
    Poco::PipeInputStream in(out);
    Poco::StreamCopier::copyToString(in, output);
    code = ph.wait();
    running.lock();
    running_pid_ = 0;
    running.unlock();
    {
      std::lock_guard lock(wait_mu);
      done = true;
    }
    cv.notify_all();
    watchdog.join();
  } catch (const std::exception& e) {
    fs::remove_all(tmp, ec);
    return Status::FailedPrecondition("cannot run " + npm_ + " to install " + list + ": " + e.what());
  }
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
