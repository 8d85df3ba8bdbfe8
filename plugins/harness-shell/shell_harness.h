// ShellHarness: the reference harness. No model: each user message is a shell command run
// in the session's sandbox; every line of output becomes an "output" event; the command's
// exit code ends the run. Its native resume state is one file of shell variables
// ($PADDOCK_STATE), sourced before every command: what a command appends to it is set in every
// later one, in whatever sandbox that runs. Copy this folder to start a harness of your own.
#pragma once

#include <string>
#include <vector>

#include "paddock/harness.h"

namespace paddock::plugins::harness_shell {

struct ShellConfig {
  std::string shell = "/bin/sh";
  std::size_t max_line_bytes = 16384;  // longer lines are split into several events
  std::string state_file = "/home/paddock/.paddock-shell/state";  // native resume state
};

class ShellHarness final : public Harness {
 public:
  explicit ShellHarness(ShellConfig config) : config_(std::move(config)) {}
  Result<TurnOutcome> RunTurn(TurnContext& ctx) noexcept override;
  std::vector<std::string> NativeStatePaths(const Agent& agent) const noexcept override;
  Result<RehydrateOutcome> Rehydrate(TurnContext& ctx,
                                     const std::vector<TranscriptMessage>& transcript) noexcept override;

 private:
  ShellConfig config_;
};

}  // namespace paddock::plugins::harness_shell
