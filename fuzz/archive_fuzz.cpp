// The runtime's tar restore on any bytes: refused, or extracted inside the root; nothing lands
// beside it. scripts/fuzz.sh runs this under bwrap with / read-only and a private /tmp, so an
// entry that tried to reach anywhere else fails with EROFS, which counts as an escape too.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>

#include "archive.h"

namespace fs = std::filesystem;

namespace {
// The seeds in fuzz/corpus/archive name entries under this root.
const std::string kBase = "/tmp/pdkfuzz";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
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
  for (const auto& e : fs::directory_iterator("/tmp")) {
    if (e.path() != kBase) __builtin_trap();  // anywhere else in the private /tmp
  }
  return 0;
}
