#include "runtime.h"

namespace paddock::runtime {

Object Runtime::Describe(BackgroundProcess& p) {
  Object o;
  o.set("id", p.id);
  o.set("pid", static_cast<int>(p.pid));
  Array argv;
  for (const auto& a : p.argv) argv.add(a);
  o.set("argv", argv);
  o.set("started_at", p.started_at);
  auto status = Children::Instance().Poll(p.pid);
  o.set("running", !status.has_value());
  if (status) {
    o.set("exit_code", status->exit_code);
  } else {
    o.set("exit_code", Poco::Dynamic::Var());
  }
  return o;
}

std::shared_ptr<BackgroundProcess> Runtime::FindProcess(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = processes_.find(id);
  if (it == processes_.end()) Fail(HTTPResponse::HTTP_NOT_FOUND, "no process '" + id + "'");
  return it->second;
}

void Runtime::StartProcess(HTTPServerRequest& req, HTTPServerResponse& resp) {
  Object::Ptr body = ReadJson(req);
  SpawnRequest spawn;
  spawn.argv = GetCommand(*body);
  spawn.env = Environment(GetEnv(*body, "env"));
  spawn.cwd = Cwd(*body);
  Pipe out;
  spawn.stdout_fd = out.w;
  spawn.stderr_fd = out.w;
  auto [pid, spawn_errno] = Children::Instance().Spawn(spawn);
  out.CloseWrite();
  if (pid == 0) BadRequest("cannot start " + spawn.argv[0] + ": " + strerror(spawn_errno));
  auto p = std::make_shared<BackgroundProcess>();
  p->id = "proc_" + std::to_string(++next_process_);
  p->pid = pid;
  p->argv = spawn.argv;
  p->started_at = NowMs();
  int fd = out.r;
  out.r = -1;
  std::thread([p, fd] {
    char buf[16 * 1024];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
      if (n <= 0) continue;
      std::lock_guard lock(p->mu);
      p->log.append(buf, static_cast<size_t>(n));
      if (p->log.size() > kMaxLogBytes) {
        size_t drop = p->log.size() - kMaxLogBytes;
        p->log.erase(0, drop);
        p->dropped += drop;
      }
    }
    close(fd);
    std::lock_guard lock(p->mu);
    p->output_done = true;
  }).detach();
  {
    std::lock_guard lock(mu_);
    processes_[p->id] = p;
  }
  SendJson(resp, HTTPResponse::HTTP_CREATED, Describe(*p));
}

void Runtime::ListProcesses(HTTPServerResponse& resp) {
  std::vector<std::shared_ptr<BackgroundProcess>> all;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, p] : processes_) all.push_back(p);
  }
  Array arr;
  for (const auto& p : all) arr.add(Describe(*p));
  Object o;
  o.set("processes", arr);
  SendJson(resp, HTTPResponse::HTTP_OK, o);
}

void Runtime::GetProcess(const std::string& id, HTTPServerResponse& resp) {
  auto p = FindProcess(id);
  SendJson(resp, HTTPResponse::HTTP_OK, Describe(*p));
}

void Runtime::ProcessLogs(const std::string& id, HTTPServerRequest& req, HTTPServerResponse& resp) {
  auto p = FindProcess(id);
  std::string offset_text = Query(req, "offset");
  std::uint64_t offset = 0;
  if (!offset_text.empty()) {
    try {
      size_t used = 0;
      offset = std::stoull(offset_text, &used);
      if (used != offset_text.size()) throw std::invalid_argument("offset");
    } catch (const std::exception&) {
      BadRequest("'offset' must be a non-negative integer");
    }
  }
  Object o = Describe(*p);
  std::lock_guard lock(p->mu);
  std::uint64_t start = std::max(offset, p->dropped);
  std::uint64_t end = p->dropped + p->log.size();
  std::string data = start < end ? p->log.substr(static_cast<size_t>(start - p->dropped)) : "";
  o.set("data", Base64(data));
  o.set("offset", start);
  o.set("next_offset", end);
  o.set("truncated", offset < p->dropped);
  o.set("output_done", p->output_done);
  SendJson(resp, HTTPResponse::HTTP_OK, o);
}

void Runtime::SignalProcess(const std::string& id, HTTPServerRequest& req, HTTPServerResponse& resp) {
  auto p = FindProcess(id);
  Object::Ptr body = ReadJson(req);
  static const std::map<std::string, int> kSignals = {
      {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"HUP", SIGHUP},  {"STOP", SIGSTOP},
      {"CONT", SIGCONT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"QUIT", SIGQUIT}};
  std::string name = GetString(*body, "signal", "TERM");
  auto it = kSignals.find(name);
  if (it == kSignals.end())
    BadRequest("unknown signal '" + name + "' (TERM, KILL, INT, HUP, STOP, CONT, USR1, USR2, QUIT)");
  if (!Children::Instance().Poll(p->pid)) Children::SignalGroup(p->pid, it->second);
  SendJson(resp, HTTPResponse::HTTP_OK, Describe(*p));
}

}  // namespace paddock::runtime
