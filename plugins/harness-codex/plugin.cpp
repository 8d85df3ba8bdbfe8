// harness.codex: drives OpenAI Codex (`codex exec --json`) in the session's sandbox, one turn per
// run, resuming the CLI's own thread (`codex exec resume <thread_id>`).
#include <Poco/JSON/Object.h>

#include <sstream>

#include "paddock/plugin/cli_harness.h"
#include "paddock/plugin/cli_json.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugins::harness_codex {
namespace {

using Poco::JSON::Object;

constexpr paddock_config_key kConfigKeys[] = {
    {"package", PADDOCK_CONFIG_STRING, 0, "@openai/codex", "npm package of the CLI."},
    {"version", PADDOCK_CONFIG_STRING, 0, "0.169.0",
     "Pinned version of the CLI, installed once per sandbox set."},
    {"model", PADDOCK_CONFIG_STRING, 0, "gpt-5", "Model when the agent names none."},
    {"wire_api", PADDOCK_CONFIG_STRING, 0, "responses", "API Codex speaks to the provider: responses."},
};

constexpr paddock_config_rule kConfigRules[] = {
    config::NotEmpty("package"),
    config::NotEmpty("version"),
    config::NotEmpty("model"),
    config::OneOf("wire_api", "responses"),
};

struct Config {
  plugin::CliPackage cli;
  std::string wire_api;
};

constexpr char kCodexHome[] = "/home/paddock/.codex";

class CodexHarness final : public plugin::CliHarness {
 public:
  explicit CodexHarness(Config c) : config_(std::move(c)) {}

  std::vector<std::string> NativeStatePaths(const Agent&) const noexcept override { return {kCodexHome}; }
  SandboxNeeds Needs(const Agent&) const noexcept override { return config_.cli.Needs(); }

 protected:
  std::string Name() const override { return "codex"; }

  EnvMap Environment(TurnContext& ctx) const override {
    return {{"PADDOCK_MODEL", ModelOf(ctx, config_.cli.model)},
            {"PADDOCK_PROMPT", ctx.agent().prompt},
            {"PADDOCK_WIRE_API", config_.wire_api},
            {"CODEX_HOME", kCodexHome}};
  }

  std::string Script(TurnContext&) const override {
    // The provider: OPENAI_BASE_URL, else the gateway's /v1; the key: OPENAI_API_KEY, else the
    // gateway's. Written into $CODEX_HOME/config.toml at every turn (it is part of the snapshot,
    // but the gateway may have moved).
    return R"(set -e
base="${OPENAI_BASE_URL:-${LITELLM_API_BASE:+$LITELLM_API_BASE/v1}}"
if [ -z "$base" ]; then echo "no model endpoint: set [models] gateway or openai_base_url" >&2; exit 2; fi
case "$base$PADDOCK_WIRE_API" in *[\"\\]*) echo "the model endpoint must not contain quotes or backslashes" >&2; exit 2;; esac
if [ -z "${OPENAI_API_KEY:-}" ] && [ -n "${LITELLM_API_KEY:-}" ]; then export OPENAI_API_KEY="$LITELLM_API_KEY"; fi
mkdir -p "$CODEX_HOME"
cat > "$CODEX_HOME/config.toml" <<CONFIG
model_provider = "paddock"
check_for_update_on_startup = false
[model_providers.paddock]
name = "paddock"
base_url = "$base"
env_key = "OPENAI_API_KEY"
wire_api = "$PADDOCK_WIRE_API"
CONFIG
# The agent's prompt: Codex's global instructions.
if [ -n "$PADDOCK_PROMPT" ]; then printf '%s\n' "$PADDOCK_PROMPT" > "$CODEX_HOME/AGENTS.md"; else rm -f "$CODEX_HOME/AGENTS.md"; fi
args=(exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox -m "$PADDOCK_MODEL")
if [ -n "$PADDOCK_NATIVE_SESSION" ]; then args+=(resume "$PADDOCK_NATIVE_SESSION"); fi
exec "$PADDOCK_TOOLS/node_modules/.bin/codex" "${args[@]}" "$PADDOCK_MESSAGE" </dev/null
)";
  }

  void OnLine(TurnContext& ctx, std::string_view line, TurnState& state) const override {
    Object::Ptr o = plugin::JsonObjectLine(line);
    if (!o) return Output(ctx, state, line);
    std::string type = o->optValue<std::string>("type", "");
    if (type == "thread.started") {
      Native(ctx, state, o->optValue<std::string>("thread_id", ""));
    } else if (type == "item.started" || type == "item.completed") {
      Object::Ptr item = o->getObject("item");
      if (!item) return;
      std::string kind = item->optValue<std::string>("type", "");
      std::string id = item->optValue<std::string>("id", "");
      bool done = type == "item.completed";
      if (kind == "agent_message" && done) {
        Text(ctx, state, item->optValue<std::string>("text", ""));
      } else if (kind == "command_execution") {
        if (!done) {
          ToolCall(ctx, state, id, "exec_command",
                   "{\"command\":" + JsonQuote(item->optValue<std::string>("command", "")) + "}");
        } else {
          int code = item->optValue<int>("exit_code", -1);
          ToolResult(ctx, state, id, item->optValue<std::string>("aggregated_output", ""), code != 0,
                     ",\"exit_code\":" + std::to_string(code));
        }
      } else if (kind == "file_change" && done) {
        std::ostringstream changes;
        if (item->has("changes")) Poco::JSON::Stringifier::condense(item->get("changes"), changes);
        ToolCall(ctx, state, id, "apply_patch",
                 "{\"changes\":" + (changes.str().empty() ? "[]" : changes.str()) + "}");
        const std::string status = item->optValue<std::string>("status", "");
        ToolResult(ctx, state, id, status, status == "failed");
      } else if (kind == "error" && done) {
        AgentError(ctx, state, item->optValue<std::string>("message", ""));
      }
    } else if (type == "turn.completed") {
      state.saw_result = true;
      Usage usage;
      usage.model = ModelOf(ctx, config_.cli.model);
      if (Object::Ptr u = o->getObject("usage")) {
        usage.cache_read_tokens = u->optValue<std::int64_t>("cached_input_tokens", 0);
        usage.input_tokens = u->optValue<std::int64_t>("input_tokens", 0);
        usage.output_tokens = u->optValue<std::int64_t>("output_tokens", 0);
      }
      Record(ctx, state, usage);
    } else if (type == "turn.failed" || type == "error") {
      Object::Ptr err = o->getObject("error");
      std::string message =
          err ? err->optValue<std::string>("message", "") : o->optValue<std::string>("message", "");
      AgentError(ctx, state, message);
      if (type == "turn.failed") {
        state.saw_result = true;
        state.error = "codex: " + message;
      }
    }
  }

 private:
  Config config_;
};

Result<HarnessPtr> Create(const PluginContext&, const ConfigView& config) {
  Config c;
  c.cli = plugin::CliPackage::From(config);
  c.wire_api = config.GetString("wire_api");
  return HarnessPtr(std::make_unique<CodexHarness>(std::move(c)));
}

}  // namespace
}  // namespace paddock::plugins::harness_codex

PADDOCK_DEFINE_PLUGIN(harness, codex, "0.1.0",
                      "OpenAI Codex in the sandbox: exec --json events, usage, native resume of its thread.",
                      paddock::ConfigSchema(paddock::plugins::harness_codex::kConfigKeys,
                                            paddock::plugins::harness_codex::kConfigRules),
                      paddock::plugins::harness_codex::Create)
