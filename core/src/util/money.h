// Amounts of US dollars, kept as integer millionths (what the stores keep of a model's cost).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace paddock {

// The largest amount accepted anywhere: a billion dollars.
inline constexpr std::int64_t kMaxMicroUsd = 1'000'000'000LL * 1'000'000LL;

// "25", "7.5", "0.000001" → millionths; nullopt for anything else (signs, exponents, more than
// six decimals, above kMaxMicroUsd).
std::optional<std::int64_t> ParseUsdMicros(std::string_view text);

// A JSON number of dollars → millionths, rounded; nullopt when negative, not finite or too large.
std::optional<std::int64_t> UsdToMicros(double usd);

double MicrosToUsd(std::int64_t micros);

}  // namespace paddock
