// The SDK's spawning (paddock/process.h) under the names this plugin uses.
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

using process::RunAndStream;
using process::RunLimits;

}  // namespace paddock::plugins::sandbox_process
