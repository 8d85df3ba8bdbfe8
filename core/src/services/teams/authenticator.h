// Authenticator: the principal of a presented API key. Keys are looked up by their hash and
// kept in a short cache; a revocation (from any process: EventFeed::OnKeyRevoked) drops the
// key from the cache at once, and while the store's notifications are down the cache is not
// used at all, so a revoked key is never honoured past the notification that tells of it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "paddock/session_store.h"
#include "services/teams/principal.h"

namespace paddock {

struct AuthSettings;

// Why a presented key was refused: the 401's message says which, without telling a guesser
// more than that the key is not usable.
enum class AuthFailure { kNone, kMissing, kMalformed, kUnknown, kExpired, kRevoked, kStoreDown };

struct AuthOutcome {
  AuthFailure failure = AuthFailure::kNone;
  Principal principal;
  std::string message;  // for a failure: what a person can act on
};

class Authenticator {
 public:
  Authenticator(SessionStore& store, std::chrono::milliseconds cache_ttl);

  // The key from a request's headers: "Authorization: Bearer <key>" or "x-api-key: <key>"
  // (either may be null).
  AuthOutcome Authenticate(const std::string* authorization, const std::string* x_api_key);
  // The principal of `key` itself.
  AuthOutcome Check(std::string_view key);
  // The principal of the key with id `key_id` (a browser session names its key by id): read
  // from the store every time, so a revocation or an expiry applies to the next request.
  AuthOutcome ByKeyId(const std::string& key_id);

  void OnKeyRevoked(std::string_view key_id);
  void OnFeedState(bool live);

  // Keys of this process's cache (tests, metrics).
  size_t cached() const;

 private:
  struct Entry {
    ApiKey key;
    std::chrono::steady_clock::time_point until;
  };

  SessionStore& store_;
  std::chrono::milliseconds ttl_;
  std::atomic<bool> live_{true};
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> by_hash_;
};

// Makes sure the install has a first operator key (team kDefaultTeam, name "bootstrap"):
// the key in `admin_key_file` or $PADDOCK_ADMIN_KEY when given (a key of the name "bootstrap"
// with another value is revoked: changing the variable rotates it); with neither, and no key
// in the store at all, a new one written to <data_dir>/admin.key (0600). Logs what it did,
// never the key.
Status EnsureBootstrapKey(SessionStore& store, const AuthSettings& settings, const std::string& data_dir);

}  // namespace paddock
