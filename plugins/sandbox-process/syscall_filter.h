// The default syscall filter (paddock/hardening.h) as a BPF program bubblewrap installs
// (--seccomp) just before it executes the sandbox's runtime.
#pragma once

#include "paddock/hardening.h"
#include "paddock/status.h"

namespace paddock::plugins::sandbox_process {

// A sealed memfd holding the compiled filter, read from its start; the caller closes it.
Result<int> CompileFilter(const SandboxHardening& hardening);

}  // namespace paddock::plugins::sandbox_process
