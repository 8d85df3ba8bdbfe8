// harness.python: an example harness built out of tree against the installed SDK. Each user
// message is Python code, run by python3 in the session's sandbox; a dict `memory` is kept
// across turns in ~/.paddock-python/memory.json (the harness's native state, so it follows the
// session into any new sandbox). What the code prints becomes `output` events; an uncaught
// exception fails the run with its last line.
//
// It is built on plugin::CliHarness, the SDK's base for agents that run as a process and report
// on stdout one line per event: the runner below prints "out\t<text>", "err\t<text>", and at
// the end "done\t" or "error\t<why>".
#include <memory>
#include <string>

#include "paddock/plugin/cli_harness.h"
#include "paddock/plugin/sdk.h"

namespace example {
namespace {

using namespace paddock;

constexpr char kStateDir[] = "/home/paddock/.paddock-python";

// Runs $PADDOCK_MESSAGE with `memory` loaded, then saves `memory`.
constexpr char kRunner[] = R"PY(
import json, os, sys, traceback
path = os.path.join(os.environ['PADDOCK_STATE_DIR'], 'memory.json')
try:
    with open(path) as f:
        memory = json.load(f)
except (OSError, ValueError):
    memory = {}

class Lines:
    def __init__(self, tag):
        self.tag, self.buf = tag, ''
    def write(self, s):
        self.buf += s
        while '\n' in self.buf:
            line, self.buf = self.buf.split('\n', 1)
            sys.__stdout__.write(self.tag + '\t' + line + '\n')
            sys.__stdout__.flush()
        return len(s)
    def flush(self):
        pass
    def close(self):
        if self.buf:
            self.write('\n')

out, err = Lines('out'), Lines('err')
sys.stdout, sys.stderr = out, err
why = None
try:
    code = compile(os.environ['PADDOCK_MESSAGE'], '<message>', 'exec')
    exec(code, {'memory': memory, '__name__': '__main__'})
except SystemExit as e:
    if e.code not in (None, 0):
        why = 'exit(%r)' % (e.code,)
except BaseException as e:
    why = traceback.format_exception_only(type(e), e)[-1].strip()
out.close()
err.close()
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path + '.tmp', 'w') as f:
    json.dump(memory, f, default=repr)
os.replace(path + '.tmp', path)
sys.__stdout__.write(('error\t' + why if why else 'done\t') + '\n')
)PY";

class PythonHarness final : public plugin::CliHarness {
 public:
  explicit PythonHarness(std::string python) : python_(std::move(python)) {}

  std::vector<std::string> NativeStatePaths(const Agent&) const noexcept override { return {kStateDir}; }

  // The code of earlier turns cannot be replayed safely; without a snapshot, memory starts empty.
  Result<RehydrateOutcome> Rehydrate(TurnContext& ctx,
                                     const std::vector<TranscriptMessage>& transcript) noexcept override {
    return plugin::Guard([&]() -> Result<RehydrateOutcome> {
      PADDOCK_RETURN_IF_ERROR(ctx.Emit(
          "harness.rehydrated", "{\"messages\":" + std::to_string(transcript.size()) + ",\"replayed\":0}"));
      return RehydrateOutcome{0};
    });
  }

 protected:
  std::string Name() const override { return "python"; }

  std::string Script(TurnContext&) const override {
    return "exec \"$PADDOCK_PYTHON\" -u -c \"$PADDOCK_RUNNER\"";
  }

  EnvMap Environment(TurnContext&) const override {
    return {{"PADDOCK_PYTHON", python_}, {"PADDOCK_RUNNER", kRunner}, {"PADDOCK_STATE_DIR", kStateDir}};
  }

  void OnLine(TurnContext& ctx, std::string_view line, TurnState& state) const override {
    const std::size_t tab = line.find('\t');
    const std::string_view tag = line.substr(0, tab);
    const std::string text(tab == std::string_view::npos ? "" : line.substr(tab + 1));
    if (tag == "out" || tag == "err") {
      Output(ctx, state, text, /*is_stderr=*/tag == "err");
    } else if (tag == "done") {
      state.saw_result = true;
    } else if (tag == "error") {
      state.saw_result = true;
      state.error = text;
      AgentError(ctx, state, text);
    }
  }

 private:
  std::string python_;
};

constexpr paddock_config_key kConfigKeys[] = {
    {"python", PADDOCK_CONFIG_STRING, 0, "/usr/bin/python3", "The Python interpreter inside the sandbox."},
};

// The host checks these before Create runs (and lists them in `paddock plugins`).
constexpr paddock_config_rule kConfigRules[] = {paddock::config::NotEmpty("python")};

Result<HarnessPtr> Create(const PluginContext&, const ConfigView& config) {
  std::string python = config.GetString("python");
  if (python.front() != '/') {
    return Status::InvalidArgument("python must be an absolute path inside the sandbox");
  }
  return HarnessPtr(std::make_unique<PythonHarness>(std::move(python)));
}

}  // namespace
}  // namespace example

PADDOCK_DEFINE_PLUGIN(harness, python, "0.1.0", "Example: each message is Python code; `memory` persists.",
                      paddock::ConfigSchema(example::kConfigKeys, example::kConfigRules), example::Create)
