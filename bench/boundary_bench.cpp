// The sandbox boundary in figures: the descriptors a command in a sandbox holds, next to a
// bare bwrap command's; and requests answered within a 5 s client timeout by a server that
// comes back on its port after a kill -9 and after a SIGTERM stop while sessions keep live
// sandboxes, next to the same burst before any restart.
//   boundary_bench [--binary PATH --plugin-dir DIR]   (another build, say an older one)
#include <Poco/JSON/Object.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "testing.h"

using namespace paddock::testing;

namespace {

constexpr char kListFds[] =
    "import os\n"
    "fds = [f for f in sorted(int(x) for x in os.listdir('/proc/self/fd')) if "
    "os.path.exists('/proc/self/fd/%d' % f)]\n"
    "print(len(fds), ' '.join('%d:%s' % (f, os.readlink('/proc/self/fd/%d' % f)) for f in fds))";

std::string Json(const std::string& key, const std::string& value) {
  Poco::JSON::Object o;
  o.set(key, value);
  std::ostringstream ss;
  o.stringify(ss);
  return ss.str();
}

struct Burst {
  int answered = 0;
  double seconds = 0;
};

// 200 GET /healthz from 20 clients, each with a 5 s timeout.
Burst Requests(int port) {
  std::atomic<int> ok{0}, next{0};
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < 20; ++c) {
    clients.emplace_back([&] {
      while (next++ < 200) {
        try {
          Poco::Net::HTTPClientSession s("127.0.0.1", static_cast<Poco::UInt16>(port));
          s.setTimeout(Poco::Timespan(5, 0));
          Poco::Net::HTTPRequest req("GET", "/healthz", Poco::Net::HTTPMessage::HTTP_1_1);
          s.sendRequest(req);
          Poco::Net::HTTPResponse resp;
          std::string body;
          Poco::StreamCopier::copyToString(s.receiveResponse(resp), body);
          if (resp.getStatus() == 200) ++ok;
        } catch (const Poco::Exception&) {
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  return {ok.load(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

}  // namespace

int main(int argc, char** argv) {
  ServerOptions o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--binary") o.binary = argv[i + 1];
    if (a == "--plugin-dir") o.plugin_dir = argv[i + 1];
  }
  o.sandbox_toml = "[sandbox]\ntype = \"process\"\n";  // sandboxes outlive the server
  ServerProcess server(o);
  if (!server.Start().ok()) {
    std::fprintf(stderr, "server did not start:\n%s\n", server.log().c_str());
    return 1;
  }
  const std::string agent =
      JsonField(server.Request("POST", "/api/agents", R"({"name":"bench","harness":"shell"})").body, "id");
  std::vector<std::string> sessions;
  for (int i = 0; i < 2; ++i) {
    sessions.push_back(
        JsonField(server.Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent + "\"}").body, "id"));
  }
  for (const auto& s : sessions) {
    for (int i = 0;
         i < 400 && JsonField(server.Request("GET", "/api/sessions/" + s).body, "status") != "ready"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  auto exec = [&](const std::string& session, const std::string& command) {
    return JsonField(
        server.Request("POST", "/api/sessions/" + session + "/sandbox/exec", Json("command", command)).body,
        "stdout");
  };
  std::string quoted;
  for (char c : std::string(kListFds)) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  const std::string inside = exec(sessions[0], "python3 -c '" + quoted + "'");
  auto [code, bare] =
      RunCommand({"bwrap",     "--ro-bind", "/usr", "/usr",      "--symlink",        "usr/bin", "/bin",
                  "--symlink", "usr/lib",   "/lib", "--symlink", "usr/lib64",        "/lib64",  "--proc",
                  "/proc",     "--dev",     "/dev", "--",        "/usr/bin/python3", "-c",      kListFds});
  for (const auto& s : sessions) exec(s, "(sleep 300 &) ; true");

  const Burst before = Requests(server.port());
  server.Kill();
  Burst killed{}, stopped{};
  if (server.Start().ok()) killed = Requests(server.port());
  server.Stop();
  if (server.Start().ok()) stopped = Requests(server.port());

  std::printf("%-44s %s", "descriptors seen by a command in a sandbox", inside.c_str());
  std::printf("%-44s %s", "baseline: a bare bwrap command", code == 0 ? bare.c_str() : "(bwrap failed)\n");
  std::printf("%-44s %3d/200 answered within 5 s, %.2f s\n", "baseline: before any restart", before.answered,
              before.seconds);
  std::printf("%-44s %3d/200 answered within 5 s, %.2f s (%.0f%% of the baseline)\n",
              "after kill -9 and restart", killed.answered, killed.seconds,
              100.0 * killed.answered / std::max(1, before.answered));
  std::printf("%-44s %3d/200 answered within 5 s, %.2f s (%.0f%% of the baseline)\n",
              "after SIGTERM stop and start", stopped.answered, stopped.seconds,
              100.0 * stopped.answered / std::max(1, before.answered));
  for (const auto& s : sessions) server.Request("DELETE", "/api/sessions/" + s);
  server.Stop();
  return 0;
}
