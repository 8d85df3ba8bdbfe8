#include "pump.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace paddock::net {
namespace {

bool SendAll(int fd, const char* data, size_t size) {
  for (size_t off = 0; off < size;) {
    ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

void Pump(int a, int b, std::string_view a_first) {
  char buf[64 * 1024];
  bool a_open = SendAll(b, a_first.data(), a_first.size());  // still reading from a
  bool b_open = a_open;
  while (a_open || b_open) {
    pollfd fds[2] = {{a, static_cast<short>(a_open ? POLLIN : 0), 0},
                     {b, static_cast<short>(b_open ? POLLIN : 0), 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      int from = i == 0 ? a : b;
      int to = i == 0 ? b : a;
      bool& open = i == 0 ? a_open : b_open;
      if (!open || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(from, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        open = false;
        shutdown(to, SHUT_WR);
        continue;
      }
      if (!SendAll(to, buf, static_cast<size_t>(n))) a_open = b_open = false;
    }
  }
  close(a);
  close(b);
}

}  // namespace paddock::net
