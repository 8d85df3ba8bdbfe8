#include "paths.h"

#include <filesystem>

namespace paddock::runtime {
namespace {

namespace fs = std::filesystem;

bool Within(const std::string& path, const std::string& root) {
  if (root == "/") return true;
  return path == root ||
         (path.size() > root.size() && path.compare(0, root.size(), root) == 0 && path[root.size()] == '/');
}

// The path with symlinks of its longest existing prefix resolved; the rest appended as is.
std::string Resolved(const fs::path& path) {
  fs::path existing = path;
  fs::path rest;
  std::error_code ec;
  while (!existing.empty() && existing != existing.root_path() &&
         !fs::exists(fs::symlink_status(existing, ec))) {
    rest = existing.filename() / rest;
    existing = existing.parent_path();
  }
  fs::path real = fs::canonical(existing, ec);
  if (ec) return {};
  // A dangling symlink as the last existing component: canonical() failed above, or it points
  // nowhere; treat it by its target's directory.
  return (rest.empty() ? real : real / rest).lexically_normal().string();
}

}  // namespace

Roots::Roots(std::vector<std::string> roots) {
  for (auto& r : roots) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(r, ec);
    roots_.push_back(ec ? fs::path(r).lexically_normal().string() : canonical.string());
  }
}

Confined Roots::Resolve(const std::string& raw) const {
  if (raw.empty()) return {"", "path is empty"};
  if (raw.size() > 4096) return {"", "path is longer than 4096 bytes"};
  if (raw.find('\0') != std::string::npos) return {"", "path contains a NUL byte"};
  fs::path p(raw);
  for (const auto& part : p) {
    if (part == "..") return {"", "path '" + raw + "' contains '..'"};
  }
  if (p.is_relative()) {
    if (roots_.empty()) return {"", "no roots are allowed"};
    p = fs::path(roots_.front()) / p;
  }
  std::string normal = p.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  bool lexical = false;
  for (const auto& root : roots_) lexical = lexical || Within(normal, root);
  if (!lexical) return {"", "path '" + raw + "' is outside the allowed roots"};
  if (!Inside(normal)) return {"", "path '" + raw + "' leads outside the allowed roots through a symlink"};
  return {normal, ""};
}

bool Roots::Inside(const std::string& path) const {
  std::string real = Resolved(fs::path(path));
  if (real.empty()) return false;
  for (const auto& root : roots_) {
    if (Within(real, root)) return true;
  }
  return false;
}

}  // namespace paddock::runtime
