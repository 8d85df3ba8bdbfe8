// The sandbox boundary, tried from the side of code inside a session's sandbox (sandbox.process
// behind a real `paddock serve`): it sees nothing but its stdio, cannot take over a listener of
// the control plane or the runtime, cannot reach into the runtime, and finds the kernel calls of
// the default profile refused. Then the bad day: the server is killed (and, separately, stopped)
// while sessions have live sandboxes, and the server that comes back on the same port answers
// every request itself.
#include <Poco/JSON/Object.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "paddock/testing/assert.h"
#include "probe.h"
#include "testing.h"

namespace paddock::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string JsonString(const std::string& s) {
  Poco::JSON::Object o;
  o.set("command", s);
  std::ostringstream ss;
  o.stringify(ss);
  return ss.str();
}

// Every pid whose pid namespace is that of `init` (the processes of one sandbox).
std::vector<pid_t> ProcessesOfSandbox(pid_t init) {
  std::vector<pid_t> out;
  char want[128] = {0};
  std::string ns = "/proc/" + std::to_string(init) + "/ns/pid";
  if (readlink(ns.c_str(), want, sizeof want - 1) <= 0) return out;
  DIR* proc = opendir("/proc");
  while (dirent* d = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(d->d_name));
    if (pid <= 0) continue;
    char got[128] = {0};
    std::string p = std::string("/proc/") + d->d_name + "/ns/pid";
    if (readlink(p.c_str(), got, sizeof got - 1) > 0 && std::string(got) == want) out.push_back(pid);
  }
  closedir(proc);
  return out;
}

// Socket inodes of the host's network namespace (every TCP socket of this machine's loopback,
// listening or not), and of listening unix sockets with their paths.
std::set<std::string> HostTcpInodes() {
  std::set<std::string> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream in(ReadFile(table));
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string field;
      for (int i = 0; i < 10 && (f >> field); ++i) {
      }
      out.insert(field);  // the 10th column: inode
    }
  }
  return out;
}

std::map<std::string, std::string> ListeningUnixPaths() {
  std::map<std::string, std::string> out;  // inode -> path
  std::istringstream in(ReadFile("/proc/net/unix"));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string num, refs, proto, flags, type, st, inode, path;
    f >> num >> refs >> proto >> flags >> type >> st >> inode >> path;
    if (flags == "00010000") out[inode] = path;  // __SO_ACCEPTCON
  }
  return out;
}

// What a process holds that belongs to the host side: a socket of the host's network namespace,
// or a listening unix socket other than the runtime's own.
std::vector<std::string> HostSocketsHeldBy(pid_t pid, const std::set<std::string>& tcp,
                                           const std::map<std::string, std::string>& unix_listeners) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    char target[256] = {0};
    if (readlink(fd.path().c_str(), target, sizeof target - 1) <= 0) continue;
    std::string t = target;
    if (t.rfind("socket:[", 0) != 0) continue;
    std::string inode = t.substr(8, t.size() - 9);
    if (tcp.count(inode))
      out.push_back("pid " + std::to_string(pid) + " fd " + fd.path().filename().string() + ": tcp " + t);
    auto u = unix_listeners.find(inode);
    if (u != unix_listeners.end() && u->second != "/run/paddock/runtime.sock")
      out.push_back("pid " + std::to_string(pid) + " fd " + fd.path().filename().string() +
                    ": listening on " + u->second);
  }
  return out;
}

// Descriptors of `pid` (from 3 up) without close-on-exec.
std::vector<std::string> InheritableDescriptors(pid_t pid) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo", ec)) {
    int n = std::atoi(fd.path().filename().c_str());
    if (n < 3) continue;
    std::string flags = Line(ReadFile(fd.path().string()), "flags");
    if (flags.rfind("<no line", 0) == 0) continue;  // closed while we looked: nothing can inherit it
    unsigned long bits = std::strtoul(flags.c_str(), nullptr, 8);
    if (!(bits & 02000000)) {  // O_CLOEXEC
      char target[256] = {0};
      std::string link = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(n);
      (void)!readlink(link.c_str(), target, sizeof target - 1);
      out.push_back(std::to_string(n) + " -> " + target);
    }
  }
  return out;
}

class Boundary : public ::testing::Test {
 protected:
  void StartServer(bool destroy_on_stop = true, const std::string& extra_toml = "",
                   std::vector<std::pair<int, int>> inherit_fds = {}) {
    ServerOptions o;
    o.inherit_fds = std::move(inherit_fds);
    if (!destroy_on_stop) o.sandbox_toml = "[sandbox]\ntype = \"process\"\n";
    o.extra_toml = extra_toml;
    server_ = std::make_unique<ServerProcess>(std::move(o));
    ASSERT_OK(server_->Start());
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }
  std::string ReadySession() {
    auto agent = server_->Request("POST", "/api/agents", R"({"name":"probe","harness":"shell"})");
    EXPECT_EQ(agent.status, 201) << agent.body;
    auto s =
        server_->Request("POST", "/api/sessions", "{\"agent_id\":\"" + JsonField(agent.body, "id") + "\"}");
    EXPECT_EQ(s.status, 201) << s.body;
    const std::string id = JsonField(s.body, "id");
    ReadStream(server_->port(), "/api/sessions/" + id + "/events/stream", {},
               [](const std::vector<SseEvent>& ev) {
                 for (const auto& e : ev) {
                   if (e.type == "sandbox.ready") return true;
                 }
                 return false;
               });
    return id;
  }
  // Sends `content` as a message and returns the session's events until that run finished.
  std::vector<SseEvent> RunMessage(const std::string& session, const std::string& content) {
    Poco::JSON::Object body;
    body.set("content", content);
    std::ostringstream ss;
    body.stringify(ss);
    auto sent = server_->Request("POST", "/api/sessions/" + session + "/messages", ss.str());
    EXPECT_EQ(sent.status, 202) << sent.body;
    return ReadStream(server_->port(), "/api/sessions/" + session + "/events/stream", {},
                      [](const std::vector<SseEvent>& ev) {
                        for (const auto& e : ev) {
                          if (e.type == "run.finished") return true;
                        }
                        return false;
                      });
  }
  std::string Exec(const std::string& session, const std::string& command) {
    auto r = server_->Request("POST", "/api/sessions/" + session + "/sandbox/exec", JsonString(command));
    EXPECT_EQ(r.status, 200) << r.body;
    return JsonField(r.body, "stdout") + JsonField(r.body, "stderr");
  }
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(Boundary, ACommandSeesOnlyItsStdioAndCannotReachTheRuntimeOrTheRefusedCalls) {
  StartServer();
  const std::string session = ReadySession();
  ExpectSealed(Exec(session, ProbeCommand()), "a command through /sandbox/exec");
  // The reproduction of the report: a nested user namespace with uid 0.
  auto r = server_->Request("POST", "/api/sessions/" + session + "/sandbox/exec",
                            JsonString("unshare -Ur id; echo status=$?"));
  EXPECT_EQ(JsonField(r.body, "stdout").find("uid=0"), std::string::npos) << r.body;
  EXPECT_NE(JsonField(r.body, "stdout").find("status=1"), std::string::npos) << r.body;
  // The profile's filter is shown with the sandbox's limits.
  auto sandbox = server_->Request("GET", "/api/sessions/" + session + "/sandbox");
  EXPECT_NE(sandbox.body.find("default filter ("), std::string::npos) << sandbox.body;
  EXPECT_NE(sandbox.body.find("\"user namespaces\""), std::string::npos) << sandbox.body;
}

// A profile lets exactly the calls it names through, says so at start and in the sandbox's
// limits; "off" drops the filter and the nested user namespace ban, and the runtime's own
// guard (descriptors, /proc/1) holds either way.
TEST_F(Boundary, AProfileRelaxesTheFilterOnlyAsFarAsItSays) {
  StartServer(true, "[profiles.default]\nseccomp_allow = [\"perf_event_open\"]\n");
  std::string session = ReadySession();
  std::string probe = Exec(session, ProbeCommand());
  EXPECT_EQ(Line(probe, "seccomp"), "2") << probe;
  EXPECT_EQ(Line(probe, "perf_event_open").rfind("ALLOWED", 0), 0u) << probe;
  for (const char* call : {"keyctl", "bpf", "userfaultfd", "unshare"})
    EXPECT_EQ(Line(probe, call), "refused") << call;
  auto sandbox = server_->Request("GET", "/api/sessions/" + session + "/sandbox");
  EXPECT_NE(sandbox.body.find("allowed by the profile: perf_event_open"), std::string::npos) << sandbox.body;
  EXPECT_NE(server_->log().find("relaxed by the profile"), std::string::npos);
  server_->Stop();

  StartServer(true, "[profiles.default]\nseccomp = \"off\"\n");
  session = ReadySession();
  probe = Exec(session, ProbeCommand());
  EXPECT_EQ(Line(probe, "seccomp"), "0") << probe;
  EXPECT_EQ(Line(probe, "unshare").rfind("ALLOWED", 0), 0u) << probe;
  EXPECT_EQ(Line(probe, "fds"), "0 1 2") << probe;
  EXPECT_EQ(Line(probe, "proc1 mem"), "denied") << probe;
  sandbox = server_->Request("GET", "/api/sessions/" + session + "/sandbox");
  EXPECT_NE(sandbox.body.find("\"seccomp\":\"off\""), std::string::npos) << sandbox.body;
}

TEST_F(Boundary, ABackgroundProcessAndTheHarnessCommandSeeOnlyTheirStdio) {
  StartServer();
  const std::string session = ReadySession();
  // A background process started by a command outlives it: what it saw is in a file.
  Exec(session, "(" + ProbeCommand() + " > /workspace/bg.txt 2>&1 &) ; true");
  std::string bg;
  for (int i = 0; i < 200 && Line(bg, "mount").rfind("<no line", 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    bg = Exec(session, "cat /workspace/bg.txt 2>/dev/null");
  }
  ExpectSealed(bg, "a background process");
  // The shell harness runs the message as its command: its output events carry the probe.
  std::vector<SseEvent> events = RunMessage(session, ProbeCommand());
  std::string out;
  for (const auto& e : events) {
    if (e.type == "output") out += JsonField(e.data, "data.text") + "\n";
  }
  ExpectSealed(out, "the shell harness's command");
}

TEST_F(Boundary, EveryDescriptorOfTheServerAndOfTheRuntimeIsCloseOnExec) {
  // A parent that leaves a descriptor open (here a pipe at 9): the server marks it too.
  int left_open[2];
  ASSERT_EQ(pipe2(left_open, O_CLOEXEC), 0);
  StartServer(true, "", {{left_open[0], 9}});
  close(left_open[0]);
  close(left_open[1]);
  char target[64] = {0};
  const std::string fd9 = "/proc/" + std::to_string(server_->pid()) + "/fd/9";
  ASSERT_GT(readlink(fd9.c_str(), target, sizeof target - 1), 0) << "the server was not handed fd 9";
  const std::string session = ReadySession();
  Exec(session, "true");  // a connection to the runtime, a finished child
  std::vector<std::string> server_fds = InheritableDescriptors(server_->pid());
  EXPECT_TRUE(server_fds.empty()) << ::testing::PrintToString(server_fds);
  auto sandboxes = LiveSandboxes(server_->data_dir());
  ASSERT_FALSE(sandboxes.empty());
  for (const auto& [id, s] : sandboxes) {
    const pid_t init = s.second;
    std::vector<std::string> runtime_fds = InheritableDescriptors(init);
    EXPECT_TRUE(runtime_fds.empty()) << "runtime " << init << ": " << ::testing::PrintToString(runtime_fds);
  }
}

// The server dies (`kill -9`, then a `SIGTERM` stop) while two sessions have live sandboxes,
// each running a background process; it comes back on the same port. Every one of the next 200
// requests is answered, by the new server, within a 5 s client timeout, and no process of any
// sandbox holds a socket of the host.
TEST_F(Boundary, AfterAKillAndAStopTheServerThatComesBackAnswersEveryRequest) {
  StartServer(/*destroy_on_stop=*/false);
  std::vector<std::string> sessions = {ReadySession(), ReadySession()};
  for (const auto& s : sessions) Exec(s, "(sleep 600 &) ; true");
  const int port = server_->port();
  auto answered = [&](const char* after) {
    int ok = 0;
    std::string first_failure;
    for (int i = 0; i < 200; ++i) {
      try {
        Poco::Net::HTTPClientSession c("127.0.0.1", static_cast<Poco::UInt16>(port));
        c.setTimeout(Poco::Timespan(5, 0));
        Poco::Net::HTTPRequest req("GET", i % 2 ? "/healthz" : "/api/sessions",
                                   Poco::Net::HTTPMessage::HTTP_1_1);
        req.set("Authorization", "Bearer " PADDOCK_TEST_KEY);
        c.sendRequest(req);
        Poco::Net::HTTPResponse resp;
        std::string body;
        Poco::StreamCopier::copyToString(c.receiveResponse(resp), body);
        if (resp.getStatus() == 200) {
          ++ok;
        } else if (first_failure.empty()) {
          first_failure = std::to_string(resp.getStatus()) + " " + body;
        }
      } catch (const Poco::Exception& e) {
        if (first_failure.empty()) first_failure = e.displayText();
      }
    }
    EXPECT_EQ(ok, 200) << "after " << after << ", first failure: " << first_failure;
    std::printf("after %s: %d/200 requests answered by the new server\n", after, ok);
    const auto tcp = HostTcpInodes();
    const auto listeners = ListeningUnixPaths();
    std::vector<std::string> held;
    auto sandboxes = LiveSandboxes(server_->data_dir());
    EXPECT_GE(sandboxes.size(), 2u) << "the sandboxes did not survive " << after;
    for (const auto& [id, s] : sandboxes) {
      for (pid_t p : ProcessesOfSandbox(s.second)) {
        for (auto& h : HostSocketsHeldBy(p, tcp, listeners)) held.push_back(h);
      }
    }
    EXPECT_TRUE(held.empty()) << ::testing::PrintToString(held);
  };

  server_->Kill();
  ASSERT_OK(server_->Start());
  ASSERT_EQ(server_->port(), port);
  answered("kill -9 and restart");

  ASSERT_EQ(server_->Stop(), 0) << server_->log();
  ASSERT_OK(server_->Start());
  ASSERT_EQ(server_->port(), port);
  answered("SIGTERM stop and start");
  for (const auto& s : sessions) server_->Request("DELETE", "/api/sessions/" + s);
}

// A secret printed so that the shell harness's 16 KiB line split falls anywhere inside it never
// shows whole in one output event, nor in what a client gets by joining them.
TEST_F(Boundary, ASecretSplitAcrossOutputEventsIsRedactedInEveryPiece) {
  const std::string secret = "pdk-test-secret-0123456789abcdef";
  ServerOptions o;
  o.env = {"CONTAINER_ENV_FOO=" + secret};
  server_ = std::make_unique<ServerProcess>(std::move(o));
  ASSERT_OK(server_->Start());
  const std::string session = ReadySession();
  const int lines = static_cast<int>(secret.size()) + 5;
  const std::string program = "python3 -c \"import os\nfor k in range(" + std::to_string(lines) +
                              "): print('A' * (16384 - " + std::to_string(secret.size() + 2) +
                              " + k) + os.environ['FOO'] + 'B')\"";
  std::vector<SseEvent> events = RunMessage(session, program);
  std::string joined;
  int pieces = 0;
  for (const auto& e : events) {
    if (e.type != "output" || JsonField(e.data, "data.stream") != "stdout") continue;
    std::string text = JsonField(e.data, "data.text");
    EXPECT_EQ(text.find(secret), std::string::npos) << "event " << e.id;
    joined += text;
    ++pieces;
  }
  EXPECT_GT(pieces, lines);  // the lines were split
  EXPECT_EQ(joined.find(secret), std::string::npos);
  // Nothing but the secret is missing: every line's A's, the marker and the B are there.
  std::string expected;
  for (int k = 0; k < lines; ++k)
    expected += std::string(16384 - (secret.size() + 2) + static_cast<size_t>(k), 'A') + "[redacted]B";
  EXPECT_EQ(joined.size(), expected.size());
  EXPECT_TRUE(joined == expected) << "the joined output differs from the redacted text";
}

}  // namespace
}  // namespace paddock::testing
