// What the credential vault adds to a request: the same TLS upstream (tests/e2e/vault_upstream.py)
// reached through the egress proxy two ways, in alternating rounds on one machine:
//   - a plain CONNECT tunnel (the baseline: a host no vault entry is bound to), the client's
//     TLS going through to the upstream;
//   - substitution: a host an entry is bound to, TLS terminated at the proxy with the install's
//     CA, the placeholder replaced by the value (looked up and decrypted per request) and the
//     request sent on over the proxy's own TLS.
// Each figure is one request on a kept-alive connection (p50, p99), and a new connection
// (CONNECT, TLS handshake, first request).
//
//   build/bin/vault_bench [REQUESTS]     (default 2000 per path)
#include <utility>
// utility first: Boost 1.74's awaitable.hpp uses std::exchange without including it.
#include <Poco/Net/DNS.h>
#include <signal.h>
#include <sys/wait.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <fstream>
#include <thread>

#include "baselines.h"
#include "metrics/metrics.h"
#include "paddock/process.h"
#include "paddock/vault.h"
#include "services/egress/egress_proxy.h"
#include "services/events/event_service.h"
#include "services/vault/vault_service.h"
#include "testing.h"
#include "util/ids.h"
#include "util/redactor.h"

using namespace paddock;
using namespace paddock::testing;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;

namespace {

using Stream = ssl::stream<asio::local::stream_protocol::socket>;

// A client in a sandbox: CONNECT through the proxy's socket, then TLS to `host`.
std::unique_ptr<Stream> Open(asio::io_context& io, ssl::context& ctx, const std::string& socket_path,
                             const std::string& host, int port) {
  auto s = std::make_unique<Stream>(io, ctx);
  s->next_layer().connect(asio::local::stream_protocol::endpoint(socket_path));
  const std::string target = host + ":" + std::to_string(port);
  const std::string connect = "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n";
  asio::write(s->next_layer(), asio::buffer(connect));
  asio::streambuf head;
  asio::read_until(s->next_layer(), head, "\r\n\r\n");
  if (head.size() != std::string_view("HTTP/1.1 200 Connection established\r\n\r\n").size()) {
    throw std::runtime_error("the proxy answered the CONNECT with more than its head");
  }
  bool ip = host.find_first_not_of("0123456789.") == std::string::npos;
  if (!ip) SSL_set_tlsext_host_name(s->native_handle(), host.c_str());
  s->set_verify_mode(ssl::verify_peer);
  s->set_verify_callback(ssl::host_name_verification(host));
  s->handshake(ssl::stream_base::client);
  return s;
}

void Get(Stream& s, const std::string& host, const std::string& key) {
  http::request<http::empty_body> req{http::verb::get, "/bench", 11};
  req.set(http::field::host, host);
  req.set("x-api-key", key);
  http::write(s, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  if (res.result_int() != 200)
    throw std::runtime_error("upstream answered " + std::to_string(res.result_int()));
}

void Print(const char* what, const std::vector<double>& v, const std::vector<double>& base) {
  const double p50 = Percentile(v, 0.5), p99 = Percentile(v, 0.99);
  const double b50 = Percentile(base, 0.5), b99 = Percentile(base, 0.99);
  std::printf("%-48s p50 %7.3f ms  p99 %7.3f ms   (%+.3f / %+.3f ms, %.2fx / %.2fx)\n", what, p50, p99,
              p50 - b50, p99 - b99, p50 / b50, p99 / b99);
}

}  // namespace

int main(int argc, char** argv) {
  const int requests = argc > 1 ? std::atoi(argv[1]) : 2000;
  const int connections = std::max(50, requests / 20);
  signal(SIGPIPE, SIG_IGN);
  TempDir dir;
  // The upstream, with certificates of a "public" CA of its own.
  auto public_ca = CertificateAuthority::LoadOrCreate(dir.path() + "/public-ca", "Public bench CA");
  if (!public_ca.ok()) return std::fprintf(stderr, "%s\n", public_ca.status().ToString().c_str()), 1;
  const std::string name = Poco::Net::DNS::hostName();
  for (const std::string& h : {std::string("127.0.0.2"), name}) {
    Result<IssuedCertificate> c = (*public_ca)->Issue(h);
    if (!c.ok()) return 1;
    std::ofstream(dir.path() + "/" + h + ".crt") << c->certificate_pem;
    std::ofstream(dir.path() + "/" + h + ".key") << c->key_pem;
  }
  process::ChildSpec spec;
  spec.argv = {*process::FindExecutable("python3"), SourceDir() + "/tests/e2e/vault_upstream.py",
               dir.path() + "/127.0.0.2.crt",       dir.path() + "/127.0.0.2.key",
               dir.path() + "/" + name + ".crt",    dir.path() + "/" + name + ".key",
               dir.path() + "/record.jsonl",        dir.path() + "/port"};
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  Result<pid_t> upstream = process::Spawn(spec);
  if (!upstream.ok()) return 1;
  for (int i = 0; i < 200 && !std::filesystem::exists(dir.path() + "/port"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  int port = 0;
  std::ifstream(dir.path() + "/port") >> port;
  if (port <= 0) return std::fprintf(stderr, "vault_bench: the upstream did not start\n"), 1;

  // The vault over a sqlite store and secrets.store, as `paddock serve` wires them.
  auto store = LoadStore("sqlite", "", dir.path());
  if (!store.ok()) return 1;
  auto secrets = LoadSecrets("store", "", dir.path(), store->get());
  if (!secrets.ok()) return std::fprintf(stderr, "%s\n", secrets.status().ToString().c_str()), 1;
  (void)(*store)->CreateTeam(Team{"alpha", "alpha", NowMs(), {}, {}});
  Agent agent;
  agent.id = NewId("agt");
  agent.name = "a";
  agent.harness = "shell";
  agent.team_id = "alpha";
  agent.secrets = {SecretRef{"API_KEY", false}};
  agent.created_at = agent.updated_at = NowMs();
  Session session;
  session.id = NewId("ses");
  session.agent_id = agent.id;
  session.team_id = "alpha";
  session.status = SessionStatus::kReady;
  session.created_at = session.updated_at = NowMs();
  if (!(*store)->CreateAgent(agent).ok() || !(*store)->CreateSession(session, {}).ok()) return 1;
  const std::string bound = "127.0.0.2:" + std::to_string(port);
  VaultBinding binding;
  binding.hosts = {bound};
  binding.field = "x-api-key";
  if (!(*secrets)->team_secrets()->Set("alpha", "API_KEY", "sk-bench-real-key-0123456789", binding).ok())
    return 1;
  Metrics metrics;
  Redactor redactor;
  EventService events(**store, redactor, metrics);
  auto vault = VaultService::Create(dir.path() + "/vault", **store, **secrets, events, metrics);
  if (!vault.ok()) return std::fprintf(stderr, "%s\n", vault.status().ToString().c_str()), 1;
  EgressSettings settings;
  settings.allow = {bound, name + ":" + std::to_string(port)};
  EgressProxy proxy(settings, dir.path() + "/egress");
  if (!proxy.EnableVault(**vault, (*vault)->ca().certificate_pem(), (*public_ca)->certificate_file()).ok())
    return 1;
  Result<std::string> egress = proxy.Open("bench", {});
  if (!egress.ok()) return 1;
  (*vault)->SetSessionOf([&](const std::string& d) { return d == *egress ? session.id : std::string(); });
  const std::string socket_path = *egress + "/egress.sock";
  const std::string placeholder = (*vault)->Placeholder(session.id, "API_KEY");

  asio::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file((*public_ca)->certificate_file());
  ctx.load_verify_file((*vault)->ca().certificate_file());
  try {
    auto tunnel = Open(io, ctx, socket_path, name, port);
    auto substituted = Open(io, ctx, socket_path, "127.0.0.2", port);
    std::vector<double> t_req, s_req, t_conn, s_conn;
    for (int i = 0; i < 100; ++i) {  // warm up both
      Get(*tunnel, name, "no-placeholder-here");
      Get(*substituted, "127.0.0.2", placeholder);
    }
    for (int i = 0; i < requests; ++i) {
      auto a = Clock::now();
      Get(*tunnel, name, "no-placeholder-here");
      auto b = Clock::now();
      Get(*substituted, "127.0.0.2", placeholder);
      auto c = Clock::now();
      t_req.push_back(Ms(b - a));
      s_req.push_back(Ms(c - b));
    }
    for (int i = 0; i < connections; ++i) {
      auto a = Clock::now();
      auto t = Open(io, ctx, socket_path, name, port);
      Get(*t, name, "no-placeholder-here");
      auto b = Clock::now();
      auto s = Open(io, ctx, socket_path, "127.0.0.2", port);
      Get(*s, "127.0.0.2", placeholder);
      auto c = Clock::now();
      t_conn.push_back(Ms(b - a));
      s_conn.push_back(Ms(c - b));
    }
    std::printf(
        "vault_bench: %d requests per path on one kept-alive connection, %d new connections per path\n",
        requests, connections);
    Print("request, plain CONNECT tunnel (baseline)", t_req, t_req);
    Print("request, through substitution", s_req, t_req);
    Print("new connection, plain CONNECT tunnel (baseline)", t_conn, t_conn);
    Print("new connection, through substitution", s_conn, t_conn);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vault_bench: %s\n", e.what());
    kill(*upstream, SIGKILL);
    return 1;
  }
  proxy.Stop();
  kill(*upstream, SIGKILL);
  waitpid(*upstream, nullptr, 0);
  return 0;
}
