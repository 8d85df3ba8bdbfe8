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

// What a sweeper does with a run whose lease expired, and the reason it records when it ends
// the run. Every store applies the same rule.
struct SweepDecision {
  const char* next;   // "queued", "failed" or "cancelled" (run.interrupted's "next")
  RunStatus end;      // kQueued (back in the queue), or the terminal status it ends with
  std::string error;  // the run's error when it ends
};

inline SweepDecision DecideSweep(const Run& run, const SweepOptions& options) {
  if (run.cancel_requested) return {"cancelled", RunStatus::kCancelled, "cancelled by request"};
  if (run.attempt >= options.max_attempts) {
    return {"failed", RunStatus::kFailed,
            "interrupted on each of its " + std::to_string(run.attempt) +
                " attempt(s); the last: " + options.reason};
  }
  return {"queued", RunStatus::kQueued, ""};
}

}  // namespace paddock
