// API keys as text: made from 32 random bytes, looked up by their SHA-256, recognised by a
// prefix. The key itself is shown once, when it is made, and never stored.
#pragma once

#include <string>
#include <string_view>

namespace paddock {

// "pdk_" and the base64url of 32 bytes from getrandom(2): 47 characters.
inline constexpr std::string_view kKeyPrefix = "pdk_";
inline constexpr size_t kKeyRandomBytes = 32;
// What a key may be when it is presented: bounded before anything else looks at it.
inline constexpr size_t kMinKeyLength = 32;
inline constexpr size_t kMaxKeyLength = 256;
// How many leading characters of a key are kept to recognise it by.
inline constexpr size_t kKeyPrefixShown = 12;

struct NewKeyText {
  std::string key;     // shown once
  std::string prefix;  // kept
  std::string hash;    // kept
};

NewKeyText GenerateKey();
// Lower-case hex SHA-256 of the key: how the store finds it.
std::string HashKey(std::string_view key);
// The prefix kept of a key.
std::string KeyPrefix(std::string_view key);
// Whether `key` could be a key at all: kMinKeyLength..kMaxKeyLength printable ASCII characters
// without spaces (any longer or odder input is refused before it is hashed or looked up).
bool WellFormedKey(std::string_view key);

}  // namespace paddock
