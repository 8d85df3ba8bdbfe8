// DashboardAssets: the dashboard's built files, served by `paddock serve` itself on its own
// port (same origin as the API). Read once at start into memory: only the files found then are
// served (index.html and assets/<name>), so no request path ever reaches the filesystem.
// index.html is never cached and carries the Content-Security-Policy (no inline script or
// style); assets/ names carry their content's hash and are cached for a year, immutable.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "paddock/status.h"

namespace paddock {

struct DashboardAsset {
  std::string content_type;
  std::string body;
  std::string etag;  // "\"<sha-256 prefix>\""
  bool immutable = false;
};

class DashboardAssets {
 public:
  // The files of `dir` (its index.html and assets/); "" or a directory without index.html: none,
  // and `why` says so. kFailedPrecondition for a file that cannot be read, a name that is not
  // plain, or more than 64 MiB in all.
  static Result<std::unique_ptr<DashboardAssets>> Load(const std::string& dir);

  // The asset at request path `path` ("/" or "/index.html": the page; "/assets/<name>").
  const DashboardAsset* Find(std::string_view path) const;
  bool installed() const { return !files_.empty(); }
  // Why there is no dashboard (for the 404), when there is none.
  const std::string& why() const { return why_; }
  const std::string& dir() const { return dir_; }

  // The headers every answer of the page carries (Content-Security-Policy and the like).
  static const char* ContentSecurityPolicy();

 private:
  std::string dir_;
  std::string why_;
  std::map<std::string, DashboardAsset, std::less<>> files_;  // by request path
};

// [server] dashboard_dir when set, else $PADDOCK_DASHBOARD_DIR, else share/paddock/dashboard
// beside the binary's directory (an install), else dashboard/ there (a build tree).
std::string ResolveDashboardDir(const std::string& configured);

}  // namespace paddock
