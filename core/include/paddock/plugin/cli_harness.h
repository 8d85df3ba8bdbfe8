// CliHarness: the common part of harnesses that drive an agent CLI printing one JSON object per
// line (Claude Code's stream-json, `codex exec --json`, `opencode run --format json`). A
// subclass says how to start one turn (a bash script and its environment) and turns each line
// into events; this class runs the script in the sandbox, cuts its stdout into lines, keeps the
// end of stderr for the error message, stops the CLI when the run is cancelled, and rehydrates
// a sandbox that lost the CLI's own state by handing the transcript to the next turn.
//
// Event types a subclass emits (see docs/writing-a-harness.md): "assistant.text" {text},
// "tool.call" {id, name, input}, "tool.result" {id, output, is_error}, "agent.session" {id},
// "agent.error" {message}; usage goes through TurnContext::RecordUsage ("usage").
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "paddock/harness.h"
#include "paddock/json.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugin {

// The CLI an npm-installed harness drives, from the "package", "version" and "model" keys its
// section declares (with their defaults and NotEmpty rules): what to install and the model
// when the agent names none.
struct CliPackage {
  std::string package;
  std::string version;
  std::string model;

  static CliPackage From(const ConfigView& config) {
    return {config.GetString("package"), config.GetString("version"), config.GetString("model")};
  }
  SandboxNeeds Needs() const { return SandboxNeeds{{package + "@" + version}}; }
};

class CliHarness : public Harness {
 public:
  // What one turn's output told the harness.
  struct TurnState {
    bool saw_result = false;  // the CLI reported the turn's end
    std::string error;        // set when the CLI reported that the turn failed
    Status status;            // the first failed Emit/RecordUsage; stops the turn
  };

  Result<TurnOutcome> RunTurn(TurnContext& ctx) noexcept override {
    return Guard([&]() -> Result<TurnOutcome> {
      std::string preamble = TakePreamble(ctx.session().id);
      std::string message = ctx.run().content;
      if (!preamble.empty()) message = preamble + message;
      ExecRequest request;
      request.argv = {"/bin/bash", "-c", Script(ctx), "paddock-turn"};
      request.env = Environment(ctx);
      request.env["PADDOCK_MESSAGE"] = message;
      request.env["PADDOCK_TOOLS"] = ctx.tools_dir();
      request.env["PADDOCK_NATIVE_SESSION"] = ctx.native_session_id();
      request.cwd = kSandboxWorkspace;
      TurnState state;
      Lines lines(*this, ctx, state);
      PADDOCK_ASSIGN_OR_RETURN(ExecResult result, ctx.Exec(request, lines));
      lines.Flush();
      PADDOCK_RETURN_IF_ERROR(state.status);
      TurnOutcome outcome;
      outcome.exit_code = result.exit_code;
      if (result.cancelled || ctx.Cancelled()) {
        outcome.status = RunStatus::kCancelled;
      } else if (result.timed_out) {
        outcome.status = RunStatus::kFailed;
        outcome.error = "the agent did not finish within the run's timeout";
      } else if (!state.error.empty()) {
        outcome.status = RunStatus::kFailed;
        outcome.error = state.error;
      } else if (result.exit_code != 0) {
        outcome.status = RunStatus::kFailed;
        outcome.error = Name() + " exited with code " + std::to_string(result.exit_code) +
                        (lines.stderr_tail().empty() ? "" : ": " + lines.stderr_tail());
      } else if (!state.saw_result) {
        outcome.status = RunStatus::kFailed;
        outcome.error = Name() + " ended without reporting the turn's result";
      }
      return outcome;
    });
  }

  // The CLI's own state did not come back: forget its session (a --resume would fail) and give
  // the next turn the conversation so far, as text ahead of the user's message.
  Result<RehydrateOutcome> Rehydrate(TurnContext& ctx,
                                     const std::vector<TranscriptMessage>& transcript) noexcept override {
    return Guard([&]() -> Result<RehydrateOutcome> {
      if (!ctx.native_session_id().empty()) PADDOCK_RETURN_IF_ERROR(ctx.SetNativeSessionId(""));
      std::string text;
      int replayed = 0;
      for (const TranscriptMessage& m : transcript) {
        if (m.content.empty()) continue;
        text += (m.role == "user" ? "User: " : "Assistant: ") + m.content + "\n";
        ++replayed;
      }
      if (!text.empty()) {
        std::lock_guard lock(mu_);
        preambles_[ctx.session().id] =
            "(This conversation continues in a new environment; what was said before:)\n" + text +
            "(End of the earlier conversation.)\n\n";
      }
      PADDOCK_RETURN_IF_ERROR(
          ctx.Emit("harness.rehydrated", "{\"messages\":" + std::to_string(transcript.size()) +
                                             ",\"replayed\":" + std::to_string(replayed) + "}"));
      return RehydrateOutcome{replayed};
    });
  }

 protected:
  // The CLI's name, for messages ("claude", "codex", "opencode").
  virtual std::string Name() const = 0;
  // A bash script that runs one turn: the user's message is in $PADDOCK_MESSAGE, the tools
  // directory in $PADDOCK_TOOLS, the CLI's session to resume (or "") in $PADDOCK_NATIVE_SESSION.
  virtual std::string Script(TurnContext& ctx) const = 0;
  // Extra environment for the script (model, flags).
  virtual EnvMap Environment(TurnContext& ctx) const = 0;
  // One line of the CLI's stdout (without its newline).
  virtual void OnLine(TurnContext& ctx, std::string_view line, TurnState& state) const = 0;

  // Helpers for OnLine.
  static void Emit(TurnContext& ctx, TurnState& state, std::string_view type, const std::string& data) {
    if (state.status.ok()) state.status = ctx.Emit(type, data);
  }
  static void Record(TurnContext& ctx, TurnState& state, const Usage& usage) {
    if (state.status.ok()) state.status = ctx.RecordUsage(usage);
  }
  // The events above, each in its one shape. `input` is JSON; `extra` is more fields of the
  // result (",\"exit_code\":0") placed before is_error.
  static void Output(TurnContext& ctx, TurnState& state, std::string_view text, bool is_stderr = false) {
    Emit(ctx, state, "output",
         std::string("{\"stream\":\"") + (is_stderr ? "stderr" : "stdout") +
             "\",\"text\":" + JsonQuote(text) + "}");
  }
  static void Text(TurnContext& ctx, TurnState& state, std::string_view text) {
    Emit(ctx, state, "assistant.text", "{\"text\":" + JsonQuote(text) + "}");
  }
  static void ToolCall(TurnContext& ctx, TurnState& state, std::string_view id, std::string_view name,
                       std::string_view input) {
    Emit(ctx, state, "tool.call",
         "{\"id\":" + JsonQuote(id) + ",\"name\":" + JsonQuote(name) +
             ",\"input\":" + std::string(input.empty() ? "{}" : input) + "}");
  }
  static void ToolResult(TurnContext& ctx, TurnState& state, std::string_view id, std::string_view output,
                         bool is_error, std::string_view extra = "") {
    Emit(ctx, state, "tool.result",
         "{\"id\":" + JsonQuote(id) + ",\"output\":" + JsonQuote(output) + std::string(extra) +
             ",\"is_error\":" + (is_error ? "true" : "false") + "}");
  }
  static void AgentError(TurnContext& ctx, TurnState& state, std::string_view message) {
    Emit(ctx, state, "agent.error", "{\"message\":" + JsonQuote(message) + "}");
  }
  // The agent's model, else the harness's configured default.
  static std::string ModelOf(const TurnContext& ctx, const std::string& fallback) {
    return ctx.agent().model.empty() ? fallback : ctx.agent().model;
  }
  // Records the CLI's session id when it is new, with an "agent.session" event.
  static void Native(TurnContext& ctx, TurnState& state, const std::string& id) {
    if (id.empty() || id == ctx.native_session_id() || !state.status.ok()) return;
    state.status = ctx.SetNativeSessionId(id);
    Emit(ctx, state, "agent.session", "{\"id\":" + JsonQuote(id) + "}");
  }

 private:
  std::string TakePreamble(const std::string& session_id) {
    std::lock_guard lock(mu_);
    auto it = preambles_.find(session_id);
    if (it == preambles_.end()) return "";
    std::string p = std::move(it->second);
    preambles_.erase(it);
    return p;
  }

  class Lines final : public ExecObserver {
   public:
    Lines(const CliHarness& h, TurnContext& ctx, TurnState& state) : h_(h), ctx_(ctx), state_(state) {}
    void OnOutput(ExecStream stream, std::string_view chunk) noexcept override {
      try {
        if (stream == ExecStream::kStderr) {
          err_.append(chunk);
          if (err_.size() > 4096) err_.erase(0, err_.size() - 2048);
          return;
        }
        out_.append(chunk);
        for (std::size_t nl; (nl = out_.find('\n')) != std::string::npos;) {
          std::string line = out_.substr(0, nl);
          out_.erase(0, nl + 1);
          if (!line.empty()) h_.OnLine(ctx_, line, state_);
        }
      } catch (const std::exception& e) {
        if (state_.status.ok())
          state_.status = Status::Internal(std::string("reading the agent's output: ") + e.what());
      }
    }
    bool Cancelled() const noexcept override { return ctx_.Cancelled() || !state_.status.ok(); }
    void Flush() {
      if (!out_.empty()) h_.OnLine(ctx_, out_, state_);
      out_.clear();
    }
    std::string stderr_tail() const {
      std::string t = err_;
      while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
      auto nl = t.rfind('\n');
      return nl == std::string::npos ? t : t.substr(nl + 1);
    }

   private:
    const CliHarness& h_;
    TurnContext& ctx_;
    TurnState& state_;
    std::string out_;
    std::string err_;
  };

  std::mutex mu_;
  std::map<std::string, std::string> preambles_;  // by session id, for the next turn
};

}  // namespace paddock::plugin
