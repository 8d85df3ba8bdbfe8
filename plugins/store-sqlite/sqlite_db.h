// A thin RAII layer over the sqlite3 C API: one connection, prepared statements, and
// errors as Status.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock::plugins::store_sqlite {

// Maps a sqlite result code to a Status: BUSY/LOCKED/IOERR -> kUnavailable, CONSTRAINT ->
// kAlreadyExists or kFailedPrecondition, everything else -> kInternal.
Status SqliteStatus(int rc, sqlite3* db, std::string_view what);

// Prepared statements kept for reuse, by their SQL. Not thread-safe: its owner serialises every
// use (the store's mutex). Clear() before the connection closes.
class StatementCache {
 public:
  StatementCache() = default;
  ~StatementCache() { Clear(); }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  // A statement prepared earlier for `sql`, reset; nullptr when there is none.
  sqlite3_stmt* Take(const std::string& sql);
  // Keeps `stmt` for the next Take (or finalizes it when one is kept already or the cache is full).
  void Give(std::string sql, sqlite3_stmt* stmt);
  void Clear();

 private:
  static constexpr size_t kMax = 256;
  std::unordered_map<std::string, sqlite3_stmt*> free_;
};

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  // Reuses a statement from `cache` (and gives it back when done) instead of preparing anew.
  Statement(StatementCache& cache, sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  const Status& prepare_status() const { return prepare_status_; }

  // Binds by 1-based position.
  Statement& Bind(int i, std::string_view v);
  Statement& Bind(int i, std::int64_t v);
  Statement& BindNull(int i);
  // Binds bytes as a BLOB; `v` must stay valid until the statement has run.
  Statement& BindBlob(int i, std::string_view v);

  // Steps once: true when a row is available, false when done; error in `status`.
  bool Step(Status& status);
  // Steps once, expecting a row: Ok when one is available, the error when stepping failed,
  // otherwise kNotFound with `not_found` as the message.
  Status StepRow(std::string_view not_found);
  // Steps to completion, expecting no rows.
  Status Run();

  std::string Text(int col) const;
  std::int64_t Int(int col) const;
  bool IsNull(int col) const;
  std::string Blob(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  Status prepare_status_;
  StatementCache* cache_ = nullptr;
  std::string sql_;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const Status& begin_status() const { return begin_status_; }
  Status Commit();

 private:
  sqlite3* db_;
  bool open_ = false;
  Status begin_status_;
};

Status Exec(sqlite3* db, const std::string& sql);

// Usage columns (model, input_tokens, output_tokens, cache_read_tokens, cost_microusd) of the
// current row, from `col`.
Usage ReadUsage(const Statement& st, int col);

// kInvalidArgument unless 1 <= limit <= 1000.
inline Status CheckLimit(int limit) {
  if (limit < 1 || limit > 1000) return Status::InvalidArgument("limit must be between 1 and 1000");
  return Status::Ok();
}

}  // namespace paddock::plugins::store_sqlite
