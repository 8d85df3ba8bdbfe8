// The runtime's HTTP API (runtime/PROTOCOL.md).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "paths.h"

namespace paddock::runtime {

struct Options {
  std::string listen;  // "unix:/path" or "tcp:host:port"
  std::string token;
  // The token is a pool's bootstrap token: POST /v1/claim replaces it, once, with the sandbox's
  // own (a warm Kubernetes pod learns its per-sandbox token after adoption).
  bool claimable = false;
  std::vector<std::string> roots = {"/workspace", "/home/paddock", "/tmp"};
  std::map<std::string, std::string> base_env;  // every command's environment before the rest
  std::string default_cwd = "/workspace";
  int max_threads = 64;
  std::int64_t max_file_bytes = 256LL << 20;
  std::int64_t max_restore_bytes = 4LL << 30;
};

// Serves until the process ends. Calls `on_ready` once listening. Returns an error message
// when it cannot listen.
std::string Serve(const Options& options, void (*on_ready)(void*), void* ready_arg);

}  // namespace paddock::runtime
