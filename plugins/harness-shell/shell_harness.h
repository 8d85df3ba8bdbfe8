// ShellHarness: the reference harness. No model: each user message is a shell command run
// in the session's sandbox; every line of output becomes an "output" event; the command's
// exit code ends the run. Copy this folder to start a harness of your own.
#pragma once

#include "paddock/harness.h"

namespace paddock::plugins::harness_shell {

struct ShellConfig {
  std::string shell = "/bin/sh";
  std::size_t max_line_bytes = 16384;  // longer lines are split into several events
};

class ShellHarness final : public Harness {
 public:
  explicit ShellHarness(ShellConfig config) : config_(std::move(config)) {}
  Result<TurnOutcome> RunTurn(TurnContext& ctx) noexcept override;

 private:
  ShellConfig config_;
};

}  // namespace paddock::plugins::harness_shell
