// Snapshots and purging of SqliteSessionStore: archives are kept in 4 MiB chunks, so that no
// row grows without bound.
#include "sqlite_db.h"
#include "sqlite_session_store.h"

namespace paddock::plugins::store_sqlite {
namespace {

using plugin::Guard;

constexpr char kSnapshotColumns[] =
    "session_id, version, run_id, size_bytes, sha256, gzip, paths, workspace, native, omitted, created_at";

SnapshotInfo ReadSnapshotRow(const Statement& st) {
  SnapshotInfo s;
  s.session_id = st.Text(0);
  s.version = st.Int(1);
  s.run_id = st.Text(2);
  s.size_bytes = st.Int(3);
  s.sha256 = st.Text(4);
  s.gzip = st.Int(5) != 0;
  s.paths = SplitSnapshotPaths(st.Text(6));
  s.workspace = st.Int(7) != 0;
  s.native = st.Int(8) != 0;
  s.omitted = st.Text(9);
  s.created_at = st.Int(10);
  return s;
}

}  // namespace

Result<std::vector<SnapshotInfo>> SqliteSessionStore::SnapshotsLocked(std::string_view session_id,
                                                                      int limit) {
  Statement st(db_, std::string("SELECT ") + kSnapshotColumns +
                        " FROM snapshots WHERE session_id = ? ORDER BY version DESC LIMIT ?");
  st.Bind(1, session_id).Bind(2, static_cast<std::int64_t>(limit));
  std::vector<SnapshotInfo> out;
  Status s;
  while (st.Step(s)) out.push_back(ReadSnapshotRow(st));
  PADDOCK_RETURN_IF_ERROR(s);
  return out;
}

Status SqliteSessionStore::DeleteSnapshotsLocked(std::string_view session_id, std::int64_t below_version) {
  Statement chunks(db_, "DELETE FROM snapshot_chunks WHERE session_id = ? AND version < ?");
  chunks.Bind(1, session_id).Bind(2, below_version);
  PADDOCK_RETURN_IF_ERROR(chunks.Run());
  Statement rows(db_, "DELETE FROM snapshots WHERE session_id = ? AND version < ?");
  rows.Bind(1, session_id).Bind(2, below_version);
  return rows.Run();
}

Result<SnapshotInfo> SqliteSessionStore::PutSnapshot(const SnapshotInfo& info, std::string_view data,
                                                     int keep, const RunLease* fence) noexcept {
  return Guard([&]() -> Result<SnapshotInfo> {
    if (keep < 1) return Status::InvalidArgument("keep must be at least 1");
    std::lock_guard lock(mu_);
    Transaction tx(db_);
    PADDOCK_RETURN_IF_ERROR(tx.begin_status());
    Statement session(db_, "SELECT 1 FROM sessions WHERE id = ?");
    session.Bind(1, info.session_id);
    PADDOCK_RETURN_IF_ERROR(session.StepRow("session '" + info.session_id + "' does not exist"));
    if (fence) PADDOCK_RETURN_IF_ERROR(CheckLeaseLocked(*fence).status());
    Statement next(db_, "SELECT COALESCE(MAX(version), 0) + 1 FROM snapshots WHERE session_id = ?");
    next.Bind(1, info.session_id);
    PADDOCK_RETURN_IF_ERROR(next.StepRow("no version"));
    SnapshotInfo stored = info;
    stored.version = next.Int(0);
    stored.size_bytes = static_cast<std::int64_t>(data.size());
    stored.created_at = NowMs();
    Statement row(db_, std::string("INSERT INTO snapshots (") + kSnapshotColumns +
                           ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    const std::string paths = JoinSnapshotPaths(stored.paths);
    row.Bind(1, stored.session_id).Bind(2, stored.version).Bind(3, stored.run_id).Bind(4, stored.size_bytes);
    row.Bind(5, stored.sha256).Bind(6, std::int64_t{stored.gzip}).Bind(7, paths);
    row.Bind(8, std::int64_t{stored.workspace}).Bind(9, std::int64_t{stored.native});
    row.Bind(10, stored.omitted).Bind(11, stored.created_at);
    PADDOCK_RETURN_IF_ERROR(row.Run());
    for (std::size_t off = 0, idx = 0; off < data.size(); off += kSnapshotChunkBytes, ++idx) {
      Statement chunk(db_,
                      "INSERT INTO snapshot_chunks (session_id, version, idx, data) VALUES (?, ?, ?, ?)");
      chunk.Bind(1, stored.session_id).Bind(2, stored.version).Bind(3, static_cast<std::int64_t>(idx));
      chunk.BindBlob(4, data.substr(off, kSnapshotChunkBytes));
      PADDOCK_RETURN_IF_ERROR(chunk.Run());
    }
    PADDOCK_RETURN_IF_ERROR(DeleteSnapshotsLocked(stored.session_id, stored.version - keep + 1));
    PADDOCK_RETURN_IF_ERROR(tx.Commit());
    return stored;
  });
}

Result<std::optional<SnapshotInfo>> SqliteSessionStore::LatestSnapshot(std::string_view session_id) noexcept {
  return Guard([&]() -> Result<std::optional<SnapshotInfo>> {
    std::lock_guard lock(mu_);
    PADDOCK_ASSIGN_OR_RETURN(std::vector<SnapshotInfo> latest, SnapshotsLocked(session_id, 1));
    if (latest.empty()) return std::optional<SnapshotInfo>();
    return std::optional<SnapshotInfo>(std::move(latest.front()));
  });
}

Result<std::vector<SnapshotInfo>> SqliteSessionStore::ListSnapshots(std::string_view session_id) noexcept {
  return Guard([&]() -> Result<std::vector<SnapshotInfo>> {
    std::lock_guard lock(mu_);
    return SnapshotsLocked(session_id, 1000);
  });
}

Result<std::string> SqliteSessionStore::ReadSnapshot(std::string_view session_id,
                                                     std::int64_t version) noexcept {
  return Guard([&]() -> Result<std::string> {
    std::lock_guard lock(mu_);
    Statement meta(db_, "SELECT size_bytes FROM snapshots WHERE session_id = ? AND version = ?");
    meta.Bind(1, session_id).Bind(2, version);
    PADDOCK_RETURN_IF_ERROR(meta.StepRow("snapshot " + std::to_string(version) + " of session '" +
                                         std::string(session_id) + "' does not exist"));
    std::string data;
    data.reserve(static_cast<std::size_t>(meta.Int(0)));
    Statement st(db_, "SELECT data FROM snapshot_chunks WHERE session_id = ? AND version = ? ORDER BY idx");
    st.Bind(1, session_id).Bind(2, version);
    Status s;
    while (st.Step(s)) data += st.Blob(0);
    PADDOCK_RETURN_IF_ERROR(s);
    if (static_cast<std::int64_t>(data.size()) != meta.Int(0)) {
      return Status::Internal("snapshot " + std::to_string(version) + " of session '" +
                              std::string(session_id) + "' is incomplete in the database");
    }
    return data;
  });
}

Status SqliteSessionStore::DeleteSnapshots(std::string_view session_id) noexcept {
  return Guard([&]() -> Status {
    std::lock_guard lock(mu_);
    Transaction tx(db_);
    PADDOCK_RETURN_IF_ERROR(tx.begin_status());
    PADDOCK_RETURN_IF_ERROR(DeleteSnapshotsLocked(session_id, INT64_MAX));
    return tx.Commit();
  });
}

Status SqliteSessionStore::PurgeSession(std::string_view id) noexcept {
  return Guard([&]() -> Status {
    std::lock_guard lock(mu_);
    Transaction tx(db_);
    PADDOCK_RETURN_IF_ERROR(tx.begin_status());
    PADDOCK_RETURN_IF_ERROR(DeleteSnapshotsLocked(id, INT64_MAX));
    const std::string sid(id);
    // Keys of the session's messages, and the key that created it.
    Statement keys(
        db_, "DELETE FROM idempotency_keys WHERE scope = ? OR (scope = 'sessions' AND resource_id = ?)");
    keys.Bind(1, "messages:" + sid).Bind(2, id);
    PADDOCK_RETURN_IF_ERROR(keys.Run());
    for (const char* sql : {"DELETE FROM events WHERE session_id = ?",
                            "DELETE FROM runs WHERE session_id = ?", "DELETE FROM sessions WHERE id = ?"}) {
      Statement st(db_, sql);
      st.Bind(1, id);
      PADDOCK_RETURN_IF_ERROR(st.Run());
    }
    return tx.Commit();
  });
}

}  // namespace paddock::plugins::store_sqlite
