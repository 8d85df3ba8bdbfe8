#include "services/teams/authenticator.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/config.h"
#include "services/teams/api_key.h"
#include "util/ids.h"
#include "util/log.h"

namespace paddock {
namespace {

// The cache holds at most this many keys; past it, it is cleared (keys are few; this bounds
// what a flood of distinct valid keys could make it hold).
constexpr size_t kMaxCachedKeys = 10000;

AuthOutcome Fail(AuthFailure f, std::string message) {
  return AuthOutcome{f, Principal{}, std::move(message)};
}

}  // namespace

Authenticator::Authenticator(SessionStore& store, std::chrono::milliseconds cache_ttl)
    : store_(store), ttl_(cache_ttl) {}

AuthOutcome Authenticator::Authenticate(const std::string* authorization, const std::string* x_api_key) {
  std::string_view key;
  if (authorization) {
    std::string_view v(*authorization);
    constexpr std::string_view kBearer = "Bearer ";
    if (v.size() < kBearer.size() || strncasecmp(v.data(), kBearer.data(), kBearer.size()) != 0) {
      return Fail(AuthFailure::kMalformed,
                  "the Authorization header must be 'Bearer <key>' (or send the key as x-api-key)");
    }
    key = v.substr(kBearer.size());
    while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
    while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
  } else if (x_api_key) {
    key = *x_api_key;
  } else {
    return Fail(AuthFailure::kMissing,
                "this route needs an API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'");
  }
  return Check(key);
}

AuthOutcome Authenticator::Check(std::string_view key) {
  if (!WellFormedKey(key)) {
    return Fail(AuthFailure::kMalformed, "the API key is malformed: keys are 32-256 printable characters");
  }
  const std::string hash = HashKey(key);
  const auto now = std::chrono::steady_clock::now();
  ApiKey found;
  bool cached = false;
  if (live_.load() && ttl_.count() > 0) {
    std::lock_guard lock(mu_);
    auto it = by_hash_.find(hash);
    if (it != by_hash_.end() && it->second.until > now) {
      found = it->second.key;
      cached = true;
    }
  }
  if (!cached) {
    Result<ApiKey> k = store_.FindApiKey(hash);
    if (!k.ok()) {
      if (k.status().code() == StatusCode::kNotFound)
        return Fail(AuthFailure::kUnknown, "the API key is not valid (unknown, or of another install)");
      return Fail(AuthFailure::kStoreDown, "keys cannot be checked now: " + k.status().message());
    }
    found = std::move(*k);
    if (live_.load() && ttl_.count() > 0 && found.revoked_at == 0) {
      std::lock_guard lock(mu_);
      if (by_hash_.size() >= kMaxCachedKeys) by_hash_.clear();
      by_hash_[hash] = Entry{found, now + ttl_};
    }
  }
  if (found.revoked_at != 0)
    return Fail(AuthFailure::kRevoked, "the API key '" + found.prefix + "...' was revoked");
  if (found.expires_at != 0 && found.expires_at <= NowMs())
    return Fail(AuthFailure::kExpired, "the API key '" + found.prefix + "...' has expired");
  AuthOutcome ok;
  ok.principal = Principal{found.id, found.name, found.team_id, found.role};
  return ok;
}

AuthOutcome Authenticator::ByKeyId(const std::string& key_id) {
  Result<ApiKey> k = store_.GetApiKey(key_id);
  if (!k.ok()) {
    if (k.status().code() == StatusCode::kNotFound)
      return Fail(AuthFailure::kUnknown, "the session's API key is gone; sign in again");
    return Fail(AuthFailure::kStoreDown, "keys cannot be checked now: " + k.status().message());
  }
  if (k->revoked_at != 0)
    return Fail(AuthFailure::kRevoked, "the API key '" + k->prefix + "...' of this session was revoked");
  if (k->expires_at != 0 && k->expires_at <= NowMs())
    return Fail(AuthFailure::kExpired, "the API key '" + k->prefix + "...' of this session has expired");
  AuthOutcome ok;
  ok.principal = Principal{k->id, k->name, k->team_id, k->role};
  return ok;
}

void Authenticator::OnKeyRevoked(std::string_view key_id) {
  std::lock_guard lock(mu_);
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    it = it->second.key.id == key_id ? by_hash_.erase(it) : std::next(it);
  }
}

void Authenticator::OnFeedState(bool live) {
  live_ = live;
  // Whatever was cached may have been revoked while nobody could say so.
  std::lock_guard lock(mu_);
  by_hash_.clear();
}

size_t Authenticator::cached() const {
  std::lock_guard lock(mu_);
  return by_hash_.size();
}

// ---- the first key ------------------------------------------------------------------------

namespace {

constexpr char kBootstrapName[] = "bootstrap";

Result<std::string> ReadKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return Status::FailedPrecondition("[auth] admin_key_file: cannot read " + path + ": " + strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string key = ss.str();
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ')) key.pop_back();
  return key;
}

// Every non-revoked key named "bootstrap" of the default team.
Result<std::vector<ApiKey>> BootstrapKeys(SessionStore& store) {
  std::vector<ApiKey> out;
  PageRequest page{1000, ""};
  for (;;) {
    PADDOCK_ASSIGN_OR_RETURN(Page<ApiKey> keys, store.ListApiKeys(kDefaultTeam, page));
    for (ApiKey& k : keys.items) {
      if (k.name == kBootstrapName && k.revoked_at == 0) out.push_back(std::move(k));
    }
    if (keys.next_cursor.empty()) return out;
    page.cursor = keys.next_cursor;
  }
}

// Whether some key of any team is not revoked (stops at the first one).
Result<bool> AnyActiveKey(SessionStore& store) {
  PageRequest page{100, ""};
  for (;;) {
    PADDOCK_ASSIGN_OR_RETURN(Page<ApiKey> keys, store.ListApiKeys("", page));
    for (const ApiKey& k : keys.items) {
      if (k.revoked_at == 0) return true;
    }
    if (keys.next_cursor.empty()) return false;
    page.cursor = keys.next_cursor;
  }
}

Status CreateBootstrap(SessionStore& store, const std::string& key) {
  ApiKey k;
  k.id = NewId("key");
  k.team_id = kDefaultTeam;
  k.name = kBootstrapName;
  k.role = Role::kOperator;
  k.prefix = KeyPrefix(key);
  k.hash = HashKey(key);
  k.created_at = NowMs();
  return store.CreateApiKey(k);
}

}  // namespace

Status EnsureBootstrapKey(SessionStore& store, const AuthSettings& settings, const std::string& data_dir) {
  std::string given;
  std::string from;
  if (!settings.admin_key_file.empty()) {
    PADDOCK_ASSIGN_OR_RETURN(given, ReadKeyFile(settings.admin_key_file));
    from = settings.admin_key_file;
  } else if (const char* env = std::getenv("PADDOCK_ADMIN_KEY"); env && *env) {
    given = env;
    from = "$PADDOCK_ADMIN_KEY";
  }
  if (!given.empty()) {
    if (!WellFormedKey(given)) {
      return Status::InvalidArgument("the first operator key (" + from +
                                     ") must be 32-256 printable characters without spaces; make one with "
                                     "`paddock admin new-key`");
    }
    const std::string hash = HashKey(given);
    PADDOCK_ASSIGN_OR_RETURN(std::vector<ApiKey> bootstrap, BootstrapKeys(store));
    bool have = false;
    for (const ApiKey& k : bootstrap) {
      if (k.hash == hash) {
        have = true;
        continue;
      }
      PADDOCK_RETURN_IF_ERROR(store.RevokeApiKey(k.id, NowMs()));
      LogInfo("revoked the earlier bootstrap key " + k.prefix + "... (" + from + " holds another)");
    }
    if (have) return Status::Ok();
    Result<ApiKey> existing = store.FindApiKey(hash);
    if (existing.ok()) {
      if (existing->revoked_at != 0)
        return Status::FailedPrecondition("the first operator key in " + from +
                                          " was revoked; give a new one");
      return Status::Ok();  // already a key of some other name: honoured as it is
    }
    PADDOCK_RETURN_IF_ERROR(CreateBootstrap(store, given));
    LogInfo("the operator key from " + from + " (" + KeyPrefix(given) + "...) is installed");
    return Status::Ok();
  }
  PADDOCK_ASSIGN_OR_RETURN(bool any_key, AnyActiveKey(store));
  if (any_key) return Status::Ok();
  // A fresh install: make the first key and leave it where only this user can read it.
  NewKeyText made = GenerateKey();
  const std::string path = data_dir + "/admin.key";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return Status::FailedPrecondition("cannot write the first operator key to " + path + ": " +
                                      strerror(errno));
  (void)fchmod(fd, 0600);
  const std::string line = made.key + "\n";
  const bool wrote =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fsync(fd) == 0;
  close(fd);
  if (!wrote) return Status::FailedPrecondition("cannot write the first operator key to " + path);
  PADDOCK_RETURN_IF_ERROR(CreateBootstrap(store, made.key));
  LogInfo("no API key existed: made an operator key (" + made.prefix + "...) and wrote it to " + path +
          " (mode 0600); use it as 'Authorization: Bearer <key>'");
  return Status::Ok();
}

}  // namespace paddock
