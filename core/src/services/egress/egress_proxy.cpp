#include "services/egress/egress_proxy.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/SocketStream.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/StreamSocketImpl.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pump.h"
#include "services/egress/tls_interceptor.h"
#include "util/log.h"

namespace paddock {
namespace {

namespace fs = std::filesystem;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

void Reply(Poco::Net::StreamSocket& socket, int status, const std::string& reason, const std::string& body,
           const std::string& extra_headers = "") {
  std::string text =
      "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n" + extra_headers +
      "Content-Type: text/plain\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  try {
    socket.sendBytes(text.data(), static_cast<int>(text.size()));
  } catch (const Poco::Exception&) {
  }
}

}  // namespace

std::string TrustBundleWith(const std::string& ca_pem) {
  // The system's store, read once: every sandbox's bundle (and every bind of a remote one) is
  // made from it.
  static const std::string system = [] {
    for (const char* path : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"}) {
      std::ifstream in(path);
      if (!in) continue;
      std::stringstream ss;
      ss << in.rdbuf();
      std::string text = ss.str();
      if (!text.empty() && text.back() != '\n') text += '\n';
      return text;
    }
    return std::string();
  }();
  return system + ca_pem;
}

EgressProxy::EgressProxy(EgressSettings settings, std::string root)
    : settings_(std::move(settings)), root_(std::move(root)) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  fs::permissions(root_, fs::perms(0711), ec);
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) wake_[0] = wake_[1] = -1;
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

EgressProxy::~EgressProxy() { Stop(); }

Status EgressProxy::EnableVault(VaultHook& hook, const std::string& ca_pem,
                                const std::string& upstream_ca_file) {
  PADDOCK_ASSIGN_OR_RETURN(
      interceptor_,
      TlsInterceptor::Create(upstream_ca_file, std::chrono::milliseconds(settings_.connect_timeout_ms)));
  std::lock_guard lock(mu_);
  vault_ = &hook;
  ca_pem_ = ca_pem;
  return Status::Ok();
}

Status EgressProxy::WriteTrust(const std::string& dir) const {
  std::string ca_pem;
  {
    std::lock_guard lock(mu_);
    ca_pem = ca_pem_;
  }
  if (ca_pem.empty()) return Status::Ok();
  const std::string bundle = TrustBundleWith(ca_pem);
  // Written in place, not renamed over: a sandbox that has the bundle bind-mounted as its
  // system trust store holds the file, not the name.
  for (const auto& [name, text] : {std::pair<const char*, const std::string*>{kEgressCaFile, &ca_pem},
                                   std::pair<const char*, const std::string*>{kEgressCaBundle, &bundle}}) {
    const std::string path = dir + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << *text;
    out.close();
    if (!out) return Status::Unavailable("cannot write " + path);
    chmod(path.c_str(), 0644);
  }
  return Status::Ok();
}

Result<int> EgressProxy::ListenRemote(const std::string& listen, int port, PassCheck check) {
  int fd = socket(listen.find(':') == std::string::npos ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Unavailable(std::string("egress: socket: ") + strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  try {
    Poco::Net::SocketAddress address(listen, static_cast<Poco::UInt16>(port));
    if (bind(fd, address.addr(), address.length()) != 0 || ::listen(fd, 512) != 0) {
      std::string err = strerror(errno);
      close(fd);
      return Status::Unavailable("egress: cannot listen on " + listen + ":" + std::to_string(port) + ": " +
                                 err);
    }
  } catch (const Poco::Exception& e) {
    close(fd);
    return Status::InvalidArgument("egress: listen address " + listen + ": " + e.displayText());
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  {
    std::lock_guard lock(mu_);
    pass_check_ = std::move(check);
    remote_fd_ = fd;
  }
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  return bound_port;
}

void EgressProxy::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  if (acceptor_.joinable()) acceptor_.join();
  std::lock_guard lock(mu_);
  for (auto& [dir, l] : listeners_) close(l.fd);  // the sockets stay for the next process
  listeners_.clear();
  if (remote_fd_ >= 0) close(remote_fd_);
  remote_fd_ = -1;
  if (wake_[0] >= 0) close(wake_[0]);
  if (wake_[1] >= 0) close(wake_[1]);
}

std::vector<std::string> EgressProxy::FullAllow(const std::vector<std::string>& allow) const {
  std::vector<std::string> all = settings_.allow;
  all.insert(all.end(), allow.begin(), allow.end());
  for (const std::string& url : settings_.model_urls) {
    Poco::URI uri(url);
    all.push_back(uri.getHost() + ":" + std::to_string(uri.getPort()));
  }
  return all;
}

bool EgressProxy::Allowed(const std::vector<std::string>& allow, const std::string& raw_host, int port) {
  std::string host = Lower(raw_host);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  for (const std::string& raw : allow) {
    std::string entry = Lower(raw);
    std::string entry_host = entry;
    std::string entry_port;
    auto colon = entry.rfind(':');
    if (colon != std::string::npos && entry.find(':') == colon) {  // not an IPv6 literal
      entry_host = entry.substr(0, colon);
      entry_port = entry.substr(colon + 1);
    }
    bool port_ok = entry_port.empty() ? (port == 80 || port == 443)
                                      : (entry_port == "*" || entry_port == std::to_string(port));
    if (!port_ok) continue;
    if (entry_host.rfind("*.", 0) == 0) {
      std::string suffix = entry_host.substr(1);  // ".example.com"
      if (host.size() > suffix.size() &&
          host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return true;
      }
    } else if (host == entry_host) {
      return true;
    }
  }
  return false;
}

Status EgressProxy::Listen(const std::string& dir, const std::vector<std::string>& allow) {
  const std::string path = dir + "/egress.sock";
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path)
    return Status::InvalidArgument("egress socket path is too long: " + path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::Unavailable(std::string("socket: ") + strerror(errno));
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  unlink(path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 128) != 0) {
    std::string err = strerror(errno);
    close(fd);
    return Status::Unavailable("egress proxy cannot listen on " + path + ": " + err);
  }
  chmod(path.c_str(), 0666);  // the sandbox's unprivileged uid connects to it
  {
    std::lock_guard lock(mu_);
    auto& l = listeners_[dir];
    if (l.fd >= 0) close(l.fd);
    l.fd = fd;
    l.allow = FullAllow(allow);
  }
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  return Status::Ok();
}

Result<std::string> EgressProxy::Open(const std::string& key, const std::vector<std::string>& allow) {
  const std::string dir = root_ + "/" + key;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Unavailable("create " + dir + ": " + ec.message());
  fs::permissions(dir, fs::perms(0755), ec);
  PADDOCK_RETURN_IF_ERROR(WriteTrust(dir));
  PADDOCK_RETURN_IF_ERROR(Listen(dir, allow));
  return dir;
}

Status EgressProxy::Reopen(const std::string& dir, const std::vector<std::string>& allow) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::NotFound("egress directory " + dir + " is gone");
  PADDOCK_RETURN_IF_ERROR(WriteTrust(dir));
  return Listen(dir, allow);
}

void EgressProxy::SetAllow(const std::string& dir, const std::vector<std::string>& allow) {
  std::lock_guard lock(mu_);
  auto it = listeners_.find(dir);
  if (it != listeners_.end()) it->second.allow = FullAllow(allow);
}

void EgressProxy::Close(const std::string& dir) {
  if (dir.empty()) return;
  {
    std::lock_guard lock(mu_);
    auto it = listeners_.find(dir);
    if (it != listeners_.end()) {
      close(it->second.fd);
      listeners_.erase(it);
    }
  }
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  // Only directories of ours are removed.
  if (dir.rfind(root_ + "/", 0) == 0) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

std::vector<std::string> EgressProxy::Unserved() const {
  std::vector<std::string> out;
  std::error_code ec;
  std::lock_guard lock(mu_);
  for (const auto& e : fs::directory_iterator(root_, ec)) {
    if (!listeners_.count(e.path().string())) out.push_back(e.path().string());
  }
  return out;
}

void EgressProxy::FollowCa() {
  VaultHook* vault = nullptr;
  {
    std::lock_guard lock(mu_);
    vault = vault_;
  }
  if (!vault) return;
  std::string pem = vault->TrustPem();
  std::vector<std::string> dirs;
  {
    std::lock_guard lock(mu_);
    if (pem == ca_pem_) return;
    ca_pem_ = std::move(pem);
    for (const auto& [dir, l] : listeners_) dirs.push_back(dir);
  }
  // Clients started from now on trust the new CA; one that read its trust before must start
  // again (every run's agent CLI does).
  for (const std::string& dir : dirs) {
    if (Status s = WriteTrust(dir); !s.ok()) LogWarn("egress: the rotated CA: " + s.ToString());
  }
  LogInfo("egress: the vault CA changed; the trust files of " + std::to_string(dirs.size()) +
          " sandbox(es) hold the new one");
}

void EgressProxy::AcceptLoop() {
  auto followed = std::chrono::steady_clock::now();
  while (!stopping_) {
    if (std::chrono::steady_clock::now() - followed >= std::chrono::seconds(1)) {
      FollowCa();
      followed = std::chrono::steady_clock::now();
    }
    std::vector<pollfd> fds;
    std::vector<std::string> dirs;
    fds.push_back({wake_[0], POLLIN, 0});
    dirs.emplace_back();
    int remote = -1;
    {
      std::lock_guard lock(mu_);
      remote = remote_fd_;
      fds.push_back({remote, POLLIN, 0});  // a negative descriptor is skipped by poll
      dirs.emplace_back();
      for (const auto& [dir, l] : listeners_) {
        fds.push_back({l.fd, POLLIN, 0});
        dirs.push_back(dir);
      }
    }
    int n = poll(fds.data(), fds.size(), 1000);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      char buf[64];
      while (read(wake_[0], buf, sizeof buf) > 0) {
      }
    }
    if (remote >= 0 && (fds[1].revents & POLLIN)) {
      int client = accept4(remote, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        std::thread([this, client] { Serve(client, {}, "", /*remote=*/true); }).detach();
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      std::vector<std::string> allow;
      int client = -1;
      {
        std::lock_guard lock(mu_);
        auto it = listeners_.find(dirs[i]);
        if (it == listeners_.end() || it->second.fd != fds[i].fd) continue;  // closed meanwhile
        client = accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        allow = it->second.allow;
      }
      if (client < 0) continue;
      std::thread([this, client, allow = std::move(allow), dir = dirs[i]]() mutable {
        Serve(client, std::move(allow), std::move(dir));
      }).detach();
    }
  }
}

void EgressProxy::Serve(int client_fd, std::vector<std::string> allow, std::string dir, bool remote) {
  Poco::Net::StreamSocket client(new Poco::Net::StreamSocketImpl(client_fd));
  std::string host;
  int port = 0;
  try {
    client.setReceiveTimeout(Poco::Timespan(30, 0));
    if (remote) client.setNoDelay(true);
    Poco::Net::SocketStream in(client);
    Poco::Net::HTTPRequest request;
    request.read(in);
    if (remote) {
      PassCheck check;
      {
        std::lock_guard lock(mu_);
        check = pass_check_;
      }
      Result<RemoteSandbox> pass = check ? check(request.get("Proxy-Authorization", ""))
                                         : Result<RemoteSandbox>(Status::Unavailable("not serving"));
      if (!pass.ok()) {
        return Reply(client, 407, "Proxy Authentication Required",
                     "paddock egress: " + pass.status().message() + "\n",
                     "Proxy-Authenticate: Basic realm=\"paddock egress\"\r\n");
      }
      dir = std::move(pass->identity);
      allow = FullAllow(pass->allow);
      request.erase("Proxy-Authorization");
    }
    const bool tunnel = request.getMethod() == "CONNECT";
    if (tunnel) {
      const std::string& target = request.getURI();
      auto colon = target.rfind(':');
      if (colon == std::string::npos) return Reply(client, 400, "Bad Request", "CONNECT needs host:port\n");
      host = target.substr(0, colon);
      port = std::atoi(target.c_str() + colon + 1);
    } else {
      Poco::URI uri(request.getURI());
      if (uri.getScheme() != "http" || uri.getHost().empty()) {
        return Reply(client, 400, "Bad Request",
                     "this is a forward proxy: send absolute http:// URLs, or CONNECT for https\n");
      }
      host = uri.getHost();
      port = uri.getPort();
      request.setURI(uri.getPathEtc());
    }
    if (port <= 0 || port > 65535) return Reply(client, 400, "Bad Request", "bad port\n");
    if (!Allowed(allow, host, port)) {
      if (on_refused_) on_refused_(dir, host, port);
      return Reply(client, 403, "Forbidden",
                   "paddock egress: " + host + ":" + std::to_string(port) +
                       " is not on this sandbox's allow list ([egress] allow or the profile's allow)\n");
    }
    if (tunnel && vault_ && vault_->Intercepts(dir, host, port)) {
      if (in.rdbuf()->in_avail() > 0) {
        return Reply(client, 400, "Bad Request", "paddock egress: wait for the CONNECT answer before TLS\n");
      }
      static const char kEstablished[] = "HTTP/1.1 200 Connection established\r\n\r\n";
      client.sendBytes(kEstablished, sizeof kEstablished - 1);
      int fd = fcntl(client.impl()->sockfd(), F_DUPFD_CLOEXEC, 0);
      client.close();
      if (fd >= 0) interceptor_->Serve(fd, host, port, dir, *vault_);
      return;
    }
    if (!tunnel && vault_) {
      HttpHead head{request.getMethod(), request.getURI(), {}};
      for (const auto& [name, value] : request) head.fields.emplace_back(name, value);
      std::string refusal = vault_->Substitute(dir, host, port, /*tls=*/false, head);
      if (!refusal.empty()) return Reply(client, 403, "Forbidden", refusal);
      request.setURI(head.target);
      std::vector<std::string> names;
      for (const auto& [name, value] : request) names.push_back(name);
      for (const std::string& n : names) request.erase(n);
      for (const auto& [name, value] : head.fields) request.add(name, value);
    }
    Poco::Net::StreamSocket upstream;
    try {
      upstream.connect(Poco::Net::SocketAddress(host, static_cast<Poco::UInt16>(port)),
                       Poco::Timespan(settings_.connect_timeout_ms * 1000));
    } catch (const Poco::Exception& e) {
      return Reply(client, 502, "Bad Gateway",
                   "paddock egress: cannot reach " + host + ": " + e.displayText() + "\n");
    }
    // Bytes the parser read past the request head go first.
    std::string buffered;
    std::streamsize avail = in.rdbuf()->in_avail();
    if (avail > 0) {
      buffered.resize(static_cast<size_t>(avail));
      in.read(buffered.data(), avail);
    }
    if (tunnel) {
      static const char kEstablished[] = "HTTP/1.1 200 Connection established\r\n\r\n";
      client.sendBytes(kEstablished, sizeof kEstablished - 1);
    } else {
      request.erase("Proxy-Connection");
      request.erase("Proxy-Authorization");
      request.set("Connection", "close");
      std::ostringstream head;
      request.write(head);
      buffered = head.str() + buffered;
    }
    // Hand both descriptors to the pump, which closes them.
    int a = fcntl(client.impl()->sockfd(), F_DUPFD_CLOEXEC, 0);
    int b = fcntl(upstream.impl()->sockfd(), F_DUPFD_CLOEXEC, 0);
    client.close();
    upstream.close();
    net::Pump(a, b, buffered);
  } catch (const Poco::Exception& e) {
    Reply(client, 400, "Bad Request", "paddock egress: " + e.displayText() + "\n");
  } catch (const std::exception& e) {
    Reply(client, 500, "Internal Server Error", std::string("paddock egress: ") + e.what() + "\n");
  }
}

}  // namespace paddock
