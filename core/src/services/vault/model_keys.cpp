#include "services/vault/model_keys.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <algorithm>
#include <optional>

namespace paddock {
namespace {

constexpr char kAnthropic[] = "https://api.anthropic.com";
constexpr char kOpenAi[] = "https://api.openai.com/v1";

// "host:port" of an https URL; nullopt for any other.
std::optional<std::string> TlsHost(const std::string& url) {
  try {
    Poco::URI uri(url);
    if (uri.getScheme() != "https" || uri.getHost().empty()) return std::nullopt;
    std::string host = uri.getHost();
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    return host + ":" + std::to_string(uri.getPort());
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

VaultBinding Header(std::vector<std::string> hosts, std::string field, std::string format) {
  VaultBinding b;
  b.hosts = std::move(hosts);
  b.form = VaultForm::kHeader;
  b.field = std::move(field);
  b.format = std::move(format);
  return b;
}

}  // namespace

std::pair<std::string, std::string> ModelUrls(const std::string& gateway,
                                              const std::string& anthropic_base_url,
                                              const std::string& openai_base_url) {
  return {!anthropic_base_url.empty() ? anthropic_base_url : gateway, !openai_base_url.empty()
                                                                          ? openai_base_url
                                                                      : gateway.empty() ? ""
                                                                                        : gateway + "/v1"};
}

ModelKeys ModelKeyBindings(const std::string& anthropic_url, const std::string& openai_url) {
  const std::string anthropic = anthropic_url.empty() ? kAnthropic : anthropic_url;
  const std::string openai = openai_url.empty() ? kOpenAi : openai_url;
  ModelKeys out;
  std::vector<std::string> gateway;
  auto plain = [&](const std::string& names, const std::string& url) {
    out.warnings.push_back(names + " reach sandboxes as their values, not placeholders: " + url +
                           " is not https://, and a vault value goes out over TLS only");
  };
  if (std::optional<std::string> a = TlsHost(anthropic)) {
    out.bindings["ANTHROPIC_API_KEY"] = Header({*a}, "x-api-key", "{}");
    out.bindings["ANTHROPIC_AUTH_TOKEN"] = Header({*a}, "Authorization", "Bearer {}");
    gateway.push_back(*a);
  } else {
    plain("ANTHROPIC_API_KEY and ANTHROPIC_AUTH_TOKEN", anthropic);
  }
  if (std::optional<std::string> o = TlsHost(openai)) {
    out.bindings["OPENAI_API_KEY"] = Header({*o}, "Authorization", "Bearer {}");
    if (std::find(gateway.begin(), gateway.end(), *o) == gateway.end()) gateway.push_back(*o);
  } else {
    plain("OPENAI_API_KEY", openai);
  }
  // The gateway's key, which every harness sends as a bearer token to whichever of the two
  // it speaks: a placeholder only when both are TLS, or one of them would get a placeholder
  // it cannot use.
  if (TlsHost(anthropic) && TlsHost(openai)) {
    out.bindings["LITELLM_API_KEY"] = Header(gateway, "Authorization", "Bearer {}");
  } else {
    plain("LITELLM_API_KEY", anthropic + " and " + openai);
  }
  return out;
}

}  // namespace paddock
