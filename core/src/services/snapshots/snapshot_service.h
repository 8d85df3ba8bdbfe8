// SnapshotService: takes a session's snapshot (its workspace and the harness's native resume
// state, archived by the sandbox's runtime) after every run, and restores the newest one into a
// sandbox that needs the session's state back.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "paddock/snapshot_store.h"
#include "runtime/runtime_client.h"

namespace paddock {

class EventService;
class Metrics;

// Thread safety: every method may be called concurrently (for different sessions).
class SnapshotService {
 public:
  SnapshotService(SnapshotStore& store, EventService& events, Metrics& metrics, SnapshotSettings settings);

  bool enabled() const { return settings_.enabled; }

  // Archives kSandboxWorkspace and `native` through `runtime` and stores the archive as the
  // session's next snapshot (older versions beyond [snapshots] keep are pruned). Over max_size,
  // only the native state is kept; if even that is over, nothing is. Appends "snapshot.taken",
  // or "snapshot.partial" saying what was left out — for run `fence->run_id`, fenced by its
  // lease (kAborted once it moved on) when `fence` is set.
  Result<SnapshotInfo> Take(const RuntimeClient& runtime, const std::string& session_id,
                            const std::vector<std::string>& native, const RunLease* fence);

  // Restores the session's newest snapshot: every path it holds is emptied and refilled from
  // the archive (checked against its digest first), so the sandbox holds exactly what it held
  // when the snapshot was taken. nullopt when the session has no snapshot; then, with
  // `empty_paths`, the workspace and those paths are emptied (the state a session starts
  // from). Appends "snapshot.restored" (version 0: emptied).
  Result<std::optional<SnapshotInfo>> RestoreLatest(const RuntimeClient& runtime,
                                                    const std::string& session_id,
                                                    const std::string& sandbox_id,
                                                    const std::vector<std::string>* empty_paths = nullptr);

  SnapshotStore& store() { return store_; }

 private:
  SnapshotStore& store_;
  EventService& events_;
  Metrics& metrics_;
  SnapshotSettings settings_;
};

}  // namespace paddock
