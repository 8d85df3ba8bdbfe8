#include "services/dashboard/assets.h"

#include <boost/dll/runtime_symbol_info.hpp>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/digest.h"

namespace paddock {
namespace {

namespace fs = std::filesystem;

constexpr std::uintmax_t kMaxTotal = 64ull << 20;

std::string TypeOf(const std::string& name) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".map", "application/json"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& [ext, type] : kTypes) {
    if (name.size() > std::strlen(ext) &&
        name.compare(name.size() - std::strlen(ext), std::strlen(ext), ext) == 0)
      return type;
  }
  return "application/octet-stream";
}

bool PlainName(const std::string& name) {
  if (name.empty() || name.size() > 200 || name.front() == '.') return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) return false;
  }
  return true;
}

}  // namespace

const char* DashboardAssets::ContentSecurityPolicy() {
  return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
         "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
         "form-action 'self'; frame-ancestors 'none'";
}

Result<std::unique_ptr<DashboardAssets>> DashboardAssets::Load(const std::string& dir) {
  auto out = std::make_unique<DashboardAssets>();
  out->dir_ = dir;
  std::error_code ec;
  if (dir.empty() || !fs::is_regular_file(fs::path(dir) / "index.html", ec)) {
    out->why_ = "the dashboard is not installed (no index.html in " + (dir.empty() ? std::string("?") : dir) +
                "): scripts/build.sh builds it, or set [server] dashboard_dir";
    return out;
  }
  std::uintmax_t total = 0;
  auto add = [&](const fs::path& file, const std::string& request_path, bool immutable) -> Status {
    std::ifstream in(file, std::ios::binary);
    if (!in) return Status::FailedPrecondition("cannot read the dashboard file " + file.string());
    std::stringstream ss;
    ss << in.rdbuf();
    DashboardAsset a;
    a.body = ss.str();
    total += a.body.size();
    if (total > kMaxTotal)
      return Status::FailedPrecondition("the dashboard in " + dir + " is over 64 MiB; is it the built one?");
    a.content_type = TypeOf(file.filename().string());
    a.etag = "\"" + Sha256Hex(a.body).substr(0, 32) + "\"";
    a.immutable = immutable;
    out->files_[request_path] = std::move(a);
    return Status::Ok();
  };
  PADDOCK_RETURN_IF_ERROR(add(fs::path(dir) / "index.html", "/", false));
  const fs::path assets = fs::path(dir) / "assets";
  if (fs::is_directory(assets, ec)) {
    for (const fs::directory_entry& e : fs::directory_iterator(assets, ec)) {
      if (!e.is_regular_file(ec)) continue;  // no subdirectories, no links to elsewhere
      const std::string name = e.path().filename().string();
      if (!PlainName(name)) {
        return Status::FailedPrecondition("the dashboard file " + e.path().string() +
                                          " has a name that is not plain (A-Z, a-z, 0-9, '.', '-', '_')");
      }
      PADDOCK_RETURN_IF_ERROR(add(e.path(), "/assets/" + name, true));
    }
  }
  return out;
}

const DashboardAsset* DashboardAssets::Find(std::string_view path) const {
  if (path == "/index.html") path = "/";
  auto it = files_.find(path);
  return it == files_.end() ? nullptr : &it->second;
}

std::string ResolveDashboardDir(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (const char* env = std::getenv("PADDOCK_DASHBOARD_DIR"); env && *env) return env;
  std::error_code ec;
  const fs::path exe_dir = boost::dll::program_location().parent_path().string();
  for (const fs::path& candidate :
       {exe_dir / ".." / "share" / "paddock" / "dashboard", exe_dir / ".." / "dashboard"}) {
    if (fs::is_regular_file(candidate / "index.html", ec))
      return fs::weakly_canonical(candidate, ec).string();
  }
  return "";
}

}  // namespace paddock
