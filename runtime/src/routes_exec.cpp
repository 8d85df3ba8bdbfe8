#include "runtime.h"

namespace paddock::runtime {

void Runtime::Exec(HTTPServerRequest& req, HTTPServerResponse& resp) {
  Object::Ptr body = ReadJson(req);
  SpawnRequest spawn;
  spawn.argv = GetCommand(*body);
  spawn.env = Environment(GetEnv(*body, "env"));
  spawn.cwd = Cwd(*body);
  std::string input = GetString(*body, "stdin");
  if (body->has("stdin_base64")) input = Unbase64(GetString(*body, "stdin_base64"));
  std::int64_t timeout_ms = GetInt(*body, "timeout_ms", 0);
  if (timeout_ms < 0) BadRequest("'timeout_ms' must not be negative");
  std::string id = GetString(*body, "id");
  if (id.size() > 128) BadRequest("'id' is longer than 128 characters");

  Pipe out, err, in;
  spawn.stdout_fd = out.w;
  spawn.stderr_fd = err.w;
  spawn.stdin_fd = in.r;
  auto [pid, spawn_errno] = Children::Instance().Spawn(spawn);
  out.CloseWrite();
  err.CloseWrite();
  close(in.r);
  in.r = -1;

  resp.setStatus(HTTPResponse::HTTP_OK);
  resp.setContentType("application/x-ndjson");
  resp.setChunkedTransferEncoding(true);
  std::ostream& stream = resp.send();
  auto frame = [&](const Object& o) {
    stream << ToJson(o) << '\n';
    stream.flush();
    return stream.good();
  };
  if (pid == 0) {
    Object o;
    o.set("type", "stderr");
    o.set("data", Base64(spawn.argv[0] + ": " + strerror(spawn_errno) + "\n"));
    frame(o);
    Object exit;
    exit.set("type", "exit");
    exit.set("exit_code", spawn_errno == ENOENT ? 127 : 126);
    exit.set("signal", 0);
    exit.set("timed_out", false);
    exit.set("killed", false);
    frame(exit);
    return;
  }
  auto killed = std::make_shared<std::atomic<bool>>(false);
  if (!id.empty()) {
    std::lock_guard lock(mu_);
    execs_[id] = {pid, killed};
  }
  {
    Object started;
    started.set("type", "started");
    started.set("pid", static_cast<int>(pid));
    if (!id.empty()) started.set("id", id);
    frame(started);
  }
  // stdin is written from its own thread, so a command that writes before it reads cannot
  // deadlock against us.
  std::thread writer([fd = in.w, input]() {
    size_t off = 0;
    while (off < input.size()) {
      ssize_t n = write(fd, input.data() + off, input.size() - off);
      if (n <= 0 && errno != EINTR) break;
      if (n > 0) off += static_cast<size_t>(n);
    }
    close(fd);
  });
  in.w = -1;

  int client_fd = -1;
  if (auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&req)) {
    client_fd = impl->socket().impl()->sockfd();
  }
  // One wait per step on everything that can happen: output, the exit, the client leaving,
  // the timeout, the end of the drain or of the gathering window. No fixed slice: an exec
  // costs what its command costs.
  //
  // Output is gathered before it is framed: bytes of one stream wait up to kGatherWindow
  // for more (or until kGatherBytes are held), so a command that writes many short lines
  // costs a few frames, not one per write. Bytes of the other stream, the exit, the end of
  // a pipe and the end of the exec send what is held first, so the order between streams
  // is the order they were read in.
  constexpr auto kGatherWindow = std::chrono::milliseconds(5);
  constexpr size_t kGatherBytes = 64 * 1024;
  const int exit_fd = Children::Instance().ExitFd(pid);
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  bool timed_out = false;
  bool gone = false;  // the client went away
  std::optional<ExitStatus> status;
  Clock::time_point drain_until{};
  std::string held;
  int held_stream = -1;  // 0 stdout, 1 stderr
  Clock::time_point held_since{};
  char buf[64 * 1024];
  auto kill_group = [&] { Children::SignalGroup(pid, SIGKILL); };
  auto send_held = [&] {
    if (held.empty()) return;
    Object o;
    o.set("type", held_stream == 0 ? "stdout" : "stderr");
    o.set("data", Base64(held));
    held.clear();
    if (!frame(o)) {
      gone = true;
      kill_group();
    }
  };
  for (;;) {
    if (!status) status = Children::Instance().Poll(pid);
    // Output still held open by a background child of the command is drained for 200 ms
    // after the exit, not waited for.
    if (status && drain_until == Clock::time_point{})
      drain_until = Clock::now() + std::chrono::milliseconds(200);
    if (status && ((out.r < 0 && err.r < 0) || Clock::now() >= drain_until)) break;
    Clock::time_point wake = Clock::time_point::max();
    if (!timed_out && timeout_ms > 0) wake = deadline;
    if (status) wake = std::min(wake, drain_until);
    if (!held.empty()) wake = std::min(wake, held_since + kGatherWindow);
    int wait_ms = -1;
    if (wake != Clock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
      wait_ms = static_cast<int>(std::clamp<std::int64_t>(left, 0, 1 << 30));
    }
    pollfd fds[4] = {{out.r, POLLIN, 0},
                     {err.r, POLLIN, 0},
                     {client_fd, POLLRDHUP, 0},
                     {status || exit_fd < 0 ? -1 : exit_fd, POLLIN, 0}};
    // Without an exit descriptor (none could be made), the exit is looked at every 50 ms.
    if (exit_fd < 0 && !status && (wait_ms < 0 || wait_ms > 50)) wait_ms = 50;
    int n = poll(fds, 4, wait_ms);
    if (n < 0 && errno != EINTR) break;
    const auto now = Clock::now();
    if (!timed_out && timeout_ms > 0 && now >= deadline) {
      timed_out = true;
      kill_group();
    }
    if (fds[2].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
      gone = true;
      kill_group();
      break;
    }
    for (int i = 0; i < 2 && !gone; ++i) {
      int& fd = i == 0 ? out.r : err.r;
      if (fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = read(fd, buf, sizeof buf);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        if (held_stream == i) send_held();
        close(fd);
        fd = -1;
        continue;
      }
      if (held_stream != i) send_held();
      if (held.empty()) held_since = now;
      held_stream = i;
      held.append(buf, static_cast<size_t>(got));
      if (held.size() >= kGatherBytes) send_held();
    }
    if (!gone && !held.empty() && (now >= held_since + kGatherWindow || fds[3].revents)) send_held();
    if (gone) break;
  }
  if (!gone) send_held();
  if (!status) status = Children::Instance().Wait(pid, std::chrono::seconds(10));
  writer.join();
  Children::Instance().Forget(pid);
  if (!id.empty()) {
    std::lock_guard lock(mu_);
    execs_.erase(id);
  }
  if (gone) return;
  Object exit;
  exit.set("type", "exit");
  exit.set("exit_code", status ? status->exit_code : -1);
  exit.set("signal", status ? status->signal : 0);
  exit.set("timed_out", timed_out);
  exit.set("killed", killed->load());
  frame(exit);
}

void Runtime::KillExec(const std::string& id, HTTPServerResponse& resp) {
  std::lock_guard lock(mu_);
  auto it = execs_.find(id);
  if (it == execs_.end()) Fail(HTTPResponse::HTTP_NOT_FOUND, "no running exec '" + id + "'");
  it->second.second->store(true);
  Children::SignalGroup(it->second.first, SIGKILL);
  Object o;
  o.set("killed", true);
  SendJson(resp, HTTPResponse::HTTP_OK, o);
}

}  // namespace paddock::runtime
