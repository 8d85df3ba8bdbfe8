// The front door from the side of the clients that want to bring it down: a thousand streams on
// one session, slowloris (our own and slowhttptest's), a client that stops reading, a flood of
// requests past the handler pool, connections past the limits, and a SIGTERM mid-request.
// Each runs against a real `paddock serve` (sandboxes only where a slow request needs one).
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdio>
#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include "paddock/testing/assert.h"
#include "raw_http.h"
#include "testing.h"

namespace paddock::testing {
namespace {

const std::string kHealth = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

std::string StatusLine(const std::string& response) { return response.substr(0, response.find("\r\n")); }

// The value of one sample in /metrics text ("name{labels}"), 0 when absent.
double Metric(const ServerProcess& server, const std::string& sample) {
  std::string text = server.Request("GET", "/metrics").body;
  size_t at = 0;
  while ((at = text.find(sample + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + sample.size() + 1));
    at += sample.size();
  }
  return 0;
}

struct Fixture {
  explicit Fixture(const std::string& server_toml, std::vector<std::string> args = {"serve", "--no-worker"}) {
    RaiseNoFile();
    ServerOptions o;
    o.args = std::move(args);
    o.server_toml = server_toml;
    server = std::make_unique<ServerProcess>(o);
  }
  Status Start() {
    PADDOCK_RETURN_IF_ERROR(server->Start());
    auto agent = server->Request("POST", "/api/agents", R"({"name":"door","harness":"shell"})");
    agent_id = JsonField(agent.body, "id");
    return Status::Ok();
  }
  std::string NewSession() {
    auto r = server->Request("POST", "/api/sessions", "{\"agent_id\":\"" + agent_id + "\"}");
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonField(r.body, "id");
  }
  // Runs `command` (no quotes in it) in the session's sandbox.
  HttpResponse Exec(const std::string& session, const std::string& command) const {
    return server->Request("POST", "/api/sessions/" + session + "/sandbox/exec",
                           "{\"command\":\"" + command + "\"}");
  }
  std::string StreamRequest(const std::string& session) const {
    return "GET /api/sessions/" + session + "/events/stream HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH "\r\n";
  }
  std::unique_ptr<ServerProcess> server;
  std::string agent_id;
};

TEST(FrontDoor, AThousandStreamsOnOneSessionAllGetTheEvent) {
  // One client address holds them all: the per-client limit (default 1000) must make room.
  Fixture f("max_connections_per_client = 1100\n");
  ASSERT_OK(f.Start());
  const std::string session = f.NewSession();
  constexpr int kStreams = 1000;
  std::vector<int> fds;
  std::vector<std::string> got(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    int fd = ConnectTo(f.server->port());
    ASSERT_GE(fd, 0) << "connection " << i;
    ASSERT_TRUE(SendAll(fd, f.StreamRequest(session)));
    fds.push_back(fd);
  }
  // Every stream is answered and has caught up (session.created) before the event is sent.
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_EQ(ReadUntil(fds[i], got[i], "event: session.created", 30000), ReadEnd::kFound)
        << "stream " << i << " got: " << got[i];
    EXPECT_EQ(StatusLine(got[i]), "HTTP/1.1 200 OK");
  }
  EXPECT_EQ(Metric(*f.server, "paddock_http_open{kind=\"stream\"}"), kStreams);
  // The API still answers while they are open.
  EXPECT_EQ(StatusLine(RawRequest(f.server->port(), kHealth)), "HTTP/1.1 200 OK");
  auto sent = f.server->Request("POST", "/api/sessions/" + session + "/messages", R"({"content":"to all"})");
  ASSERT_EQ(sent.status, 202) << sent.body;
  int received = 0;
  for (int i = 0; i < kStreams; ++i) {
    received += ReadUntil(fds[i], got[i], "\"content\":\"to all\"", 30000) == ReadEnd::kFound;
  }
  EXPECT_EQ(received, kStreams);
  for (int fd : fds) close(fd);
}

TEST(FrontDoor, SlowClientsCannotStopHealthOrRequests) {
  Fixture f("header_timeout = \"2s\"\nbody_timeout = \"2s\"\n");
  ASSERT_OK(f.Start());
  const std::string session = f.NewSession();
  // 300 slowloris connections: a header line every 500 ms, never the blank line; and 20 that
  // send a body one byte at a time.
  std::vector<int> slow, dribble;
  for (int i = 0; i < 300; ++i) {
    int fd = ConnectTo(f.server->port());
    ASSERT_GE(fd, 0);
    SendAll(fd, "GET /api/sessions HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH "");
    slow.push_back(fd);
  }
  for (int i = 0; i < 20; ++i) {
    int fd = ConnectTo(f.server->port());
    ASSERT_GE(fd, 0);
    SendAll(fd, "POST /api/agents HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH
                "Content-Type: application/json\r\nContent-Length: "
                "100\r\n\r\n{");
    dribble.push_back(fd);
  }
  std::atomic<bool> stop{false};
  std::thread feeder([&] {
    while (!stop) {
      for (int fd : slow) SendAll(fd, "X-Slow: 1\r\n");
      for (int fd : dribble) SendAll(fd, " ");
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(StatusLine(RawRequest(f.server->port(), kHealth)), "HTTP/1.1 200 OK");
    auto r = f.server->Request("GET", "/api/sessions/" + session);
    EXPECT_EQ(r.status, 200) << r.body;
  }
  // The header deadline covers the whole header, not each read: every slowloris connection is
  // closed although it keeps sending.
  int closed = 0;
  for (int fd : slow) {
    std::string got;
    closed += ReadUntil(fd, got, "\x01never", 15000) == ReadEnd::kClosed;
  }
  int body_closed = 0;
  for (int fd : dribble) {
    std::string got;
    body_closed += ReadUntil(fd, got, "\x01never", 15000) == ReadEnd::kClosed;
  }
  stop = true;
  feeder.join();
  EXPECT_EQ(closed, 300);
  EXPECT_EQ(body_closed, 20);
  EXPECT_GE(Metric(*f.server, "paddock_http_timeouts_total{phase=\"header\"}"), 300);
  EXPECT_GE(Metric(*f.server, "paddock_http_timeouts_total{phase=\"body\"}"), 20);
  for (int fd : slow) close(fd);
  for (int fd : dribble) close(fd);

  // And slowhttptest's slowloris, 500 connections, while /healthz is asked.
  std::vector<std::string> argv = {
      "slowhttptest", "-H",  "-c", "500",
      "-r",           "250", "-i", "1",
      "-l",           "6",   "-u", "http://127.0.0.1:" + std::to_string(f.server->port()) + "/healthz",
      "-p",           "3"};
  auto attack = std::async(std::launch::async, [&] { return RunCommand(argv); });
  std::this_thread::sleep_for(std::chrono::seconds(3));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(StatusLine(RawRequest(f.server->port(), kHealth)), "HTTP/1.1 200 OK");
    EXPECT_EQ(f.server->Request("GET", "/api/sessions/" + session).status, 200);
  }
  auto [code, out] = attack.get();
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("SLOW HEADERS"), std::string::npos) << out;
}

TEST(FrontDoor, AStreamThatStopsReadingIsCutAndSlowsNoOne) {
  Fixture f("stream_buffer = \"64KiB\"\nwrite_timeout = \"60s\"\n");
  ASSERT_OK(f.Start());
  const std::string session = f.NewSession();
  int stuck = ConnectTo(f.server->port(), nullptr, 4096);
  int reader = ConnectTo(f.server->port());
  ASSERT_GE(stuck, 0);
  ASSERT_GE(reader, 0);
  std::string stuck_got, reader_got;
  SendAll(stuck, f.StreamRequest(session));
  SendAll(reader, f.StreamRequest(session));
  ASSERT_EQ(ReadUntil(stuck, stuck_got, "event: session.created", 10000), ReadEnd::kFound);
  ASSERT_EQ(ReadUntil(reader, reader_got, "event: session.created", 10000), ReadEnd::kFound);
  // ~3 MiB of events: far more than the stuck client's socket buffers and its 64 KiB.
  const std::string big(60000, 'x');
  for (int i = 0; i < 50; ++i) {
    auto r = f.server->Request("POST", "/api/sessions/" + session + "/messages",
                               "{\"content\":\"" + std::to_string(i) + big + "\"}");
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(StatusLine(RawRequest(f.server->port(), kHealth)), "HTTP/1.1 200 OK");
  }
  // The reading stream gets every event.
  ASSERT_EQ(ReadUntil(reader, reader_got, "\"content\":\"49", 30000), ReadEnd::kFound);
  EXPECT_EQ(Metric(*f.server, "paddock_http_streams_cut_total{reason=\"slow\"}"), 1);
  // The stuck one, read at last, ends with the reason and a clean end of the stream.
  EXPECT_EQ(ReadUntil(stuck, stuck_got, "\x01never", 30000), ReadEnd::kClosed);
  EXPECT_NE(stuck_got.find(": stream cut: this client reads too slowly"), std::string::npos);
  EXPECT_NE(stuck_got.find("\r\n0\r\n\r\n"), std::string::npos) << "no last chunk";
  EXPECT_EQ(stuck_got.find("\"content\":\"49"), std::string::npos);
  close(stuck);
  close(reader);
}

TEST(FrontDoor, OverloadAnswers503AtOnceAndHealthStillAnswers) {
  Fixture f("handler_threads = 1\nmax_queued_requests = 0\n", {"serve"});
  ASSERT_OK(f.Start());
  const std::string session = f.NewSession();
  // The sandbox first, so the next exec is only the sleep. Requests one after another are never
  // shed, even with one thread and no queue: an answer goes out only once its thread is free again.
  for (int i = 0; i < 20; ++i) {
    auto warm = f.Exec(session, "true");
    ASSERT_EQ(warm.status, 200) << "request " << i << ": " << warm.body;
  }
  auto slow = std::async(std::launch::async, [&] { return f.Exec(session, "sleep 4"); });
  // Wait until the one handler thread is taken.
  HttpResponse shed;
  for (int i = 0; i < 100 && shed.status != 503; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    shed = f.server->Request("GET", "/api/sessions/" + session);
  }
  ASSERT_EQ(shed.status, 503) << shed.body;
  EXPECT_EQ(shed.headers["Retry-After"], "1");
  EXPECT_EQ(JsonField(shed.body, "error.code"), "unavailable");
  EXPECT_NE(JsonField(shed.body, "error.message").find("handler_threads"), std::string::npos);
  EXPECT_EQ(StatusLine(RawRequest(f.server->port(), kHealth)), "HTTP/1.1 200 OK");
  EXPECT_EQ(f.server->Request("GET", "/readyz").status, 200);
  auto done = slow.get();
  EXPECT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(JsonField(done.body, "exit_code"), "0");
  EXPECT_EQ(f.server->Request("GET", "/api/sessions/" + session).status, 200);
  EXPECT_GE(Metric(*f.server, "paddock_http_shed_total{reason=\"busy\"}"), 1);
}

TEST(FrontDoor, ConnectionLimitsAndIdleTimeoutFromConfigApply) {
  Fixture f(
      "max_connections = 5\nmax_connections_per_client = 3\nhealth_reserve = 2\nidle_timeout = \"1s\"\n");
  ASSERT_OK(f.Start());
  const int port = f.server->port();
  const std::string get = "GET /api/sessions HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH "\r\n";
  auto keep = [&](const char* source) {
    int fd = ConnectTo(port, source);
    std::string got;
    EXPECT_TRUE(SendAll(fd, get));
    EXPECT_EQ(ReadUntil(fd, got, "\r\n\r\n", 5000), ReadEnd::kFound);
    EXPECT_EQ(StatusLine(got), "HTTP/1.1 200 OK") << source << ": " << got;
    return fd;
  };
  // An idle kept-alive connection is closed after idle_timeout.
  {
    int fd = keep("127.0.0.1");
    std::string got;
    EXPECT_EQ(ReadUntil(fd, got, "\x01never", 10000), ReadEnd::kClosed);
    close(fd);
    for (int i = 0; i < 50 && f.server->Request("GET", "/healthz").status != 200; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(keep("127.0.0.1"));
  // A fourth from the same address: 503 for the API, but the health lane answers.
  std::string over = RawRequest(port, get, 5000, "127.0.0.1");
  EXPECT_EQ(StatusLine(over), "HTTP/1.1 503 Service Unavailable") << over;
  EXPECT_NE(over.find("Retry-After: 1"), std::string::npos);
  EXPECT_NE(over.find("max_connections_per_client = 3"), std::string::npos);
  EXPECT_EQ(StatusLine(RawRequest(port, kHealth, 5000, "127.0.0.1")), "HTTP/1.1 200 OK");
  // Another client is served, up to the total of 5.
  held.push_back(keep("127.0.0.2"));
  held.push_back(keep("127.0.0.3"));
  EXPECT_EQ(StatusLine(RawRequest(port, get, 5000, "127.0.0.4")), "HTTP/1.1 503 Service Unavailable");
  // Past the reserve as well: refused at once, still with a 503.
  std::vector<int> reserve = {ConnectTo(port, "127.0.0.5"), ConnectTo(port, "127.0.0.6")};
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string refused = RawRequest(port, get, 5000, "127.0.0.7");
  EXPECT_EQ(StatusLine(refused), "HTTP/1.1 503 Service Unavailable") << refused;
  for (int fd : reserve) close(fd);
  // Freed slots are reused.
  close(held[0]);
  held.erase(held.begin());
  std::string again;
  for (int i = 0; i < 50; ++i) {
    again = RawRequest(
        port, "GET /api/sessions HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH "Connection: close\r\n\r\n", 5000,
        "127.0.0.1");
    if (StatusLine(again) == "HTTP/1.1 200 OK") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(StatusLine(again), "HTTP/1.1 200 OK") << again;
  for (int fd : held) close(fd);
  EXPECT_GE(Metric(*f.server, "paddock_http_shed_total{reason=\"connections\"}"), 3);
}

TEST(FrontDoor, ShutdownEndsStreamsAndLetsRequestsInFlightFinish) {
  Fixture f("shutdown_grace = \"20s\"\n", {"serve"});
  ASSERT_OK(f.Start());
  const std::string session = f.NewSession();
  auto warm = f.Exec(session, "true");
  ASSERT_EQ(warm.status, 200) << warm.body;
  int stream = ConnectTo(f.server->port());
  std::string got;
  SendAll(stream, f.StreamRequest(session));
  ASSERT_EQ(ReadUntil(stream, got, "event: session.created", 10000), ReadEnd::kFound);
  auto slow = std::async(std::launch::async, [&] { return f.Exec(session, "sleep 2; echo finished"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto stopped = std::async(std::launch::async, [&] { return f.server->Stop(); });
  // The stream ends at once, with the reason, while the request is still running.
  EXPECT_EQ(ReadUntil(stream, got, "\x01never", 10000), ReadEnd::kClosed);
  EXPECT_NE(got.find(": the server is shutting down; reconnect with Last-Event-ID"), std::string::npos)
      << got;
  EXPECT_NE(got.find("\r\n0\r\n\r\n"), std::string::npos);
  close(stream);
  auto done = slow.get();
  EXPECT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(JsonField(done.body, "stdout"), "finished\n");
  EXPECT_EQ(done.headers["Connection"], "close");
  EXPECT_EQ(stopped.get(), 0);
}

TEST(FrontDoor, MalformedRequestsGetAClearErrorAndHurtNoOne) {
  Fixture f("");
  ASSERT_OK(f.Start());
  const int port = f.server->port();
  struct Case {
    std::string request, status, message;
  } cases[] = {
      {"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request", "malformed HTTP request: bad method"},
      {std::string("\x00\x01\xff\r\n\r\n", 7), "HTTP/1.1 400 Bad Request", "malformed HTTP request"},
      {"GET / HTTP/9.9\r\n\r\n", "HTTP/1.1 400 Bad Request", "bad version"},
      {"GET /healthz HTTP/1.1\r\nHost: t\r\nX: " + std::string(20000, 'a') + "\r\n\r\n",
       "HTTP/1.1 431 Request Header Fields Too Large", "request header is larger than 16384 bytes"},
      {"POST /api/agents HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH
       "Transfer-Encoding: chunked\r\nContent-Type: "
       "application/json\r\n\r\nzz\r\n",
       "HTTP/1.1 400 Bad Request", "malformed HTTP request body: bad chunk"},
      {"POST /api/agents HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH
       "Content-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
       "HTTP/1.1 400 Bad Request", "bad Content-Length"},
      {"POST /api/agents HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH
       "Content-Length: 99999999999999999999\r\n\r\n",
       "HTTP/1.1 400 Bad Request", "bad Content-Length"},
      {"POST /api/agents HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH
       "Content-Type: application/json\r\nContent-Length: "
       "5000000\r\n\r\n",
       "HTTP/1.1 413 Payload Too Large", "server.max_body_size"},
      {"GET /api/sessions?limit=%%% HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH "Connection: close\r\n\r\n",
       "HTTP/1.1 400 Bad Request", "malformed query string"},
      // A probe in place of an id: 404, and the answer quotes only the start of it.
      {"GET /api/sessions/" + std::string(4000, 'x') +
           ".json HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH "Connection: close\r\n\r\n",
       "HTTP/1.1 404 Not Found", "is not an id: ids are 1-64 characters"},
      {"GET /api/" + std::string(4000, 'y') +
           " HTTP/1.1\r\nHost: t\r\n" PADDOCK_TEST_AUTH "Connection: close\r\n\r\n",
       "HTTP/1.1 404 Not Found", "no route for GET /api/yyy"},
  };
  for (const Case& c : cases) {
    std::string got = RawRequest(port, c.request, 5000);
    EXPECT_EQ(StatusLine(got), c.status) << c.request.substr(0, 60);
    EXPECT_NE(got.find(c.message), std::string::npos) << got;
    EXPECT_NE(got.find("{\"error\":{\"code\":\""), std::string::npos) << got;
    EXPECT_LT(got.size(), 1000u) << "the answer echoes too much: " << got.substr(0, 300);
  }
  EXPECT_EQ(StatusLine(RawRequest(port, kHealth)), "HTTP/1.1 200 OK");
  EXPECT_EQ(f.server->Request("GET", "/api/agents").status, 200);
}

TEST(FrontDoor, APortInUseFailsTheStartWithTheReason) {
  Fixture first("");
  ASSERT_OK(first.Start());
  // A second server on the same port (embedded config): exits at once, saying why.
  TempDir dir;
  auto [code, out] =
      RunCommand({PaddockBinary(), "serve", "--no-worker", "--port", std::to_string(first.server->port()),
                  "--data-dir", dir / "data", "--plugin-dir", PluginDir()});
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("cannot listen on 0.0.0.0:" + std::to_string(first.server->port())), std::string::npos)
      << out;
  EXPECT_EQ(StatusLine(RawRequest(first.server->port(), kHealth)), "HTTP/1.1 200 OK");
}

TEST(FrontDoor, TheServerRaisesItsOpenFilesLimitAndSandboxesGetTheOriginal) {
  struct rlimit saved {};
  getrlimit(RLIMIT_NOFILE, &saved);
  ASSERT_GT(saved.rlim_max, 1024u)
      << "needs a hard open-files limit above 1024 (as the 1,000-stream test does)";
  struct rlimit low = saved;
  low.rlim_cur = 1024;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  ServerOptions o;
  ServerProcess server(o);  // inherits the soft limit of 1024
  Status started = server.Start();
  setrlimit(RLIMIT_NOFILE, &saved);
  ASSERT_OK(started);
  EXPECT_NE(server.log().find("open files: soft limit raised from 1024 to " + std::to_string(saved.rlim_max)),
            std::string::npos)
      << server.log();
  std::ifstream limits("/proc/" + std::to_string(server.pid()) + "/limits");
  std::string line, open_files;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) == 0) open_files = line;
  }
  EXPECT_NE(open_files.find(std::to_string(saved.rlim_max) + " "), std::string::npos) << open_files;
  auto agent = server.Request("POST", "/api/agents", R"({"name":"n","harness":"shell"})");
  auto session =
      server.Request("POST", "/api/sessions", "{\"agent_id\":\"" + JsonField(agent.body, "id") + "\"}");
  auto r = server.Request("POST", "/api/sessions/" + JsonField(session.body, "id") + "/sandbox/exec",
                          R"({"command":"ulimit -Sn"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(JsonField(r.body, "stdout"), "1024\n");
}

TEST(FrontDoor, TheEventStreamSpeaksWebSocketToo) {
  namespace beast = boost::beast;
  namespace websocket = beast::websocket;
  using tcp = boost::asio::ip::tcp;
  Fixture f("");
  ASSERT_OK(f.Start());
  const std::string session = f.NewSession();
  boost::asio::io_context io;
  auto open = [&](const std::string& target, beast::error_code& ec) {
    auto ws = std::make_unique<websocket::stream<tcp::socket>>(io);
    ws->next_layer().connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                           static_cast<unsigned short>(f.server->port())));
    ws->set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(boost::beast::http::field::authorization, "Bearer " PADDOCK_TEST_KEY);
    }));
    ws->handshake("127.0.0.1", target, ec);
    return ws;
  };
  beast::error_code ec;
  // An unknown session is refused in the handshake (404), as the SSE stream refuses it.
  auto refused = open("/api/sessions/ses_nope/events/stream", ec);
  EXPECT_EQ(ec, websocket::error::upgrade_declined);
  auto ws = open("/api/sessions/" + session + "/events/stream", ec);
  ASSERT_FALSE(ec) << ec.message();
  beast::flat_buffer buffer;
  ws->read(buffer);
  std::string first = beast::buffers_to_string(buffer.data());
  EXPECT_TRUE(ws->got_text());
  EXPECT_EQ(JsonField(first, "type"), "session.created") << first;
  EXPECT_EQ(JsonField(first, "seq"), "1");
  buffer.clear();
  ASSERT_EQ(
      f.server->Request("POST", "/api/sessions/" + session + "/messages", R"({"content":"over ws"})").status,
      202);
  ws->read(buffer);
  std::string second = beast::buffers_to_string(buffer.data());
  EXPECT_EQ(JsonField(second, "type"), "message.user") << second;
  EXPECT_EQ(JsonField(second, "data.content"), "over ws");
  // Resuming after seq 1 (?after=) starts with the message.
  beast::error_code ec2;
  auto resumed = open("/api/sessions/" + session + "/events/stream?after=1", ec2);
  ASSERT_FALSE(ec2) << ec2.message();
  buffer.clear();
  resumed->read(buffer);
  EXPECT_EQ(JsonField(beast::buffers_to_string(buffer.data()), "seq"), "2");
  // On shutdown the server closes it with "going away" and the reason.
  auto stopped = std::async(std::launch::async, [&] { return f.server->Stop(); });
  buffer.clear();
  ws->read(buffer, ec);
  EXPECT_EQ(ec, websocket::error::closed);
  EXPECT_EQ(ws->reason().code, websocket::close_code::going_away);
  EXPECT_NE(std::string(ws->reason().reason.c_str()).find("shutting down"), std::string::npos);
  buffer.clear();
  resumed->read(buffer, ec);  // answers the close, so the server need not wait out its grace
  EXPECT_EQ(ec, websocket::error::closed);
  EXPECT_EQ(stopped.get(), 0);
}

}  // namespace
}  // namespace paddock::testing
