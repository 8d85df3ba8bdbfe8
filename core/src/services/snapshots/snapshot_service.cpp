#include "services/snapshots/snapshot_service.h"

#include <algorithm>
#include <chrono>

#include "metrics/metrics.h"
#include "paddock/json.h"
#include "services/events/event_service.h"
#include "util/digest.h"
#include "util/log.h"

namespace paddock {
namespace {

bool Under(const std::string& path, const std::string& dir) {
  return path == dir || path.rfind(dir + "/", 0) == 0;
}

}  // namespace

SnapshotService::SnapshotService(SnapshotStore& store, EventService& events, Metrics& metrics,
                                 SnapshotSettings settings)
    : store_(store), events_(events), metrics_(metrics), settings_(settings) {}

Result<SnapshotInfo> SnapshotService::Take(const RuntimeClient& runtime, const std::string& session_id,
                                           const std::vector<std::string>& native, const RunLease* fence) {
  const auto started = std::chrono::steady_clock::now();
  // Native paths inside the workspace travel with it.
  std::vector<std::string> outside;
  for (const std::string& p : native) {
    if (!Under(p, kSandboxWorkspace) && std::find(outside.begin(), outside.end(), p) == outside.end())
      outside.push_back(p);
  }
  SnapshotInfo info;
  info.session_id = session_id;
  info.run_id = fence ? fence->run_id : "";
  info.gzip = settings_.compress;
  info.paths = {kSandboxWorkspace};
  info.paths.insert(info.paths.end(), outside.begin(), outside.end());
  info.workspace = info.native = true;
  Result<std::string> archive = runtime.Archive(info.paths, settings_.compress, settings_.max_bytes);
  if (!archive.ok() && archive.status().code() == StatusCode::kResourceExhausted) {
    info.workspace = false;
    info.paths = outside;
    info.omitted = "the workspace: the snapshot would be over [snapshots] max_size (" +
                   std::to_string(settings_.max_bytes) + " bytes); only the native state was kept";
    archive = outside.empty() ? Result<std::string>(std::string())
                              : runtime.Archive(outside, settings_.compress, settings_.max_bytes);
    if (!archive.ok() && archive.status().code() == StatusCode::kResourceExhausted) {
      info.native = false;
      info.paths.clear();
      info.omitted =
          "the workspace and the native state: even the native state alone is over [snapshots] "
          "max_size (" +
          std::to_string(settings_.max_bytes) + " bytes)";
      archive = std::string();
    }
  }
  if (!archive.ok()) {
    metrics_.SnapshotOp("snapshot", "error", SecondsSince(started), 0);
    return archive.status().Annotate("archiving the session's workspace and native state");
  }
  info.sha256 = Sha256Hex(*archive);
  Result<SnapshotInfo> stored = store_.PutSnapshot(info, *archive, settings_.keep, fence);
  if (!stored.ok()) {
    metrics_.SnapshotOp("snapshot", "error", SecondsSince(started), 0);
    return stored.status().Annotate("storing the snapshot");
  }
  const double seconds = SecondsSince(started);
  metrics_.SnapshotOp("snapshot", info.omitted.empty() ? "ok" : "partial", seconds, stored->size_bytes);
  if (!info.omitted.empty()) LogWarn("session " + session_id + ": snapshot left out " + info.omitted);
  (void)events_.Append(
      session_id, info.run_id,
      event::SnapshotTaken(*stored, info.paths, info.workspace, info.native, seconds * 1000, info.omitted),
      fence ? fence->generation : 0);
  return stored;
}

Result<std::optional<SnapshotInfo>> SnapshotService::RestoreLatest(
    const RuntimeClient& runtime, const std::string& session_id, const std::string& sandbox_id,
    const std::vector<std::string>* empty_paths) {
  PADDOCK_ASSIGN_OR_RETURN(std::optional<SnapshotInfo> latest, store_.LatestSnapshot(session_id));
  if (!latest && empty_paths) {
    // No snapshot yet: the session started empty. Two zero blocks are an empty tar.
    std::vector<std::string> paths = {kSandboxWorkspace};
    for (const std::string& p : *empty_paths) {
      if (!Under(p, kSandboxWorkspace)) paths.push_back(p);
    }
    PADDOCK_RETURN_IF_ERROR(
        runtime.Restore(std::string(1024, '\0'), paths).Annotate("emptying the session's paths"));
    (void)events_.Append(session_id, "", event::SnapshotRestored(0, 0, sandbox_id, paths, 0));
    return latest;
  }
  if (!latest || latest->paths.empty()) return latest;
  const auto started = std::chrono::steady_clock::now();
  Result<std::string> data = store_.ReadSnapshot(session_id, latest->version);
  Status restored = data.status();
  if (restored.ok() && Sha256Hex(*data) != latest->sha256) {
    restored = Status::Internal("snapshot " + std::to_string(latest->version) +
                                " does not match its digest; it was not restored");
  }
  if (restored.ok()) restored = runtime.Restore(*data, latest->paths);
  const double seconds = SecondsSince(started);
  if (!restored.ok()) {
    metrics_.SnapshotOp("restore", "error", seconds, 0);
    return restored.Annotate("restoring snapshot " + std::to_string(latest->version) + " of session " +
                             session_id);
  }
  metrics_.SnapshotOp("restore", "ok", seconds, latest->size_bytes);
  (void)events_.Append(session_id, "",
                       event::SnapshotRestored(latest->version, latest->size_bytes, sandbox_id, latest->paths,
                                               seconds * 1000));
  return latest;
}

}  // namespace paddock
