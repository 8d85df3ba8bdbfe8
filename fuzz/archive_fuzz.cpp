// The runtime's tar restore on any bytes: refused, or extracted inside the root; nothing lands
// beside it. scripts/fuzz.sh runs this under bwrap with / read-only and a private /tmp, so an
// entry that tried to reach anywhere else fails with EROFS, which counts as an escape too.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>

#include "archive.h"

namespace fs = std::filesystem;

namespace {
// The seeds in fuzz/corpus/archive name entries under this root.
const std::string kBase = "/tmp/pdkfuzz";

std::set<std::string> TmpEntries() {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator("/tmp")) {
    if (e.path() != kBase) out.insert(e.path().string());
  }
  return out;
}
// What /tmp held before the first input.
const std::set<std::string>& Initial() {
  static const std::set<std::string> initial = TmpEntries();
  return initial;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)Initial();
  std::error_code ec;
  fs::remove_all(kBase, ec);
  fs::create_directories(kBase + "/root");
  fs::create_directories(kBase + "/beside");
  paddock::runtime::Roots roots({kBase + "/root"});
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  int entries = 0;
  const std::string error = paddock::runtime::ExtractArchive(roots, in, &entries);
  if (error.find("Read-only file system") != std::string::npos) __builtin_trap();  // tried outside
  for (const auto& e : fs::directory_iterator(kBase)) {
    const std::string name = e.path().filename().string();
    if (name != "root" && name != "beside") __builtin_trap();  // a file next to the root
  }
  if (!fs::is_empty(kBase + "/beside")) __builtin_trap();
  // Anywhere else in the private /tmp (which holds what scripts/fuzz.sh bound into it).
  if (TmpEntries() != Initial()) __builtin_trap();
  return 0;
}
