// SnapshotStore: where the archives that bring a session back live. The store plugins keep
// them in the database; a blob-store plugin can implement the same interface later.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock {

// Thread safety: every method may be called concurrently, from any number of processes.
// Errors: kUnavailable when the backing storage cannot be reached (the call may be repeated);
// nothing is left half-written when a call fails.
class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;

  // Stores `data` as the session's next version and keeps only the newest `keep` (>= 1)
  // versions. With `fence` set, writes only while that run is running under that generation
  // (kAborted, writing nothing, when it has moved on), so a worker that lost its lease cannot
  // replace its successor's snapshot. Returns `info` with version and created_at set.
  // kNotFound when the session does not exist.
  [[nodiscard]] virtual Result<SnapshotInfo> PutSnapshot(const SnapshotInfo& info, std::string_view data,
                                                         int keep, const RunLease* fence) noexcept = 0;
  // The newest snapshot of the session, or nullopt when it has none.
  [[nodiscard]] virtual Result<std::optional<SnapshotInfo>> LatestSnapshot(
      std::string_view session_id) noexcept = 0;
  // The session's snapshots, newest first.
  [[nodiscard]] virtual Result<std::vector<SnapshotInfo>> ListSnapshots(
      std::string_view session_id) noexcept = 0;
  // The archive of one version. kNotFound when it was pruned or never existed.
  [[nodiscard]] virtual Result<std::string> ReadSnapshot(std::string_view session_id,
                                                         std::int64_t version) noexcept = 0;
  // Removes every snapshot of the session. Idempotent.
  [[nodiscard]] virtual Status DeleteSnapshots(std::string_view session_id) noexcept = 0;
};

// For stores that keep archives in rows: the size of one chunk, and `paths` as one text column.
inline constexpr std::size_t kSnapshotChunkBytes = std::size_t{4} << 20;

inline std::string JoinSnapshotPaths(const std::vector<std::string>& paths) {
  std::string out;
  for (const std::string& p : paths) out += (out.empty() ? "" : "\n") + p;
  return out;
}

inline std::vector<std::string> SplitSnapshotPaths(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    out.emplace_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace paddock
