#include "services/teams/browser_sessions.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <ctime>
#include <vector>

#include "util/ids.h"
#include "util/key_file.h"

namespace paddock {
namespace {

constexpr size_t kMacDigits = 48;

std::string Mac(const std::string& key, const std::string& what, const std::string& text) {
  return HmacSha256Hex(key, "paddock browser " + what + "\n" + text).substr(0, kMacDigits);
}

bool Same(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

Result<std::unique_ptr<BrowserSessions>> BrowserSessions::Load(const std::string& key_file,
                                                               std::int64_t ttl_s) {
  PADDOCK_ASSIGN_OR_RETURN(std::string key, LoadOrCreateKeyFile(key_file, "the browser session key"));
  return std::unique_ptr<BrowserSessions>(new BrowserSessions(std::move(key), ttl_s));
}

BrowserSession BrowserSessions::Issue(const std::string& key_id) const {
  unsigned char raw[8];
  if (RAND_bytes(raw, sizeof raw) != 1) std::abort();  // no randomness: nothing is safe
  const std::string nonce = HexOf(raw, sizeof raw);
  BrowserSession s;
  s.expires_s = static_cast<std::int64_t>(std::time(nullptr)) + ttl_s_;
  const std::string body = key_id + "." + std::to_string(s.expires_s) + "." + nonce;
  s.cookie = body + "." + Mac(key_, "session", body);
  s.csrf_token = CsrfOf(s.cookie);
  return s;
}

std::optional<std::string> BrowserSessions::KeyOf(const std::string& cookie) const {
  if (cookie.size() > 256) return std::nullopt;
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t dot = cookie.find('.', start);
    parts.push_back(cookie.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (parts.size() != 4 || !IsId(parts[0]) || parts[1].empty() || parts[1].size() > 12 ||
      parts[1].find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const std::string body = parts[0] + "." + parts[1] + "." + parts[2];
  if (!Same(Mac(key_, "session", body), parts[3])) return std::nullopt;
  if (std::stoll(parts[1]) <= static_cast<std::int64_t>(std::time(nullptr))) return std::nullopt;
  return parts[0];
}

std::string BrowserSessions::CsrfOf(const std::string& cookie) const { return Mac(key_, "csrf", cookie); }

bool BrowserSessions::CsrfMatches(const std::string& cookie, const std::string& token) const {
  return Same(CsrfOf(cookie), token);
}

std::optional<std::string> CookieValue(const std::string& header, const std::string& name) {
  for (size_t start = 0; start < header.size();) {
    size_t end = header.find(';', start);
    if (end == std::string::npos) end = header.size();
    std::string pair = header.substr(start, end - start);
    start = end + 1;
    size_t a = pair.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    pair = pair.substr(a);
    size_t eq = pair.find('=');
    if (eq == std::string::npos || pair.compare(0, eq, name) != 0 || eq != name.size()) continue;
    std::string value = pair.substr(eq + 1);
    while (!value.empty() && value.back() == ' ') value.pop_back();
    return value;
  }
  return std::nullopt;
}

}  // namespace paddock
