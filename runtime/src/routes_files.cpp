#include "runtime.h"

namespace paddock::runtime {

std::string Runtime::PathParam(HTTPServerRequest& req) {
  std::string raw = Query(req, "path");
  if (raw.empty()) BadRequest("query parameter 'path' is required");
  Confined c = roots_.Resolve(raw);
  if (!c.error.empty()) BadRequest(c.error);
  return c.path;
}

Object Runtime::StatObject(const std::string& path, const struct stat& st) {
  Object o;
  o.set("path", path);
  o.set("type", S_ISDIR(st.st_mode)   ? "directory"
                : S_ISREG(st.st_mode) ? "file"
                : S_ISLNK(st.st_mode) ? "symlink"
                                      : "other");
  o.set("size", static_cast<std::int64_t>(st.st_size));
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  o.set("mode", std::string(mode));
  o.set("mtime_ms", static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000);
  return o;
}

void Runtime::GetFile(HTTPServerRequest& req, HTTPServerResponse& resp) {
  std::string path = PathParam(req);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) Fail(HTTPResponse::HTTP_NOT_FOUND, "no file '" + path + "'");
    BadRequest("cannot open '" + path + "': " + strerror(errno));
  }
  struct stat st {};
  fstat(fd, &st);
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    BadRequest("'" + path + "' is not a regular file");
  }
  resp.setStatus(HTTPResponse::HTTP_OK);
  resp.setContentType("application/octet-stream");
  resp.setContentLength64(st.st_size);
  std::ostream& out = resp.send();
  char buf[64 * 1024];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.write(buf, n);
  close(fd);
}

void Runtime::PutFile(HTTPServerRequest& req, HTTPServerResponse& resp) {
  std::string path = PathParam(req);
  if (req.getContentLength64() > options_.max_file_bytes) {
    Fail(HTTPResponse::HTTP_REQUESTENTITYTOOLARGE,
         "file is larger than the limit of " + std::to_string(options_.max_file_bytes) + " bytes");
  }
  mode_t mode = 0644;
  if (std::string m = Query(req, "mode"); !m.empty()) {
    char* end = nullptr;
    long v = std::strtol(m.c_str(), &end, 8);
    if (*end != '\0' || v < 0 || v > 07777) BadRequest("'mode' must be octal, like 0644");
    mode = static_cast<mode_t>(v);
  }
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) BadRequest("cannot create the parent of '" + path + "': " + ec.message());
  if (fs::is_directory(path, ec)) BadRequest("'" + path + "' is a directory");
  // Written to a temporary name and renamed, so a reader never sees half a file.
  std::string tmp = path + ".paddock-tmp-" + std::to_string(getpid()) + "-" +
                    std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) BadRequest("cannot write '" + path + "': " + strerror(errno));
  std::int64_t total = 0;
  char buf[64 * 1024];
  std::string error;
  bool too_large = false;
  std::istream& in = req.stream();
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    total += in.gcount();
    if (total > options_.max_file_bytes) {
      too_large = true;
      error = "file is larger than the limit";
      break;
    }
    if (write(fd, buf, static_cast<size_t>(in.gcount())) != in.gcount()) {
      error = std::string("write: ") + strerror(errno);
      break;
    }
  }
  if (error.empty() && fchmod(fd, mode) != 0) error = strerror(errno);
  close(fd);
  if (error.empty() && rename(tmp.c_str(), path.c_str()) != 0) error = strerror(errno);
  if (!error.empty()) {
    unlink(tmp.c_str());
    if (too_large) Fail(HTTPResponse::HTTP_REQUESTENTITYTOOLARGE, error);
    Fail(HTTPResponse::HTTP_INSUFFICIENT_STORAGE, "cannot write '" + path + "': " + error);
  }
  Object o;
  o.set("path", path);
  o.set("size", total);
  SendJson(resp, HTTPResponse::HTTP_OK, o);
}

void Runtime::RemoveFile(HTTPServerRequest& req, HTTPServerResponse& resp) {
  std::string path = PathParam(req);
  for (const auto& root : roots_.list()) {
    if (path == root) BadRequest("refusing to remove the root '" + path + "'");
  }
  std::error_code ec;
  auto st = fs::symlink_status(path, ec);
  if (!fs::exists(st)) Fail(HTTPResponse::HTTP_NOT_FOUND, "no file '" + path + "'");
  if (fs::is_directory(st) && Query(req, "recursive") != "true" && !fs::is_empty(path, ec)) {
    BadRequest("'" + path + "' is a non-empty directory; pass recursive=true");
  }
  fs::remove_all(path, ec);
  if (ec) BadRequest("cannot remove '" + path + "': " + ec.message());
  resp.setStatus(HTTPResponse::HTTP_NO_CONTENT);
  resp.setContentLength(0);
  resp.send();
}

void Runtime::StatFile(HTTPServerRequest& req, HTTPServerResponse& resp) {
  std::string path = PathParam(req);
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) Fail(HTTPResponse::HTTP_NOT_FOUND, "no file '" + path + "'");
  SendJson(resp, HTTPResponse::HTTP_OK, StatObject(path, st));
}

void Runtime::ListFiles(HTTPServerRequest& req, HTTPServerResponse& resp) {
  std::string path = PathParam(req);
  std::error_code ec;
  if (!fs::exists(path, ec)) Fail(HTTPResponse::HTTP_NOT_FOUND, "no directory '" + path + "'");
  if (!fs::is_directory(path, ec)) BadRequest("'" + path + "' is not a directory");
  Array entries;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    struct stat st {};
    if (lstat(e.path().c_str(), &st) != 0) continue;
    Object o = StatObject(e.path().string(), st);
    o.set("name", e.path().filename().string());
    entries.add(o);
  }
  Object o;
  o.set("path", path);
  o.set("entries", entries);
  SendJson(resp, HTTPResponse::HTTP_OK, o);
}

}  // namespace paddock::runtime
