#include "services/teams/api_key.h"

#include <sys/random.h>

#include <Poco/Base64Encoder.h>

#include <cerrno>
#include <sstream>
#include <stdexcept>

#include "util/digest.h"

namespace paddock {

NewKeyText GenerateKey() {
  unsigned char bytes[kKeyRandomBytes];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("getrandom failed");
    got += static_cast<size_t>(n);
  }
  std::ostringstream out;
  {
    Poco::Base64Encoder enc(out, Poco::BASE64_URL_ENCODING | Poco::BASE64_NO_PADDING);
    enc.rdbuf()->setLineLength(0);
    enc.write(reinterpret_cast<const char*>(bytes), sizeof bytes);
    enc.close();
  }
  NewKeyText k;
  k.key = std::string(kKeyPrefix) + out.str();
  k.prefix = KeyPrefix(k.key);
  k.hash = HashKey(k.key);
  return k;
}

std::string HashKey(std::string_view key) { return Sha256Hex(key); }

std::string KeyPrefix(std::string_view key) { return std::string(key.substr(0, kKeyPrefixShown)); }

bool WellFormedKey(std::string_view key) {
  if (key.size() < kMinKeyLength || key.size() > kMaxKeyLength) return false;
  for (char c : key) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

}  // namespace paddock
