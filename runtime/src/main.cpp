// paddock-runtime: the agent inside every sandbox. See runtime/PROTOCOL.md.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <initializer_list>
#include <vector>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "children.h"
#include "forwarder.h"
#include "server.h"

using namespace paddock::runtime;

namespace {

constexpr char kUsage[] =
    "usage: paddock-runtime --listen unix:PATH|tcp:HOST:PORT (--token-fd N | --token-file PATH)\n"
    "                       [--ready-fd N] [--root DIR]... [--env NAME=VALUE]... [--cwd DIR]\n"
    "                       [--egress-socket PATH --egress-port PORT] [--claimable]\n"
    "The token may also come from the file named by PADDOCK_RUNTIME_TOKEN_FILE.\n";

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "paddock-runtime: %s\n", message.c_str());
  std::exit(2);
}

std::string ReadFd(int fd) {
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

void SignalReady(void* arg) {
  int fd = *static_cast<int*>(arg);
  if (fd < 0) return;
  (void)!write(fd, "ready\n", 6);
  close(fd);
}

// Closes every descriptor from 3 up but `keep` (what the caller named on the command line):
// whatever the runtime was started with stays out of its children's and its own way.
void CloseInheritedDescriptors(std::initializer_list<int> keep) {
  int next = 3;
  std::vector<int> sorted(keep);
  std::sort(sorted.begin(), sorted.end());
  for (int fd : sorted) {
    if (fd < next) continue;
    if (fd > next) syscall(SYS_close_range, static_cast<unsigned>(next), static_cast<unsigned>(fd - 1), 0u);
    next = fd + 1;
  }
  syscall(SYS_close_range, static_cast<unsigned>(next), ~0u, 0u);
}

}  // namespace

int main(int argc, char** argv) {
  // Code in the sandbox runs as our uid: it must not ptrace us or read our memory, environment
  // or descriptors through /proc/1. Children are dumpable again after their exec.
  prctl(PR_SET_DUMPABLE, 0);
  Options options;
  int ready_fd = -1;
  std::string token_file;
  int token_fd = -1;
  std::string egress_socket;
  int egress_port = 0;
  bool roots_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(arg + " needs a value\n" + kUsage);
      return argv[++i];
    };
    if (arg == "--listen") {
      options.listen = value();
    } else if (arg == "--token-fd") {
      token_fd = std::atoi(value().c_str());
    } else if (arg == "--token-file") {
      token_file = value();
    } else if (arg == "--claimable") {
      options.claimable = true;
    } else if (arg == "--ready-fd") {
      ready_fd = std::atoi(value().c_str());
    } else if (arg == "--root") {
      if (!roots_given) options.roots.clear();
      roots_given = true;
      options.roots.push_back(value());
    } else if (arg == "--env") {
      std::string kv = value();
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) Die("--env needs NAME=VALUE, got '" + kv + "'");
      options.base_env[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (arg == "--cwd") {
      options.default_cwd = value();
    } else if (arg == "--egress-socket") {
      egress_socket = value();
    } else if (arg == "--egress-port") {
      egress_port = std::atoi(value().c_str());
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else {
      Die("unknown argument '" + arg + "'\n" + kUsage);
    }
  }
  if (options.listen.empty()) Die(std::string("--listen is required\n") + kUsage);
  CloseInheritedDescriptors({token_fd, ready_fd});
  if (token_fd >= 0) {
    options.token = Trim(ReadFd(token_fd));
  } else {
    if (token_file.empty() && std::getenv("PADDOCK_RUNTIME_TOKEN_FILE")) {
      token_file = std::getenv("PADDOCK_RUNTIME_TOKEN_FILE");
    }
    if (token_file.empty()) Die(std::string("a token is required\n") + kUsage);
    std::ifstream in(token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    options.token = Trim(ss.str());
  }
  if (options.token.size() < 16) Die("the token must be at least 16 characters");
  if (!options.base_env.count("PATH")) options.base_env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  if (!egress_socket.empty()) {
    if (egress_port <= 0 || egress_port > 65535) Die("--egress-port must be 1..65535");
    std::string err = StartForwarder(egress_port, egress_socket);
    if (!err.empty()) Die(err);
    std::string proxy = "http://127.0.0.1:" + std::to_string(egress_port);
    for (const char* name : {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"}) {
      options.base_env.emplace(name, proxy);
    }
    options.base_env.emplace("NO_PROXY", "localhost,127.0.0.1,::1");
    options.base_env.emplace("no_proxy", "localhost,127.0.0.1,::1");
    // With the credential vault on, the proxy's directory holds the trust bundle (the system's
    // and the install's CA: kEgressCaBundle in the SDK) and the CA alone: every client that
    // reads a variable for its trust store is pointed at them.
    const std::string dir = egress_socket.substr(0, egress_socket.rfind('/') + 1);
    if (access((dir + "ca-bundle.crt").c_str(), R_OK) == 0) {
      for (const char* name : {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"}) {
        options.base_env.emplace(name, dir + "ca-bundle.crt");
      }
      options.base_env.emplace("NODE_EXTRA_CA_CERTS", dir + "ca.crt");
    }
  }
  // As PID 1 only handled signals are delivered; SIGTERM ends the sandbox cleanly.
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, [](int) { _exit(0); });
  signal(SIGINT, [](int) { _exit(0); });
  // Outside a sandbox (tests), orphans of our commands are reparented to us.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  Children::Instance();
  std::string err = Serve(options, SignalReady, &ready_fd);
  Die(err);
}
