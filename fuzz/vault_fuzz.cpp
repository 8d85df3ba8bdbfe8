// What a sandbox hands the egress proxy about who it is and where it goes, and what a store
// hands back of a binding. Any Proxy-Authorization is a pass or nothing, and a pass read holds
// an id, a profile and 48 digits; any binding text decodes to nothing or to a binding whose text
// decodes to itself; whether a binding covers a host and port is answered for any of them.
// Input: a byte choosing the check, then the text.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "paddock/vault.h"
#include "services/egress/egress_pass.h"
#include "util/ids.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      std::optional<paddock::EgressClaim> claim = paddock::EgressPass::Parse(text);
      if (claim && (!paddock::IsId(claim->session_id) || claim->profile.empty() || claim->mac.size() != 48))
        __builtin_trap();
      break;
    }
    case 1: {
      std::optional<paddock::VaultBinding> b = paddock::DecodeVaultBinding(text);
      if (!b || !b->bound()) break;
      const std::string once = paddock::EncodeVaultBinding(*b);
      std::optional<paddock::VaultBinding> again = paddock::DecodeVaultBinding(once);
      if (!again || paddock::EncodeVaultBinding(*again) != once) __builtin_trap();
      break;
    }
    case 2: {
      // The first line is the host asked for, the others the binding's hosts.
      std::istringstream lines(text);
      std::string host;
      std::getline(lines, host);
      paddock::VaultBinding b;
      for (std::string h; std::getline(lines, h);) b.hosts.push_back(h);
      for (int port : {0, 80, 443, 8443, 65535, -1}) (void)paddock::VaultCovers(b, host, port);
      // A binding with no hosts covers nothing.
      if (paddock::VaultCovers(paddock::VaultBinding{}, host, 443)) __builtin_trap();
      break;
    }
  }
  return 0;
}
