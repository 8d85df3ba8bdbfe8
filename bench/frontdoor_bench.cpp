// The front door under many streams and slow clients, on one `paddock serve --no-worker` (the
// API process; no sandboxes, so only the HTTP side is measured):
//  - /healthz latency with nothing else open (the baseline);
//  - N clients following event streams over S sessions: how many get their stream's 200, and
//    /healthz latency and timeouts while they are open;
//  - M slowloris connections (a header line every 2 s, never finished): /healthz again.
// /healthz is asked 100 times in each state, each with a 2 s deadline (a timeout counts as 2 s).
//
//   build/bin/frontdoor_bench [N=200] [S=20] [M=150]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "baselines.h"
#include "testing.h"

using namespace paddock;
using namespace paddock::testing;

namespace {

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& s) {
  return send(fd, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size());
}

// Reads until `want` appears or `ms` pass.
bool ReadUntil(int fd, const std::string& want, int ms) {
  std::string got;
  const auto end = Clock::now() + std::chrono::milliseconds(ms);
  char buf[4096];
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    int left =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
    if (poll(&p, 1, std::max(1, left)) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got.append(buf, static_cast<size_t>(n));
    if (got.find(want) != std::string::npos) return true;
  }
  return false;
}

struct HealthTimes {
  std::vector<double> ms;
  int timeouts = 0;
};

HealthTimes AskHealth(int port, int n = 100) {
  HealthTimes h;
  for (int i = 0; i < n; ++i) {
    auto start = Clock::now();
    int fd = Connect(port);
    bool ok = fd >= 0 && SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n") &&
              ReadUntil(fd, "HTTP/1.1 200", 2000);
    if (fd >= 0) close(fd);
    h.ms.push_back(ok ? Ms(Clock::now() - start) : 2000.0);
    h.timeouts += ok ? 0 : 1;
  }
  return h;
}

void Print(const char* what, const HealthTimes& h) {
  std::printf("  %-44s /healthz p50 %8.2f ms  p99 %8.2f ms  timeouts %3d/%zu\n", what, Percentile(h.ms, 0.5),
              Percentile(h.ms, 0.99), h.timeouts, h.ms.size());
}

}  // namespace

int main(int argc, char** argv) {
  const int streams = argc > 1 ? std::atoi(argv[1]) : 200;
  const int sessions = std::max(1, argc > 2 ? std::atoi(argv[2]) : 20);
  const int slow = argc > 3 ? std::atoi(argv[3]) : 150;
  struct rlimit rl {};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  ServerOptions o;
  o.args = {"serve", "--no-worker"};
  ServerProcess server(o);
  if (Status s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  const int port = server.port();
  auto agent = server.Request("POST", "/api/agents", R"({"name":"bench","harness":"shell"})");
  std::vector<std::string> ids;
  for (int i = 0; i < sessions; ++i) {
    ids.push_back(JsonField(
        server.Request("POST", "/api/sessions", "{\"agent_id\":\"" + JsonField(agent.body, "id") + "\"}")
            .body,
        "id"));
  }
  std::printf("frontdoor_bench: %d streams over %d sessions, %d slowloris connections\n", streams, sessions,
              slow);
  const HealthTimes idle = AskHealth(port);
  Print("nothing else open (baseline)", idle);

  std::vector<int> open_streams;
  int answered = 0;
  for (int i = 0; i < streams; ++i) {
    int fd = Connect(port);
    if (fd < 0) continue;
    SendAll(fd, "GET /api/sessions/" + ids[static_cast<size_t>(i % sessions)] +
                    "/events/stream HTTP/1.1\r\nHost: b\r\n\r\n");
    open_streams.push_back(fd);
  }
  for (int fd : open_streams) answered += ReadUntil(fd, "HTTP/1.1 200", 200) ? 1 : 0;
  std::printf("  streams answered 200: %d of %d\n", answered, streams);
  Print(("with " + std::to_string(streams) + " streams open").c_str(), AskHealth(port));
  for (int fd : open_streams) close(fd);
  std::this_thread::sleep_for(std::chrono::seconds(1));

  std::vector<int> slow_fds;
  for (int i = 0; i < slow; ++i) {
    int fd = Connect(port);
    if (fd >= 0 && SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: b\r\n")) slow_fds.push_back(fd);
  }
  std::atomic<bool> done{false};
  std::thread dribble([&] {  // one more header line on each every 2 s, never the blank line
    while (!done) {
      for (int fd : slow_fds) SendAll(fd, "X-Slow: 1\r\n");
      for (int i = 0; i < 20 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Print(("with " + std::to_string(slow_fds.size()) + " slowloris connections").c_str(), AskHealth(port));
  done = true;
  dribble.join();
  for (int fd : slow_fds) close(fd);
  return 0;
}
