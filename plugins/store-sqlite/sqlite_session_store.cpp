#include "sqlite_session_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "paddock/plugin/store_fields.h"
#include "sqlite_db.h"
#include "sqlite_migrations.h"

namespace paddock::plugins::store_sqlite {
namespace {

using plugin::DecodeQuotas;
using plugin::DecodeSecretRefs;
using plugin::EncodeQuotas;
using plugin::EncodeSecretRefs;
using plugin::Guard;
using plugin::JoinNames;
using plugin::SplitNames;

constexpr char kAgentColumns[] =
    "id, name, harness, model, prompt, run_timeout_seconds, created_at, updated_at, idle_timeout_seconds, "
    "team_id, profile, secrets";
constexpr char kTeamColumns[] = "id, name, created_at, profiles, quotas";
constexpr char kSealedColumns[] = "team_id, name, version, key_id, sealed, created_at, updated_at";
constexpr char kSessionColumns[] =
    "id, agent_id, status, status_reason, sandbox_id, "
    "(SELECT COALESCE(MAX(seq), 0) FROM events WHERE events.session_id = sessions.id), created_at, "
    "updated_at, "
    "native_session_id, "
    "model, input_tokens, output_tokens, cache_read_tokens, cost_microusd, team_id";
constexpr char kKeyColumns[] = "id, team_id, name, role, prefix, hash, created_at, expires_at, revoked_at";

Agent ReadAgent(const Statement& st) {
  Agent a;
  a.id = st.Text(0);
  a.name = st.Text(1);
  a.harness = st.Text(2);
  a.model = st.Text(3);
  a.prompt = st.Text(4);
  a.run_timeout_seconds = st.Int(5);
  a.created_at = st.Int(6);
  a.updated_at = st.Int(7);
  if (!st.IsNull(8)) a.idle_timeout_seconds = st.Int(8);
  a.team_id = st.Text(9);
  a.profile = st.Text(10);
  a.secrets = DecodeSecretRefs(st.Text(11));
  return a;
}

Team ReadTeam(const Statement& st) {
  return Team{st.Text(0), st.Text(1), st.Int(2), SplitNames(st.Text(3)), DecodeQuotas(st.Text(4))};
}

SealedSecret ReadSealed(const Statement& st) {
  return SealedSecret{st.Text(0), st.Text(1), st.Int(2), st.Text(3), st.Text(4), st.Int(5), st.Int(6)};
}

Session ReadSession(const Statement& st) {
  Session s;
  s.id = st.Text(0);
  s.agent_id = st.Text(1);
  s.status = ParseSessionStatus(st.Text(2)).value_or(SessionStatus::kFailed);
  s.status_reason = st.Text(3);
  s.sandbox_id = st.Text(4);
  s.last_seq = st.Int(5);
  s.created_at = st.Int(6);
  s.updated_at = st.Int(7);
  s.native_session_id = st.Text(8);
  s.usage = ReadUsage(st, 9);
  s.team_id = st.Text(14);
  return s;
}

// A page read with limit + 1 rows: the extra row says there is more, and goes.
template <class T>
void TrimPage(Page<T>& page, int limit) {
  if (page.items.size() > static_cast<size_t>(limit)) {
    page.items.pop_back();
    page.next_cursor = page.items.back().id;
  }
}

ApiKey ReadKey(const Statement& st) {
  ApiKey k;
  k.id = st.Text(0);
  k.team_id = st.Text(1);
  k.name = st.Text(2);
  k.role = ParseRole(st.Text(3)).value_or(Role::kViewer);
  k.prefix = st.Text(4);
  k.hash = st.Text(5);
  k.created_at = st.Int(6);
  k.expires_at = st.Int(7);
  k.revoked_at = st.Int(8);
  return k;
}

}  // namespace

SqliteSessionStore::SqliteSessionStore(SqliteConfig config, Logger& logger)
    : config_(std::move(config)), logger_(logger) {}

SqliteSessionStore::~SqliteSessionStore() { Stop(); }

Status SqliteSessionStore::Start() noexcept {
  return Guard([&]() -> Status {
    std::lock_guard lock(mu_);
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(config_.path).parent_path(), ec);
    // One process per database file: the store hands out leases as if nobody else could.
    const std::string lock_path = config_.path + ".lock";
    if (config_.exclusive) lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (config_.exclusive && lock_fd_ < 0)
      return Status::FailedPrecondition("open " + lock_path + ": " + strerror(errno));
    if (config_.exclusive && flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      close(lock_fd_);
      lock_fd_ = -1;
      return Status::FailedPrecondition("database " + config_.path +
                                        " is in use by another paddock process; the sqlite store "
                                        "serves one process (use store-postgres for several)");
    }
    int rc = sqlite3_open_v2(config_.path.c_str(), &db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      Status s = SqliteStatus(rc, db_, "open " + config_.path);
      sqlite3_close(db_);
      db_ = nullptr;
      return s;
    }
    sqlite3_busy_timeout(db_, static_cast<int>(config_.busy_timeout_ms));
    PADDOCK_RETURN_IF_ERROR(Exec(db_, "PRAGMA journal_mode=WAL"));
    PADDOCK_RETURN_IF_ERROR(Exec(db_, "PRAGMA synchronous=NORMAL"));
    PADDOCK_RETURN_IF_ERROR(Exec(db_, "PRAGMA foreign_keys=ON"));
    return Exec(db_,
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)");
  });
}

void SqliteSessionStore::Stop() noexcept {
  std::lock_guard lock(mu_);
  cache_.Clear();  // a connection closes once its statements are finalized
  if (db_) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
  if (lock_fd_ >= 0) {
    close(lock_fd_);
    lock_fd_ = -1;
  }
}

void SqliteSessionStore::SetEventFeed(EventFeed* feed) noexcept {
  std::lock_guard lock(mu_);
  feed_ = feed;
  if (feed_) feed_->OnFeedState(true);  // every append goes through this process
}

void SqliteSessionStore::Notify() {
  if (feed_) {
    for (const auto& [session, seq] : appended_) feed_->OnAppended(session, seq);
  }
  appended_.clear();
}

Health SqliteSessionStore::GetHealth() const noexcept {
  try {
    std::lock_guard lock(mu_);
    if (!db_) return {HealthState::kDown, "database is not open"};
    // A read that touches the file: catches a database that was deleted, corrupted or unmounted.
    Statement probe(cache_, db_, "SELECT COUNT(*) FROM schema_migrations");
    Status s;
    if (!probe.Step(s)) return {HealthState::kDown, s.ok() ? "database probe returned nothing" : s.message()};
    return {};
  } catch (...) {
    return {HealthState::kDown, "database probe failed"};
  }
}

Result<std::vector<std::string>> SqliteSessionStore::Migrate() noexcept {
  return Guard([&]() -> Result<std::vector<std::string>> {
    std::lock_guard lock(mu_);
    std::vector<std::string> applied;
    for (const auto& file : migrations::kFiles) {
      std::string version(file.name);
      Transaction tx(db_);
      PADDOCK_RETURN_IF_ERROR(tx.begin_status());
      Statement check(cache_, db_, "SELECT 1 FROM schema_migrations WHERE version = ?");
      check.Bind(1, version);
      Status st;
      if (check.Step(st)) continue;  // applied already; tx rolls back (nothing written)
      PADDOCK_RETURN_IF_ERROR(st);
      Status done = Exec(db_, std::string(file.content));
      if (!done.ok()) return done.Annotate("migration " + version + " failed");
      Statement record(cache_, db_, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)");
      record.Bind(1, version).Bind(2, NowMs());
      PADDOCK_RETURN_IF_ERROR(record.Run());
      PADDOCK_RETURN_IF_ERROR(tx.Commit());
      logger_.Info("applied migration " + version);
      applied.push_back(version);
    }
    return applied;
  });
}

Result<std::vector<std::string>> SqliteSessionStore::AppliedLocked() {
  Statement st(cache_, db_, "SELECT version FROM schema_migrations ORDER BY applied_at, version");
  std::vector<std::string> out;
  Status s;
  while (st.Step(s)) out.push_back(st.Text(0));
  PADDOCK_RETURN_IF_ERROR(s);
  return out;
}

Result<std::vector<std::string>> SqliteSessionStore::AppliedMigrations() noexcept {
  return Guard([&]() -> Result<std::vector<std::string>> {
    std::lock_guard lock(mu_);
    return AppliedLocked();
  });
}

Result<std::vector<std::string>> SqliteSessionStore::PendingMigrations() noexcept {
  return Guard([&]() -> Result<std::vector<std::string>> {
    std::lock_guard lock(mu_);
    PADDOCK_ASSIGN_OR_RETURN(std::vector<std::string> applied, AppliedLocked());
    std::vector<std::string> pending;
    for (const auto& file : migrations::kFiles) {
      std::string version(file.name);
      if (std::find(applied.begin(), applied.end(), version) == applied.end()) pending.push_back(version);
    }
    return pending;
  });
}

// ---- idempotency keys -------------------------------------------------------------------

Status SqliteSessionStore::RecordKeyLocked(const IdempotencyKey& idem, std::string_view resource_id) {
  if (idem.key.empty()) return Status::Ok();
  Statement st(cache_, db_,
               "INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at) "
               "VALUES (?, ?, ?, ?, ?)");
  st.Bind(1, idem.scope).Bind(2, idem.key).Bind(3, idem.request_hash).Bind(4, resource_id).Bind(5, NowMs());
  Status s = st.Run();
  if (s.code() == StatusCode::kAlreadyExists) {
    return Status::AlreadyExists("Idempotency-Key '" + idem.key + "' is already recorded");
  }
  return s;
}

Result<std::optional<IdempotencyRecord>> SqliteSessionStore::FindIdempotencyKey(
    std::string_view scope, std::string_view key) noexcept {
  return Guard([&]() -> Result<std::optional<IdempotencyRecord>> {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_,
                 "SELECT request_hash, resource_id, created_at FROM idempotency_keys "
                 "WHERE scope = ? AND key = ?");
    st.Bind(1, scope).Bind(2, key);
    Status s;
    if (!st.Step(s)) {
      PADDOCK_RETURN_IF_ERROR(s);
      return std::optional<IdempotencyRecord>();
    }
    return std::optional<IdempotencyRecord>(IdempotencyRecord{st.Text(0), st.Text(1), st.Int(2)});
  });
}

Result<std::int64_t> SqliteSessionStore::PruneIdempotencyKeys(TimestampMs before) noexcept {
  return Guard([&]() -> Result<std::int64_t> {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_, "DELETE FROM idempotency_keys WHERE created_at < ?");
    st.Bind(1, before);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    return static_cast<std::int64_t>(sqlite3_changes(db_));
  });
}

// ---- teams and API keys ------------------------------------------------------------------

Status SqliteSessionStore::CheckTeamLocked(std::string_view team_id) {
  Statement st(cache_, db_, "SELECT 1 FROM teams WHERE id = ?");
  st.Bind(1, team_id);
  return st.StepRow("team '" + std::string(team_id) + "' does not exist");
}

Status SqliteSessionStore::CreateTeam(const Team& team) noexcept {
  return Write([&]() -> Status {
    Statement st(cache_, db_, std::string("INSERT INTO teams (") + kTeamColumns + ") VALUES (?, ?, ?, ?, ?)");
    st.Bind(1, team.id).Bind(2, team.name).Bind(3, team.created_at).Bind(4, JoinNames(team.profiles));
    st.Bind(5, EncodeQuotas(team.quotas));
    Status s = st.Run();
    if (s.code() == StatusCode::kAlreadyExists)
      return Status::AlreadyExists("team '" + team.id + "' already exists");
    return s;
  });
}

Status SqliteSessionStore::UpdateTeam(const Team& team) noexcept {
  return Write([&]() -> Status {
    Statement st(cache_, db_, "UPDATE teams SET name = ?, profiles = ?, quotas = ? WHERE id = ?");
    st.Bind(1, team.name)
        .Bind(2, JoinNames(team.profiles))
        .Bind(3, EncodeQuotas(team.quotas))
        .Bind(4, team.id);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    if (sqlite3_changes(db_) == 0) return Status::NotFound("team '" + team.id + "' does not exist");
    return Status::Ok();
  });
}

Result<Team> SqliteSessionStore::GetTeam(std::string_view id) noexcept {
  return Guard([&]() -> Result<Team> {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_, std::string("SELECT ") + kTeamColumns + " FROM teams WHERE id = ?");
    st.Bind(1, id);
    PADDOCK_RETURN_IF_ERROR(st.StepRow("team '" + std::string(id) + "' does not exist"));
    return ReadTeam(st);
  });
}

Result<Page<Team>> SqliteSessionStore::ListTeams(const PageRequest& page) noexcept {
  return Guard([&]() -> Result<Page<Team>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(page.limit));
    std::lock_guard lock(mu_);
    Statement st(cache_, db_,
                 std::string("SELECT ") + kTeamColumns + " FROM teams" +
                     (page.cursor.empty() ? "" : " WHERE id < ?") + " ORDER BY id DESC LIMIT ?");
    int i = 1;
    if (!page.cursor.empty()) st.Bind(i++, page.cursor);
    st.Bind(i, static_cast<std::int64_t>(page.limit) + 1);
    Page<Team> out;
    Status s;
    while (st.Step(s)) out.items.push_back(ReadTeam(st));
    PADDOCK_RETURN_IF_ERROR(s);
    TrimPage(out, page.limit);
    return out;
  });
}

Status SqliteSessionStore::CreateApiKey(const ApiKey& key) noexcept {
  return Write([&]() -> Status {
    PADDOCK_RETURN_IF_ERROR(CheckTeamLocked(key.team_id));
    Statement st(
        cache_, db_,
        std::string("INSERT INTO api_keys (") + kKeyColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    st.Bind(1, key.id).Bind(2, key.team_id).Bind(3, key.name).Bind(4, ToString(key.role));
    st.Bind(5, key.prefix).Bind(6, key.hash).Bind(7, key.created_at).Bind(8, key.expires_at);
    st.Bind(9, key.revoked_at);
    Status s = st.Run();
    if (s.code() == StatusCode::kAlreadyExists) return Status::AlreadyExists("the key already exists");
    return s;
  });
}

Result<ApiKey> SqliteSessionStore::FindApiKey(std::string_view hash) noexcept {
  return Guard([&]() -> Result<ApiKey> {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_, std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE hash = ?");
    st.Bind(1, hash);
    PADDOCK_RETURN_IF_ERROR(st.StepRow("no such key"));
    return ReadKey(st);
  });
}

Result<ApiKey> SqliteSessionStore::GetApiKey(std::string_view id) noexcept {
  return Guard([&]() -> Result<ApiKey> {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_, std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = ?");
    st.Bind(1, id);
    PADDOCK_RETURN_IF_ERROR(st.StepRow("key '" + std::string(id) + "' does not exist"));
    return ReadKey(st);
  });
}

Result<Page<ApiKey>> SqliteSessionStore::ListApiKeys(std::string_view team_id,
                                                     const PageRequest& page) noexcept {
  return Guard([&]() -> Result<Page<ApiKey>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(page.limit));
    std::lock_guard lock(mu_);
    std::string sql = std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE 1=1";
    if (!team_id.empty()) sql += " AND team_id = ?";
    if (!page.cursor.empty()) sql += " AND id < ?";
    sql += " ORDER BY id DESC LIMIT ?";
    Statement st(cache_, db_, sql);
    int i = 1;
    if (!team_id.empty()) st.Bind(i++, team_id);
    if (!page.cursor.empty()) st.Bind(i++, page.cursor);
    st.Bind(i, static_cast<std::int64_t>(page.limit) + 1);
    Page<ApiKey> out;
    Status s;
    while (st.Step(s)) out.items.push_back(ReadKey(st));
    PADDOCK_RETURN_IF_ERROR(s);
    TrimPage(out, page.limit);
    return out;
  });
}

Status SqliteSessionStore::RevokeApiKey(std::string_view id, TimestampMs at) noexcept {
  Status s = Write([&]() -> Status {
    Statement st(cache_, db_, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0");
    st.Bind(1, at).Bind(2, id);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    if (sqlite3_changes(db_) > 0) return Status::Ok();
    Statement exists(cache_, db_, "SELECT 1 FROM api_keys WHERE id = ?");
    exists.Bind(1, id);
    return exists.StepRow("key '" + std::string(id) + "' does not exist");
  });
  if (s.ok()) {
    std::lock_guard lock(mu_);
    if (feed_) feed_->OnKeyRevoked(id);
  }
  return s;
}

// ---- audit log ----------------------------------------------------------------------------

Result<std::int64_t> SqliteSessionStore::AppendAudit(const AuditEvent& e) noexcept {
  return Write([&]() -> Result<std::int64_t> {
    Statement st(
        cache_, db_,
        "INSERT INTO audit_events (at, team_id, key_id, source, request_id, action, resource, status, "
        "outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    st.Bind(1, e.at).Bind(2, e.team_id).Bind(3, e.key_id).Bind(4, e.source).Bind(5, e.request_id);
    st.Bind(6, e.action).Bind(7, e.resource).Bind(8, static_cast<std::int64_t>(e.status)).Bind(9, e.outcome);
    st.Bind(10, e.detail);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    return static_cast<std::int64_t>(sqlite3_last_insert_rowid(db_));
  });
}

Result<Page<AuditEvent>> SqliteSessionStore::ListAudit(const AuditFilter& filter) noexcept {
  return Guard([&]() -> Result<Page<AuditEvent>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(filter.page.limit));
    std::int64_t before = INT64_MAX;
    if (!filter.page.cursor.empty()) {
      char* end = nullptr;
      before = std::strtoll(filter.page.cursor.c_str(), &end, 10);
      if (*end != '\0' || before <= 0)
        return Status::InvalidArgument("the audit cursor is not one this store gave");
    }
    std::lock_guard lock(mu_);
    std::string sql =
        "SELECT id, at, team_id, key_id, source, request_id, action, resource, status, outcome, detail FROM "
        "audit_events WHERE id < ?";
    if (!filter.team_id.empty()) sql += " AND team_id = ?";
    sql += " ORDER BY id DESC LIMIT ?";
    Statement st(cache_, db_, sql);
    int i = 1;
    st.Bind(i++, before);
    if (!filter.team_id.empty()) st.Bind(i++, filter.team_id);
    st.Bind(i, static_cast<std::int64_t>(filter.page.limit) + 1);
    Page<AuditEvent> out;
    Status s;
    while (st.Step(s)) {
      AuditEvent e;
      e.id = st.Int(0);
      e.at = st.Int(1);
      e.team_id = st.Text(2);
      e.key_id = st.Text(3);
      e.source = st.Text(4);
      e.request_id = st.Text(5);
      e.action = st.Text(6);
      e.resource = st.Text(7);
      e.status = static_cast<int>(st.Int(8));
      e.outcome = st.Text(9);
      e.detail = st.Text(10);
      out.items.push_back(std::move(e));
    }
    PADDOCK_RETURN_IF_ERROR(s);
    if (out.items.size() > static_cast<size_t>(filter.page.limit)) {
      out.items.pop_back();
      out.next_cursor = std::to_string(out.items.back().id);
    }
    return out;
  });
}

Result<std::int64_t> SqliteSessionStore::PruneAudit(TimestampMs before) noexcept {
  return Write([&]() -> Result<std::int64_t> {
    Statement st(cache_, db_, "DELETE FROM audit_events WHERE at < ?");
    st.Bind(1, before);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    return static_cast<std::int64_t>(sqlite3_changes(db_));
  });
}

// ---- sealed team secrets ------------------------------------------------------------------

Result<SealedSecret> SqliteSessionStore::PutSealedSecret(const SealedSecret& secret) noexcept {
  return Write([&]() -> Result<SealedSecret> {
    PADDOCK_RETURN_IF_ERROR(CheckTeamLocked(secret.team_id));
    Statement st(cache_, db_,
                 std::string("INSERT INTO team_secrets (") + kSealedColumns +
                     ") VALUES (?, ?, 1, ?, ?, ?, ?) ON CONFLICT (team_id, name) DO UPDATE SET "
                     "version = version + 1, key_id = excluded.key_id, sealed = excluded.sealed, "
                     "updated_at = excluded.updated_at RETURNING " +
                     kSealedColumns);
    st.Bind(1, secret.team_id).Bind(2, secret.name).Bind(3, secret.key_id).Bind(4, secret.sealed);
    st.Bind(5, secret.updated_at).Bind(6, secret.updated_at);
    PADDOCK_RETURN_IF_ERROR(st.StepRow("no row returned"));
    return ReadSealed(st);
  });
}

Result<SealedSecret> SqliteSessionStore::GetSealedSecret(std::string_view team_id,
                                                         std::string_view name) noexcept {
  return Guard([&]() -> Result<SealedSecret> {
    std::lock_guard lock(mu_);
    Statement st(
        cache_, db_,
        std::string("SELECT ") + kSealedColumns + " FROM team_secrets WHERE team_id = ? AND name = ?");
    st.Bind(1, team_id).Bind(2, name);
    PADDOCK_RETURN_IF_ERROR(
        st.StepRow("team '" + std::string(team_id) + "' has no secret '" + std::string(name) + "'"));
    return ReadSealed(st);
  });
}

Result<std::vector<SealedSecret>> SqliteSessionStore::ListSealedSecrets(std::string_view team_id) noexcept {
  return Guard([&]() -> Result<std::vector<SealedSecret>> {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_,
                 std::string("SELECT ") + kSealedColumns + " FROM team_secrets" +
                     (team_id.empty() ? "" : " WHERE team_id = ?") + " ORDER BY team_id, name");
    if (!team_id.empty()) st.Bind(1, team_id);
    std::vector<SealedSecret> out;
    Status s;
    while (st.Step(s)) out.push_back(ReadSealed(st));
    PADDOCK_RETURN_IF_ERROR(s);
    return out;
  });
}

Status SqliteSessionStore::DeleteSealedSecret(std::string_view team_id, std::string_view name) noexcept {
  return Write([&]() -> Status {
    Statement st(cache_, db_, "DELETE FROM team_secrets WHERE team_id = ? AND name = ?");
    st.Bind(1, team_id).Bind(2, name);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound("team '" + std::string(team_id) + "' has no secret '" + std::string(name) +
                              "'");
    }
    return Status::Ok();
  });
}

Status SqliteSessionStore::ResealSecret(const SealedSecret& secret) noexcept {
  return Write([&]() -> Status {
    Statement st(
        cache_, db_,
        "UPDATE team_secrets SET key_id = ?, sealed = ? WHERE team_id = ? AND name = ? AND version = ?");
    st.Bind(1, secret.key_id).Bind(2, secret.sealed).Bind(3, secret.team_id).Bind(4, secret.name);
    st.Bind(5, secret.version);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    if (sqlite3_changes(db_) == 0) {
      return Status::FailedPrecondition("secret '" + secret.name + "' of team '" + secret.team_id +
                                        "' changed or was deleted meanwhile");
    }
    return Status::Ok();
  });
}

// ---- agents -----------------------------------------------------------------------------

Status SqliteSessionStore::WriteAgentEnv(const Agent& agent) {
  Statement del(cache_, db_, "DELETE FROM agent_env WHERE agent_id = ?");
  del.Bind(1, agent.id);
  PADDOCK_RETURN_IF_ERROR(del.Run());
  for (const auto& [name, value] : agent.env) {
    Statement ins(cache_, db_, "INSERT INTO agent_env (agent_id, name, value) VALUES (?, ?, ?)");
    ins.Bind(1, agent.id).Bind(2, name).Bind(3, value);
    PADDOCK_RETURN_IF_ERROR(ins.Run());
  }
  return Status::Ok();
}

Status SqliteSessionStore::CreateAgent(const Agent& agent) noexcept {
  return Write([&]() -> Status {
    PADDOCK_RETURN_IF_ERROR(CheckTeamLocked(agent.team_id));
    Statement st(cache_, db_,
                 std::string("INSERT INTO agents (") + kAgentColumns +
                     ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    st.Bind(1, agent.id).Bind(2, agent.name).Bind(3, agent.harness).Bind(4, agent.model);
    st.Bind(5, agent.prompt).Bind(6, agent.run_timeout_seconds);
    st.Bind(7, agent.created_at).Bind(8, agent.updated_at);
    if (agent.idle_timeout_seconds) {
      st.Bind(9, *agent.idle_timeout_seconds);
    } else {
      st.BindNull(9);
    }
    st.Bind(10, agent.team_id).Bind(11, agent.profile).Bind(12, EncodeSecretRefs(agent.secrets));
    Status s = st.Run();
    if (s.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("agent '" + agent.id + "' already exists");
    }
    PADDOCK_RETURN_IF_ERROR(s);
    PADDOCK_RETURN_IF_ERROR(WriteAgentEnv(agent));
    return Status::Ok();
  });
}

Result<Agent> SqliteSessionStore::GetAgentLocked(std::string_view id) {
  Statement st(cache_, db_, std::string("SELECT ") + kAgentColumns + " FROM agents WHERE id = ?");
  st.Bind(1, id);
  Status s;
  PADDOCK_RETURN_IF_ERROR(st.StepRow("agent '" + std::string(id) + "' does not exist"));
  Agent a = ReadAgent(st);
  Statement env(cache_, db_, "SELECT name, value FROM agent_env WHERE agent_id = ? ORDER BY name");
  env.Bind(1, id);
  while (env.Step(s)) a.env[env.Text(0)] = env.Text(1);
  PADDOCK_RETURN_IF_ERROR(s);
  return a;
}

Result<Agent> SqliteSessionStore::GetAgent(std::string_view id) noexcept {
  return Guard([&]() -> Result<Agent> {
    std::lock_guard lock(mu_);
    return GetAgentLocked(id);
  });
}

Result<Page<Agent>> SqliteSessionStore::ListAgents(std::string_view team_id,
                                                   const PageRequest& page) noexcept {
  return Guard([&]() -> Result<Page<Agent>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(page.limit));
    std::lock_guard lock(mu_);
    std::string sql = "SELECT id FROM agents WHERE 1=1";
    if (!team_id.empty()) sql += " AND team_id = ?";
    if (!page.cursor.empty()) sql += " AND id < ?";
    sql += " ORDER BY id DESC LIMIT ?";
    Statement st(cache_, db_, sql);
    int i = 1;
    if (!team_id.empty()) st.Bind(i++, team_id);
    if (!page.cursor.empty()) st.Bind(i++, page.cursor);
    st.Bind(i, static_cast<std::int64_t>(page.limit) + 1);
    std::vector<std::string> ids;
    Status s;
    while (st.Step(s)) ids.push_back(st.Text(0));
    PADDOCK_RETURN_IF_ERROR(s);
    Page<Agent> out;
    for (size_t k = 0; k < ids.size() && k < static_cast<size_t>(page.limit); ++k) {
      PADDOCK_ASSIGN_OR_RETURN(Agent a, GetAgentLocked(ids[k]));
      out.items.push_back(std::move(a));
    }
    if (ids.size() > static_cast<size_t>(page.limit)) out.next_cursor = out.items.back().id;
    return out;
  });
}

Status SqliteSessionStore::UpdateAgent(const Agent& agent) noexcept {
  return Write([&]() -> Status {
    Statement st(
        cache_, db_,
        "UPDATE agents SET name = ?, harness = ?, model = ?, prompt = ?, "
        "run_timeout_seconds = ?, updated_at = ?, idle_timeout_seconds = ?, profile = ?, secrets = ? "
        "WHERE id = ?");
    st.Bind(1, agent.name).Bind(2, agent.harness).Bind(3, agent.model).Bind(4, agent.prompt);
    st.Bind(5, agent.run_timeout_seconds).Bind(6, agent.updated_at);
    st.Bind(8, agent.profile).Bind(9, EncodeSecretRefs(agent.secrets)).Bind(10, agent.id);
    if (agent.idle_timeout_seconds) {
      st.Bind(7, *agent.idle_timeout_seconds);
    } else {
      st.BindNull(7);
    }
    PADDOCK_RETURN_IF_ERROR(st.Run());
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound("agent '" + agent.id + "' does not exist");
    }
    PADDOCK_RETURN_IF_ERROR(WriteAgentEnv(agent));
    return Status::Ok();
  });
}

Status SqliteSessionStore::DeleteAgent(std::string_view id) noexcept {
  return Write([&]() -> Status {
    Statement count(cache_, db_, "SELECT COUNT(*) FROM sessions WHERE agent_id = ?");
    count.Bind(1, id);
    Status s;
    if (count.Step(s) && count.Int(0) > 0) {
      return Status::FailedPrecondition("agent '" + std::string(id) + "' still has " +
                                        std::to_string(count.Int(0)) +
                                        " session(s); an agent with sessions cannot be deleted");
    }
    PADDOCK_RETURN_IF_ERROR(s);
    Statement st(cache_, db_, "DELETE FROM agents WHERE id = ?");
    st.Bind(1, id);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound("agent '" + std::string(id) + "' does not exist");
    }
    return Status::Ok();
  });
}

// ---- sessions ---------------------------------------------------------------------------

Status SqliteSessionStore::CreateSession(const Session& session, const IdempotencyKey& idem) noexcept {
  return Write([&]() -> Status {
    Statement agent(cache_, db_, "SELECT team_id FROM agents WHERE id = ?");
    agent.Bind(1, session.agent_id);
    Status s;
    PADDOCK_RETURN_IF_ERROR(agent.StepRow("agent '" + session.agent_id + "' does not exist"));
    const std::string team = agent.Text(0);
    Statement st(cache_, db_,
                 "INSERT INTO sessions (id, agent_id, status, status_reason, sandbox_id, created_at, "
                 "updated_at, team_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    st.Bind(1, session.id).Bind(2, session.agent_id).Bind(3, ToString(session.status));
    st.Bind(4, session.status_reason).Bind(5, session.sandbox_id);
    st.Bind(6, session.created_at).Bind(7, session.updated_at).Bind(8, team);
    s = st.Run();
    if (s.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("session '" + session.id + "' already exists");
    }
    PADDOCK_RETURN_IF_ERROR(s);
    PADDOCK_RETURN_IF_ERROR(RecordKeyLocked(idem, session.id));
    return Status::Ok();
  });
}

Result<Session> SqliteSessionStore::GetSession(std::string_view id) noexcept {
  return Guard([&]() -> Result<Session> {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_, std::string("SELECT ") + kSessionColumns + " FROM sessions WHERE id = ?");
    st.Bind(1, id);
    PADDOCK_RETURN_IF_ERROR(st.StepRow("session '" + std::string(id) + "' does not exist"));
    return ReadSession(st);
  });
}

Result<Page<Session>> SqliteSessionStore::ListSessions(const SessionFilter& filter) noexcept {
  return Guard([&]() -> Result<Page<Session>> {
    PADDOCK_RETURN_IF_ERROR(CheckLimit(filter.page.limit));
    std::lock_guard lock(mu_);
    std::string sql = std::string("SELECT ") + kSessionColumns + " FROM sessions WHERE 1=1";
    if (!filter.team_id.empty()) sql += " AND team_id = ?";
    if (!filter.agent_id.empty()) sql += " AND agent_id = ?";
    if (filter.status) sql += " AND status = ?";
    if (!filter.page.cursor.empty()) sql += " AND id < ?";
    sql += " ORDER BY id DESC LIMIT ?";
    Statement st(cache_, db_, sql);
    int i = 1;
    if (!filter.team_id.empty()) st.Bind(i++, filter.team_id);
    if (!filter.agent_id.empty()) st.Bind(i++, filter.agent_id);
    if (filter.status) st.Bind(i++, ToString(*filter.status));
    if (!filter.page.cursor.empty()) st.Bind(i++, filter.page.cursor);
    st.Bind(i, static_cast<std::int64_t>(filter.page.limit) + 1);
    Page<Session> out;
    Status s;
    while (st.Step(s)) out.items.push_back(ReadSession(st));
    PADDOCK_RETURN_IF_ERROR(s);
    TrimPage(out, filter.page.limit);
    return out;
  });
}

Status SqliteSessionStore::SetSessionStatus(std::string_view id, SessionStatus status,
                                            std::string_view reason) noexcept {
  return Guard([&]() -> Status {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_,
                 "UPDATE sessions SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?");
    st.Bind(1, ToString(status)).Bind(2, reason).Bind(3, NowMs()).Bind(4, id);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound("session '" + std::string(id) + "' does not exist");
    }
    return Status::Ok();
  });
}

Status SqliteSessionStore::TransitionSession(std::string_view id, SessionStatus from, SessionStatus to,
                                             std::string_view reason) noexcept {
  return Guard([&]() -> Status {
    std::lock_guard lock(mu_);
    Statement st(
        cache_, db_,
        "UPDATE sessions SET status = ?, status_reason = ?, updated_at = ? WHERE id = ? AND status = ?");
    st.Bind(1, ToString(to)).Bind(2, reason).Bind(3, NowMs()).Bind(4, id).Bind(5, ToString(from));
    PADDOCK_RETURN_IF_ERROR(st.Run());
    if (sqlite3_changes(db_) > 0) return Status::Ok();
    Statement now(cache_, db_, "SELECT status FROM sessions WHERE id = ?");
    now.Bind(1, id);
    PADDOCK_RETURN_IF_ERROR(now.StepRow("session '" + std::string(id) + "' does not exist"));
    return Status::FailedPrecondition("session '" + std::string(id) + "' is " + now.Text(0) + ", not " +
                                      std::string(ToString(from)));
  });
}

Status SqliteSessionStore::SetSessionSandbox(std::string_view id, std::string_view sandbox_id) noexcept {
  return Guard([&]() -> Status {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_, "UPDATE sessions SET sandbox_id = ?, updated_at = ? WHERE id = ?");
    st.Bind(1, sandbox_id).Bind(2, NowMs()).Bind(3, id);
    PADDOCK_RETURN_IF_ERROR(st.Run());
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound("session '" + std::string(id) + "' does not exist");
    }
    return Status::Ok();
  });
}

Result<TeamUsage> SqliteSessionStore::GetTeamUsage(std::string_view team_id, TimestampMs runs_since,
                                                   TimestampMs day) noexcept {
  return Guard([&]() -> Result<TeamUsage> {
    std::lock_guard lock(mu_);
    TeamUsage u;
    {
      Statement st(
          cache_, db_,
          "SELECT COUNT(*), COALESCE(SUM(sandbox_id <> '' OR status = 'provisioning'), 0) FROM sessions "
          "WHERE team_id = ? AND status NOT IN ('closed', 'failed')");
      st.Bind(1, team_id);
      PADDOCK_RETURN_IF_ERROR(st.StepRow("no count"));
      u.open_sessions = st.Int(0);
      u.sandboxes = st.Int(1);
    }
    {
      Statement st(cache_, db_,
                   // CROSS JOIN: the minute's runs first (runs_by_created), not every run of the
                   // team's sessions.
                   "SELECT COUNT(*), COALESCE(MIN(r.created_at), 0) FROM runs r CROSS JOIN sessions s "
                   "ON s.id = r.session_id WHERE r.created_at >= ? AND s.team_id = ?");
      st.Bind(1, runs_since).Bind(2, team_id);
      PADDOCK_RETURN_IF_ERROR(st.StepRow("no count"));
      u.runs = st.Int(0);
      u.oldest_run_at = st.Int(1);
    }
    {
      Statement st(cache_, db_, "SELECT tokens, cost_microusd FROM team_days WHERE team_id = ? AND day = ?");
      st.Bind(1, team_id).Bind(2, day);
      Status found;
      if (st.Step(found)) {
        u.tokens = st.Int(0);
        u.cost_microusd = st.Int(1);
      }
      PADDOCK_RETURN_IF_ERROR(found);
    }
    return u;
  });
}

Result<SessionCounts> SqliteSessionStore::CountSessions() noexcept {
  return Guard([&]() -> Result<SessionCounts> {
    std::lock_guard lock(mu_);
    Statement st(cache_, db_, "SELECT status, COUNT(*) FROM sessions GROUP BY status");
    SessionCounts counts;
    Status s;
    while (st.Step(s)) {
      if (auto status = ParseSessionStatus(st.Text(0))) {
        counts.by_status[static_cast<int>(*status)] = st.Int(1);
      }
    }
    PADDOCK_RETURN_IF_ERROR(s);
    return counts;
  });
}

}  // namespace paddock::plugins::store_sqlite
