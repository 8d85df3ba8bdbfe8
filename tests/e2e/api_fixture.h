// The end-to-end fixture: a real `paddock serve` with the embedded plugins, and helpers to drive
// it over HTTP.
#pragma once

#include <Poco/JSON/Object.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {

// Every line of the output events, in order (an event holds one or more lines, joined by "\n").
inline std::vector<std::string> OutputLines(const std::vector<SseEvent>& events) {
  std::vector<std::string> lines;
  for (const auto& e : events) {
    if (e.type != "output") continue;
    const std::string text = JsonField(e.data, "data.text");
    for (size_t start = 0;;) {
      size_t nl = text.find('\n', start);
      lines.push_back(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  return lines;
}

// Whether some output line is exactly `text`.
inline bool HasOutput(const std::vector<SseEvent>& events, const std::string& text) {
  for (const auto& line : OutputLines(events)) {
    if (line == text) return true;
  }
  return false;
}

inline size_t Finished(const std::vector<SseEvent>& events) {
  size_t n = 0;
  for (const auto& e : events) n += e.type == "run.finished";
  return n;
}

class Api : public ::testing::Test {
 protected:
  void StartServer(const std::string& extra = "", std::vector<std::string> env = {}) {
    server_ = std::make_unique<ServerProcess>(extra, std::move(env));
    ASSERT_OK(server_->Start());
  }
  void SetUp() override { StartServer("", {"CONTAINER_ENV_FOO=bar"}); }
  void TearDown() override {
    if (!server_) return;
    int code = server_->Stop();  // -1: a test stopped it already
    if (code != -1) {
      EXPECT_EQ(code, 0) << server_->log();
    }
  }

  std::string CreateAgent() {
    auto r = server_->Request("POST", "/api/agents", R"({"name":"shell agent","harness":"shell"})");
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonField(r.body, "id");
  }
  std::string CreateSession(const std::string& agent) {
    auto r = server_->Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent + "\"}");
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonField(r.body, "id");
  }
  std::string Send(const std::string& session, const std::string& content, int expect = 202,
                   const std::string& on_busy = "queue") {
    Poco::JSON::Object body;
    body.set("content", content);
    body.set("on_busy", on_busy);
    std::ostringstream ss;
    body.stringify(ss);
    auto r = server_->Request("POST", "/api/sessions/" + session + "/messages", ss.str());
    EXPECT_EQ(r.status, expect) << r.body;
    return JsonField(r.body, "run_id");
  }
  // Streams the session's events from the start until `runs` runs have finished.
  std::vector<SseEvent> UntilFinished(const std::string& session, size_t runs) {
    return ReadStream(server_->port(), "/api/sessions/" + session + "/events/stream", {},
                      [&](const std::vector<SseEvent>& ev) { return Finished(ev) >= runs; });
  }
  // /metrics once it contains `needle` (counters move just after the event that reports the
  // change is stored), or after 5 s as it is then.
  std::string MetricsWith(const std::string& needle) {
    std::string body;
    for (int i = 0; i < 100; ++i) {
      body = server_->Request("GET", "/metrics").body;
      if (body.find(needle) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return body;
  }
  // SIGKILLs the jail of the session's sandbox and waits until it is gone; returns its id.
  std::string KillSandbox(const std::string& session) {
    const std::string sandbox =
        JsonField(server_->Request("GET", "/api/sessions/" + session).body, "sandbox_id");
    std::ifstream state(server_->data_dir() + "/sandbox-process/sandboxes/" + sandbox + "/state");
    std::string line;
    EXPECT_TRUE(std::getline(state, line) && line.rfind("pid=", 0) == 0)
        << "no state for sandbox " << sandbox;
    if (line.rfind("pid=", 0) != 0) return sandbox;
    const pid_t pid = static_cast<pid_t>(std::stoi(line.substr(4)));
    EXPECT_EQ(kill(pid, SIGKILL), 0);
    for (int i = 0; i < 500 && std::ifstream("/proc/" + std::to_string(pid) + "/stat").good(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return sandbox;
  }
  void ExpectError(const HttpResponse& r, int status, const std::string& code,
                   const std::string& message_part) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(JsonField(r.body, "error.code"), code) << r.body;
    EXPECT_NE(JsonField(r.body, "error.message").find(message_part), std::string::npos) << r.body;
  }

  std::unique_ptr<ServerProcess> server_;
};

}  // namespace paddock::testing
