// Running host tools to completion with streamed, time-limited output collection, on top of
// the SDK's one place that starts children (paddock/process.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "paddock/process.h"
#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock::plugins::sandbox_process {

using process::ChildSpec;
using process::Credentials;
using process::FindExecutable;
using process::Spawn;

struct RunLimits {
  std::chrono::milliseconds timeout{0};  // 0: none
  std::function<bool()> cancelled;       // polled every 100 ms; may be empty
};

// Runs `spec` to completion (its stdout and stderr are pipes; whatever `spec.fds` names for 1
// and 2 is replaced), passing output chunks to `on_output` as they arrive. On timeout or
// cancellation the whole process group is killed.
Result<ExecResult> RunAndStream(ChildSpec spec, const RunLimits& limits,
                                const std::function<void(ExecStream, std::string_view)>& on_output);

}  // namespace paddock::plugins::sandbox_process
