// Sealer: AES-256-GCM (OpenSSL) over a team secret, bound to its team and name, under one
// key of a keyring. Keys are 32 random bytes, written as base64 (one per line).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "paddock/status.h"

namespace paddock::plugins::secrets_store {

struct SecretKey {
  std::string id;     // 16 hex digits of the key's SHA-256: stored with each value it sealed
  std::string bytes;  // 32 bytes
};

// One base64 key per line; blank lines and lines starting with '#' are skipped; also ',' or
// whitespace between keys (for an environment variable). The first key is the current one.
// kInvalidArgument naming `source` for anything else.
Result<std::vector<SecretKey>> ParseKeyring(std::string_view text, const std::string& source);
// A new key from getrandom(2).
SecretKey GenerateKey();
// The key as a keyring line (base64).
std::string EncodeKey(const SecretKey& key);

// "v1." + base64(nonce || ciphertext || tag): nonce 12 random bytes, tag 16 bytes; the
// additional data names the team and the secret, so a sealed value moved to another row does
// not open. With a vault binding (EncodeVaultBinding's text): "v2." + base64(binding) + "." +
// the same, the binding in the additional data too, so a binding altered in the store does
// not open either.
Result<std::string> Seal(const SecretKey& key, std::string_view team_id, std::string_view name,
                         std::string_view value, std::string_view binding = {});
// kInternal when it does not open (altered, another key, another team's or name's). The
// binding it was sealed with goes to `binding` ("" for none).
Result<std::string> Open(const SecretKey& key, std::string_view team_id, std::string_view name,
                         std::string_view sealed, std::string* binding = nullptr);
// The binding text of a sealed value without opening it ("" for none; nullopt: malformed).
// Only for showing it: what is used is what Open returns.
std::optional<std::string> BindingOf(std::string_view sealed);

}  // namespace paddock::plugins::secrets_store
