// What JSON over the wire needs at both ends of the runtime protocol (paddock-runtime and
// RuntimeClient) and in the Kubernetes client: an object as compact JSON text, and bytes as base64
// without line breaks (stdin_base64, output frames' data, logs, Secrets). The one copy in the
// tree; header-only over Poco, so whoever includes it links Poco::JSON and Poco::Foundation.
#pragma once

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/JSON/Object.h>
#include <Poco/StreamCopier.h>

#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace paddock::wire {

// A JSON object as compact text.
inline std::string ToJson(const Poco::JSON::Object& object) {
  std::ostringstream out;
  object.stringify(out);
  return out.str();
}
inline std::string ToJson(const Poco::JSON::Object::Ptr& object) { return ToJson(*object); }

inline std::string Base64(std::string_view data) {
  std::ostringstream out;
  Poco::Base64Encoder enc(out);
  enc.rdbuf()->setLineLength(0);
  enc.write(data.data(), static_cast<std::streamsize>(data.size()));
  enc.close();
  return out.str();
}

// nullopt when `text` is not base64.
inline std::optional<std::string> Unbase64(std::string_view text) {
  std::istringstream in{std::string(text)};
  Poco::Base64Decoder dec(in);
  std::string out;
  try {
    Poco::StreamCopier::copyToString(dec, out);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return out;
}

}  // namespace paddock::wire
