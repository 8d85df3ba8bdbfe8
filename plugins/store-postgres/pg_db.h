// A thin layer over libpq: connections with prepared statements, a bounded pool that fails fast
// while the server is unreachable, transactions, and errors as Status.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "paddock/status.h"

// Milliseconds since the epoch on the database's clock: every process agrees on lease times.
#define NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"

namespace paddock::plugins::store_postgres {

// A statement parameter in text form (binary for Arg::Bytes); nullopt is SQL NULL.
struct Arg {
  std::optional<std::string> value;
  bool binary = false;
  // Raw bytes for a BYTEA parameter, sent in binary form.
  static Arg Bytes(std::string_view data) {
    Arg a(data);
    a.binary = true;
    return a;
  }
  Arg(std::string_view s) : value(std::string(s)) {}  // NOLINT: implicit on purpose
  Arg(const std::string& s) : value(s) {}             // NOLINT
  Arg(const char* s) : value(std::string(s)) {}       // NOLINT
  Arg(std::int64_t v) : value(std::to_string(v)) {}   // NOLINT
  Arg(int v) : value(std::to_string(v)) {}            // NOLINT
  Arg(bool v) : value(v ? "t" : "f") {}               // NOLINT
  Arg(std::nullopt_t) {}                              // NOLINT
  Arg(const std::optional<std::int64_t>& v) {         // NOLINT
    if (v) value = std::to_string(*v);
  }
};

class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r, &PQclear) {}
  int rows() const { return PQntuples(r_.get()); }
  std::string Text(int row, int col) const { return PQgetvalue(r_.get(), row, col); }
  std::int64_t Int(int row, int col) const {
    return std::strtoll(PQgetvalue(r_.get(), row, col), nullptr, 10);
  }
  bool Bool(int row, int col) const { return PQgetvalue(r_.get(), row, col)[0] == 't'; }
  bool IsNull(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  // A column of a result asked for in binary form (Query's binary_result): its raw bytes.
  std::string Bytes(int row, int col) const {
    return std::string(PQgetvalue(r_.get(), row, col), static_cast<size_t>(PQgetlength(r_.get(), row, col)));
  }
  // Rows changed by an INSERT/UPDATE/DELETE.
  std::int64_t affected() const { return std::strtoll(PQcmdTuples(r_.get()), nullptr, 10); }
  PGresult* raw() const { return r_.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_;
};

// Maps a failed result to a Status: connection loss, shutdown, timeouts and conflicts that a
// retry can fix -> kUnavailable; unique violation -> kAlreadyExists; foreign key violation ->
// kFailedPrecondition; everything else -> kInternal.
Status PgStatus(PGconn* conn, const PGresult* result, std::string_view what);

class PgConnection {
 public:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs `sql` ($1, $2, ... placeholders) as a prepared statement (prepared once per
  // connection) with `args`.
  // With binary_result, every column comes back in binary form (read BYTEA with Bytes()).
  Result<PgResult> Query(const std::string& sql, const std::vector<Arg>& args = {},
                         bool binary_result = false);
  // Runs one or more statements without parameters (BEGIN, COMMIT, a migration file).
  Status Exec(const std::string& sql);
  bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }
  PGconn* raw() { return conn_; }

 private:
  PGconn* conn_;
  std::map<std::string, std::string, std::less<>> prepared_;  // sql -> statement name
};

struct PoolOptions {
  std::string conninfo;  // as the user gave it: a URL or key=value pairs
  std::string schema;
  int size = 8;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds statement_timeout{30000};
  std::chrono::milliseconds acquire_timeout{10000};
  std::chrono::milliseconds notify_window{1};  // NotifyBatcher's window; 0: one NOTIFY per append
};

// Opens a connection whose search_path is the store's schema. kUnavailable when it cannot.
Result<std::unique_ptr<PgConnection>> Connect(const PoolOptions& options);

class PgPool;

// A connection borrowed from the pool; returned (or, when broken, dropped) on destruction.
class Borrowed {
 public:
  Borrowed(PgPool& pool, std::unique_ptr<PgConnection> conn) : pool_(&pool), conn_(std::move(conn)) {}
  Borrowed(Borrowed&& other) noexcept : pool_(other.pool_), conn_(std::move(other.conn_)) {}
  ~Borrowed();
  PgConnection* operator->() { return conn_.get(); }
  PgConnection& operator*() { return *conn_; }

 private:
  PgPool* pool_;
  std::unique_ptr<PgConnection> conn_;
};

class PgPool {
 public:
  explicit PgPool(PoolOptions options) : options_(std::move(options)) {}

  // A connection, opening one when none is idle and the pool is not full; waits for one to be
  // returned otherwise. While the server was unreachable in the last second it fails at once
  // (kUnavailable) instead of making every caller wait for a connect timeout.
  Result<Borrowed> Acquire();
  void Return(std::unique_ptr<PgConnection> conn);
  // Closes idle connections (at Stop, or after the server restarted).
  void Clear();
  const PoolOptions& options() const { return options_; }
  // The last connection failure, "" when the last attempt worked.
  std::string last_error() const;

 private:
  PoolOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConnection>> idle_;
  int open_ = 0;  // connections handed out or idle
  std::chrono::steady_clock::time_point down_until_{};
  std::string last_error_;
};

// BEGIN ... COMMIT on a borrowed connection, rolled back on destruction unless committed.
class PgTransaction {
 public:
  explicit PgTransaction(PgConnection& conn) : conn_(conn) {}
  ~PgTransaction();
  Status Begin();
  Status Commit();

 private:
  PgConnection& conn_;
  bool open_ = false;
};

// kInvalidArgument unless 1 <= limit <= 1000.
inline Status CheckLimit(int limit) {
  if (limit < 1 || limit > 1000) return Status::InvalidArgument("limit must be between 1 and 1000");
  return Status::Ok();
}

}  // namespace paddock::plugins::store_postgres
