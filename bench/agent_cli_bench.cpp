// Agent CLIs in sandboxes: for Claude Code, Codex and opencode, the time from POSTing a message to
// the turn's first event from the CLI (its session id or first text), the run's whole time, and
// the harness overhead = run time - the scripted model server's time answering that run. The
// baseline, in the same run: the shell harness's message -> first output line and whole run.
// Each turn makes one tool call (write a file, run a command) and answers, in a session whose
// sandbox is already up.
//
//   build/bin/agent_cli_bench [N]      (default N = 5 turns per CLI; CLIs from build/test-tools)
#include <algorithm>
#include <thread>

#include "model_server.h"
#include "testing.h"

using namespace paddock;
using namespace paddock::testing;

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double P50(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Figures {
  std::vector<double> first, run, model, overhead;
  int failed = 0;
};

Figures Measure(const std::string& harness, const std::string& model_name, int n) {
  Figures f;
  std::vector<ScriptedTurn> script;
  for (int i = 0; i < n + 1; ++i) {
    std::string t = "turn" + std::to_string(i) + "x";
    script.push_back({t, "echo " + t + " > /workspace/" + t + ".txt && ls /workspace | wc -l", "Done " + t});
  }
  ModelServer model(script);
  std::string extra =
      "[tools]\ndir = \"" + TestToolsDir() + "\"\n[models]\ngateway = \"" + model.BaseUrl() + "\"\n";
  if (harness != "shell") extra = "[[harness]]\ntype = \"" + harness + "\"\n" + extra;
  ServerProcess server(extra, {"CONTAINER_ENV_LITELLM_API_KEY=sk-bench"});
  if (!server.Start().ok()) {
    std::fprintf(stderr, "server did not start:\n%s\n", server.log().c_str());
    f.failed = n;
    return f;
  }
  auto agent =
      server.Request("POST", "/api/agents",
                     "{\"name\":\"bench\",\"harness\":\"" + harness + "\",\"model\":\"" + model_name + "\"}");
  auto session =
      server.Request("POST", "/api/sessions", "{\"agent_id\":\"" + JsonField(agent.body, "id") + "\"}");
  const std::string id = JsonField(session.body, "id");
  const std::string stream = "/api/sessions/" + id + "/events/stream";
  // Turn 0 warms up (sandbox, the CLI's first start); turns 1..n are measured.
  for (int i = 0; i <= n; ++i) {
    std::string t = "turn" + std::to_string(i) + "x";
    std::string content = harness == "shell"
                              ? "echo " + t + " > /workspace/" + t + ".txt && ls /workspace | wc -l"
                              : "Please do " + t + ".";
    auto busy_before = model.BusyTime();
    std::size_t seen = 0;
    auto last = server.Request("GET", "/api/sessions/" + id);
    std::string after = JsonField(last.body, "last_seq");
    auto t0 = Clock::now();
    server.Request("POST", "/api/sessions/" + id + "/messages", "{\"content\":\"" + content + "\"}");
    Clock::time_point first{}, end{};
    std::string status;
    ReadStream(
        server.port(), stream + "?after=" + after, {},
        [&](const std::vector<SseEvent>& ev) {
          for (; seen < ev.size(); ++seen) {
            const SseEvent& e = ev[seen];
            bool from_cli = e.type == "output" || e.type == "agent.session" || e.type == "assistant.text" ||
                            e.type == "tool.call";
            if (from_cli && first == Clock::time_point{}) first = Clock::now();
            if (e.type == "run.finished") {
              end = Clock::now();
              status = JsonField(e.data, "data.status");
              return true;
            }
          }
          return false;
        },
        std::chrono::seconds(240));
    if (status != "succeeded" || first == Clock::time_point{}) {
      ++f.failed;
      continue;
    }
    if (i == 0) continue;
    double model_ms = std::chrono::duration<double, std::milli>(model.BusyTime() - busy_before).count();
    f.first.push_back(Ms(first - t0));
    f.run.push_back(Ms(end - t0));
    f.model.push_back(model_ms);
    f.overhead.push_back(Ms(end - t0) - model_ms);
  }
  server.Stop();
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  Figures base = Measure("shell", "", n);
  std::printf("%-12s %16s %12s %12s %16s %10s\n", "harness", "msg->1st event", "run", "model srv",
              "overhead(run-mdl)", "vs shell");
  std::printf("%-12s %13.1f ms %9.1f ms %9.1f ms %13.1f ms %10s\n", "shell", P50(base.first), P50(base.run),
              P50(base.model), P50(base.overhead), "1.00x");
  for (auto [h, m] : {std::pair<const char*, const char*>{"claude-code", "claude-sonnet-4-5"},
                      {"codex", "gpt-5"},
                      {"opencode", "gpt-5"}}) {
    Figures f = Measure(h, m, n);
    std::printf("%-12s %13.1f ms %9.1f ms %9.1f ms %13.1f ms %9.1fx%s\n", h, P50(f.first), P50(f.run),
                P50(f.model), P50(f.overhead), P50(base.run) > 0 ? P50(f.run) / P50(base.run) : 0.0,
                f.failed ? ("  (" + std::to_string(f.failed) + " failed)").c_str() : "");
  }
  std::printf(
      "(p50 over %d turns each, after one warm-up turn; 'vs shell' = run time / the shell harness's)\n", n);
  return 0;
}
