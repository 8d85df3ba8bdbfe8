// The front door, measured against baselines taken in the same run:
//  streams   N event streams over S sessions on one `paddock serve --no-worker`: server RSS per
//            stream, and append->delivery latency to every stream next to the same with 1 stream;
//            /healthz p50/p99 with nothing open, with the streams open, and with M slowloris
//            connections (a header line every 2 s, reconnecting when cut) open;
//  rest      wrk on GET /api/sessions/{id} and POST .../messages, next to wrk on a hello handler
//            served by the same HTTP stack (in this process) in the same run;
//  sandboxes K sessions with live sandboxes on the default config: PSS per sandbox, server
//            RSS, GET /api/sessions?limit=1000 p99 (run on its own: it takes minutes).
//
//   build/bin/frontdoor_bench [N=5000] [S=500] [M=1000]
//   build/bin/frontdoor_bench sandboxes [K=2000]
//   FRONTDOOR_BINARY=/path/to/an/older/paddock build/bin/frontdoor_bench ...   (the same, on it;
//   its plugins from ../plugins next to its bin/)
#include <sys/epoll.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "baselines.h"
#include "config/config.h"
#include "http/exchange.h"
#include "http/router.h"
#include "http/server.h"
#include "raw_http.h"
#include "services/app.h"
#include "services/teams/authenticator.h"
#include "testing.h"
#include "util/redactor.h"

using namespace paddock;
using namespace paddock::testing;

namespace {

const std::string kServerLimits = "max_connections = 100000\nmax_connections_per_client = 100000\n";

struct HealthTimes {
  std::vector<double> ms;
  int timeouts = 0;
};

HealthTimes AskHealth(int port, int n = 200) {
  HealthTimes h;
  for (int i = 0; i < n; ++i) {
    auto start = Clock::now();
    std::string got = RawRequest(port, "GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", 2000);
    bool ok = got.rfind("HTTP/1.1 200", 0) == 0;
    h.ms.push_back(ok ? Ms(Clock::now() - start) : 2000.0);
    h.timeouts += ok ? 0 : 1;
  }
  return h;
}

void PrintHealth(const char* what, const HealthTimes& h, const HealthTimes* base = nullptr) {
  std::printf("  %-40s /healthz p50 %7.2f ms  p99 %7.2f ms  timeouts %3d/%zu", what, Percentile(h.ms, 0.5),
              Percentile(h.ms, 0.99), h.timeouts, h.ms.size());
  if (base) std::printf("   p99 %.1fx the baseline", Percentile(h.ms, 0.99) / Percentile(base->ms, 0.99));
  std::printf("\n");
}

// Many streams read by one epoll loop: each fd's bytes are searched for its round's marker.
class StreamReader {
 public:
  explicit StreamReader(size_t n) : buf_(n), seen_(n), ep_(epoll_create1(EPOLL_CLOEXEC)) {}
  ~StreamReader() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    close(ep_);
  }
  void Add(size_t index, int fd) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = (static_cast<std::uint64_t>(index) << 32) | static_cast<std::uint32_t>(fd);
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &e);
  }
  // Looks for `marker` from now on; clears earlier finds.
  void Expect(const std::string& marker) {
    std::lock_guard lock(mu_);
    marker_ = marker;
    for (auto& s : seen_) s = Clock::time_point{};
    for (auto& b : buf_) b.clear();
    found_ = 0;
  }
  size_t found() {
    std::lock_guard lock(mu_);
    return found_;
  }
  Clock::time_point seen(size_t i) {
    std::lock_guard lock(mu_);
    return seen_[i];
  }
  void Start() {
    thread_ = std::thread([this] {
      epoll_event events[256];
      char data[65536];
      while (!stop_) {
        int n = epoll_wait(ep_, events, 256, 100);
        for (int i = 0; i < n; ++i) {
          const size_t index = events[i].data.u64 >> 32;
          const int fd = static_cast<int>(events[i].data.u64 & 0xffffffff);
          ssize_t got = recv(fd, data, sizeof data, 0);
          if (got <= 0) {
            epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
            continue;
          }
          const auto now = Clock::now();
          std::lock_guard lock(mu_);
          std::string& b = buf_[index];
          b.append(data, static_cast<size_t>(got));
          if (seen_[index] == Clock::time_point{} && !marker_.empty() &&
              b.find(marker_) != std::string::npos) {
            seen_[index] = now;
            ++found_;
          }
          if (b.size() > 4096) b.erase(0, b.size() - 512);
        }
      }
    });
  }

 private:
  std::vector<std::string> buf_;
  std::vector<Clock::time_point> seen_;
  int ep_;
  std::mutex mu_;
  std::string marker_;
  size_t found_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Setup {
  std::unique_ptr<ServerProcess> server;
  std::string agent;
  std::vector<std::string> sessions;
};

Setup StartServer(int sessions, std::vector<std::string> args = {"serve", "--no-worker"},
                  const std::string& extra = "") {
  Setup s;
  ServerOptions o;
  o.args = std::move(args);
  o.server_toml = kServerLimits + extra;
  o.log_level = "warn";  // a line per request would be measured too
  // FRONTDOOR_BINARY: measure another build (an older one knows none of the limits' keys).
  if (const char* other = std::getenv("FRONTDOOR_BINARY")) {
    o.binary = other;
    o.plugin_dir = std::filesystem::path(other).parent_path().parent_path() / "plugins";
    o.server_toml = "";
  }
  s.server = std::make_unique<ServerProcess>(o);
  if (Status st = s.server->Start(); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    std::exit(1);
  }
  s.agent =
      JsonField(s.server->Request("POST", "/api/agents", R"({"name":"bench","harness":"shell"})").body, "id");
  for (int i = 0; i < sessions; ++i) {
    s.sessions.push_back(JsonField(
        s.server->Request("POST", "/api/sessions", "{\"agent_id\":\"" + s.agent + "\"}").body, "id"));
  }
  return s;
}

// Opens `n` streams round-robin over the sessions; returns their fds once each has caught up.
std::vector<int> OpenStreams(const Setup& s, int n, StreamReader& reader) {
  std::vector<int> fds;
  reader.Expect("event: session.created");
  for (int i = 0; i < n; ++i) {
    int fd = ConnectTo(s.server->port());
    if (fd < 0) break;
    SendAll(fd, "GET /api/sessions/" + s.sessions[static_cast<size_t>(i) % s.sessions.size()] +
                    "/events/stream HTTP/1.1\r\nHost: b\r\n" PADDOCK_TEST_AUTH "\r\n");
    reader.Add(static_cast<size_t>(i), fd);
    fds.push_back(fd);
  }
  for (int i = 0; i < 600 && reader.found() < fds.size(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return fds;
}

// `rounds` times: one message to every session; the latency of each event to each stream.
std::vector<double> Deliver(const Setup& s, size_t streams, StreamReader& reader, int rounds) {
  std::vector<double> ms;
  const size_t sessions = s.sessions.size();
  for (int r = 0; r < rounds; ++r) {
    const std::string marker = "\"content\":\"m" + std::to_string(r) + "-";
    reader.Expect(marker);
    std::vector<Clock::time_point> sent(sessions);
    for (size_t i = 0; i < sessions; ++i) {
      sent[i] = Clock::now();
      s.server->Request("POST", "/api/sessions/" + s.sessions[i] + "/messages",
                        "{\"content\":\"m" + std::to_string(r) + "-" + std::to_string(i) + "\"}");
    }
    for (int i = 0; i < 600 && reader.found() < streams; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    for (size_t i = 0; i < streams; ++i) {
      Clock::time_point seen = reader.seen(i);
      ms.push_back(seen == Clock::time_point{} ? 30000.0 : Ms(seen - sent[i % sessions]));
    }
  }
  return ms;
}

struct Wrk {
  double rps = 0;
  std::string p99;
  std::string errors;
};

Wrk RunWrk(const std::string& url, const std::string& script = "") {
  std::vector<std::string> argv = {
      "wrk", "-t2", "-c32", "-d5s", "--latency", "-H", "Authorization: Bearer " PADDOCK_TEST_KEY};
  if (!script.empty()) {
    argv.push_back("-s");
    argv.push_back(script);
  }
  argv.push_back(url);
  auto [code, out] = RunCommand(argv);
  Wrk w;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) w.rps = std::stod(m[1]);
  if (std::regex_search(out, m, std::regex(R"(99%\s+(\S+))"))) w.p99 = m[1];
  if (std::regex_search(out, m, std::regex(R"(Non-2xx or 3xx responses: (\d+))"))) w.errors = m[1];
  if (code != 0) std::fprintf(stderr, "wrk failed: %s\n", out.c_str());
  return w;
}

void Hello(Exchange& x) { x.SendText(200, "text/plain", "hello"); }

int Streams(int n, int sessions, int slow) {
  std::printf("frontdoor_bench: %d streams over %d sessions, %d slowloris connections\n", n, sessions, slow);
  Setup s = StartServer(sessions);
  const int port = s.server->port();
  const HealthTimes idle = AskHealth(port);
  PrintHealth("nothing else open (baseline)", idle);

  // One stream: the baseline.
  std::vector<double> one;
  {
    Setup single = StartServer(1);
    StreamReader reader(1);
    reader.Start();
    auto fds = OpenStreams(single, 1, reader);
    one = Deliver(single, fds.size(), reader, 200);
    for (int fd : fds) close(fd);
  }
  const double rss_before = RssMiB(s.server->pid());
  StreamReader reader(static_cast<size_t>(n));
  reader.Start();
  auto start = Clock::now();
  std::vector<int> fds = OpenStreams(s, n, reader);
  const double open_s = Ms(Clock::now() - start) / 1000;
  const size_t answered = reader.found();
  const double rss_after = RssMiB(s.server->pid());
  std::printf(
      "  streams open and caught up: %zu of %d in %.1f s; server RSS %.1f -> %.1f MiB: %.1f KiB per stream\n",
      answered, n, open_s, rss_before, rss_after,
      (rss_after - rss_before) * 1024 / std::max<size_t>(1, answered));
  PrintHealth(("with " + std::to_string(answered) + " streams open").c_str(), AskHealth(port), &idle);
  std::vector<double> all = Deliver(s, answered, reader, 5);
  int missing = 0;
  for (double v : all) missing += v >= 30000.0;
  std::printf("  append->delivery, 1 stream:      p50 %7.2f ms  p99 %7.2f ms  (%zu events)\n",
              Percentile(one, 0.5), Percentile(one, 0.99), one.size());
  std::printf(
      "  append->delivery, %zu streams: p50 %7.2f ms  p99 %7.2f ms  (%zu deliveries, %d missing)   "
      "p50 %.1fx, p99 %.1fx the 1-stream figure\n",
      answered, Percentile(all, 0.5), Percentile(all, 0.99), all.size(), missing,
      Percentile(all, 0.5) / Percentile(one, 0.5), Percentile(all, 0.99) / Percentile(one, 0.99));
  std::printf("  server RSS with the streams after delivery: %.1f MiB\n", RssMiB(s.server->pid()));
  for (int fd : fds) close(fd);
  std::this_thread::sleep_for(std::chrono::seconds(1));

  // Slowloris: connections that never finish their header; cut ones reconnect.
  std::vector<int> slow_fds(static_cast<size_t>(slow), -1);
  std::atomic<bool> done{false};
  auto dial = [&](int& fd) {
    fd = ConnectTo(port);
    if (fd >= 0) SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: b\r\n");
  };
  for (int& fd : slow_fds) dial(fd);
  std::thread dribble([&] {
    while (!done) {
      for (int& fd : slow_fds) {
        if (fd < 0 || !SendAll(fd, "X-Slow: 1\r\n")) {
          if (fd >= 0) close(fd);
          dial(fd);
        }
      }
      for (int i = 0; i < 20 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  PrintHealth(("with " + std::to_string(slow) + " slowloris connections").c_str(), AskHealth(port), &idle);
  done = true;
  dribble.join();
  for (int fd : slow_fds) {
    if (fd >= 0) close(fd);
  }
  return 0;
}

int Rest() {
  std::printf("frontdoor_bench rest: wrk -t2 -c32 -d5s\n");
  Setup s = StartServer(1);
  const std::string base = "http://127.0.0.1:" + std::to_string(s.server->port());
  TempDir dir;
  const std::string post = dir / "post.lua";
  std::ofstream(post) << "wrk.method = \"POST\"\nwrk.body = '{\"content\":\"hi\"}'\n"
                      << "wrk.headers[\"Content-Type\"] = \"application/json\"\n";
  Wrk get = RunWrk(base + "/api/sessions/" + s.sessions[0]);
  Wrk send = RunWrk(base + "/api/sessions/" + s.sessions[0] + "/messages", post);
  s.server.reset();

  // The hello handler on the same stack: an App (SQLite, no worker) and an HttpServer with one route.
  std::string toml = "[server]\nlog_level = \"warn\"\ndata_dir = \"" + (dir / "hello") +
                     "\"\nplugin_dir = \"" + PluginDir() +
                     "\"\n[worker]\nenabled = false\n[secrets]\ntype = \"env\"\n[store]\ntype = " +
                     "\"sqlite\"\n[sandbox]\ntype = \"process\"\n[[harness]]\ntype = \"shell\"\n";
  Result<Config> config = ParseConfig(toml, "bench");
  if (!config.ok()) return std::fprintf(stderr, "%s\n", config.status().ToString().c_str()), 1;
  auto redactor = std::make_shared<Redactor>();
  auto app = App::Create(*config, PluginDir(), redactor);
  if (!app.ok() || !(*app)->Start().ok()) return std::fprintf(stderr, "hello app\n"), 1;
  static const Router hello_router({{"GET", "/hello", Access::kOpen, Owner::kNone, &Hello},
                                    {"GET", "/hello-keyed", Access::kRead, Owner::kNone, &Hello}});
  ServerSettings settings = config->server;
  settings.listen = "127.0.0.1";
  HttpServer hello(**app, hello_router, settings, 0);
  if (!hello.Start().ok()) return std::fprintf(stderr, "hello server\n"), 1;
  Wrk h = RunWrk("http://127.0.0.1:" + std::to_string(hello.port()) + "/hello");
  hello.Stop();
  (*app)->Stop();
  std::printf("  hello handler (same stack)         %9.0f req/s  p99 %s\n", h.rps, h.p99.c_str());
  std::printf("  GET /api/sessions/{id}             %9.0f req/s  p99 %s   %.0f%% of hello\n", get.rps,
              get.p99.c_str(), 100 * get.rps / h.rps);
  std::printf("  POST /api/sessions/{id}/messages   %9.0f req/s  p99 %s   %.0f%% of hello%s\n", send.rps,
              send.p99.c_str(), 100 * send.rps / h.rps,
              send.errors.empty() ? "" : ("  (non-2xx: " + send.errors + ")").c_str());
  return 0;
}

// Sequential requests on one kept-alive connection: each one's time from the first byte sent to
// the last byte of the answer, in ms.
std::vector<double> KeepAliveTimes(int port, const std::string& request, int n) {
  std::vector<double> ms;
  int fd = ConnectTo(port);
  if (fd < 0) return ms;
  std::string buf;
  char chunk[4096];
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    if (!SendAll(fd, request)) break;
    buf.clear();
    size_t want = std::string::npos;
    while (buf.size() < want) {
      ssize_t got = recv(fd, chunk, sizeof chunk, 0);
      if (got <= 0) break;
      buf.append(chunk, static_cast<size_t>(got));
      if (want == std::string::npos) {
        size_t head = buf.find("\r\n\r\n");
        size_t len = buf.find("Content-Length: ");
        if (head != std::string::npos && len != std::string::npos)
          want = head + 4 + std::stoul(buf.substr(len + 16));
      }
    }
    if (buf.rfind("HTTP/1.1 200", 0) != 0) {
      std::fprintf(stderr, "unexpected answer: %s\n", buf.substr(0, 200).c_str());
      break;
    }
    ms.push_back(Ms(Clock::now() - t0));
  }
  close(fd);
  return ms;
}

// What authentication costs a request: a hello handler on an open route next to the same
// handler on a keyed route, with the key cached ([auth] cache_ttl) and looked up in the store
// every time (cache_ttl = 0), in alternating rounds on one server each.
int Auth(int n) {
  std::printf("frontdoor_bench auth: %d sequential keep-alive requests per route, 10 alternating rounds\n",
              n);
  TempDir dir;
  setenv("PADDOCK_ADMIN_KEY", PADDOCK_TEST_KEY, 1);
  static const Router hello_router({{"GET", "/hello", Access::kOpen, Owner::kNone, &Hello},
                                    {"GET", "/hello-keyed", Access::kRead, Owner::kNone, &Hello}});
  struct Served {
    std::unique_ptr<App> app;
    std::unique_ptr<HttpServer> server;
  };
  auto serve = [&](const std::string& name, const std::string& ttl) -> Served {
    std::string toml =
        "[server]\nlog_level = \"warn\"\ndata_dir = \"" + (dir / name) + "\"\nplugin_dir = \"" + PluginDir() +
        "\"\n[auth]\ncache_ttl = \"" + ttl +
        "\"\n[worker]\nenabled = false\n[secrets]\ntype = \"env\"\n[store]\ntype = \"sqlite\"\n" +
        "[sandbox]\ntype = \"process\"\n[[harness]]\ntype = \"shell\"\n";
    Result<Config> config = ParseConfig(toml, "bench");
    Served s;
    if (!config.ok()) return s;
    auto app = App::Create(*config, PluginDir(), std::make_shared<Redactor>());
    if (!app.ok() || !(*app)->Start().ok() ||
        !EnsureBootstrapKey((*app)->store(), config->auth, config->server.data_dir).ok())
      return s;
    s.app = std::move(*app);
    ServerSettings settings = config->server;
    settings.listen = "127.0.0.1";
    s.server = std::make_unique<HttpServer>(*s.app, hello_router, settings, 0);
    if (!s.server->Start().ok()) s.server.reset();
    return s;
  };
  Served cached = serve("cached", "5s"), uncached = serve("uncached", "0s");
  if (!cached.server || !uncached.server) return std::fprintf(stderr, "hello servers\n"), 1;
  const std::string open = "GET /hello HTTP/1.1\r\nHost: b\r\n\r\n";
  const std::string keyed = "GET /hello-keyed HTTP/1.1\r\nHost: b\r\n" PADDOCK_TEST_AUTH "\r\n";
  std::vector<double> o, k, u;
  for (int round = 0; round < 10; ++round) {
    for (double v : KeepAliveTimes(cached.server->port(), open, n / 10)) o.push_back(v);
    for (double v : KeepAliveTimes(cached.server->port(), keyed, n / 10)) k.push_back(v);
    for (double v : KeepAliveTimes(uncached.server->port(), keyed, n / 10)) u.push_back(v);
  }
  auto row = [&](const char* what, std::vector<double>& v) {
    std::printf("  %-44s p50 %6.3f ms  p99 %6.3f ms   (+%.3f / +%.3f ms, %.2fx / %.2fx the open route)\n",
                what, Percentile(v, 0.5), Percentile(v, 0.99), Percentile(v, 0.5) - Percentile(o, 0.5),
                Percentile(v, 0.99) - Percentile(o, 0.99), Percentile(v, 0.5) / Percentile(o, 0.5),
                Percentile(v, 0.99) / Percentile(o, 0.99));
  };
  std::printf("  %-44s p50 %6.3f ms  p99 %6.3f ms   (n=%zu)\n", "open route (baseline)", Percentile(o, 0.5),
              Percentile(o, 0.99), o.size());
  row("keyed route, key cached", k);
  row("keyed route, key looked up every request", u);
  for (Served* s : {&cached, &uncached}) {
    s->server->Stop();
    s->app->Stop();
  }
  return 0;
}

int Sandboxes(int k) {
  std::printf("frontdoor_bench sandboxes: %d sessions with live sandboxes, default config\n", k);
  Setup s = StartServer(0, {"serve"});
  const double rss_empty = RssMiB(s.server->pid());
  std::atomic<int> next{0}, failed{0};
  std::mutex mu;
  auto start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      while (next++ < k) {
        std::string id = JsonField(
            s.server->Request("POST", "/api/sessions", "{\"agent_id\":\"" + s.agent + "\"}").body, "id");
        auto r = s.server->Request("POST", "/api/sessions/" + id + "/sandbox/exec", R"({"command":"true"})");
        if (r.status != 200) {
          if (failed++ < 3) std::fprintf(stderr, "exec: %d %s\n", r.status, r.body.c_str());
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  const double took = Ms(Clock::now() - start) / 1000;
  auto live = LiveSandboxes(s.server->data_dir());
  // PSS of every process of every sandbox: its init's process group, found through /proc.
  double pss = 0;
  int processes = 0;
  std::set<pid_t> roots;
  for (const auto& [id, v] : live) roots.insert(v.second);
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    // Walk up the parents to see whether a sandbox init is among them.
    for (pid_t p = pid; p > 1;) {
      if (roots.count(p)) {
        pss += PssMiB(pid);
        ++processes;
        break;
      }
      std::ifstream st("/proc/" + std::to_string(p) + "/stat");
      std::string line;
      std::getline(st, line);
      size_t close_paren = line.rfind(')');
      if (close_paren == std::string::npos) break;
      std::istringstream rest(line.substr(close_paren + 2));
      char state;
      pid_t parent = 0;
      rest >> state >> parent;
      p = parent;
    }
  }
  std::vector<double> list_ms;
  for (int i = 0; i < 50; ++i) {
    auto t = Clock::now();
    s.server->Request("GET", "/api/sessions?limit=1000");
    list_ms.push_back(Ms(Clock::now() - t));
  }
  std::printf(
      "  live sandboxes %zu of %d (%d failed) in %.0f s; %d processes, PSS %.0f MiB: %.2f MiB per sandbox\n",
      live.size(), k, failed.load(), took, processes, pss, pss / std::max<size_t>(1, live.size()));
  std::printf("  server RSS %.1f MiB (%.1f MiB with no sessions)\n", RssMiB(s.server->pid()), rss_empty);
  std::printf("  GET /api/sessions?limit=1000 p50 %.1f ms  p99 %.1f ms\n", Percentile(list_ms, 0.5),
              Percentile(list_ms, 0.99));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // figures appear as they are measured
  RaiseNoFile();
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "sandboxes") return Sandboxes(argc > 2 ? std::atoi(argv[2]) : 2000);
  if (mode == "rest") return Rest();
  if (mode == "auth") return Auth(argc > 2 ? std::atoi(argv[2]) : 20000);
  const int n = argc > 1 ? std::atoi(argv[1]) : 5000;
  const int sessions = std::max(1, argc > 2 ? std::atoi(argv[2]) : 500);
  const int slow = argc > 3 ? std::atoi(argv[3]) : 1000;
  if (int rc = Streams(n, sessions, slow); rc != 0) return rc;
  return Rest();
}
