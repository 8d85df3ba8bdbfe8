#include "util/digest.h"

#include <Poco/SHA2Engine.h>

namespace paddock {

std::string Sha256Hex(std::string_view data) {
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  sha.update(data.data(), data.size());
  return Poco::DigestEngine::digestToHex(sha.digest());
}

}  // namespace paddock
