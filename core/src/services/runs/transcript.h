// The conversation of a session, rebuilt from its event log: user messages and each run's
// output, with what interrupted a run on the way.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "paddock/session_store.h"

namespace paddock {

struct TranscriptEntry {
  std::string role;  // "user" or "assistant"
  std::string run_id;
  std::string content;              // the message, or the run's output (stdout and stderr, in order)
  std::optional<RunStatus> status;  // assistant entries: the run's status
  std::optional<int> exit_code;
  TimestampMs created_at = 0;
  // Assistant entries: why attempts of the run were cut off and resumed, oldest first. The
  // content is what the attempt that finished printed.
  std::vector<std::string> interruptions;
};

// The session's transcript, without the entries of run `exclude_run` (when not empty).
Result<std::vector<TranscriptEntry>> BuildTranscript(SessionStore& store, const std::string& session_id,
                                                     const std::string& exclude_run = "");

}  // namespace paddock
