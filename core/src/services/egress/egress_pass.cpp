#include "services/egress/egress_pass.h"

#include <openssl/crypto.h>

#include <Poco/Base64Decoder.h>

#include <sstream>

#include "util/ids.h"
#include "util/key_file.h"

namespace paddock {
namespace {

constexpr size_t kMacDigits = 48;

std::optional<std::string> Unbase64(const std::string& text) {
  try {
    std::istringstream in(text);
    Poco::Base64Decoder decoder(in);
    std::string out;
    char c;
    while (decoder.get(c)) out += c;
    if (!decoder.eof()) return std::nullopt;
    return out;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

Result<std::unique_ptr<EgressPass>> EgressPass::Load(const std::string& key_file) {
  PADDOCK_ASSIGN_OR_RETURN(std::string key, LoadOrCreateKeyFile(key_file, "the egress pass key"));
  return std::unique_ptr<EgressPass>(new EgressPass(std::move(key)));
}

std::string EgressPass::Mac(const std::string& session_id, const std::string& sandbox_id,
                            const std::string& profile) const {
  return HmacSha256Hex(key_, "paddock egress pass\n" + session_id + "\n" + sandbox_id + "\n" + profile)
      .substr(0, kMacDigits);
}

EgressCredentials EgressPass::Mint(const std::string& session_id, const std::string& sandbox_id,
                                   const std::string& profile) const {
  return {session_id, profile + "." + Mac(session_id, sandbox_id, profile)};
}

std::optional<EgressClaim> EgressPass::Parse(const std::string& header) {
  if (header.size() < 6 || (header.compare(0, 6, "Basic ") != 0 && header.compare(0, 6, "basic ") != 0))
    return std::nullopt;
  std::optional<std::string> creds = Unbase64(header.substr(6));
  if (!creds || creds->size() > 512) return std::nullopt;
  auto colon = creds->find(':');
  if (colon == std::string::npos) return std::nullopt;
  EgressClaim c;
  c.session_id = creds->substr(0, colon);
  const std::string password = creds->substr(colon + 1);
  auto dot = password.rfind('.');
  if (dot == std::string::npos) return std::nullopt;
  c.profile = password.substr(0, dot);
  c.mac = password.substr(dot + 1);
  if (!IsId(c.session_id) || c.profile.empty() || c.mac.size() != kMacDigits) return std::nullopt;
  return c;
}

bool EgressPass::Verify(const EgressClaim& claim, const std::string& sandbox_id) const {
  if (sandbox_id.empty()) return false;
  const std::string want = Mac(claim.session_id, sandbox_id, claim.profile);
  return want.size() == claim.mac.size() && CRYPTO_memcmp(want.data(), claim.mac.data(), want.size()) == 0;
}

}  // namespace paddock
