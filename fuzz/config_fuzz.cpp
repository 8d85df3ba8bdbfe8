// The TOML config parser on any text: a Config, or an error a person can act on; never a crash,
// a hang or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  paddock::Result<paddock::Config> config = paddock::ParseConfig(text, "fuzz.toml");
  if (!config.ok() && config.status().message().empty()) __builtin_trap();  // an error says why
  return 0;
}
