// harness.shell: runs each user message as a shell command in the session's sandbox.
#include "paddock/plugin/sdk.h"
#include "shell_harness.h"

namespace paddock::plugins::harness_shell {
namespace {

constexpr paddock_config_key kConfigKeys[] = {
    {"shell", PADDOCK_CONFIG_STRING, 0, "/bin/sh", "Shell inside the sandbox that runs each message."},
    {"max_line_bytes", PADDOCK_CONFIG_SIZE, 0, "16KiB",
     "Output lines longer than this are cut into pieces of this size, each shown as a line."},
    {"state_file", PADDOCK_CONFIG_STRING, 0, "/home/paddock/.paddock-shell/state",
     "Native resume state: a file of shell variables (NAME=value lines) sourced before every command; "
     "commands find its path in $PADDOCK_STATE. Its directory is snapshotted after every run."},
};

constexpr paddock_config_rule kConfigRules[] = {
    config::NotEmpty("shell"),
    config::Range("max_line_bytes", 1, 1 << 20),
    config::NotEmpty("state_file"),
};

Result<HarnessPtr> Create(const PluginContext&, const ConfigView& config) {
  ShellConfig c;
  c.shell = config.GetString("shell");
  c.max_line_bytes = static_cast<std::size_t>(config.GetSizeBytes("max_line_bytes"));
  c.state_file = config.GetString("state_file");
  const bool under_root = c.state_file.rfind(std::string(kSandboxHome) + "/", 0) == 0 ||
                          c.state_file.rfind(std::string(kSandboxWorkspace) + "/", 0) == 0;
  if (!under_root || c.state_file.find("/../") != std::string::npos || c.state_file.back() == '/' ||
      c.state_file.find_first_of("\"$`\\\n") != std::string::npos) {
    return Status::InvalidArgument("state_file must be a file path under " + std::string(kSandboxHome) +
                                   "/ or " + kSandboxWorkspace + "/ without quotes, '$', '`', '\\' or '..'");
  }
  return HarnessPtr(std::make_unique<ShellHarness>(std::move(c)));
}

}  // namespace
}  // namespace paddock::plugins::harness_shell

PADDOCK_DEFINE_PLUGIN(harness, shell, "0.1.0",
                      "Reference harness: each message is a shell command; no model.",
                      paddock::ConfigSchema(paddock::plugins::harness_shell::kConfigKeys,
                                            paddock::plugins::harness_shell::kConfigRules),
                      paddock::plugins::harness_shell::Create)
