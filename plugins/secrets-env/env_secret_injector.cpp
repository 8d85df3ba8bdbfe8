#include "env_secret_injector.h"

#include <cctype>

namespace paddock::plugins::secrets_env {
namespace {

bool ValidEnvName(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

}  // namespace

EnvSecretInjector::EnvSecretInjector(std::string prefix, const std::vector<std::string>& environ_entries) {
  for (const std::string& entry : environ_entries) {
    if (entry.compare(0, prefix.size(), prefix) != 0) continue;
    auto eq = entry.find('=');
    if (eq == std::string::npos) continue;
    std::string name = entry.substr(prefix.size(), eq - prefix.size());
    if (!ValidEnvName(name)) {
      skipped_.push_back(entry.substr(0, eq));
      continue;
    }
    secrets_.push_back({std::move(name), entry.substr(eq + 1), false, 0, {}});
  }
}

Result<std::vector<Secret>> EnvSecretInjector::Resolve(const SecretScope&) noexcept {
  try {
    return secrets_;
  } catch (...) {
    return Status::ResourceExhausted("out of memory copying secrets");
  }
}

}  // namespace paddock::plugins::secrets_env
