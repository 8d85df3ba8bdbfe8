// The data of the events that record a run's life. The core and the stores both write them (a
// store writes the ones its sweeper produces), so their shape is defined once, here.
//   run.started      {"attempt": N, "sandbox_id": "..."}
//   run.interrupted  {"attempt": N, "reason": "...", "next": "queued" | "failed" | "cancelled"}
//   run.finished     {"status": "succeeded|failed|cancelled", "exit_code": N | null, "error": "..."}
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "paddock/json.h"
#include "paddock/types.h"

namespace paddock {

inline std::string RunFinishedData(RunStatus status, std::optional<int> exit_code, std::string_view error) {
  return "{\"status\":" + JsonQuote(ToString(status)) +
         ",\"exit_code\":" + (exit_code ? std::to_string(*exit_code) : std::string("null")) +
         ",\"error\":" + JsonQuote(error) + "}";
}

inline std::string RunInterruptedData(int attempt, std::string_view reason, std::string_view next) {
  return "{\"attempt\":" + std::to_string(attempt) + ",\"reason\":" + JsonQuote(reason) +
         ",\"next\":" + JsonQuote(next) + "}";
}

}  // namespace paddock
