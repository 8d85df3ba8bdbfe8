// A scripted model server for tests: speaks the streaming Anthropic Messages API
// (POST /v1/messages), the OpenAI Responses API (POST /v1/responses) and OpenAI Chat Completions
// (POST /v1/chat/completions), the way the real providers do (server-sent events, the same event
// types and fields), and answers from a script instead of a model.
//
// Each scripted turn has a trigger: a request whose newest user text contains it is answered
// with a call of the agent's shell tool running `command`; once the request carries that call's
// result, it is answered with `answer`; a turn with an error status is refused instead.
// Requests that match no trigger (a CLI's title or topic requests, say) get a short text. Every
// request is recorded.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace Poco::Net {
class HTTPServer;
}

namespace paddock::testing {

struct ScriptedTurn {
  std::string trigger;  // a word of the user's message that selects this turn
  std::string command;  // run through the shell tool; empty: answer at once
  std::string answer;   // the final text
  // Non-zero: the request is refused with this HTTP status and the provider's error body
  // (400: an invalid request, which a CLI reports and does not retry).
  int error_status = 0;
};

struct RecordedRequest {
  std::string api;  // "anthropic", "responses" or "chat"
  std::string path;
  std::string body;
  std::string authorization;  // Authorization or x-api-key as sent
  std::string answered;       // "tool", "answer" or "filler"
};

struct ModelServerUsage {
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
};

// HTTPS instead of HTTP: the server's certificate and key (PEM files).
struct ModelServerTls {
  std::string certificate_file;
  std::string key_file;
};

class ModelServer {
 public:
  // Listens on every address at `port` (0: an ephemeral one), over TLS when `tls` is given.
  explicit ModelServer(std::vector<ScriptedTurn> script, int port = 0,
                       std::optional<ModelServerTls> tls = std::nullopt);
  ~ModelServer();
  ModelServer(const ModelServer&) = delete;
  ModelServer& operator=(const ModelServer&) = delete;

  int port() const { return port_; }
  // A base URL a sandbox reaches through the egress proxy: the host's name, not loopback
  // (loopback inside a sandbox is the sandbox's own).
  std::string BaseUrl() const;

  // Each response waits this long before its first byte (a slow model).
  void SetDelay(std::chrono::milliseconds delay);
  // Requests that arrived and wait out the delay now.
  int Held() const;

  std::vector<RecordedRequest> Requests() const;
  // Tokens the server reported in its responses, in all.
  ModelServerUsage Usage() const;
  // Time spent answering requests (from the request's arrival to the last byte), in all.
  std::chrono::microseconds BusyTime() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  int port_ = 0;
  bool tls_ = false;
};

}  // namespace paddock::testing
