// Tar archives of paths inside the sandbox, and their restore (libarchive).
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "paths.h"

namespace paddock::runtime {

// Writes a tar (gzip-compressed when `gzip`) of `paths` to `out`. Entry names are the absolute
// paths without the leading '/'. Symlinks are stored as links; absent paths are skipped.
// Returns "" or an error; with max_bytes > 0, stops with *too_large once the archive would
// grow past it.
std::string WriteArchive(const Roots& roots, const std::vector<std::string>& paths, bool gzip,
                         std::int64_t max_bytes, std::ostream& out, int* entries, bool* too_large);

// Extracts a tar (optionally compressed) read from `in` under "/". Entries whose target is
// outside the allowed roots, absolute or with '..' are refused: nothing further is extracted
// and the error names the entry. Returns "" or an error.
std::string ExtractArchive(const Roots& roots, std::istream& in, int* entries);

}  // namespace paddock::runtime
