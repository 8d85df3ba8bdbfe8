#include "sqlite_db.h"

namespace paddock::plugins::store_sqlite {

namespace {

// The status for a failed call, `msg` saying what failed and sqlite's words for why.
Status StatusFor(int rc, std::string msg) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      return Status::Unavailable(std::move(msg));
    case SQLITE_FULL:
      // The transaction rolled back: what was acknowledged before stays, nothing half-written.
      return Status::NoSpace(
          "the disk under the data directory is full (nothing was written; free "
          "space there and retry): " +
          msg);
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        return Status::AlreadyExists(std::move(msg));
      }
      return Status::FailedPrecondition(std::move(msg));
    default:
      return Status::Internal(std::move(msg));
  }
}

}  // namespace

Status SqliteStatus(int rc, sqlite3* db, std::string_view what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return Status::Ok();
  return StatusFor(rc, std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
}

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  prepare_status_ = SqliteStatus(rc, db, "prepare");
}

Statement::Statement(StatementCache& cache, sqlite3* db, std::string_view sql)
    : db_(db), cache_(&cache), sql_(sql) {
  stmt_ = cache.Take(sql_);
  if (stmt_) return;
  int rc = sqlite3_prepare_v3(db, sql_.data(), static_cast<int>(sql_.size()), SQLITE_PREPARE_PERSISTENT,
                              &stmt_, nullptr);
  prepare_status_ = SqliteStatus(rc, db, "prepare");
}

Statement::~Statement() {
  if (cache_ && stmt_ && prepare_status_.ok()) {
    cache_->Give(std::move(sql_), stmt_);
  } else {
    sqlite3_finalize(stmt_);
  }
}

sqlite3_stmt* StatementCache::Take(const std::string& sql) {
  auto it = free_.find(sql);
  if (it == free_.end()) return nullptr;
  sqlite3_stmt* stmt = it->second;
  free_.erase(it);
  return stmt;
}

void StatementCache::Give(std::string sql, sqlite3_stmt* stmt) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  if (free_.size() >= kMax || free_.count(sql)) {
    sqlite3_finalize(stmt);
    return;
  }
  free_.emplace(std::move(sql), stmt);
}

void StatementCache::Clear() {
  for (auto& [sql, stmt] : free_) sqlite3_finalize(stmt);
  free_.clear();
}

Statement& Statement::Bind(int i, std::string_view v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::Bind(int i, std::int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Statement& Statement::BindBlob(int i, std::string_view v) {
  sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_STATIC);
  return *this;
}

std::string Statement::Blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  if (!p) return {};
  return std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

Statement& Statement::BindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

bool Statement::Step(Status& status) {
  if (!prepare_status_.ok()) {
    status = prepare_status_;
    return false;
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  status = rc == SQLITE_DONE ? Status::Ok() : SqliteStatus(sqlite3_extended_errcode(db_), db_, "step");
  return false;
}

Status Statement::StepRow(std::string_view not_found) {
  Status status;
  if (Step(status)) return Status::Ok();
  if (!status.ok()) return status;
  return Status::NotFound(std::string(not_found));
}

Status Statement::Run() {
  Status status;
  while (Step(status)) {
  }
  return status;
}

std::string Statement::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::int64_t Statement::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

bool Statement::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

Usage ReadUsage(const Statement& st, int col) {
  Usage u;
  u.model = st.Text(col);
  u.input_tokens = st.Int(col + 1);
  u.output_tokens = st.Int(col + 2);
  u.cache_read_tokens = st.Int(col + 3);
  if (!st.IsNull(col + 4)) u.cost_usd = static_cast<double>(st.Int(col + 4)) / 1e6;
  return u;
}

Status Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string msg = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  return StatusFor(rc, std::move(msg));
}

Transaction::Transaction(sqlite3* db) : db_(db) {
  begin_status_ = Exec(db, "BEGIN IMMEDIATE");
  open_ = begin_status_.ok();
}

Transaction::~Transaction() {
  if (open_) (void)Exec(db_, "ROLLBACK");
}

Status Transaction::Commit() {
  Status s = Exec(db_, "COMMIT");
  if (s.ok()) open_ = false;
  return s;
}

}  // namespace paddock::plugins::store_sqlite
