#include "shell_harness.h"

#include <string>

#include "paddock/json.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugins::harness_shell {
namespace {

// Cuts the output stream of one exec into lines and emits the whole lines of each chunk the
// runtime delivers as one event (the runtime gathers a chatty command's output for a few
// milliseconds), the lines joined by "\n" and without the last newline:
//   {"type": "output", "data": {"stream": "stdout", "text": "hello\nworld"}}
// The "\n" in an event's text are the command's own newlines: a line longer than
// max_line_bytes is cut into pieces of that size, and each piece is an event of its own, so
// that the pieces, concatenated, are the line (and the stream redactor sees it whole). An
// event holds at most kChunkBytes of text.
class LineEmitter final : public ExecObserver {
 public:
  static constexpr std::size_t kChunkBytes = 64 * 1024;

  LineEmitter(TurnContext& ctx, std::size_t max_line) : ctx_(ctx), max_line_(max_line) {}

  void OnOutput(ExecStream stream, std::string_view chunk) noexcept override {
    std::string& buf = stream == ExecStream::kStdout ? out_ : err_;
    std::string ready;
    bool any = false;
    auto line_done = [&] {
      if (any && ready.size() + 1 + buf.size() > kChunkBytes) {
        Emit(stream, ready);
        ready.clear();
        any = false;
      }
      if (any) ready.push_back('\n');
      ready += buf;
      any = true;
      buf.clear();
    };
    for (char c : chunk) {
      if (c == '\n') {
        line_done();
      } else {
        buf.push_back(c);
        if (buf.size() >= max_line_) {  // a piece of a long line: alone, after what came before
          if (any) Emit(stream, ready);
          ready.clear();
          any = false;
          Emit(stream, buf);
          buf.clear();
        }
      }
    }
    if (any) Emit(stream, ready);
  }

  bool Cancelled() const noexcept override { return ctx_.Cancelled() || !status_.ok(); }

  // Emits what is left after the last newline.
  Status Flush() {
    if (!out_.empty()) Emit(ExecStream::kStdout, out_);
    if (!err_.empty()) Emit(ExecStream::kStderr, err_);
    out_.clear();
    err_.clear();
    return status_;
  }

 private:
  void Emit(ExecStream stream, const std::string& line) {
    if (!status_.ok()) return;
    std::string data = std::string("{\"stream\":") +
                       (stream == ExecStream::kStdout ? "\"stdout\"" : "\"stderr\"") +
                       ",\"text\":" + JsonQuote(line) + "}";
    status_ = ctx_.Emit("output", data);
  }

  TurnContext& ctx_;
  std::size_t max_line_;
  std::string out_;
  std::string err_;
  Status status_;  // the first failed append stops the turn
};

std::string Dir(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::vector<std::string> ShellHarness::NativeStatePaths(const Agent&) const noexcept {
  return {Dir(config_.state_file)};
}

Result<RehydrateOutcome> ShellHarness::Rehydrate(TurnContext& ctx,
                                                 const std::vector<TranscriptMessage>& transcript) noexcept {
  return plugin::Guard([&]() -> Result<RehydrateOutcome> {
    // A shell keeps no conversation: nothing to replay, but say so in the session's log.
    PADDOCK_RETURN_IF_ERROR(ctx.Emit(
        "harness.rehydrated", "{\"messages\":" + std::to_string(transcript.size()) + ",\"replayed\":0}"));
    return RehydrateOutcome{0};
  });
}

Result<TurnOutcome> ShellHarness::RunTurn(TurnContext& ctx) noexcept {
  return plugin::Guard([&]() -> Result<TurnOutcome> {
    ExecRequest request;
    // The state file's variables are set (and exported) before the message's command runs.
    const std::string prelude =
        "mkdir -p \"${PADDOCK_STATE%/*}\" && touch \"$PADDOCK_STATE\" && set -a && . \"$PADDOCK_STATE\" && "
        "set +a\n";
    request.argv = {config_.shell, "-c", prelude + ctx.run().content};
    request.env["PADDOCK_STATE"] = config_.state_file;
    request.env["PADDOCK_ATTEMPT"] = std::to_string(ctx.run().attempt);
    if (ctx.resume().resuming) request.env["PADDOCK_RESUMING"] = "1";
    LineEmitter emitter(ctx, config_.max_line_bytes);
    PADDOCK_ASSIGN_OR_RETURN(ExecResult result, ctx.Exec(request, emitter));
    PADDOCK_RETURN_IF_ERROR(emitter.Flush());

    TurnOutcome outcome;
    outcome.exit_code = result.exit_code;
    if (result.cancelled) {
      outcome.status = RunStatus::kCancelled;
    } else if (result.timed_out) {
      outcome.status = RunStatus::kFailed;
      outcome.error = "command timed out";
    } else if (result.exit_code != 0) {
      outcome.status = RunStatus::kFailed;
      outcome.error = "command exited with code " + std::to_string(result.exit_code);
    }
    return outcome;
  });
}

}  // namespace paddock::plugins::harness_shell
