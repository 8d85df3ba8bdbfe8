// Confinement of file paths to the runtime's allowed roots.
#pragma once

#include <string>
#include <vector>

namespace paddock::runtime {

// Result of resolving a client path: an absolute path inside a root, or a reason it was refused.
struct Confined {
  std::string path;   // absolute, lexically normal, inside a root
  std::string error;  // non-empty: refused (the client gets 400 with it)
};

class Roots {
 public:
  explicit Roots(std::vector<std::string> roots);

  // Resolves `path` (absolute, or relative to the first root). Refuses '..' components, paths
  // outside every root, and paths whose existing part resolves, through symlinks, outside the
  // root they are in. The final component may be a dangling name (for writes).
  Confined Resolve(const std::string& path) const;

  // True when `path` (absolute, lexically normal) lies inside a root after resolving symlinks
  // of its existing part.
  bool Inside(const std::string& path) const;

  const std::vector<std::string>& list() const { return roots_; }

 private:
  std::vector<std::string> roots_;
};

}  // namespace paddock::runtime
