// Output at the speed of the command, and one session's share of the store:
//   chatty   a run that prints L short lines (`seq 1 L`, shell harness, sqlite): POST message →
//            run finished, next to the command alone on the host (its output read through a
//            pipe) in the same run; checks that every line arrived, in order;
//   neighbour a quiet session's message round trip (`true`: four appends) with nothing else
//            running, then while another session floods (a harness emitting one event per line,
//            as harnesses did before output was gathered: `seq` through a shell loop that
//            echoes each line with a pause of nothing).
//
//   build/bin/output_bench [L=100000] [Q=30]
//   OUTPUT_BINARY=/path/to/an/older/paddock build/bin/output_bench ...   (the same, on it)
#include <Poco/JSON/Parser.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "baselines.h"
#include "paddock/json.h"
#include "testing.h"

using namespace paddock::testing;

namespace {

// Posts `command` and waits until the session's runs list shows the run finished.
double RunToEnd(ServerProcess& srv, const std::string& session, const std::string& command) {
  auto start = Clock::now();
  auto r = srv.Request("POST", "/api/sessions/" + session + "/messages",
                       "{\"content\":" + paddock::JsonQuote(command) + "}");
  if (r.status != 202) {
    std::fprintf(stderr, "message refused: %d %s\n", r.status, r.body.c_str());
    std::exit(1);
  }
  const std::string run = JsonField(r.body, "run_id");
  for (;;) {
    auto runs = srv.Request("GET", "/api/sessions/" + session + "/runs");
    auto at = runs.body.find("\"id\":\"" + run + "\"");
    if (at != std::string::npos) {
      auto end = runs.body.find('}', at);
      std::string one = runs.body.substr(at, end - at);
      if (one.find("\"status\":\"succeeded\"") != std::string::npos) break;
      if (one.find("\"status\":\"failed\"") != std::string::npos) {
        std::fprintf(stderr, "run failed: %s\n", one.c_str());
        std::exit(1);
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return Ms(Clock::now() - start);
}

std::string NewSession(ServerProcess& srv, const std::string& agent) {
  auto created = srv.Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent + "\"}");
  std::string id = JsonField(created.body, "id");
  for (;;) {
    std::string status = JsonField(srv.Request("GET", "/api/sessions/" + id).body, "status");
    if (status == "ready") return id;
    if (status != "provisioning") {
      std::fprintf(stderr, "session %s became %s\n", id.c_str(), status.c_str());
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// Every output line of the session, in order, from its event log.
std::vector<std::string> OutputLines(ServerProcess& srv, const std::string& session) {
  std::vector<std::string> lines;
  std::string after = "0";
  for (bool more = true; more;) {
    auto page = srv.Request("GET", "/api/sessions/" + session + "/events?after=" + after + "&limit=1000");
    auto body = Poco::JSON::Parser().parse(page.body).extract<Poco::JSON::Object::Ptr>();
    for (const auto& v : *body->getArray("events")) {
      auto e = v.extract<Poco::JSON::Object::Ptr>();
      if (e->getValue<std::string>("type") != "output") continue;
      std::istringstream text(e->getObject("data")->getValue<std::string>("text"));
      for (std::string line; std::getline(text, line);) lines.push_back(line);
    }
    after = body->get("next_after").toString();
    more = body->getValue<bool>("has_more");
  }
  return lines;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const int lines = argc > 1 ? std::max(1, std::atoi(argv[1])) : 100000;
  const int quiet_n = argc > 2 ? std::max(5, std::atoi(argv[2])) : 30;
  ServerOptions options;
  options.log_level = "info";
  if (const char* b = std::getenv("OUTPUT_BINARY")) {
    options.binary = b;
    options.plugin_dir = std::string(b).substr(0, std::string(b).rfind("/bin/")) + "/plugins";
  }
  ServerProcess srv(options);
  if (auto s = srv.Start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  auto agent = srv.Request("POST", "/api/agents", R"({"name":"bench","harness":"shell"})");
  const std::string agent_id = JsonField(agent.body, "id");
  const std::string chatty = NewSession(srv, agent_id);
  const std::string quiet = NewSession(srv, agent_id);

  // Baseline: the command alone, its output read through a pipe.
  auto start = Clock::now();
  auto [code, out] = RunCommand({"seq", "1", std::to_string(lines)});
  const double alone = Ms(Clock::now() - start);
  if (code != 0) return 1;

  RunToEnd(srv, chatty, "true");  // the sandbox's first exec out of the way
  const double run = RunToEnd(srv, chatty, "seq 1 " + std::to_string(lines));
  std::vector<std::string> got = OutputLines(srv, chatty);
  bool in_order = got.size() == static_cast<size_t>(lines);
  for (size_t i = 0; in_order && i < got.size(); ++i) in_order = got[i] == std::to_string(i + 1);
  std::printf("chatty run: `seq 1 %d` through the shell harness (sqlite)\n", lines);
  std::printf("  command alone           %9.1f ms\n", alone);
  std::printf("  run, message -> finished %8.1f ms   (%.1fx the command alone; target <= 2 s)\n", run,
              run / alone);
  std::printf("  lines in the log        %9zu   (%s)\n", got.size(),
              in_order ? "all, in order" : "MISSING OR OUT OF ORDER");

  std::vector<double> calm, noisy;
  RunToEnd(srv, quiet, "true");
  for (int i = 0; i < quiet_n; ++i) calm.push_back(RunToEnd(srv, quiet, "true"));
  // The neighbour: one write per line, so the harness sees (and would emit) one chunk per line.
  std::atomic<bool> flooding{true};
  std::thread neighbour([&] {
    while (flooding.load())
      RunToEnd(srv, chatty, "i=0; while [ $i -lt 20000 ]; do echo $i; i=$((i+1)); done");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (int i = 0; i < quiet_n; ++i) noisy.push_back(RunToEnd(srv, quiet, "true"));
  flooding = false;
  neighbour.join();
  std::printf("quiet session: message -> finished of `true`, n=%d\n", quiet_n);
  std::printf("  alone                    p50 %7.2f ms   p90 %7.2f ms\n", Percentile(calm, 0.5),
              Percentile(calm, 0.9));
  std::printf("  neighbour flooding       p50 %7.2f ms   p90 %7.2f ms   (%.2fx alone at p50)\n",
              Percentile(noisy, 0.5), Percentile(noisy, 0.9), Percentile(noisy, 0.5) / Percentile(calm, 0.5));
  srv.Request("DELETE", "/api/sessions/" + chatty);
  srv.Request("DELETE", "/api/sessions/" + quiet);
  srv.Stop();
  return in_order ? 0 : 1;
}
