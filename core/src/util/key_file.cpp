#include "util/key_file.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace paddock {
namespace {

constexpr size_t kKeyBytes = 32;

std::optional<std::string> Unhex(std::string_view text) {
  if (text.size() % 2) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < text.size(); i += 2) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nibble(text[i]);
    int lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace

std::string HexOf(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

Result<std::string> LoadOrCreateKeyFile(const std::string& path, const std::string& what) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    unsigned char raw[kKeyBytes];
    if (RAND_bytes(raw, sizeof raw) != 1) return Status::Internal("no random bytes for " + what);
    const std::string text = HexOf(raw, sizeof raw) + "\n";
    const std::string tmp = path + ".tmp";
    int out = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) return Status::FailedPrecondition("cannot write " + tmp + ": " + strerror(errno));
    bool ok = write(out, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(out) == 0;
    close(out);
    // link, not rename: a process that made its own key meanwhile keeps its (the first one wins).
    if (!ok || (link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST)) {
      unlink(tmp.c_str());
      return Status::FailedPrecondition("cannot write " + path + ": " + strerror(errno));
    }
    unlink(tmp.c_str());
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return Status::FailedPrecondition("cannot read " + what + " " + path + ": " + strerror(errno));
  struct stat st {};
  // Group-read is allowed: a Kubernetes Secret mounted with fsGroup is 0440 root:<fsGroup>.
  if (fstat(fd, &st) != 0 || (st.st_mode & 027) != 0) {
    close(fd);
    return Status::FailedPrecondition(what + " " + path + " may be read by others; make it 0600 (chmod 600)");
  }
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  std::string_view text(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::optional<std::string> key = Unhex(text);
  if (!key || key->size() != kKeyBytes) {
    return Status::FailedPrecondition(what + " " + path + " is not 64 hex digits");
  }
  return *key;
}

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), md, &len);
  return HexOf(md, len);
}

}  // namespace paddock
