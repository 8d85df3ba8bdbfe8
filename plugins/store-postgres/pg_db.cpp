#include "pg_db.h"

#include <thread>

namespace paddock::plugins::store_postgres {

Status PgStatus(PGconn* conn, const PGresult* result, std::string_view what) {
  std::string message = result ? PQresultErrorMessage(result) : "";
  if (message.empty() && conn) message = PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string code = state ? state : "";
  std::string text = std::string(what) + ": " + (message.empty() ? "unknown database error" : message);
  if (!result || (conn && PQstatus(conn) != CONNECTION_OK) || code.rfind("08", 0) == 0 || code == "57P01" ||
      code == "57P02" || code == "57P03" || code == "53300" || code == "57014" || code == "40001" ||
      code == "40P01") {
    return Status::Unavailable("postgres unavailable: " + text);
  }
  if (code == "53100") {
    return Status::NoSpace(
        "postgres's disk is full (nothing was written; free space on the database "
        "server and retry): " +
        text);
  }
  if (code == "23505") return Status::AlreadyExists(text);
  if (code == "23503") return Status::FailedPrecondition(text);
  return Status::Internal(text);
}

PgConnection::~PgConnection() { PQfinish(conn_); }

Result<PgResult> PgConnection::Query(const std::string& sql, const std::vector<Arg>& args,
                                     bool binary_result) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "s" + std::to_string(prepared_.size());
    PgResult prep(PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(args.size()), nullptr));
    if (PQresultStatus(prep.raw()) != PGRES_COMMAND_OK) return PgStatus(conn_, prep.raw(), "prepare");
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  values.reserve(args.size());
  for (const Arg& a : args) {
    values.push_back(a.value ? a.value->data() : nullptr);
    lengths.push_back(a.value ? static_cast<int>(a.value->size()) : 0);
    formats.push_back(a.binary ? 1 : 0);
  }
  PgResult r(PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()), values.data(),
                            lengths.data(), formats.data(), binary_result ? 1 : 0));
  ExecStatusType st = r.raw() ? PQresultStatus(r.raw()) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return PgStatus(conn_, r.raw(), "query");
  return r;
}

Status PgConnection::Exec(const std::string& sql) {
  PgResult r(PQexec(conn_, sql.c_str()));
  ExecStatusType st = r.raw() ? PQresultStatus(r.raw()) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return PgStatus(conn_, r.raw(), "exec");
  return Status::Ok();
}

Result<std::unique_ptr<PgConnection>> Connect(const PoolOptions& o) {
  const std::string timeout = std::to_string(std::max<std::int64_t>(1, o.connect_timeout.count() / 1000));
  const std::string options = "-c search_path=" + o.schema +
                              " -c statement_timeout=" + std::to_string(o.statement_timeout.count()) +
                              " -c idle_in_transaction_session_timeout=60000";
  // Keywords after "dbname" override what the URL says; expand_dbname=1 parses the URL.
  const char* keys[] = {"dbname",
                        "connect_timeout",
                        "options",
                        "application_name",
                        "keepalives",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        nullptr};
  const char* values[] = {
      o.conninfo.c_str(), timeout.c_str(), options.c_str(), "paddock", "1", "10", "5", "3", nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, 1);
  if (!conn) return Status::Unavailable("postgres unavailable: out of memory connecting");
  // NOTICEs ("schema already exists, skipping") are not errors and not for stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    PQfinish(conn);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    return Status::Unavailable("postgres unavailable: cannot connect: " + message);
  }
  return std::make_unique<PgConnection>(conn);
}

Borrowed::~Borrowed() {
  if (conn_) pool_->Return(std::move(conn_));
}

Result<Borrowed> PgPool::Acquire() {
  std::unique_lock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + options_.acquire_timeout;
  for (;;) {
    if (!idle_.empty()) {
      std::unique_ptr<PgConnection> conn = std::move(idle_.back());
      idle_.pop_back();
      return Borrowed(*this, std::move(conn));
    }
    if (open_ < options_.size) {
      if (std::chrono::steady_clock::now() < down_until_) return Status::Unavailable(last_error_);
      ++open_;
      lock.unlock();
      Result<std::unique_ptr<PgConnection>> conn = Connect(options_);
      lock.lock();
      if (conn.ok()) {
        last_error_.clear();
        return Borrowed(*this, std::move(conn).value());
      }
      --open_;
      last_error_ = conn.status().message();
      down_until_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      cv_.notify_all();
      return conn.status();
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return Status::Unavailable("postgres unavailable: all " + std::to_string(options_.size) +
                                 " connections stayed busy for " +
                                 std::to_string(options_.acquire_timeout.count()) + "ms (raise pool_size)");
    }
  }
}

void PgPool::Return(std::unique_ptr<PgConnection> conn) {
  std::lock_guard lock(mu_);
  if (conn->broken() || PQtransactionStatus(conn->raw()) != PQTRANS_IDLE) {
    // A broken connection usually means the server went away: the idle ones are likely dead too.
    bool broken = conn->broken();
    conn.reset();
    --open_;
    if (broken) {
      open_ -= static_cast<int>(idle_.size());
      idle_.clear();
    }
  } else {
    idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

void PgPool::Clear() {
  std::lock_guard lock(mu_);
  open_ -= static_cast<int>(idle_.size());
  idle_.clear();
}

std::string PgPool::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

PgTransaction::~PgTransaction() {
  if (open_ && !conn_.broken()) (void)conn_.Exec("ROLLBACK");
}

Status PgTransaction::Begin() {
  PADDOCK_RETURN_IF_ERROR(conn_.Exec("BEGIN"));
  open_ = true;
  return Status::Ok();
}

Status PgTransaction::Commit() {
  Status s = conn_.Exec("COMMIT");
  open_ = false;
  return s;
}

}  // namespace paddock::plugins::store_postgres
