#include "sealer.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/random.h>

#include <cctype>
#include <memory>
#include <optional>
#include <stdexcept>

namespace paddock::plugins::secrets_store {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr std::string_view kFormat = "v1.";
constexpr std::string_view kBoundFormat = "v2.";

std::string Base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// nullopt unless `text` is canonical padded base64.
std::optional<std::string> Unbase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  for (char c : text) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '='))
      return std::nullopt;
  }
  size_t pad = 0;
  while (pad < 2 && text[text.size() - 1 - pad] == '=') ++pad;
  if (text.substr(0, text.size() - pad).find('=') != std::string_view::npos) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) return std::nullopt;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string KeyId(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 8; ++i) {
    id += hex[md[i] >> 4];
    id += hex[md[i] & 15];
  }
  return id;
}

std::string Aad(std::string_view team_id, std::string_view name, std::string_view binding) {
  std::string aad = "paddock team secret";
  aad += '\0';
  aad += team_id;
  aad += '\0';
  aad += name;
  if (!binding.empty()) {
    aad += '\0';
    aad += binding;
  }
  return aad;
}

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

}  // namespace

Result<std::vector<SecretKey>> ParseKeyring(std::string_view text, const std::string& source) {
  std::vector<SecretKey> keys;
  int line = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view l = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line;
    size_t start = l.find_first_not_of(" \t\r");
    if (start == std::string_view::npos || l[start] == '#') continue;
    l.remove_prefix(start);
    // Keys on one line may be separated by ',' or blanks (an environment variable).
    while (!l.empty()) {
      size_t end = l.find_first_of(", \t\r");
      std::string_view word = l.substr(0, end);
      l = end == std::string_view::npos ? std::string_view() : l.substr(end + 1);
      if (word.empty()) continue;
      std::optional<std::string> bytes = Unbase64(word);
      if (!bytes || bytes->size() != kKeyBytes) {
        return Status::InvalidArgument(
            source + ":" + std::to_string(line) +
            ": not a key (32 bytes in base64, e.g. from `openssl rand -base64 32`)");
      }
      keys.push_back({KeyId(*bytes), std::move(*bytes)});
    }
  }
  if (keys.empty()) return Status::InvalidArgument(source + ": holds no key");
  return keys;
}

SecretKey GenerateKey() {
  std::string bytes(kKeyBytes, '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n <= 0) throw std::runtime_error("getrandom failed");
    got += static_cast<size_t>(n);
  }
  return {KeyId(bytes), bytes};
}

std::string EncodeKey(const SecretKey& key) { return Base64(key.bytes); }

Result<std::string> Seal(const SecretKey& key, std::string_view team_id, std::string_view name,
                         std::string_view value, std::string_view binding) {
  unsigned char nonce[kNonceBytes];
  if (RAND_bytes(nonce, sizeof nonce) != 1) return Status::Internal("no random bytes for a nonce");
  Ctx ctx(EVP_CIPHER_CTX_new());
  const std::string aad = Aad(team_id, name, binding);
  std::string out(reinterpret_cast<char*>(nonce), sizeof nonce);
  out.resize(kNonceBytes + value.size() + kTagBytes);
  auto* buf = reinterpret_cast<unsigned char*>(out.data());
  int len = 0;
  int total = 0;
  const auto* k = reinterpret_cast<const unsigned char*>(key.bytes.data());
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, k, nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), buf + kNonceBytes, &len,
                        reinterpret_cast<const unsigned char*>(value.data()),
                        static_cast<int>(value.size())) != 1) {
    return Status::Internal("AES-256-GCM encryption failed");
  }
  total = len;
  if (EVP_EncryptFinal_ex(ctx.get(), buf + kNonceBytes + total, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, buf + kNonceBytes + value.size()) !=
          1) {
    return Status::Internal("AES-256-GCM encryption failed");
  }
  if (binding.empty()) return std::string(kFormat) + Base64(out);
  return std::string(kBoundFormat) + Base64(binding) + "." + Base64(out);
}

std::optional<std::string> BindingOf(std::string_view sealed) {
  if (!sealed.starts_with(kBoundFormat)) return std::string();
  sealed.remove_prefix(kBoundFormat.size());
  auto dot = sealed.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  return Unbase64(sealed.substr(0, dot));
}

Result<std::string> Open(const SecretKey& key, std::string_view team_id, std::string_view name,
                         std::string_view sealed, std::string* binding_out) {
  auto bad = [&](const std::string& why) {
    return Status::Internal("the secret '" + std::string(name) + "' of team '" + std::string(team_id) +
                            "' does not decrypt (" + why + ")");
  };
  std::string binding;
  if (sealed.starts_with(kBoundFormat)) {
    std::optional<std::string> b = BindingOf(sealed);
    if (!b || b->empty()) return bad("its vault binding is malformed");
    binding = std::move(*b);
    sealed.remove_prefix(sealed.find('.', kBoundFormat.size()) + 1);
  } else if (sealed.starts_with(kFormat)) {
    sealed.remove_prefix(kFormat.size());
  } else {
    return bad("not a value this plugin sealed");
  }
  std::optional<std::string> raw = Unbase64(sealed);
  if (!raw || raw->size() < kNonceBytes + kTagBytes) return bad("truncated");
  const size_t n = raw->size() - kNonceBytes - kTagBytes;
  auto* in = reinterpret_cast<unsigned char*>(raw->data());
  const std::string aad = Aad(team_id, name, binding);
  std::string out(n, '\0');
  Ctx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  const auto* k = reinterpret_cast<const unsigned char*>(key.bytes.data());
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, k, in) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, in + kNonceBytes,
                        static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, in + kNonceBytes + n) != 1) {
    return bad("the cipher refused it");
  }
  unsigned char tail[16];
  if (EVP_DecryptFinal_ex(ctx.get(), tail, &len) != 1) {
    return bad("altered, or sealed for another team or name");
  }
  if (binding_out) *binding_out = std::move(binding);
  return out;
}

}  // namespace paddock::plugins::secrets_store
