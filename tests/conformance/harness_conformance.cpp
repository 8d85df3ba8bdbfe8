// paddock-harness-conformance: the Harness conformance suite. Every harness, in tree and out of
// tree, passes it. It loads the harness the way an operator does (a [[harness]] table in the
// config), runs it in a real `paddock serve` with real sandboxes, drives it through the REST API,
// and, for harnesses that talk to a model, answers them from the scripted model server.
//
//   paddock-harness-conformance --scenarios FILE [--config FILE] [--paddock PATH]
//                               [--plugin-dir DIR] [--tools-dir DIR] [--gtest_* flags]
//
// The scenario file (TOML) says what to send the harness for each check; see
// docs/writing-a-harness.md.
#include <gtest/gtest.h>

#include <signal.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "config/config.h"
#include "model_server.h"
#include "paddock/json.h"
#include "paddock/testing/assert.h"
#include "plugins/plugin_host.h"
#include "testing.h"

namespace paddock::testing {
namespace {

namespace fs = std::filesystem;

// One step of the scenario file: what to send, and with a model server what the model does.
struct Step {
  std::string message;
  std::string command;   // the model's tool call (model_server only)
  std::string answer;    // the model's final text (model_server only)
  int error_status = 0;  // the model refuses with this HTTP status (model_server only)
};

struct Suite {
  std::string harness;
  std::string model;
  bool model_server = false;
  bool usage = false;
  std::vector<std::string> env;
  std::string config_toml;  // --config: appended to the server's config
  std::string binary;
  std::string plugin_dir;
  std::string tools_dir;
  std::chrono::seconds turn_timeout{240};
  std::map<std::string, Step> steps;
};

Suite* g_suite = nullptr;

constexpr const char* kStepNames[] = {"write", "fail", "long", "remember", "recall"};

std::string Substitute(std::string text, const std::string& token, const std::string& file) {
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"{token}", token}, {"{file}", file}}) {
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size())) {
      text.replace(at, key.size(), value);
    }
  }
  return text;
}

std::string NewToken() {
  static std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream s;
  s << "tok" << std::hex << rng();
  return s.str();
}

// A turn to send: the step's message with its token and file filled in.
struct Turn {
  std::string step;
  std::string token;
  std::string file;  // relative to /workspace
  std::string message;
};

Turn MakeTurn(const std::string& step, const std::string& token) {
  Turn t{step, token, "conformance-" + token + ".txt", ""};
  t.message = Substitute(g_suite->steps.at(step).message, token, t.file);
  return t;
}

std::string JsonMessage(const std::string& content) {
  return "{\"content\":" + JsonQuote(content) + ",\"on_busy\":\"queue\"}";
}

bool RunFinished(const std::vector<SseEvent>& events, const std::string& run) {
  for (const auto& e : events) {
    if (e.type == "run.finished" && JsonField(e.data, "run_id") == run) return true;
  }
  return false;
}

class HarnessConformance : public ::testing::Test {
 protected:
  void TearDown() override {
    model_.reset();  // first: nothing waits on a slow model answer while the server stops
    if (server_) {
      int code = server_->Stop();
      if (code != -1) {
        EXPECT_EQ(code, 0) << server_->log();
      }
    }
  }

  // Starts the model server (scripted with `turns`) and the server with the harness loaded.
  void Start(const std::vector<Turn>& turns) {
    std::string models;
    if (g_suite->model_server) {
      std::vector<ScriptedTurn> script;
      for (const Turn& t : turns) {
        const Step& s = g_suite->steps.at(t.step);
        script.push_back({t.message, Substitute(s.command, t.token, t.file),
                          Substitute(s.answer, t.token, t.file), s.error_status});
      }
      model_ = std::make_unique<ModelServer>(std::move(script));
      models = "[models]\ngateway = \"" + model_->BaseUrl() + "\"\n";
    }
    ServerOptions options;
    options.binary = g_suite->binary;
    options.plugin_dir = g_suite->plugin_dir;
    options.env = g_suite->env;
    if (g_suite->config_toml.empty()) {
      options.harness_toml = "[[harness]]\ntype = \"" + g_suite->harness + "\"\n";
    } else {
      options.harness_toml = g_suite->config_toml + "\n";
    }
    options.extra_toml = models;
    if (!g_suite->tools_dir.empty()) options.extra_toml += "[tools]\ndir = \"" + g_suite->tools_dir + "\"\n";
    server_ = std::make_unique<ServerProcess>(options);
    ASSERT_OK(server_->Start());
  }

  std::string NewSession() {
    std::string agent = "{\"name\":\"conformance\",\"harness\":" + JsonQuote(g_suite->harness);
    if (!g_suite->model.empty()) agent += ",\"model\":" + JsonQuote(g_suite->model);
    auto a = server_->Request("POST", "/api/agents", agent + "}");
    EXPECT_EQ(a.status, 201) << a.body;
    auto s = server_->Request("POST", "/api/sessions",
                              "{\"agent_id\":" + JsonQuote(JsonField(a.body, "id")) + "}");
    EXPECT_EQ(s.status, 201) << s.body;
    return JsonField(s.body, "id");
  }

  std::string Send(const std::string& session, const std::string& content) {
    auto r = server_->Request("POST", "/api/sessions/" + session + "/messages", JsonMessage(content));
    EXPECT_EQ(r.status, 202) << r.body;
    return JsonField(r.body, "run_id");
  }

  // The events of `run`, read from the session's stream until the run finished.
  std::vector<SseEvent> Wait(const std::string& session, const std::string& run) {
    auto all = ReadStream(
        server_->port(), "/api/sessions/" + session + "/events/stream", {},
        [&](const std::vector<SseEvent>& ev) { return RunFinished(ev, run); }, g_suite->turn_timeout);
    std::vector<SseEvent> mine;
    for (auto& e : all) {
      if (JsonField(e.data, "run_id") == run) mine.push_back(std::move(e));
    }
    return mine;
  }

  static std::string Status(const std::vector<SseEvent>& events) {
    return events.empty() || events.back().type != "run.finished"
               ? ""
               : JsonField(events.back().data, "data.status");
  }

  // What every turn's events must be, whatever the harness: the message, the start, what the
  // harness emitted, the end; sequence numbers rising; well-formed types and JSON object data.
  void ExpectWellFormed(const std::vector<SseEvent>& events) {
    static const std::regex kType("[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*");
    ASSERT_GE(events.size(), 3u) << Dump(events);
    EXPECT_EQ(events.front().type, "message.user") << Dump(events);
    EXPECT_EQ(events[1].type, "run.started") << Dump(events);
    EXPECT_EQ(events.back().type, "run.finished") << Dump(events);
    for (size_t i = 0; i < events.size(); ++i) {
      EXPECT_TRUE(std::regex_match(events[i].type, kType)) << "event type '" << events[i].type << "'";
      const std::string data = JsonField(events[i].data, "data");
      EXPECT_TRUE(!data.empty() && data.front() == '{') << events[i].type << ": data is not a JSON object";
      if (i > 0) {
        EXPECT_GT(events[i].id, events[i - 1].id) << Dump(events);
      }
      if (i > 1 && i + 1 < events.size()) {
        EXPECT_NE(events[i].type, "run.started") << Dump(events);
        EXPECT_NE(events[i].type, "run.finished") << Dump(events);
      }
    }
  }

  static std::string Dump(const std::vector<SseEvent>& events) {
    std::string out = "events:";
    for (const auto& e : events) out += "\n  " + e.data.substr(0, 400);
    return out;
  }

  // Index of the first event of `type` at or after `from` whose JSON contains `text`; -1 if none.
  static int Index(const std::vector<SseEvent>& ev, const std::string& type, const std::string& text,
                   size_t from = 0) {
    for (size_t i = from; i < ev.size(); ++i) {
      if ((type.empty() || ev[i].type == type) && ev[i].data.find(text) != std::string::npos)
        return static_cast<int>(i);
    }
    return -1;
  }

  std::string Exec(const std::string& session, const std::string& command) {
    auto r = server_->Request("POST", "/api/sessions/" + session + "/sandbox/exec",
                              "{\"command\":" + JsonQuote(command) + "}");
    EXPECT_EQ(r.status, 200) << r.body;
    return JsonField(r.body, "stdout");
  }

  // A "write" turn did what it says: succeeded, wrote the file, said the token; with a model,
  // through a tool call and its result.
  void ExpectWrote(const std::string& session, const Turn& turn, const std::vector<SseEvent>& events) {
    ExpectWellFormed(events);
    ASSERT_EQ(Status(events), "succeeded") << Dump(events) << "\n" << server_->log();
    EXPECT_EQ(Exec(session, "cat /workspace/" + turn.file), turn.token);
    const int said = Index(events, "", turn.token, 2);
    EXPECT_GE(said, 2) << "no event of the turn carries " << turn.token << "\n" << Dump(events);
    if (g_suite->model_server) {
      const int call = Index(events, "tool.call", turn.file);
      ASSERT_GE(call, 0) << Dump(events);
      const int result = Index(events, "tool.result", "", static_cast<size_t>(call));
      ASSERT_GT(result, call) << Dump(events);
      EXPECT_EQ(JsonField(events[static_cast<size_t>(result)].data, "data.id"),
                JsonField(events[static_cast<size_t>(call)].data, "data.id"));
      EXPECT_GT(Index(events, "assistant.text", turn.token, static_cast<size_t>(result)), result)
          << Dump(events);
    }
  }

  std::unique_ptr<ModelServer> model_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(HarnessConformance, DeclaresPinnedNeedsAndNativeStateInsideTheSandbox) {
  // Loaded by the host's own config reader and loader, from the same config as the server.
  TempDir dir;
  std::string text = "[server]\ndata_dir = \"" + dir.path() + "\"\n";
  if (!g_suite->plugin_dir.empty()) text += "plugin_dir = \"" + g_suite->plugin_dir + "\"\n";
  text += "[secrets]\ntype = \"env\"\n[store]\ntype = \"sqlite\"\n[sandbox]\ntype = \"process\"\n";
  text += g_suite->config_toml.empty() ? "[[harness]]\ntype = \"" + g_suite->harness + "\"\n"
                                       : g_suite->config_toml;
  const std::string path = dir / "paddock.toml";
  std::ofstream(path) << text;
  auto config = LoadConfigFile(path);
  ASSERT_OK(config);
  const PluginChoice* choice = nullptr;
  for (const auto& c : config->plugins) {
    if (c.kind == "harness" && c.name == g_suite->harness) choice = &c;
  }
  ASSERT_NE(choice, nullptr) << "the config has no [[harness]] of type " << g_suite->harness;
  auto plugin = CreatePlugin(ResolvePluginDir(g_suite->plugin_dir), *choice, dir.path());
  ASSERT_OK(plugin);
  ASSERT_NE(plugin->harness, nullptr);
  EXPECT_EQ(plugin->summary.name, g_suite->harness);
  Agent agent;
  agent.id = "agt_conformance";
  agent.harness = g_suite->harness;
  agent.model = g_suite->model;
  for (const std::string& p : plugin->harness->NativeStatePaths(agent)) {
    const fs::path native(p);
    EXPECT_TRUE(native.is_absolute()) << p;
    EXPECT_EQ(native.lexically_normal().string(), p) << p << " is not in normal form";
    const bool inside =
        p.rfind(std::string(kSandboxWorkspace), 0) == 0 || p.rfind(std::string(kSandboxHome), 0) == 0;
    EXPECT_TRUE(inside) << p << " is neither under " << kSandboxWorkspace << " nor under " << kSandboxHome;
  }
  static const std::regex kPinned(
      "(@[a-z0-9._-]+/)?[a-z0-9._-]+@[0-9]+\\.[0-9]+\\.[0-9]+([-+][0-9A-Za-z.-]+)?");
  for (const std::string& package : plugin->harness->Needs(agent).npm) {
    EXPECT_TRUE(std::regex_match(package, kPinned)) << package << " is not pinned to an exact version";
  }
}

TEST_F(HarnessConformance, ATurnWritesAFileAndAnswers) {
  const Turn turn = MakeTurn("write", NewToken());
  Start({turn});
  const std::string session = NewSession();
  const std::string run = Send(session, turn.message);
  auto events = Wait(session, run);
  ExpectWrote(session, turn, events);
  if (g_suite->usage) {
    EXPECT_GE(Index(events, "usage", ""), 0) << Dump(events);
    auto runs = server_->Request("GET", "/api/sessions/" + session + "/runs");
    EXPECT_GT(std::stoll("0" + JsonField(runs.body, "runs.0.usage.input_tokens")), 0) << runs.body;
    EXPECT_GT(std::stoll("0" + JsonField(runs.body, "runs.0.usage.output_tokens")), 0) << runs.body;
  }
}

TEST_F(HarnessConformance, TwoSessionsRunAtOnceAndStayApart) {
  const Turn a = MakeTurn("write", NewToken());
  const Turn b = MakeTurn("write", NewToken());
  Start({a, b});
  const std::string sa = NewSession();
  const std::string sb = NewSession();
  const std::string ra = Send(sa, a.message);
  const std::string rb = Send(sb, b.message);
  std::vector<SseEvent> ea, eb;
  std::thread other([&] { eb = Wait(sb, rb); });
  ea = Wait(sa, ra);
  other.join();
  ExpectWrote(sa, a, ea);
  ExpectWrote(sb, b, eb);
  // Each session's workspace has its own file only.
  EXPECT_EQ(Exec(sa, "ls /workspace/" + b.file + " 2>/dev/null || echo absent"), "absent\n");
  EXPECT_EQ(Exec(sb, "ls /workspace/" + a.file + " 2>/dev/null || echo absent"), "absent\n");
}

TEST_F(HarnessConformance, AFailedTurnFailsTheRunSaysWhyAndTheSessionGoesOn) {
  const Turn fail = MakeTurn("fail", NewToken());
  const Turn after = MakeTurn("write", NewToken());
  Start({fail, after});
  const std::string session = NewSession();
  const std::string run = Send(session, fail.message);
  auto events = Wait(session, run);
  ExpectWellFormed(events);
  EXPECT_EQ(Status(events), "failed") << Dump(events);
  EXPECT_FALSE(JsonField(events.back().data, "data.error").empty()) << "a failed run says why\n"
                                                                    << Dump(events);
  const std::string next = Send(session, after.message);
  ExpectWrote(session, after, Wait(session, next));
}

TEST_F(HarnessConformance, ACancelledTurnStopsAndTheSessionGoesOn) {
  const Turn slow = MakeTurn("long", NewToken());
  const Turn after = MakeTurn("write", NewToken());
  Start({slow, after});
  const std::string session = NewSession();
  const std::string run = Send(session, slow.message);
  // Cancel once the turn is under way (with a model: once the agent ran the long command).
  bool running = false;
  for (int i = 0; i < 2400 && !running; ++i) {
    auto r = server_->Request("GET", "/api/sessions/" + session + "/runs");
    running = JsonField(r.body, "runs.0.status") == "running";
    if (running && model_) {
      running = false;
      for (const auto& q : model_->Requests()) running = running || q.answered == "tool";
    }
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(running) << "the long turn never got under way\n" << server_->log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto cancel = server_->Request("POST", "/api/sessions/" + session + "/runs/" + run + "/cancel");
  EXPECT_EQ(cancel.status, 202) << cancel.body;
  auto events = Wait(session, run);
  ExpectWellFormed(events);
  EXPECT_EQ(Status(events), "cancelled") << Dump(events) << "\n" << server_->log();
  const std::string next = Send(session, after.message);
  ExpectWrote(session, after, Wait(session, next));
}

TEST_F(HarnessConformance, TheConversationSurvivesTheLossOfItsSandbox) {
  const std::string token = NewToken();
  const Turn remember = MakeTurn("remember", token);
  Turn recall = MakeTurn("recall", NewToken());
  Start({remember, recall});
  const std::string session = NewSession();
  const std::string first = Send(session, remember.message);
  auto before = Wait(session, first);
  ExpectWellFormed(before);
  ASSERT_EQ(Status(before), "succeeded") << Dump(before) << "\n" << server_->log();
  // SIGKILL the sandbox's jail, as a crash of its host would.
  const std::string sandbox =
      JsonField(server_->Request("GET", "/api/sessions/" + session).body, "sandbox_id");
  std::ifstream state(server_->data_dir() + "/sandbox-process/sandboxes/" + sandbox + "/state");
  std::string line;
  ASSERT_TRUE(std::getline(state, line) && line.rfind("pid=", 0) == 0) << "no state for sandbox " << sandbox;
  const pid_t pid = static_cast<pid_t>(std::stoi(line.substr(4)));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  for (int i = 0; i < 500 && fs::exists("/proc/" + std::to_string(pid)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const size_t asked = model_ ? model_->Requests().size() : 0;
  const std::string second = Send(session, recall.message);
  auto after = Wait(session, second);
  ExpectWellFormed(after);
  ASSERT_EQ(Status(after), "succeeded") << Dump(after) << "\n" << server_->log();
  EXPECT_NE(JsonField(server_->Request("GET", "/api/sessions/" + session).body, "sandbox_id"), sandbox);
  if (model_) {
    // The agent brought the first turn back: the model sees it in the second turn's request.
    bool carried = false;
    auto requests = model_->Requests();
    for (size_t i = asked; i < requests.size(); ++i) {
      if (requests[i].body.find(recall.message) != std::string::npos &&
          requests[i].body.find(token) != std::string::npos)
        carried = true;
    }
    EXPECT_TRUE(carried) << "no model request of the second turn carries the first turn's " << token;
  } else {
    EXPECT_GE(Index(after, "", token, 2), 2) << "the second turn did not bring back " << token << "\n"
                                             << Dump(after);
  }
}

TEST_F(HarnessConformance, OddMessagesEndCleanly) {
  const Turn after = MakeTurn("write", NewToken());
  Start({after});
  const std::string session = NewSession();
  const std::vector<std::string> odd = {
      // A harness that handed the message to a shell unquoted would create /workspace/injected
      // (one whose messages are shell code sees an unterminated quote).
      "quotes ' \" ` $(touch /workspace/injected) ; && | > < \\ and\nnew\nlines",
      "unicode: h\xC3\xA9llo \xE2\x9C\x93 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x9A\x80",
      "-flag-looking --message",
      std::string(64 * 1024, 'x'),
  };
  for (const std::string& message : odd) {
    const std::string run = Send(session, message);
    auto events = Wait(session, run);
    ExpectWellFormed(events);
    const std::string status = Status(events);
    EXPECT_TRUE(status == "succeeded" || status == "failed") << status << "\n" << Dump(events);
  }
  EXPECT_EQ(Exec(session, "ls /workspace/injected 2>/dev/null || echo absent"), "absent\n");
  const std::string next = Send(session, after.message);
  ExpectWrote(session, after, Wait(session, next));
}

[[noreturn]] void Usage(const std::string& why);

// The --config file as TOML to append to the server's config, with each relative plugin `path`
// made absolute (it is relative to the file's own directory, and the server's config is elsewhere).
toml::table ParseToml(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream s;
    s << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    Usage(s.str());
  }
}

std::string ReadConfigFragment(const std::string& path) {
  toml::table doc = ParseToml(path);
  const fs::path dir = fs::absolute(path).parent_path();
  auto absolute = [&](toml::table& t) {
    if (auto* p = t["path"].as_string(); p && fs::path(p->get()).is_relative()) {
      *p = (dir / p->get()).lexically_normal().string();
    }
  };
  for (const char* owned : {"server", "store", "sandbox", "secrets"}) {
    if (doc.contains(owned))
      Usage(path + ": [" + owned + "] is the suite's own; the file adds [[harness]] and the like");
  }
  if (auto* harnesses = doc["harness"].as_array()) {
    for (auto& h : *harnesses) {
      if (auto* t = h.as_table()) absolute(*t);
    }
  }
  std::ostringstream out;
  out << doc << "\n";
  return out.str();
}

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "paddock-harness-conformance: %s\n"
               "usage: paddock-harness-conformance --scenarios FILE [--config FILE] [--paddock PATH]\n"
               "         [--plugin-dir DIR] [--tools-dir DIR] [--gtest_* flags]\n",
               why.c_str());
  std::exit(2);
}

Suite LoadSuite(const std::string& path) {
  Suite suite;
  const toml::table doc = ParseToml(path);
  std::set<std::string> known = {"harness", "model", "model_server", "usage", "env", "turn_timeout"};
  for (const char* step : kStepNames) known.insert(step);
  for (const auto& [key, value] : doc) {
    if (!known.count(std::string(key.str()))) Usage(path + ": unknown key '" + std::string(key.str()) + "'");
  }
  suite.harness = doc["harness"].value_or(std::string());
  if (suite.harness.empty()) Usage(path + ": harness = \"<name>\" is required");
  suite.model = doc["model"].value_or(std::string());
  suite.model_server = doc["model_server"].value_or(false);
  suite.usage = doc["usage"].value_or(false);
  suite.turn_timeout = std::chrono::seconds(doc["turn_timeout"].value_or(std::int64_t{240}));
  if (const toml::array* env = doc["env"].as_array()) {
    for (const auto& e : *env) suite.env.push_back(e.value_or(std::string()));
  }
  for (const char* name : kStepNames) {
    const toml::table* t = doc[name].as_table();
    if (!t) Usage(path + ": [" + name + "] is required");
    Step s;
    s.message = (*t)["message"].value_or(std::string());
    s.command = (*t)["command"].value_or(std::string());
    s.answer = (*t)["answer"].value_or(std::string());
    s.error_status = static_cast<int>((*t)["error_status"].value_or(std::int64_t{0}));
    if (s.message.empty()) Usage(path + ": [" + name + "] message is required");
    if (suite.model_server && std::string(name) != "fail" && s.answer.empty()) {
      Usage(path + ": [" + name + "] answer is required with model_server = true");
    }
    suite.steps[name] = s;
  }
  if (suite.steps["write"].message.find("{token}") == std::string::npos) {
    Usage(path + ": [write] message must contain {token}: each turn's message must be its own");
  }
  return suite;
}

}  // namespace
}  // namespace paddock::testing

int main(int argc, char** argv) {
  using namespace paddock::testing;
  static Suite suite;
  std::string scenarios, config, binary, plugin_dir, tools_dir;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& into) {
      if (i + 1 >= argc) Usage(a + " needs a value");
      into = argv[++i];
    };
    if (a == "--scenarios") {
      value(scenarios);
    } else if (a == "--config") {
      value(config);
    } else if (a == "--paddock") {
      value(binary);
    } else if (a == "--plugin-dir") {
      value(plugin_dir);
    } else if (a == "--tools-dir") {
      value(tools_dir);
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  ::testing::InitGoogleTest(&rest_argc, rest.data());
  if (scenarios.empty()) Usage("--scenarios is required");
  suite = LoadSuite(scenarios);
  if (!config.empty()) suite.config_toml = ReadConfigFragment(config);
  if (suite.model_server && suite.config_toml.find("[models]") != std::string::npos) {
    Usage(config + ": [models] points at the suite's scripted model server when model_server = true");
  }
  const std::string self = boost::dll::program_location().parent_path().string();
  suite.binary = binary.empty() ? self + "/paddock" : binary;
  if (access(suite.binary.c_str(), X_OK) != 0)
    Usage("no paddock binary at " + suite.binary + " (use --paddock)");
  suite.plugin_dir = plugin_dir;
  suite.tools_dir = tools_dir;
  g_suite = &suite;
  return RUN_ALL_TESTS();
}
