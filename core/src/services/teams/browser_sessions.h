// BrowserSessions: an API key turned into a browser's session cookie (the dashboard's sign-in).
// The cookie holds no key: "<key id>.<expires, s>.<nonce>.<HMAC-SHA256(session key, ...)>", so
// it is checked without the store, and the key it names is looked up on every request (a
// revoked or expired key ends its browser sessions at once). Writes made with a cookie must
// carry its CSRF token (X-CSRF-Token), an HMAC of the cookie that a page of another origin
// cannot read; the cookie itself is HttpOnly and SameSite=Strict. The session key is a key file
// ([auth] session_key_file) that every API process of an install shares.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "paddock/status.h"

namespace paddock {

inline constexpr char kSessionCookie[] = "paddock_session";
inline constexpr char kCsrfHeader[] = "X-CSRF-Token";

struct BrowserSession {
  std::string cookie;      // the cookie's value
  std::string csrf_token;  // what writes with it carry in X-CSRF-Token
  std::int64_t expires_s = 0;
};

class BrowserSessions {
 public:
  static Result<std::unique_ptr<BrowserSessions>> Load(const std::string& key_file, std::int64_t ttl_s);

  BrowserSession Issue(const std::string& key_id) const;
  // The key a cookie names, when the cookie is one of ours and unexpired.
  std::optional<std::string> KeyOf(const std::string& cookie) const;
  std::string CsrfOf(const std::string& cookie) const;
  // Whether `token` is the cookie's CSRF token (constant time).
  bool CsrfMatches(const std::string& cookie, const std::string& token) const;

  std::int64_t ttl_s() const { return ttl_s_; }

 private:
  BrowserSessions(std::string key, std::int64_t ttl_s) : key_(std::move(key)), ttl_s_(ttl_s) {}
  const std::string key_;
  const std::int64_t ttl_s_;
};

// The value of cookie `name` in a Cookie header; nullopt when absent.
std::optional<std::string> CookieValue(const std::string& header, const std::string& name);

}  // namespace paddock
