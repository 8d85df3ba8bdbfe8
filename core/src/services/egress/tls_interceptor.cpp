#include "services/egress/tls_interceptor.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>
// utility first: Boost 1.74's awaitable.hpp uses std::exchange without including it.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <limits>

#include "util/log.h"

namespace paddock {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using TlsStream = ssl::stream<tcp::socket>;
using ClientStream = ssl::stream<asio::generic::stream_protocol::socket>;  // the sandbox's unix socket

constexpr size_t kChunk = 16 * 1024;
constexpr std::uint32_t kHeaderLimit = 64 * 1024;

std::string Response(int status, const std::string& reason, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

bool IsIp(const std::string& host) {
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

std::string SslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// One intercepted connection: both TLS streams on one io_context, run on the caller's thread.
struct Conn {
  Conn(asio::io_context& io, ssl::context& server_ctx, ssl::context& upstream_ctx)
      : client(io, server_ctx), upstream(io, upstream_ctx), latch(io) {}
  ClientStream client;
  TlsStream upstream;
  asio::steady_timer latch;  // cancelled when the upstream-to-client copy ends
  bool down_done = false;
  std::string host;
  int port = 0;
  std::string dir;
  VaultHook* hook = nullptr;
  std::chrono::milliseconds connect_timeout{10000};
};

// Upstream to client, bytes as they come (responses are not read: nothing in them changes).
asio::awaitable<void> CopyDown(Conn& c) {
  char buf[kChunk];
  error_code ec;
  for (;;) {
    size_t n =
        co_await c.upstream.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    co_await asio::async_write(c.client, asio::buffer(buf, n), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
  }
  c.down_done = true;
  c.latch.cancel();
  // The client's reader is waiting for a request that will not be answered now.
  c.client.next_layer().cancel(ec);
}

// Client to upstream as raw bytes (after an upgrade).
asio::awaitable<void> CopyUp(Conn& c, boost::beast::flat_buffer& pending) {
  error_code ec;
  if (pending.size() > 0) {
    co_await asio::async_write(c.upstream, pending.data(), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    pending.consume(pending.size());
  }
  char buf[kChunk];
  for (;;) {
    size_t n =
        co_await c.client.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await asio::async_write(c.upstream, asio::buffer(buf, n),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

struct RequestsEnd {
  std::string refusal;     // what to tell the client instead of relaying ("" for none)
  bool last_sent = false;  // a request said it was the last: its response is still coming
};

RequestsEnd Refuse(std::string why) { return {std::move(why), false}; }
RequestsEnd Done() { return {}; }

// Client to upstream, request by request.
asio::awaitable<RequestsEnd> CopyRequests(Conn& c) {
  boost::beast::flat_buffer buffer;
  error_code ec;
  for (;;) {
    http::request_parser<http::buffer_body> p;
    p.header_limit(kHeaderLimit);
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    co_await http::async_read_header(c.client, buffer, p, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::header_limit)
      co_return Refuse("paddock egress: the request's head is over 64KiB\n");
    if (ec && ec.category() == http::make_error_code(http::error::bad_method).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      co_return Refuse("paddock egress: not an HTTP/1.1 request (" + ec.message() + ")\n");
    }
    if (ec) co_return Done();  // the client is done (or the upstream went away)
    auto& req = p.get();
    HttpHead head;
    head.method = std::string(req.method_string());
    head.target = std::string(req.target());
    for (const auto& f : req) head.fields.emplace_back(std::string(f.name_string()), std::string(f.value()));
    std::string refusal = c.hook->Substitute(c.dir, c.host, c.port, /*tls=*/true, head);
    if (!refusal.empty()) co_return Refuse(std::move(refusal));
    req.target(head.target);
    std::vector<std::string> names;
    for (const auto& f : req) names.emplace_back(f.name_string());
    for (const std::string& n : names) req.erase(n);
    for (const auto& [name, value] : head.fields) req.insert(name, value);
    http::serializer<true, http::buffer_body> sr{req};
    co_await http::async_write_header(c.upstream, sr, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return Done();
    char buf[kChunk];
    do {
      if (!p.is_done()) {
        req.body().data = buf;
        req.body().size = sizeof buf;
        co_await http::async_read(c.client, buffer, p, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return Done();
        req.body().size = sizeof buf - req.body().size;
        req.body().data = buf;
        req.body().more = !p.is_done();
      } else {
        req.body().data = nullptr;
        req.body().size = 0;
      }
      co_await http::async_write(c.upstream, sr, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return Done();
    } while (!p.is_done() && !sr.is_done());
    if (p.upgrade()) {
      // After "101 Switching Protocols" the bytes are another protocol's.
      co_await CopyUp(c, buffer);
      co_return Done();
    }
    if (!p.keep_alive()) co_return RequestsEnd{"", true};
  }
}

asio::awaitable<void> Send(ClientStream& s, const std::string& text) {
  error_code ec;
  co_await asio::async_write(s, asio::buffer(text), asio::redirect_error(asio::use_awaitable, ec));
}

// Ends the client's TLS with close_notify (bounded: a peer that never reads does not hold us).
asio::awaitable<void> CloseClient(Conn& c) {
  error_code ec;
  asio::steady_timer guard(c.client.get_executor());
  guard.expires_after(std::chrono::seconds(2));
  guard.async_wait([&c](error_code e) {
    if (!e) c.client.next_layer().close(e);
  });
  co_await c.client.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
  guard.cancel();
  c.client.next_layer().close(ec);
}

asio::awaitable<void> Run(Conn& c) {
  error_code ec;
  co_await c.client.async_handshake(ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    // Most often: the client does not trust the install's CA (no bundle in its image).
    LogInfo("egress: TLS from the sandbox to " + c.host + " failed: " + ec.message() +
            " (does the sandbox trust the install's CA?)");
    c.client.next_layer().close(ec);
    co_return;
  }
  // The upstream: resolved and connected by the proxy, not the sandbox, under a deadline.
  auto fail = [&](const std::string& why) -> asio::awaitable<void> {
    co_await Send(c.client, Response(502, "Bad Gateway", "paddock egress: " + why + "\n"));
    co_await CloseClient(c);
  };
  tcp::resolver resolver(c.client.get_executor());
  asio::steady_timer deadline(c.client.get_executor());
  deadline.expires_after(c.connect_timeout);
  bool timed_out = false;
  deadline.async_wait([&](error_code e) {
    if (e) return;
    timed_out = true;
    resolver.cancel();
    c.upstream.next_layer().close(e);
  });
  auto endpoints = co_await resolver.async_resolve(c.host, std::to_string(c.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) {
    co_await asio::async_connect(c.upstream.next_layer(), endpoints,
                                 asio::redirect_error(asio::use_awaitable, ec));
  }
  if (ec) {
    deadline.cancel();
    co_return co_await fail("cannot reach " + c.host + ":" + std::to_string(c.port) + ": " +
                            (timed_out ? std::string("timed out") : ec.message()));
  }
  // A request's head and body are written apart; Nagle would hold the body for the upstream's
  // delayed ACK (40 ms a request).
  c.upstream.next_layer().set_option(tcp::no_delay(true), ec);
  SSL* ssl_up = c.upstream.native_handle();
  if (IsIp(c.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_up), c.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_up, c.host.c_str());
    SSL_set1_host(ssl_up, c.host.c_str());
  }
  c.upstream.set_verify_mode(ssl::verify_peer);
  co_await c.upstream.async_handshake(ssl::stream_base::client,
                                      asio::redirect_error(asio::use_awaitable, ec));
  deadline.cancel();
  if (ec) {
    long verify = SSL_get_verify_result(ssl_up);
    std::string why = verify != X509_V_OK ? std::string("its certificate is not trusted: ") +
                                                X509_verify_cert_error_string(verify)
                                          : ec.message();
    co_return co_await fail("TLS to " + c.host + ":" + std::to_string(c.port) + " failed: " + why);
  }
  asio::co_spawn(c.client.get_executor(), CopyDown(c), asio::detached);
  RequestsEnd end = co_await CopyRequests(c);
  // Whatever else ended the requests ends the upstream: the copy down stops, then the client
  // is told. After a last request, its response comes first (the upstream closes after it).
  if (!end.last_sent) c.upstream.next_layer().shutdown(tcp::socket::shutdown_both, ec);
  c.latch.expires_at(asio::steady_timer::time_point::max());
  while (!c.down_done) co_await c.latch.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  c.upstream.next_layer().close(ec);
  if (!end.refusal.empty()) co_await Send(c.client, Response(403, "Forbidden", end.refusal));
  if (c.client.next_layer().is_open()) co_await CloseClient(c);
}

}  // namespace

struct TlsInterceptor::Impl {
  ssl::context upstream{ssl::context::tls_client};
  std::chrono::milliseconds connect_timeout{10000};
};

TlsInterceptor::TlsInterceptor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsInterceptor::~TlsInterceptor() = default;

Result<std::unique_ptr<TlsInterceptor>> TlsInterceptor::Create(const std::string& upstream_ca_file,
                                                               std::chrono::milliseconds connect_timeout) {
  auto impl = std::make_unique<Impl>();
  impl->connect_timeout = connect_timeout;
  error_code ec;
  SSL_CTX_set_min_proto_version(impl->upstream.native_handle(), TLS1_2_VERSION);
  impl->upstream.set_default_verify_paths(ec);
  if (ec)
    return Status::FailedPrecondition("egress: the system's trust store does not load: " + ec.message());
  if (!upstream_ca_file.empty()) {
    impl->upstream.load_verify_file(upstream_ca_file, ec);
    if (ec) {
      return Status::FailedPrecondition("[vault] upstream_ca_file " + upstream_ca_file +
                                        " does not load (PEM certificates expected): " + ec.message());
    }
  }
  return std::unique_ptr<TlsInterceptor>(new TlsInterceptor(std::move(impl)));
}

void TlsInterceptor::Serve(int client_fd, const std::string& host, int port, const std::string& dir,
                           VaultHook& hook) {
  Result<HostCertificate> cert = hook.CertificateFor(host);
  if (!cert.ok()) {
    LogWarn("egress: no certificate for " + host + ": " + cert.status().ToString());
    close(client_fd);
    return;
  }
  asio::io_context io(1);
  ssl::context server_ctx(ssl::context::tls_server);
  error_code ec;
  SSL_CTX_set_min_proto_version(server_ctx.native_handle(), TLS1_2_VERSION);
  server_ctx.use_certificate_chain(asio::buffer(cert->chain_pem), ec);
  if (!ec) server_ctx.use_private_key(asio::buffer(cert->key_pem), ssl::context::pem, ec);
  if (ec) {
    LogWarn("egress: the certificate for " + host + " does not load: " + ec.message() + " " + SslError());
    close(client_fd);
    return;
  }
  Conn c(io, server_ctx, impl_->upstream);
  sockaddr_storage addr{};
  socklen_t addr_len = sizeof addr;
  int family =
      getsockname(client_fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) == 0 ? addr.ss_family : AF_UNIX;
  c.client.next_layer().assign(asio::generic::stream_protocol(family, 0), client_fd, ec);
  if (ec) {
    close(client_fd);
    return;
  }
  c.host = host;
  c.port = port;
  c.dir = dir;
  c.hook = &hook;
  c.connect_timeout = impl_->connect_timeout;
  asio::co_spawn(io, Run(c), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      LogWarn(std::string("egress: an intercepted connection failed: ") + ex.what());
    }
  });
  io.run();
}

}  // namespace paddock
