#include "util/money.h"

#include <cmath>

namespace paddock {

std::optional<std::int64_t> ParseUsdMicros(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::int64_t whole = 0, fraction = 0;
  int decimals = 0;
  bool dot = false, digits = false;
  for (char c : text) {
    if (c == '.' && !dot) {
      dot = true;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    digits = true;
    if (dot) {
      if (++decimals > 6) return std::nullopt;
      fraction = fraction * 10 + (c - '0');
    } else {
      if (whole > kMaxMicroUsd / 1'000'000) return std::nullopt;
      whole = whole * 10 + (c - '0');
    }
  }
  if (!digits) return std::nullopt;
  for (int i = decimals; i < 6; ++i) fraction *= 10;
  if (whole > kMaxMicroUsd / 1'000'000) return std::nullopt;
  std::int64_t micros = whole * 1'000'000 + fraction;
  if (micros > kMaxMicroUsd) return std::nullopt;
  return micros;
}

std::optional<std::int64_t> UsdToMicros(double usd) {
  if (!std::isfinite(usd) || usd < 0) return std::nullopt;
  double micros = std::round(usd * 1e6);
  if (micros > static_cast<double>(kMaxMicroUsd)) return std::nullopt;
  return static_cast<std::int64_t>(micros);
}

double MicrosToUsd(std::int64_t micros) { return static_cast<double>(micros) / 1e6; }

}  // namespace paddock
