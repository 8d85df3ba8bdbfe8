// Raw sockets for tests and benchmarks that must behave like particular clients: one that never
// finishes its header, one that stops reading, thousands that hold a stream open.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace paddock::testing {

// Raises this process's soft open-files limit to the hard one (thousands of client sockets).
inline void RaiseNoFile() {
  struct rlimit rl {};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

// A TCP connection to 127.0.0.1:port, from `source` (another loopback address, e.g.
// "127.0.0.2", to look like another client) when given. -1 on failure.
inline int ConnectTo(int port, const char* source = nullptr, int rcvbuf = 0) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (source) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    inet_pton(AF_INET, source, &s.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&s), sizeof s) != 0) {
      close(fd);
      return -1;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline bool SendAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

enum class ReadEnd { kFound, kTimeout, kClosed };

// Reads into `got` until it holds `want`, the peer closes, or `ms` pass.
inline ReadEnd ReadUntil(int fd, std::string& got, const std::string& want, int ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  char buf[8192];
  while (got.find(want) == std::string::npos) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) return ReadEnd::kTimeout;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return ReadEnd::kClosed;
    got.append(buf, static_cast<size_t>(n));
  }
  return ReadEnd::kFound;
}

// Sends one request with Connection: close and returns the whole answer ("" on timeout).
inline std::string RawRequest(int port, const std::string& request, int ms = 10000,
                              const char* source = nullptr) {
  int fd = ConnectTo(port, source);
  if (fd < 0) return "";
  std::string got;
  if (SendAll(fd, request)) ReadUntil(fd, got, "\x01never", ms);
  close(fd);
  return got;
}

}  // namespace paddock::testing
