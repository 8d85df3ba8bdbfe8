// Vault bindings (VaultBinding in types.h): which hosts one covers, and its text form, which a
// secrets plugin seals with the value. Header-only, for the host and plugins alike.
#pragma once

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>

#include "paddock/types.h"

namespace paddock {

namespace vault_detail {
inline std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}
}  // namespace vault_detail

// True when one of `binding.hosts` names `host`:`port`. A host without a port means 443:
// a value goes out over TLS unless the binding names a port itself.
inline bool VaultCovers(const VaultBinding& binding, std::string_view raw_host, int port) {
  std::string host = vault_detail::Lower(raw_host);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  for (const std::string& raw : binding.hosts) {
    std::string entry = vault_detail::Lower(raw);
    std::string entry_host = entry;
    std::string entry_port;
    auto colon = entry.rfind(':');
    if (colon != std::string::npos && entry.find(':') == colon) {
      entry_host = entry.substr(0, colon);
      entry_port = entry.substr(colon + 1);
    }
    bool port_ok =
        entry_port.empty() ? port == 443 : (entry_port == "*" || entry_port == std::to_string(port));
    if (!port_ok) continue;
    if (entry_host.rfind("*.", 0) == 0) {
      std::string suffix = entry_host.substr(1);
      if (host.size() > suffix.size() &&
          host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0)
        return true;
    } else if (host == entry_host) {
      return true;
    }
  }
  return false;
}

// True when `agent_id` may use the entry.
inline bool VaultAllowsAgent(const VaultBinding& binding, std::string_view agent_id) {
  return binding.agents.empty() ||
         std::find(binding.agents.begin(), binding.agents.end(), agent_id) != binding.agents.end();
}

inline const char* VaultFormName(VaultForm form) {
  switch (form) {
    case VaultForm::kBasic:
      return "basic";
    case VaultForm::kQuery:
      return "query";
    case VaultForm::kHeader:
      break;
  }
  return "header";
}

// One "key=value" line per item: "host=", "form=", "field=", "format=", "agent=". The values
// hold no line breaks (the host refuses them when a binding is set). "" for an unbound one.
inline std::string EncodeVaultBinding(const VaultBinding& b) {
  if (!b.bound()) return "";
  std::string out;
  for (const std::string& h : b.hosts) out += "host=" + h + "\n";
  out += std::string("form=") + VaultFormName(b.form) + "\n";
  if (!b.field.empty()) out += "field=" + b.field + "\n";
  out += "format=" + b.format + "\n";
  for (const std::string& a : b.agents) out += "agent=" + a + "\n";
  return out;
}

// nullopt for text EncodeVaultBinding did not write.
inline std::optional<VaultBinding> DecodeVaultBinding(std::string_view text) {
  VaultBinding b;
  b.format.clear();
  bool formatted = false;
  while (!text.empty()) {
    auto nl = text.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view key = line.substr(0, eq);
    std::string value(line.substr(eq + 1));
    if (key == "host") {
      b.hosts.push_back(std::move(value));
    } else if (key == "form") {
      if (value == "header") {
        b.form = VaultForm::kHeader;
      } else if (value == "basic") {
        b.form = VaultForm::kBasic;
      } else if (value == "query") {
        b.form = VaultForm::kQuery;
      } else {
        return std::nullopt;
      }
    } else if (key == "field") {
      b.field = std::move(value);
    } else if (key == "format") {
      b.format = std::move(value);
      formatted = true;
    } else if (key == "agent") {
      b.agents.push_back(std::move(value));
    } else {
      return std::nullopt;
    }
  }
  if (b.hosts.empty() || !formatted) return std::nullopt;
  return b;
}

}  // namespace paddock
