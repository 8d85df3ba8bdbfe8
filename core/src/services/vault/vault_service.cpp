#include "services/vault/vault_service.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>

#include "metrics/metrics.h"
#include "paddock/vault.h"
#include "services/events/catalogue.h"
#include "services/events/event_service.h"
#include "util/key_file.h"
#include "util/log.h"

namespace paddock {
namespace {

constexpr size_t kHexDigits = kVaultPlaceholderBytes - (sizeof kVaultPlaceholderPrefix - 1);

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string Base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

std::optional<std::string> Unbase64(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && text[text.size() - 1 - pad] == '=') ++pad;
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) return std::nullopt;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string PercentEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      static const char* digits = "0123456789ABCDEF";
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

// The query parameters of `target` whose values hold `placeholder`, by name.
std::vector<std::string> QueryNamesHolding(const std::string& target, const std::string& placeholder) {
  std::vector<std::string> names;
  auto q = target.find('?');
  if (q == std::string::npos) return names;
  std::string_view query(target);
  query.remove_prefix(q + 1);
  if (auto hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    auto eq = pair.find('=');
    std::string_view name = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (value.find(placeholder) != std::string_view::npos) names.emplace_back(name);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return names;
}

}  // namespace

std::vector<std::string> FindPlaceholders(std::string_view text) {
  std::vector<std::string> out;
  const std::string_view prefix = kVaultPlaceholderPrefix;
  for (size_t at = text.find(prefix); at != std::string_view::npos; at = text.find(prefix, at + 1)) {
    std::string_view rest = text.substr(at + prefix.size());
    size_t n = 0;
    while (n < rest.size() && n < kHexDigits && std::isxdigit(static_cast<unsigned char>(rest[n])) &&
           !std::isupper(static_cast<unsigned char>(rest[n]))) {
      ++n;
    }
    // Anything that starts like a placeholder is one: a mangled one is refused, not sent.
    out.emplace_back(text.substr(at, prefix.size() + n));
  }
  return out;
}

VaultService::VaultService(std::unique_ptr<CertificateAuthority> ca, std::string key, SessionStore& store,
                           SecretInjector& secrets, EventService& events, Metrics& metrics)
    : ca_(std::move(ca)),
      key_(std::move(key)),
      store_(store),
      secrets_(secrets),
      events_(events),
      metrics_(metrics) {}

Result<std::unique_ptr<VaultService>> VaultService::Create(const std::string& dir, SessionStore& store,
                                                           SecretInjector& secrets, EventService& events,
                                                           Metrics& metrics) {
  PADDOCK_ASSIGN_OR_RETURN(std::unique_ptr<CertificateAuthority> ca,
                           CertificateAuthority::LoadOrCreate(dir, "Paddock egress CA"));
  PADDOCK_ASSIGN_OR_RETURN(std::string key,
                           LoadOrCreateKeyFile(dir + "/placeholder.key", "the placeholder key"));
  return std::unique_ptr<VaultService>(
      new VaultService(std::move(ca), std::move(key), store, secrets, events, metrics));
}

std::string VaultService::Placeholder(const std::string& session_id, const std::string& name) const {
  return std::string(kVaultPlaceholderPrefix) +
         HmacSha256Hex(key_, "paddock vault placeholder\n" + session_id + "\n" + name).substr(0, kHexDigits);
}

VaultBinding VaultService::BindingOf(const Secret& s) const {
  if (s.vault.bound()) return s.vault;
  auto found = defaults_.find(s.name);
  return found == defaults_.end() ? VaultBinding{} : found->second;
}

Status VaultService::Conceal(const Session& session, std::vector<Secret>& secrets) const {
  for (Secret& s : secrets) {
    s.vault = BindingOf(s);
    if (!s.vault.bound()) continue;
    if (!VaultAllowsAgent(s.vault, session.agent_id)) {
      return Status::FailedPrecondition("agent '" + session.agent_id + "' names the vault entry '" + s.name +
                                        "', whose binding does not list it in 'agents'");
    }
    s.value = Placeholder(session.id, s.name);
  }
  return Status::Ok();
}

void VaultService::FollowRotation() {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t last = checked_ms_.load();
  if (now - last < 1000 || !checked_ms_.compare_exchange_strong(last, now)) return;
  Result<bool> reloaded = ca_->ReloadIfChanged();
  if (!reloaded.ok()) {
    LogError("vault: the CA was changed and cannot be loaded, the old one stays: " +
             reloaded.status().ToString());
  } else if (*reloaded) {
    LogInfo("vault: the CA was rotated; certificates now come from the new one (sha256 " +
            ca_->fingerprint() + ")");
  }
}

std::string VaultService::TrustPem() {
  FollowRotation();
  return ca_->certificate_pem();
}

Result<HostCertificate> VaultService::CertificateFor(const std::string& host) {
  FollowRotation();
  PADDOCK_ASSIGN_OR_RETURN(IssuedCertificate cert, ca_->Issue(host));
  return HostCertificate{std::move(cert.certificate_pem), std::move(cert.key_pem)};
}

bool VaultService::Intercepts(const std::string& dir, const std::string& host, int port) {
  if (!session_of_) return false;
  const std::string session_id = session_of_(dir);
  if (session_id.empty()) return false;
  if (inspect_all_) return true;
  // A model endpoint is read for every session: its placeholders come from any injector.
  for (const auto& [name, binding] : defaults_) {
    if (VaultCovers(binding, host, port)) return true;
  }
  TeamSecrets* team = secrets_.team_secrets();
  if (!team) return false;
  Result<Session> session = store_.GetSession(session_id);
  if (!session.ok()) return false;
  Result<Agent> agent = store_.GetAgent(session->agent_id);
  if (!agent.ok()) return false;
  Result<std::vector<SecretInfo>> entries = team->List(session->team_id);
  if (!entries.ok()) {
    // Read nothing rather than guess: the request then goes out with placeholders only.
    LogWarn("vault: listing team " + session->team_id + "'s entries: " + entries.status().ToString());
    return false;
  }
  for (const SecretInfo& e : *entries) {
    if (!e.vault.bound() || !VaultCovers(e.vault, host, port)) continue;
    bool named = std::any_of(agent->secrets.begin(), agent->secrets.end(),
                             [&](const SecretRef& r) { return r.name == e.name; });
    if (named) return true;
  }
  return false;
}

std::string VaultService::Refuse(const std::string& session_id, const std::string& secret,
                                 const std::string& host, int port, const std::string& reason) {
  metrics_.VaultRequest(false);
  LogWarn("vault refused a request to " + host + ":" + std::to_string(port) +
          (secret.empty() ? std::string() : " with secret " + secret) +
          (session_id.empty() ? std::string() : " from session " + session_id) + ": " + reason);
  if (!session_id.empty())
    (void)events_.Append(session_id, "", event::VaultRefused(secret, host, port, reason));
  return "paddock vault: " + reason + "; the request was not sent\n";
}

std::string VaultService::Substitute(const std::string& dir, const std::string& host, int port, bool tls,
                                     HttpHead& head) {
  // Where each placeholder sits: the target, a header, or inside basic credentials.
  struct Spot {
    std::string placeholder;
    std::string header;  // lowercase; "" for the target
    bool basic = false;
  };
  std::vector<Spot> spots;
  for (const std::string& p : FindPlaceholders(head.target)) spots.push_back({p, "", false});
  for (const auto& [name, value] : head.fields) {
    for (const std::string& p : FindPlaceholders(value)) spots.push_back({p, Lower(name), false});
    if (Lower(name) == "authorization" && value.size() > 6 && Lower(value.substr(0, 6)) == "basic ") {
      if (std::optional<std::string> creds = Unbase64(std::string_view(value).substr(6))) {
        for (const std::string& p : FindPlaceholders(*creds)) spots.push_back({p, "authorization", true});
      }
    }
  }
  if (spots.empty()) return "";
  const std::string session_id = session_of_ ? session_of_(dir) : "";
  if (session_id.empty())
    return Refuse("", "", host, port, "the request carries a placeholder of no session");
  if (!tls) {
    return Refuse(session_id, "", host, port,
                  "a vault value goes out over TLS only, and this is a plain HTTP request (use https://)");
  }
  Result<Session> session = store_.GetSession(session_id);
  if (!session.ok()) return Refuse(session_id, "", host, port, "the session cannot be read");
  TeamSecrets* team = secrets_.team_secrets();
  Result<std::vector<SecretInfo>> entries =
      team ? team->List(session->team_id) : Result<std::vector<SecretInfo>>(std::vector<SecretInfo>{});
  if (!entries.ok()) return Refuse(session_id, "", host, port, "the team's vault entries cannot be read");
  std::map<std::string, std::string> by_placeholder;  // placeholder -> entry name
  for (const SecretInfo& e : *entries) {
    if (e.vault.bound()) by_placeholder[Placeholder(session_id, e.name)] = e.name;
  }
  for (const auto& [name, binding] : defaults_) by_placeholder[Placeholder(session_id, name)] = name;
  // What the session's sandbox is given, now: a change applies to this request.
  std::optional<std::vector<Secret>> delivered;
  // Every placeholder must be of an entry, bound to this host, and where its binding says.
  std::map<std::string, std::string> values;  // entry name -> value
  std::map<std::string, VaultBinding> bindings;
  for (const Spot& spot : spots) {
    auto found = by_placeholder.find(spot.placeholder);
    if (found == by_placeholder.end()) {
      return Refuse(session_id, "", host, port,
                    "a placeholder of no vault entry of this session (deleted, or another session's)");
    }
    const std::string& name = found->second;
    if (!values.count(name)) {
      if (!delivered) {
        Result<Agent> agent = store_.GetAgent(session->agent_id);
        if (!agent.ok()) return Refuse(session_id, name, host, port, "the session's agent cannot be read");
        Result<std::vector<Secret>> got =
            secrets_.Resolve(SecretScope{session->team_id, session->agent_id, session_id, agent->secrets});
        if (!got.ok()) {
          return Refuse(session_id, name, host, port,
                        "the agent's secrets cannot be resolved: " + got.status().message());
        }
        delivered = std::move(*got);
      }
      // The last of a name wins, as in the sandbox's environment.
      auto it = std::find_if(delivered->rbegin(), delivered->rend(),
                             [&](const Secret& s) { return s.name == name; });
      VaultBinding b = it == delivered->rend() ? VaultBinding{} : BindingOf(*it);
      if (!b.bound()) {
        return Refuse(session_id, name, host, port,
                      "the vault entry '" + name + "' is gone, not bound, or no longer given to the agent");
      }
      bindings[name] = std::move(b);
      values[name] = it->value;
    }
    const VaultBinding& b = bindings[name];
    if (!VaultCovers(b, host, port)) {
      std::string hosts;
      for (const std::string& h : b.hosts) hosts += (hosts.empty() ? "" : ", ") + h;
      return Refuse(session_id, name, host, port,
                    "the vault entry '" + name + "' is not bound to " + host + ":" + std::to_string(port) +
                        " (its hosts: " + hosts + ")");
    }
    if (!VaultAllowsAgent(b, session->agent_id)) {
      return Refuse(session_id, name, host, port,
                    "the vault entry '" + name + "' is not for agent '" + session->agent_id + "'");
    }
    bool placed = false;
    switch (b.form) {
      case VaultForm::kHeader:
        placed = !spot.basic && spot.header == Lower(b.field);
        break;
      case VaultForm::kBasic:
        placed = spot.basic;
        break;
      case VaultForm::kQuery: {
        std::vector<std::string> names = QueryNamesHolding(head.target, spot.placeholder);
        placed = spot.header.empty() && !names.empty() &&
                 std::all_of(names.begin(), names.end(), [&](const std::string& n) { return n == b.field; });
        break;
      }
    }
    if (!placed) {
      std::string where = b.form == VaultForm::kHeader  ? "the header " + b.field
                          : b.form == VaultForm::kBasic ? std::string("basic credentials")
                                                        : "the query parameter " + b.field;
      return Refuse(session_id, name, host, port,
                    "the vault entry '" + name + "' goes in " + where +
                        " only, and the request has its placeholder " +
                        (spot.header.empty() ? std::string("in the URL") : "in the header " + spot.header));
    }
  }
  // All checked: put the values in.
  for (auto& [name, value] : head.fields) {
    const std::string lower = Lower(name);
    for (const auto& [entry, v] : values) {
      const VaultBinding& b = bindings[entry];
      const std::string placeholder = Placeholder(session_id, entry);
      if (b.form == VaultForm::kHeader && lower == Lower(b.field) &&
          value.find(placeholder) != std::string::npos) {
        std::string text = b.format;
        text.replace(text.find("{}"), 2, v);
        value = std::move(text);
      } else if (b.form == VaultForm::kBasic && lower == "authorization") {
        if (std::optional<std::string> creds = Unbase64(std::string_view(value).substr(6));
            creds && creds->find(placeholder) != std::string::npos) {
          ReplaceAll(*creds, placeholder, v);
          value = "Basic " + Base64(*creds);
        }
      }
    }
  }
  for (const auto& [entry, v] : values) {
    if (bindings[entry].form == VaultForm::kQuery)
      ReplaceAll(head.target, Placeholder(session_id, entry), PercentEncode(v));
  }
  metrics_.VaultRequest(true);
  return "";
}

}  // namespace paddock
