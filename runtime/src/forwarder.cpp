#include "forwarder.h"

#include "pump.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace paddock::runtime {

std::string StartForwarder(int port, const std::string& unix_socket) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return std::string("socket: ") + strerror(errno);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(listener, 128) != 0) {
    std::string err = strerror(errno);
    close(listener);
    return "listen on 127.0.0.1:" + std::to_string(port) + ": " + err;
  }
  std::thread([listener, unix_socket] {
    for (;;) {
      int client = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
        return;
      }
      std::thread([client, unix_socket] {
        int upstream = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        std::strncpy(un.sun_path, unix_socket.c_str(), sizeof un.sun_path - 1);
        if (upstream < 0 || connect(upstream, reinterpret_cast<sockaddr*>(&un), sizeof un) != 0) {
          static const char kDown[] =
              "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n"
              "Content-Length: 35\r\n\r\nthe egress proxy is not reachable.\n";
          (void)send(client, kDown, sizeof kDown - 1, MSG_NOSIGNAL);
          close(client);
          if (upstream >= 0) close(upstream);
          return;
        }
        net::Pump(client, upstream);
      }).detach();
    }
  }).detach();
  return "";
}

}  // namespace paddock::runtime
