#include "services/secrets/secret_service.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "util/ids.h"
#include "util/redactor.h"

namespace paddock {

Result<TeamSecrets*> SecretService::Backend() {
  TeamSecrets* backend = injector_.team_secrets();
  if (!backend) {
    return Status::FailedPrecondition(
        "no configured secrets plugin keeps team secrets; add [[secrets]] type = \"store\" to the config");
  }
  return backend;
}

namespace {

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!(std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c))) return false;
  }
  return true;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// "" when `entry` is a host pattern a binding may name; otherwise why not.
std::string HostProblem(const std::string& entry) {
  std::string host = entry;
  std::string port;
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string::npos) return "an IPv6 address needs its closing ']'";
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':') return "only ':port' may follow ']'";
      port = host.substr(close + 2);
    }
    host = host.substr(1, close - 1);
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos)
      return "not an IPv6 address";
  } else {
    auto colon = host.rfind(':');
    if (colon != std::string::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
      if (port.empty()) return "a ':' must be followed by a port or '*'";
    }
    std::string rest = host.rfind("*.", 0) == 0 ? host.substr(2) : host;
    if (rest.empty() || (host.rfind("*.", 0) == 0 && rest.find('.') == std::string::npos)) {
      return "a host must be a name (api.example.com), *.domain with a dot in the domain, or an IP address";
    }
    if (rest.find('*') != std::string::npos) {
      return "a '*' may only start a host, as in *.domain: a binding names where its value may go";
    }
    if (rest.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
        std::string::npos) {
      return "a host may hold letters, digits, '.' and '-' (and a leading '*.')";
    }
  }
  if (!port.empty() && port != "*") {
    bool digits = port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
    int n = digits ? std::stoi(port) : 0;
    if (n < 1 || n > 65535) return "the port must be 1..65535 or '*'";
  }
  return "";
}

}  // namespace

Status SecretService::CheckBinding(const VaultBinding& vault, const std::string& value) {
  if (!vault.bound()) return Status::Ok();
  for (const std::string& h : vault.hosts) {
    if (std::string why = HostProblem(h); !why.empty()) {
      return Status::InvalidArgument("field 'vault.hosts' has '" + h + "': " + why);
    }
  }
  switch (vault.form) {
    case VaultForm::kHeader: {
      if (!IsToken(vault.field)) {
        return Status::InvalidArgument("field 'vault.header' must be a header name (letters, digits, '-')");
      }
      static const char* kFraming[] = {
          "host", "content-length", "transfer-encoding", "connection",          "upgrade",
          "te",   "trailer",        "keep-alive",        "proxy-authorization", "proxy-connection"};
      for (const char* f : kFraming) {
        if (Lower(vault.field) == f) {
          return Status::InvalidArgument("field 'vault.header' may not be " + vault.field +
                                         ", which frames or routes the request");
        }
      }
      auto first = vault.format.find("{}");
      if (first == std::string::npos || vault.format.find("{}", first + 2) != std::string::npos) {
        return Status::InvalidArgument(
            "field 'vault.format' must hold '{}', where the value goes, exactly once (e.g. \"Bearer {}\")");
      }
      if (vault.format.find_first_of("\r\n", 0) != std::string::npos ||
          vault.format.find('\0') != std::string::npos) {
        return Status::InvalidArgument("field 'vault.format' may not hold a line break");
      }
      if (value.find_first_of("\r\n") != std::string::npos) {
        return Status::InvalidArgument("a value that goes in a header may not hold a line break");
      }
      break;
    }
    case VaultForm::kQuery:
      if (vault.field.empty() ||
          vault.field.find_first_not_of(
              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~") != std::string::npos) {
        return Status::InvalidArgument(
            "field 'vault.query' must be a query parameter name (letters, digits, '-', '.', '_', '~')");
      }
      break;
    case VaultForm::kBasic:
      if (value.find_first_of("\r\n") != std::string::npos) {
        return Status::InvalidArgument("a value that goes in basic auth may not hold a line break");
      }
      break;
  }
  for (const std::string& a : vault.agents) {
    if (!IsId(a))
      return Status::InvalidArgument("field 'vault.agents' has '" + a + "', which is not an agent id");
  }
  return Status::Ok();
}

Result<SecretInfo> SecretService::Set(const std::string& team_id, const std::string& name,
                                      const std::string& value, const VaultBinding& vault) {
  if (!IsEnvName(name)) {
    return Status::InvalidArgument("secret name '" + name +
                                   "' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*, at most 128)");
  }
  if (value.size() < kMinSecretBytes) {
    // Every occurrence of a value is redacted from all output, so a short one would hide
    // ordinary text everywhere.
    return Status::InvalidArgument(
        "field 'value' must be at least 8 bytes: every occurrence of a secret is "
        "redacted from output, logs and responses");
  }
  if (value.size() > kMaxSecretBytes) return Status::InvalidArgument("field 'value' is over 64KiB");
  if (value.rfind(kVaultPlaceholderPrefix, 0) == 0) {
    return Status::InvalidArgument("field 'value' is a vault placeholder (" +
                                   std::string(kVaultPlaceholderPrefix) +
                                   "...), not a secret: set the real value");
  }
  if (value.find('\0') != std::string::npos) {
    return Status::InvalidArgument(
        "field 'value' contains a NUL character (an environment variable cannot hold it)");
  }
  PADDOCK_RETURN_IF_ERROR(CheckBinding(vault, value));
  PADDOCK_ASSIGN_OR_RETURN(TeamSecrets * backend, Backend());
  PADDOCK_ASSIGN_OR_RETURN(std::vector<SecretInfo> existing, backend->List(team_id));
  bool replacing =
      std::any_of(existing.begin(), existing.end(), [&](const SecretInfo& s) { return s.name == name; });
  if (!replacing && existing.size() >= kMaxSecretsPerTeam) {
    return Status::FailedPrecondition("team '" + team_id + "' has " + std::to_string(existing.size()) +
                                      " secrets, the most a team may have; delete one first");
  }
  // Hidden before anyone could see it, in this process; other processes learn it when they
  // resolve it for a sandbox.
  redactor_.Add(value);
  return backend->Set(team_id, name, value, vault);
}

Result<std::vector<SecretInfo>> SecretService::List(const std::string& team_id) {
  PADDOCK_ASSIGN_OR_RETURN(TeamSecrets * backend, Backend());
  return backend->List(team_id);
}

Status SecretService::Delete(const std::string& team_id, const std::string& name) {
  PADDOCK_ASSIGN_OR_RETURN(TeamSecrets * backend, Backend());
  return backend->Delete(team_id, name);
}

}  // namespace paddock
