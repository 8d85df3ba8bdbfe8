#include "runtime.h"

namespace paddock::runtime {

void Runtime::Archive(HTTPServerRequest& req, HTTPServerResponse& resp) {
  Object::Ptr body = ReadJson(req);
  std::vector<std::string> paths;
  auto arr = body->getArray("paths");
  if (!arr || arr->size() == 0) BadRequest("'paths' must be a non-empty array of strings");
  for (const auto& v : *arr) {
    if (!v.isString()) BadRequest("'paths' must be a non-empty array of strings");
    Confined c = roots_.Resolve(v.convert<std::string>());
    if (!c.error.empty()) BadRequest(c.error);
    paths.push_back(c.path);
  }
  bool gzip = body->has("gzip") && body->get("gzip").isBoolean() && body->getValue<bool>("gzip");
  std::int64_t max_bytes = 0;
  if (body->has("max_bytes")) {
    if (!body->get("max_bytes").isInteger() || body->getValue<std::int64_t>("max_bytes") < 0)
      BadRequest("'max_bytes' must be a non-negative integer");
    max_bytes = body->getValue<std::int64_t>("max_bytes");
  }
  // Built into a spool file first, so that an error can still become a 4xx/5xx.
  std::string spool = "/tmp/.paddock-archive-" + std::to_string(++next_spool_);
  int entries = 0;
  bool too_large = false;
  std::string error;
  {
    std::ofstream out(spool, std::ios::binary | std::ios::trunc);
    error = WriteArchive(roots_, paths, gzip, max_bytes, out, &entries, &too_large);
    if (error.empty() && !out.good()) error = "cannot write the archive spool (is /tmp full?)";
  }
  if (!error.empty()) {
    unlink(spool.c_str());
    Fail(too_large ? HTTPResponse::HTTP_REQUESTENTITYTOOLARGE : HTTPResponse::HTTP_UNPROCESSABLE_ENTITY,
         error);
  }
  std::ifstream in(spool, std::ios::binary);
  unlink(spool.c_str());
  in.seekg(0, std::ios::end);
  std::streamsize size = in.tellg();
  in.seekg(0);
  resp.setStatus(HTTPResponse::HTTP_OK);
  resp.setContentType(gzip ? "application/gzip" : "application/x-tar");
  resp.set("X-Paddock-Entries", std::to_string(entries));
  resp.setContentLength64(size);
  Poco::StreamCopier::copyStream(in, resp.send());
}

void Runtime::Restore(HTTPServerRequest& req, HTTPServerResponse& resp) {
  if (req.getContentLength64() > options_.max_restore_bytes) {
    Fail(HTTPResponse::HTTP_REQUESTENTITYTOOLARGE, "archive is larger than the restore limit");
  }
  // ?clean=<dir> (repeatable): empty these directories first, so that what they hold
  // afterwards is exactly what the archive holds (a snapshot restored over a used sandbox).
  std::vector<std::string> clean;
  Poco::URI uri(req.getURI());
  for (const auto& [k, v] : uri.getQueryParameters()) {
    if (k != "clean") BadRequest("unknown query parameter '" + k + "'");
    Confined c = roots_.Resolve(v);
    if (!c.error.empty()) BadRequest(c.error);
    clean.push_back(c.path);
  }
  for (const std::string& dir : clean) {
    std::error_code ec;
    if (!fs::is_directory(fs::symlink_status(dir, ec))) continue;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code rm;
      fs::remove_all(it->path(), rm);
      if (rm) Fail(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, it->path().string() + ": " + rm.message());
    }
    if (ec) Fail(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, dir + ": " + ec.message());
  }
  int entries = 0;
  std::string error = ExtractArchive(roots_, req.stream(), &entries);
  if (!error.empty()) BadRequest(error);
  Object o;
  o.set("entries", entries);
  SendJson(resp, HTTPResponse::HTTP_OK, o);
}

}  // namespace paddock::runtime
