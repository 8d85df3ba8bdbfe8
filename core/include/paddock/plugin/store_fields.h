// How a SessionStore keeps list fields of agents and teams in one text column each. Names
// (profile names, environment variable names) hold no ',' or ':', so the encoding is exact.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "paddock/types.h"

namespace paddock::plugin {

// "a,b,c"; "" for none.
inline std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

inline std::vector<std::string> SplitNames(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    size_t comma = text.find(',');
    out.emplace_back(text.substr(0, comma));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

// "NAME" for an environment variable, "NAME:file" for a file, joined by ','.
inline std::string EncodeSecretRefs(const std::vector<SecretRef>& refs) {
  std::vector<std::string> parts;
  for (const SecretRef& r : refs) parts.push_back(r.file ? r.name + ":file" : r.name);
  return JoinNames(parts);
}

inline std::vector<SecretRef> DecodeSecretRefs(std::string_view text) {
  std::vector<SecretRef> out;
  for (std::string& part : SplitNames(text)) {
    SecretRef r;
    if (size_t colon = part.find(':'); colon != std::string::npos) {
      r.file = part.substr(colon + 1) == "file";
      part.resize(colon);
    }
    r.name = std::move(part);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace paddock::plugin
