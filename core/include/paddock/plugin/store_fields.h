// How a SessionStore keeps list fields of agents and teams in one text column each. Names
// (profile names, environment variable names) hold no ',' or ':', so the encoding is exact;
// a team's quotas are "name=value" pairs, the unset ones left out.
#pragma once

#include <cstdlib>
#include <optional>
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

namespace detail {
struct QuotaField {
  const char* name;
  std::optional<std::int64_t> TeamQuotas::*field;
};
inline constexpr QuotaField kQuotaFields[] = {
    {"sandboxes", &TeamQuotas::sandboxes},
    {"open_sessions", &TeamQuotas::open_sessions},
    {"runs_per_minute", &TeamQuotas::runs_per_minute},
    {"tokens_per_day", &TeamQuotas::tokens_per_day},
    {"cost_per_day_microusd", &TeamQuotas::cost_per_day_microusd},
};
}  // namespace detail

// "sandboxes=5,tokens_per_day=1000000"; "" when none is set.
inline std::string EncodeQuotas(const TeamQuotas& q) {
  std::vector<std::string> parts;
  for (const auto& f : detail::kQuotaFields) {
    if (const auto& v = q.*f.field) parts.push_back(std::string(f.name) + "=" + std::to_string(*v));
  }
  return JoinNames(parts);
}

// Unknown names (a newer version's) are skipped.
inline TeamQuotas DecodeQuotas(std::string_view text) {
  TeamQuotas q;
  for (const std::string& part : SplitNames(text)) {
    size_t eq = part.find('=');
    if (eq == std::string::npos) continue;
    for (const auto& f : detail::kQuotaFields) {
      if (part.compare(0, eq, f.name) == 0) q.*f.field = std::strtoll(part.c_str() + eq + 1, nullptr, 10);
    }
  }
  return q;
}

}  // namespace paddock::plugin
