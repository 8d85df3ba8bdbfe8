#include "model_server.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/DNS.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>

#include <atomic>
#include <condition_variable>
#include <optional>
#include <sstream>
#include <thread>

namespace paddock::testing {

using Poco::JSON::Array;
using Poco::JSON::Object;

struct ModelServer::State {
  std::vector<ScriptedTurn> script;
  mutable std::mutex mu;
  std::vector<RecordedRequest> requests;
  int held = 0;  // requests waiting out the delay now
  ModelServerUsage usage;
  std::chrono::microseconds busy{0};
  std::chrono::milliseconds delay{0};
  std::condition_variable wake;  // ends delays early when the server stops
  bool stopping = false;
  std::atomic<int> next_id{1};
};

namespace {

std::string Str(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return "";
  try {
    return v.convert<std::string>();
  } catch (...) {
    return "";
  }
}

std::string Stringify(const Poco::Dynamic::Var& v) {
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(v, out);
  return out.str();
}

// The text parts of a message's content: a string, or an array of blocks with "text".
std::string TextOf(const Poco::Dynamic::Var& content) {
  if (content.isString()) return Str(content);
  std::string text;
  if (content.type() != typeid(Array::Ptr)) return text;
  for (const auto& part : *content.extract<Array::Ptr>()) {
    if (part.type() != typeid(Object::Ptr)) continue;
    Object::Ptr o = part.extract<Object::Ptr>();
    std::string type = o->optValue<std::string>("type", "");
    if (type == "text" || type == "input_text") text += o->optValue<std::string>("text", "") + "\n";
  }
  return text;
}

// What a request asks: the user's newest texts (newest first), whether it carries a tool result
// last, and the agent's shell tool (name and the name of its command parameter).
struct Ask {
  std::vector<std::string> user_texts;
  bool tool_result_last = false;
  std::string tool;
  std::string tool_param;        // "command" or "cmd"
  bool tool_param_list = false;  // command is an argv array
  std::string model;
  bool stream = true;
};

void FindShellTool(const Object::Ptr& body, Ask& ask) {
  Array::Ptr tools = body->getArray("tools");
  if (!tools) return;
  for (const auto& t : *tools) {
    if (t.type() != typeid(Object::Ptr)) continue;
    Object::Ptr tool = t.extract<Object::Ptr>();
    Object::Ptr fn = tool->getObject("function");  // chat completions nest it
    Object::Ptr def = fn ? fn : tool;
    std::string name = def->optValue<std::string>("name", "");
    if (name != "Bash" && name != "bash" && name != "exec_command" && name != "shell") continue;
    Object::Ptr schema = def->getObject("input_schema");
    if (!schema) schema = def->getObject("parameters");
    Object::Ptr props = schema ? schema->getObject("properties") : nullptr;
    ask.tool = name;
    ask.tool_param = props && props->has("cmd") ? "cmd" : "command";
    if (props && props->getObject("command") &&
        props->getObject("command")->optValue<std::string>("type", "") == "array") {
      ask.tool_param_list = true;
    }
    return;
  }
}

Ask Read(const std::string& api, const Object::Ptr& body) {
  Ask ask;
  ask.model = body->optValue<std::string>("model", "scripted");
  ask.stream = body->optValue<bool>("stream", false);
  FindShellTool(body, ask);
  Array::Ptr items = body->getArray(api == "responses" ? "input" : "messages");
  if (!items) return ask;
  for (size_t i = items->size(); i-- > 0;) {
    Object::Ptr item = items->getObject(static_cast<unsigned>(i));
    if (!item) continue;
    std::string role = item->optValue<std::string>("role", "");
    std::string type = item->optValue<std::string>("type", "");
    bool last = i + 1 == items->size();
    if (api == "anthropic" && role == "user") {
      Array::Ptr blocks = item->getArray("content");
      bool has_result = false;
      if (blocks) {
        for (const auto& b : *blocks) {
          if (b.type() == typeid(Object::Ptr) &&
              b.extract<Object::Ptr>()->optValue<std::string>("type", "") == "tool_result") {
            has_result = true;
          }
        }
      }
      if (last && has_result) ask.tool_result_last = true;
      ask.user_texts.push_back(TextOf(item->get("content")));
    } else if (api == "responses") {
      if (last && (type == "function_call_output" || type == "custom_tool_call_output")) {
        ask.tool_result_last = true;
      }
      if (role == "user") ask.user_texts.push_back(TextOf(item->get("content")));
    } else if (api == "chat") {
      if (last && role == "tool") ask.tool_result_last = true;
      if (role == "user") ask.user_texts.push_back(TextOf(item->get("content")));
    }
  }
  return ask;
}

// A few tokens per four bytes, like the real thing roughly counts.
std::int64_t Tokens(size_t bytes) { return static_cast<std::int64_t>(bytes / 4 + 1); }

class Sse {
 public:
  explicit Sse(std::ostream& out) : out_(out) {}
  void Event(const std::string& name, const Object::Ptr& data) {
    if (!name.empty()) out_ << "event: " << name << "\n";
    out_ << "data: " << Stringify(data) << "\n\n";
    out_.flush();
  }
  void Raw(const std::string& line) {
    out_ << "data: " << line << "\n\n";
    out_.flush();
  }

 private:
  std::ostream& out_;
};

struct Reply {
  std::string text;        // assistant text (always some)
  std::string tool;        // a tool call to make, or empty
  std::string tool_input;  // its JSON arguments
  std::string answered;    // "tool", "answer", "filler" or "error"
  int error_status = 0;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
};

Reply Decide(const std::vector<ScriptedTurn>& script, const Ask& ask, size_t body_size) {
  Reply r;
  r.input_tokens = Tokens(body_size);
  // The newest user text with a trigger decides; within one text (a CLI may merge the user's
  // messages of several turns into one), the trigger that comes last.
  const ScriptedTurn* turn = nullptr;
  for (const std::string& text : ask.user_texts) {
    size_t last = 0;
    for (const ScriptedTurn& t : script) {
      const size_t at = t.trigger.empty() ? std::string::npos : text.rfind(t.trigger);
      if (at != std::string::npos && (!turn || at >= last)) {
        turn = &t;
        last = at;
      }
    }
    if (turn) break;
  }
  if (turn && turn->error_status) {
    r.text = "scripted error for '" + turn->trigger + "'";
    r.answered = "error";
    r.error_status = turn->error_status;
  } else if (!turn || ask.tool.empty()) {
    r.text = "Paddock test";
    r.answered = "filler";
  } else if (turn->command.empty() || ask.tool_result_last) {
    r.text = turn->answer;
    r.answered = "answer";
  } else {
    r.text = "Running the command.";
    r.tool = ask.tool;
    Object::Ptr input = new Object;
    if (ask.tool_param_list) {
      Array::Ptr argv = new Array;
      argv->add("bash");
      argv->add("-lc");
      argv->add(turn->command);
      input->set(ask.tool_param, argv);
    } else {
      input->set(ask.tool_param, turn->command);
    }
    if (ask.tool_param == "command" && !ask.tool_param_list) input->set("description", "Run the command");
    r.tool_input = Stringify(input);
    r.answered = "tool";
  }
  r.output_tokens = Tokens(r.text.size() + r.tool_input.size());
  return r;
}

Object::Ptr Obj(std::initializer_list<std::pair<std::string, Poco::Dynamic::Var>> fields) {
  Object::Ptr o = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const auto& [k, v] : fields) o->set(k, v);
  return o;
}

void AnswerAnthropic(Poco::Net::HTTPServerResponse& res, const Ask& ask, const Reply& r,
                     const std::string& id) {
  std::string tool_id = "toolu_" + id;
  auto usage = Obj({{"input_tokens", r.input_tokens},
                    {"output_tokens", r.output_tokens},
                    {"cache_creation_input_tokens", 0},
                    {"cache_read_input_tokens", 0}});
  std::string stop = r.tool.empty() ? "end_turn" : "tool_use";
  if (!ask.stream) {
    Array::Ptr content = new Array;
    content->add(Obj({{"type", "text"}, {"text", r.text}}));
    if (!r.tool.empty()) {
      Poco::JSON::Parser parser;
      content->add(Obj(
          {{"type", "tool_use"}, {"id", tool_id}, {"name", r.tool}, {"input", parser.parse(r.tool_input)}}));
    }
    res.setContentType("application/json");
    std::ostream& out = res.send();
    out << Stringify(Obj({{"id", "msg_" + id},
                          {"type", "message"},
                          {"role", "assistant"},
                          {"model", ask.model},
                          {"content", content},
                          {"stop_reason", stop},
                          {"stop_sequence", Poco::Dynamic::Var()},
                          {"usage", usage}}));
    return;
  }
  res.setContentType("text/event-stream");
  res.setChunkedTransferEncoding(true);
  Sse sse(res.send());
  auto start_usage = Obj({{"input_tokens", r.input_tokens},
                          {"output_tokens", 1},
                          {"cache_creation_input_tokens", 0},
                          {"cache_read_input_tokens", 0}});
  sse.Event("message_start", Obj({{"type", "message_start"},
                                  {"message", Obj({{"id", "msg_" + id},
                                                   {"type", "message"},
                                                   {"role", "assistant"},
                                                   {"model", ask.model},
                                                   {"content", Array::Ptr(new Array)},
                                                   {"stop_reason", Poco::Dynamic::Var()},
                                                   {"stop_sequence", Poco::Dynamic::Var()},
                                                   {"usage", start_usage}})}}));
  sse.Event("content_block_start", Obj({{"type", "content_block_start"},
                                        {"index", 0},
                                        {"content_block", Obj({{"type", "text"}, {"text", ""}})}}));
  sse.Event("content_block_delta", Obj({{"type", "content_block_delta"},
                                        {"index", 0},
                                        {"delta", Obj({{"type", "text_delta"}, {"text", r.text}})}}));
  sse.Event("content_block_stop", Obj({{"type", "content_block_stop"}, {"index", 0}}));
  if (!r.tool.empty()) {
    sse.Event("content_block_start", Obj({{"type", "content_block_start"},
                                          {"index", 1},
                                          {"content_block", Obj({{"type", "tool_use"},
                                                                 {"id", tool_id},
                                                                 {"name", r.tool},
                                                                 {"input", Object::Ptr(new Object)}})}}));
    sse.Event("content_block_delta",
              Obj({{"type", "content_block_delta"},
                   {"index", 1},
                   {"delta", Obj({{"type", "input_json_delta"}, {"partial_json", r.tool_input}})}}));
    sse.Event("content_block_stop", Obj({{"type", "content_block_stop"}, {"index", 1}}));
  }
  sse.Event("message_delta",
            Obj({{"type", "message_delta"},
                 {"delta", Obj({{"stop_reason", stop}, {"stop_sequence", Poco::Dynamic::Var()}})},
                 {"usage", Obj({{"output_tokens", r.output_tokens}})}}));
  sse.Event("message_stop", Obj({{"type", "message_stop"}}));
}

void AnswerResponses(Poco::Net::HTTPServerResponse& res, const Ask& ask, const Reply& r,
                     const std::string& id) {
  res.setContentType("text/event-stream");
  res.setChunkedTransferEncoding(true);
  Sse sse(res.send());
  int seq = 0;
  auto response = [&](const std::string& status, const Array::Ptr& output) {
    Object::Ptr o = Obj({{"id", "resp_" + id},
                         {"object", "response"},
                         {"created_at", static_cast<std::int64_t>(std::time(nullptr))},
                         {"status", status},
                         {"model", ask.model},
                         {"output", output}});
    if (status == "completed") {
      o->set("usage", Obj({{"input_tokens", r.input_tokens},
                           {"input_tokens_details", Obj({{"cached_tokens", 0}})},
                           {"output_tokens", r.output_tokens},
                           {"output_tokens_details", Obj({{"reasoning_tokens", 0}})},
                           {"total_tokens", r.input_tokens + r.output_tokens}}));
    }
    return o;
  };
  sse.Event("response.created", Obj({{"type", "response.created"},
                                     {"sequence_number", seq++},
                                     {"response", response("in_progress", new Array)}}));
  Array::Ptr output = new Array;
  std::string msg_id = "msg_" + id;
  Array::Ptr parts = new Array;
  parts->add(Obj({{"type", "output_text"}, {"text", r.text}, {"annotations", Array::Ptr(new Array)}}));
  sse.Event("response.output_item.added", Obj({{"type", "response.output_item.added"},
                                               {"sequence_number", seq++},
                                               {"output_index", 0},
                                               {"item", Obj({{"id", msg_id},
                                                             {"type", "message"},
                                                             {"status", "in_progress"},
                                                             {"role", "assistant"},
                                                             {"content", Array::Ptr(new Array)}})}}));
  sse.Event("response.output_text.delta", Obj({{"type", "response.output_text.delta"},
                                               {"sequence_number", seq++},
                                               {"item_id", msg_id},
                                               {"output_index", 0},
                                               {"content_index", 0},
                                               {"delta", r.text}}));
  Object::Ptr message = Obj({{"id", msg_id},
                             {"type", "message"},
                             {"status", "completed"},
                             {"role", "assistant"},
                             {"content", parts}});
  sse.Event("response.output_item.done", Obj({{"type", "response.output_item.done"},
                                              {"sequence_number", seq++},
                                              {"output_index", 0},
                                              {"item", message}}));
  output->add(message);
  if (!r.tool.empty()) {
    Object::Ptr call = Obj({{"id", "fc_" + id},
                            {"type", "function_call"},
                            {"status", "completed"},
                            {"call_id", "call_" + id},
                            {"name", r.tool},
                            {"arguments", r.tool_input}});
    sse.Event("response.output_item.added", Obj({{"type", "response.output_item.added"},
                                                 {"sequence_number", seq++},
                                                 {"output_index", 1},
                                                 {"item", call}}));
    sse.Event("response.output_item.done", Obj({{"type", "response.output_item.done"},
                                                {"sequence_number", seq++},
                                                {"output_index", 1},
                                                {"item", call}}));
    output->add(call);
  }
  sse.Event("response.completed", Obj({{"type", "response.completed"},
                                       {"sequence_number", seq++},
                                       {"response", response("completed", output)}}));
}

void AnswerChat(Poco::Net::HTTPServerResponse& res, const Ask& ask, const Reply& r, const std::string& id) {
  auto created = static_cast<std::int64_t>(std::time(nullptr));
  auto usage = Obj({{"prompt_tokens", r.input_tokens},
                    {"completion_tokens", r.output_tokens},
                    {"total_tokens", r.input_tokens + r.output_tokens}});
  std::string finish = r.tool.empty() ? "stop" : "tool_calls";
  Array::Ptr calls = new Array;
  if (!r.tool.empty()) {
    calls->add(Obj({{"index", 0},
                    {"id", "call_" + id},
                    {"type", "function"},
                    {"function", Obj({{"name", r.tool}, {"arguments", r.tool_input}})}}));
  }
  if (!ask.stream) {
    Object::Ptr message = Obj({{"role", "assistant"}, {"content", r.text}});
    if (!r.tool.empty()) message->set("tool_calls", calls);
    Array::Ptr choices = new Array;
    choices->add(Obj({{"index", 0}, {"message", message}, {"finish_reason", finish}}));
    res.setContentType("application/json");
    res.send() << Stringify(Obj({{"id", "chatcmpl-" + id},
                                 {"object", "chat.completion"},
                                 {"created", created},
                                 {"model", ask.model},
                                 {"choices", choices},
                                 {"usage", usage}}));
    return;
  }
  res.setContentType("text/event-stream");
  res.setChunkedTransferEncoding(true);
  Sse sse(res.send());
  auto chunk = [&](const Object::Ptr& delta, const Poco::Dynamic::Var& finish_reason) {
    Array::Ptr choices = new Array;
    choices->add(Obj({{"index", 0}, {"delta", delta}, {"finish_reason", finish_reason}}));
    sse.Event("", Obj({{"id", "chatcmpl-" + id},
                       {"object", "chat.completion.chunk"},
                       {"created", created},
                       {"model", ask.model},
                       {"choices", choices}}));
  };
  chunk(Obj({{"role", "assistant"}, {"content", ""}}), Poco::Dynamic::Var());
  chunk(Obj({{"content", r.text}}), Poco::Dynamic::Var());
  if (!r.tool.empty()) chunk(Obj({{"tool_calls", calls}}), Poco::Dynamic::Var());
  chunk(new Object, finish);
  sse.Event("", Obj({{"id", "chatcmpl-" + id},
                     {"object", "chat.completion.chunk"},
                     {"created", created},
                     {"model", ask.model},
                     {"choices", Array::Ptr(new Array)},
                     {"usage", usage}}));
  sse.Raw("[DONE]");
}

// The providers' error bodies: Anthropic {"type":"error","error":{...}}, OpenAI {"error":{...}}.
void AnswerError(Poco::Net::HTTPServerResponse& res, const std::string& api, const Reply& r) {
  Object::Ptr error = Obj({{"type", std::string("invalid_request_error")}, {"message", r.text}});
  Object::Ptr body =
      api == "anthropic" ? Obj({{"type", std::string("error")}, {"error", error}}) : Obj({{"error", error}});
  res.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(r.error_status));
  res.setContentType("application/json");
  res.send() << Stringify(body);
}

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(std::shared_ptr<ModelServer::State> state) : state_(std::move(state)) {}

  void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& res) override {
    auto started = std::chrono::steady_clock::now();
    std::string path = req.getURI().substr(0, req.getURI().find('?'));
    std::string api = path.ends_with("/messages")           ? "anthropic"
                      : path.ends_with("/responses")        ? "responses"
                      : path.ends_with("/chat/completions") ? "chat"
                                                            : "";
    std::string body;
    Poco::StreamCopier::copyToString(req.stream(), body);
    if (req.getMethod() != "POST" || api.empty()) {
      res.setStatus(Poco::Net::HTTPResponse::HTTP_NOT_FOUND);
      res.setContentType("application/json");
      res.send() << R"({"error":{"type":"not_found_error","message":"no such route"}})";
      return;
    }
    Object::Ptr parsed;
    try {
      Poco::JSON::Parser parser;
      parsed = parser.parse(body).extract<Object::Ptr>();
    } catch (...) {
    }
    if (!parsed) {
      res.setStatus(Poco::Net::HTTPResponse::HTTP_BAD_REQUEST);
      res.setContentType("application/json");
      res.send() << R"({"error":{"type":"invalid_request_error","message":"the body is not a JSON object"}})";
      return;
    }
    {
      std::unique_lock lock(state_->mu);
      ++state_->held;
      state_->wake.wait_for(lock, state_->delay, [&] { return state_->stopping; });
      --state_->held;
    }
    Ask ask = Read(api, parsed);
    Reply reply = Decide(state_->script, ask, body.size());
    std::string id = std::to_string(state_->next_id++);
    try {
      if (reply.error_status) {
        AnswerError(res, api, reply);
      } else if (api == "anthropic") {
        AnswerAnthropic(res, ask, reply, id);
      } else if (api == "responses") {
        AnswerResponses(res, ask, reply, id);
      } else {
        AnswerChat(res, ask, reply, id);
      }
    } catch (...) {
      // The client went away.
    }
    std::string auth = req.get("Authorization", req.get("x-api-key", ""));
    std::lock_guard lock(state_->mu);
    state_->requests.push_back(RecordedRequest{api, req.getURI(), body, auth, reply.answered});
    state_->usage.input_tokens += reply.input_tokens;
    state_->usage.output_tokens += reply.output_tokens;
    state_->busy +=
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
  }

 private:
  std::shared_ptr<ModelServer::State> state_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(std::shared_ptr<ModelServer::State> state) : state_(std::move(state)) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new Handler(state_);
  }

 private:
  std::shared_ptr<ModelServer::State> state_;
};

}  // namespace

ModelServer::ModelServer(std::vector<ScriptedTurn> script, int port, std::optional<ModelServerTls> tls)
    : state_(std::make_shared<State>()), tls_(tls.has_value()) {
  state_->script = std::move(script);
  const Poco::Net::SocketAddress address("0.0.0.0", static_cast<Poco::UInt16>(port));
  Poco::Net::ServerSocket socket;
  if (tls) {
    Poco::Net::Context::Ptr context =
        new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, tls->key_file, tls->certificate_file, "",
                               Poco::Net::Context::VERIFY_NONE);
    socket = Poco::Net::SecureServerSocket(address, 64, context);
  } else {
    socket = Poco::Net::ServerSocket(address);
  }
  port_ = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(16);
  params->setKeepAlive(true);
  server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(state_), socket, params);
  server_->start();
}

ModelServer::~ModelServer() {
  {
    std::lock_guard lock(state_->mu);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  server_->stopAll(true);
}

std::string ModelServer::BaseUrl() const {
  return std::string(tls_ ? "https://" : "http://") + Poco::Net::DNS::hostName() + ":" +
         std::to_string(port_);
}

int ModelServer::Held() const {
  std::lock_guard lock(state_->mu);
  return state_->held;
}

void ModelServer::SetDelay(std::chrono::milliseconds delay) {
  std::lock_guard lock(state_->mu);
  state_->delay = delay;
}

std::vector<RecordedRequest> ModelServer::Requests() const {
  std::lock_guard lock(state_->mu);
  return state_->requests;
}

ModelServerUsage ModelServer::Usage() const {
  std::lock_guard lock(state_->mu);
  return state_->usage;
}

std::chrono::microseconds ModelServer::BusyTime() const {
  std::lock_guard lock(state_->mu);
  return state_->busy;
}

}  // namespace paddock::testing
