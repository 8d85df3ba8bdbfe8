// Snapshots and purging of PostgresSessionStore: archives are kept in 4 MiB BYTEA chunks, sent
// and read in binary form.
#include "pg_session_store.h"

namespace paddock::plugins::store_postgres {
namespace {

using plugin::Guard;

constexpr char kSnapshotColumns[] =
    "session_id, version, run_id, size_bytes, sha256, gzip, paths, workspace, native, omitted, created_at";

SnapshotInfo ReadSnapshotRow(const PgResult& r, int i) {
  SnapshotInfo s;
  s.session_id = r.Text(i, 0);
  s.version = r.Int(i, 1);
  s.run_id = r.Text(i, 2);
  s.size_bytes = r.Int(i, 3);
  s.sha256 = r.Text(i, 4);
  s.gzip = r.Bool(i, 5);
  s.paths = SplitSnapshotPaths(r.Text(i, 6));
  s.workspace = r.Bool(i, 7);
  s.native = r.Bool(i, 8);
  s.omitted = r.Text(i, 9);
  s.created_at = r.Int(i, 10);
  return s;
}

}  // namespace

Result<std::vector<SnapshotInfo>> PostgresSessionStore::SnapshotsOn(PgConnection& conn,
                                                                    std::string_view session_id, int limit) {
  PADDOCK_ASSIGN_OR_RETURN(PgResult r, conn.Query(std::string("SELECT ") + kSnapshotColumns +
                                                      " FROM snapshots WHERE session_id = $1 "
                                                      "ORDER BY version DESC LIMIT $2",
                                                  {session_id, limit}));
  std::vector<SnapshotInfo> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(ReadSnapshotRow(r, i));
  return out;
}

Result<SnapshotInfo> PostgresSessionStore::PutSnapshot(const SnapshotInfo& info, std::string_view data,
                                                       int keep, const RunLease* fence) noexcept {
  return Guard([&]() -> Result<SnapshotInfo> {
    if (keep < 1) return Status::InvalidArgument("keep must be at least 1");
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    // The session row lock serialises writers of one session's versions.
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult session, conn->Query("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", {info.session_id}));
    if (session.rows() == 0) return Status::NotFound("session '" + info.session_id + "' does not exist");
    if (fence) {
      PADDOCK_ASSIGN_OR_RETURN(PgResult held,
                               conn->Query("SELECT 1 FROM runs WHERE id = $1 AND generation = $2 "
                                           "AND status = 'running' FOR SHARE",
                                           {fence->run_id, fence->generation}));
      if (held.rows() == 0) return LeaseRefusal(*conn, *fence);
    }
    SnapshotInfo stored = info;
    stored.size_bytes = static_cast<std::int64_t>(data.size());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult row,
        conn->Query(std::string("INSERT INTO snapshots (") + kSnapshotColumns +
                        ") SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, " NOW_MS
                        " FROM snapshots WHERE session_id = $1 RETURNING version, created_at",
                    {stored.session_id, stored.run_id, stored.size_bytes, stored.sha256, stored.gzip,
                     JoinSnapshotPaths(stored.paths), stored.workspace, stored.native, stored.omitted}));
    stored.version = row.Int(0, 0);
    stored.created_at = row.Int(0, 1);
    for (std::size_t off = 0, idx = 0; off < data.size(); off += kSnapshotChunkBytes, ++idx) {
      PADDOCK_RETURN_IF_ERROR(
          conn->Query("INSERT INTO snapshot_chunks (session_id, version, idx, data) VALUES ($1, $2, $3, $4)",
                      {stored.session_id, stored.version, static_cast<std::int64_t>(idx),
                       Arg::Bytes(data.substr(off, kSnapshotChunkBytes))})
              .status());
    }
    PADDOCK_RETURN_IF_ERROR(conn->Query("DELETE FROM snapshots WHERE session_id = $1 AND version <= $2",
                                        {stored.session_id, stored.version - keep})
                                .status());
    PADDOCK_RETURN_IF_ERROR(tx.Commit());
    return stored;
  });
}

Result<std::optional<SnapshotInfo>> PostgresSessionStore::LatestSnapshot(
    std::string_view session_id) noexcept {
  return Guard([&]() -> Result<std::optional<SnapshotInfo>> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PADDOCK_ASSIGN_OR_RETURN(std::vector<SnapshotInfo> latest, SnapshotsOn(*conn, session_id, 1));
    if (latest.empty()) return std::optional<SnapshotInfo>();
    return std::optional<SnapshotInfo>(std::move(latest.front()));
  });
}

Result<std::vector<SnapshotInfo>> PostgresSessionStore::ListSnapshots(std::string_view session_id) noexcept {
  return Guard([&]() -> Result<std::vector<SnapshotInfo>> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    return SnapshotsOn(*conn, session_id, 1000);
  });
}

Result<std::string> PostgresSessionStore::ReadSnapshot(std::string_view session_id,
                                                       std::int64_t version) noexcept {
  return Guard([&]() -> Result<std::string> {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    // One snapshot's rows, read in one repeatable view so a concurrent prune cannot cut it short.
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    PADDOCK_ASSIGN_OR_RETURN(
        PgResult meta, conn->Query("SELECT size_bytes FROM snapshots WHERE session_id = $1 AND version = $2 "
                                   "FOR SHARE",
                                   {session_id, version}));
    if (meta.rows() == 0) {
      return Status::NotFound("snapshot " + std::to_string(version) + " of session '" +
                              std::string(session_id) + "' does not exist");
    }
    const std::int64_t size = meta.Int(0, 0);
    std::string data;
    data.reserve(static_cast<std::size_t>(size));
    for (std::int64_t idx = 0; static_cast<std::int64_t>(data.size()) < size; ++idx) {
      PADDOCK_ASSIGN_OR_RETURN(
          PgResult chunk,
          conn->Query("SELECT data FROM snapshot_chunks WHERE session_id = $1 AND version = $2 AND idx = $3",
                      {session_id, version, idx}, /*binary_result=*/true));
      if (chunk.rows() == 0) break;
      data += chunk.Bytes(0, 0);
    }
    if (static_cast<std::int64_t>(data.size()) != size) {
      return Status::Internal("snapshot " + std::to_string(version) + " of session '" +
                              std::string(session_id) + "' is incomplete in the database");
    }
    PADDOCK_RETURN_IF_ERROR(tx.Commit());
    return data;
  });
}

Status PostgresSessionStore::DeleteSnapshots(std::string_view session_id) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    return conn->Query("DELETE FROM snapshots WHERE session_id = $1", {session_id}).status();
  });
}

Status PostgresSessionStore::PurgeSession(std::string_view id) noexcept {
  return Guard([&]() -> Status {
    PADDOCK_ASSIGN_OR_RETURN(Borrowed conn, pool_.Acquire());
    PgTransaction tx(*conn);
    PADDOCK_RETURN_IF_ERROR(tx.Begin());
    PADDOCK_ASSIGN_OR_RETURN(PgResult locked,
                             conn->Query("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", {id}));
    if (locked.rows() == 0) return Status::Ok();
    const std::string sid(id);
    PADDOCK_RETURN_IF_ERROR(
        conn->Query(
                "DELETE FROM idempotency_keys WHERE scope = $1 OR (scope = 'sessions' AND resource_id = $2)",
                {"messages:" + sid, sid})
            .status());
    for (const char* sql :
         {"DELETE FROM snapshots WHERE session_id = $1", "DELETE FROM events WHERE session_id = $1",
          "DELETE FROM runs WHERE session_id = $1", "DELETE FROM sessions WHERE id = $1"}) {
      PADDOCK_RETURN_IF_ERROR(conn->Query(sql, {sid}).status());
    }
    return tx.Commit();
  });
}

}  // namespace paddock::plugins::store_postgres
