// harness.claude-code: drives Claude Code (`claude -p --output-format stream-json --verbose`)
// in the session's sandbox, one turn per run, resuming the CLI's own session (`--resume`).
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>

#include <sstream>

#include "paddock/plugin/cli_harness.h"
#include "paddock/plugin/cli_json.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugins::harness_claude_code {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

constexpr paddock_config_key kConfigKeys[] = {
    {"package", PADDOCK_CONFIG_STRING, 0, "@anthropic-ai/claude-code", "npm package of the CLI."},
    {"version", PADDOCK_CONFIG_STRING, 0, "2.1.330",
     "Pinned version of the CLI, installed once per sandbox set."},
    {"model", PADDOCK_CONFIG_STRING, 0, "claude-sonnet-4-5", "Model when the agent names none."},
    {"extra_args", PADDOCK_CONFIG_STRING_LIST, 0, "", "More arguments for every `claude` call."},
};

constexpr paddock_config_rule kConfigRules[] = {
    config::NotEmpty("package"),
    config::NotEmpty("version"),
    config::NotEmpty("model"),
};

struct Config {
  plugin::CliPackage cli;
  std::vector<std::string> extra_args;
};

std::string Json(const Poco::Dynamic::Var& v) {
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(v, out);
  return out.str();
}

// A tool result's content: a string, or text blocks.
std::string ResultText(const Poco::Dynamic::Var& content) {
  if (content.isString()) return content.convert<std::string>();
  std::string text;
  if (content.type() == typeid(Array::Ptr)) {
    for (const auto& b : *content.extract<Array::Ptr>()) {
      if (b.type() != typeid(Object::Ptr)) continue;
      Object::Ptr block = b.extract<Object::Ptr>();
      if (block->optValue<std::string>("type", "") == "text")
        text += block->optValue<std::string>("text", "");
    }
  }
  return text;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

class ClaudeCodeHarness final : public plugin::CliHarness {
 public:
  explicit ClaudeCodeHarness(Config c) : config_(std::move(c)) {}

  std::vector<std::string> NativeStatePaths(const Agent&) const noexcept override {
    return {std::string(kSandboxHome) + "/.claude"};
  }
  SandboxNeeds Needs(const Agent&) const noexcept override { return config_.cli.Needs(); }

 protected:
  std::string Name() const override { return "claude"; }

  EnvMap Environment(TurnContext& ctx) const override {
    EnvMap env;
    env["PADDOCK_MODEL"] = ModelOf(ctx, config_.cli.model);
    env["PADDOCK_PROMPT"] = ctx.agent().prompt;
    return env;
  }

  std::string Script(TurnContext&) const override {
    std::string extra;
    for (const std::string& a : config_.extra_args) extra += " " + ShellQuote(a);
    // Model access: a provider URL wins over the gateway; a key named for Anthropic wins over
    // the gateway's. Never prompt, never update, nothing but the model calls leave.
    return R"(set -e
export ANTHROPIC_BASE_URL="${ANTHROPIC_BASE_URL:-$LITELLM_API_BASE}"
if [ -z "${ANTHROPIC_API_KEY:-}${ANTHROPIC_AUTH_TOKEN:-}" ] && [ -n "${LITELLM_API_KEY:-}" ]; then
  export ANTHROPIC_AUTH_TOKEN="$LITELLM_API_KEY"  # a bearer token, as the gateway's vault binding says
fi
export DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
args=(-p "$PADDOCK_MESSAGE" --output-format stream-json --verbose --dangerously-skip-permissions --model "$PADDOCK_MODEL")
[ -n "$PADDOCK_NATIVE_SESSION" ] && args+=(--resume "$PADDOCK_NATIVE_SESSION")
[ -n "$PADDOCK_PROMPT" ] && args+=(--append-system-prompt "$PADDOCK_PROMPT")
exec "$PADDOCK_TOOLS/node_modules/.bin/claude" "${args[@]}")" +
           extra + " </dev/null\n";
  }

  void OnLine(TurnContext& ctx, std::string_view line, TurnState& state) const override {
    Object::Ptr o = plugin::JsonObjectLine(line);
    if (!o) return Output(ctx, state, line);
    std::string type = o->optValue<std::string>("type", "");
    if (type == "system" && o->optValue<std::string>("subtype", "") == "init") {
      Native(ctx, state, o->optValue<std::string>("session_id", ""));
    } else if (type == "assistant" || type == "user") {
      Object::Ptr message = o->getObject("message");
      Array::Ptr content = message ? message->getArray("content") : nullptr;
      if (!content) return;
      for (const auto& b : *content) {
        if (b.type() != typeid(Object::Ptr)) continue;
        Object::Ptr block = b.extract<Object::Ptr>();
        std::string kind = block->optValue<std::string>("type", "");
        if (kind == "text" && type == "assistant") {
          Text(ctx, state, block->optValue<std::string>("text", ""));
        } else if (kind == "tool_use") {
          ToolCall(ctx, state, block->optValue<std::string>("id", ""),
                   block->optValue<std::string>("name", ""),
                   block->has("input") ? Json(block->get("input")) : "");
        } else if (kind == "tool_result") {
          ToolResult(ctx, state, block->optValue<std::string>("tool_use_id", ""),
                     ResultText(block->get("content")), block->optValue<bool>("is_error", false));
        }
      }
    } else if (type == "result") {
      state.saw_result = true;
      Native(ctx, state, o->optValue<std::string>("session_id", ""));
      Usage usage;
      if (Object::Ptr u = o->getObject("usage")) {
        usage.input_tokens = u->optValue<std::int64_t>("input_tokens", 0) +
                             u->optValue<std::int64_t>("cache_creation_input_tokens", 0);
        usage.output_tokens = u->optValue<std::int64_t>("output_tokens", 0);
        usage.cache_read_tokens = u->optValue<std::int64_t>("cache_read_input_tokens", 0);
      }
      // Cost of this turn: the per-model figures since the last result (total_cost_usd adds up
      // over a resumed session's earlier turns).
      Object::Ptr models = o->getObject("model_usage_since_last_result");
      if (!models) models = o->getObject("modelUsage");
      if (models) {
        double cost = 0;
        for (const auto& [name, v] : *models) {
          usage.model = name;
          if (v.type() == typeid(Object::Ptr))
            cost += v.extract<Object::Ptr>()->optValue<double>("costUSD", 0);
        }
        usage.cost_usd = cost;
      } else if (o->has("total_cost_usd")) {
        usage.cost_usd = o->optValue<double>("total_cost_usd", 0);
      }
      if (usage.model.empty()) usage.model = ModelOf(ctx, config_.cli.model);
      Record(ctx, state, usage);
      if (o->optValue<bool>("is_error", false)) {
        std::string why = o->optValue<std::string>("result", "");
        if (why.empty()) why = o->optValue<std::string>("subtype", "error");
        state.error = "claude: " + why;
        AgentError(ctx, state, why);
      }
    }
  }

 private:
  Config config_;
};

Result<HarnessPtr> Create(const PluginContext&, const ConfigView& config) {
  Config c;
  c.cli = plugin::CliPackage::From(config);
  c.extra_args = config.GetStringList("extra_args");
  return HarnessPtr(std::make_unique<ClaudeCodeHarness>(std::move(c)));
}

}  // namespace
}  // namespace paddock::plugins::harness_claude_code

PADDOCK_DEFINE_PLUGIN_NAMED(harness, "claude-code", "0.1.0",
                            "Claude Code in the sandbox: stream-json events, usage and cost, native resume.",
                            paddock::ConfigSchema(paddock::plugins::harness_claude_code::kConfigKeys,
                                                  paddock::plugins::harness_claude_code::kConfigRules),
                            paddock::plugins::harness_claude_code::Create)
