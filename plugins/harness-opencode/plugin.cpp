// harness.opencode: drives opencode (`opencode run --format json`) in the session's sandbox, one
// turn per run, resuming the CLI's own session (`--session <id>`).
#include <Poco/JSON/Object.h>

#include <sstream>

#include "paddock/plugin/cli_harness.h"
#include "paddock/plugin/cli_json.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugins::harness_opencode {
namespace {

using Poco::JSON::Object;

constexpr paddock_config_key kConfigKeys[] = {
    {"package", PADDOCK_CONFIG_STRING, 0, "opencode-ai", "npm package of the CLI."},
    {"version", PADDOCK_CONFIG_STRING, 0, "1.18.33",
     "Pinned version of the CLI, installed once per sandbox set."},
    {"model", PADDOCK_CONFIG_STRING, 0, "gpt-5", "Model when the agent names none."},
    {"provider_package", PADDOCK_CONFIG_STRING, 0, "@ai-sdk/openai-compatible",
     "The AI SDK provider opencode loads for the gateway (bundled with opencode 1.x)."},
};

constexpr paddock_config_rule kConfigRules[] = {
    config::NotEmpty("package"),
    config::NotEmpty("version"),
    config::NotEmpty("model"),
    config::NotEmpty("provider_package"),
};

struct Config {
  plugin::CliPackage cli;
  std::string provider_package;
};

constexpr char kConfigDir[] = "/home/paddock/.config/opencode";

class OpencodeHarness final : public plugin::CliHarness {
 public:
  explicit OpencodeHarness(Config c) : config_(std::move(c)) {}

  std::vector<std::string> NativeStatePaths(const Agent&) const noexcept override {
    return {"/home/paddock/.local/share/opencode"};
  }
  SandboxNeeds Needs(const Agent&) const noexcept override { return config_.cli.Needs(); }

 protected:
  std::string Name() const override { return "opencode"; }

  EnvMap Environment(TurnContext& ctx) const override {
    std::string model = ModelOf(ctx, config_.cli.model);
    // The provider: an OpenAI-compatible endpoint, its URL and key taken from the environment
    // by opencode itself ({env:...}), so neither is written to disk.
    Object::Ptr models = new Object;
    Object::Ptr entry = new Object;
    entry->set("name", model);
    models->set(model, entry);
    Object::Ptr options = new Object;
    options->set("baseURL", "{env:PADDOCK_OPENAI_BASE}");
    options->set("apiKey", "{env:OPENAI_API_KEY}");
    Object::Ptr provider = new Object;
    provider->set("npm", config_.provider_package);
    provider->set("name", "Paddock model gateway");
    provider->set("options", options);
    provider->set("models", models);
    Object::Ptr providers = new Object;
    providers->set("paddock", provider);
    Object::Ptr permission = new Object;
    for (const char* p : {"edit", "bash", "webfetch", "external_directory"}) permission->set(p, "allow");
    Object::Ptr config = new Object;
    config->set("$schema", "https://opencode.ai/config.json");
    config->set("model", "paddock/" + model);
    config->set("provider", providers);
    config->set("permission", permission);
    config->set("autoupdate", false);
    config->set("share", "disabled");
    std::ostringstream json;
    config->stringify(json);
    return {{"PADDOCK_MODEL", "paddock/" + model},
            {"PADDOCK_PROMPT", ctx.agent().prompt},
            {"PADDOCK_OPENCODE_CONFIG", json.str()},
            {"OPENCODE_CONFIG", std::string(kConfigDir) + "/paddock.json"},
            {"OPENCODE_DISABLE_MODELS_FETCH", "1"},
            {"OPENCODE_DISABLE_AUTOUPDATE", "1"},
            {"OPENCODE_DISABLE_SHARE", "1"}};
  }

  std::string Script(TurnContext&) const override {
    return R"(set -e
export PADDOCK_OPENAI_BASE="${OPENAI_BASE_URL:-${LITELLM_API_BASE:+$LITELLM_API_BASE/v1}}"
if [ -z "$PADDOCK_OPENAI_BASE" ]; then echo "no model endpoint: set [models] gateway or openai_base_url" >&2; exit 2; fi
if [ -z "${OPENAI_API_KEY:-}" ]; then export OPENAI_API_KEY="${LITELLM_API_KEY:-none}"; fi
mkdir -p "${OPENCODE_CONFIG%/*}"
printf '%s' "$PADDOCK_OPENCODE_CONFIG" > "$OPENCODE_CONFIG"
# The agent's prompt: opencode's global rules.
if [ -n "$PADDOCK_PROMPT" ]; then printf '%s\n' "$PADDOCK_PROMPT" > "${OPENCODE_CONFIG%/*}/AGENTS.md"; else rm -f "${OPENCODE_CONFIG%/*}/AGENTS.md"; fi
args=(run --format json -m "$PADDOCK_MODEL")
if [ -n "$PADDOCK_NATIVE_SESSION" ]; then args+=(--session "$PADDOCK_NATIVE_SESSION"); fi
exec "$PADDOCK_TOOLS/node_modules/.bin/opencode" "${args[@]}" "$PADDOCK_MESSAGE" </dev/null
)";
  }

  void OnLine(TurnContext& ctx, std::string_view line, TurnState& state) const override {
    Object::Ptr o = plugin::JsonObjectLine(line);
    if (!o) return Output(ctx, state, line);
    std::string type = o->optValue<std::string>("type", "");
    Native(ctx, state, o->optValue<std::string>("sessionID", ""));
    Object::Ptr part = o->getObject("part");
    if (type == "text" && part) {
      Text(ctx, state, part->optValue<std::string>("text", ""));
    } else if (type == "tool_use" && part) {
      Object::Ptr st = part->getObject("state");
      std::string id = part->optValue<std::string>("callID", "");
      std::ostringstream input;
      if (st && st->has("input")) Poco::JSON::Stringifier::condense(st->get("input"), input);
      ToolCall(ctx, state, id, part->optValue<std::string>("tool", ""), input.str());
      std::string status = st ? st->optValue<std::string>("status", "") : "";
      if (status == "completed" || status == "error") {
        bool error = status == "error";
        std::string output = st->optValue<std::string>(error ? "error" : "output", "");
        ToolResult(ctx, state, id, output, error);
      }
    } else if (type == "step_finish" && part) {
      Usage usage;
      usage.model = ModelOf(ctx, config_.cli.model);
      if (Object::Ptr t = part->getObject("tokens")) {
        usage.input_tokens = t->optValue<std::int64_t>("input", 0);
        usage.output_tokens =
            t->optValue<std::int64_t>("output", 0) + t->optValue<std::int64_t>("reasoning", 0);
        if (Object::Ptr cache = t->getObject("cache"))
          usage.cache_read_tokens = cache->optValue<std::int64_t>("read", 0);
      }
      // opencode prices from its model catalogue; a model it has no price for costs 0.
      double cost = part->optValue<double>("cost", 0);
      if (cost > 0) usage.cost_usd = cost;
      Record(ctx, state, usage);
      if (part->optValue<std::string>("reason", "") != "tool-calls") state.saw_result = true;
    } else if (type == "error") {
      std::string message;
      if (Object::Ptr err = o->getObject("error")) {
        Object::Ptr data = err->getObject("data");
        message = data ? data->optValue<std::string>("message", "") : "";
        if (message.empty()) message = err->optValue<std::string>("name", "error");
      }
      AgentError(ctx, state, message);
      state.saw_result = true;
      state.error = "opencode: " + message;
    }
  }

 private:
  Config config_;
};

Result<HarnessPtr> Create(const PluginContext&, const ConfigView& config) {
  Config c;
  c.cli = plugin::CliPackage::From(config);
  c.provider_package = config.GetString("provider_package");
  return HarnessPtr(std::make_unique<OpencodeHarness>(std::move(c)));
}

}  // namespace
}  // namespace paddock::plugins::harness_opencode

PADDOCK_DEFINE_PLUGIN(
    harness, opencode, "0.1.0",
    "opencode in the sandbox: run --format json events, usage, native resume of its session.",
    paddock::ConfigSchema(paddock::plugins::harness_opencode::kConfigKeys,
                          paddock::plugins::harness_opencode::kConfigRules),
    paddock::plugins::harness_opencode::Create)
