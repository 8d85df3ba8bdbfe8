// Runtime: the state of one paddock-runtime (its token, the session's env, commands and
// background processes) and the handlers of its HTTP API, one file per concern:
// server.cpp (authentication, the route table, health, env, claim), routes_exec.cpp,
// routes_processes.cpp, routes_files.cpp, routes_archive.cpp.
#pragma once

#include "http_util.h"

namespace paddock::runtime {

class Runtime {
 public:
  explicit Runtime(const Options& options) : options_(options), roots_(options.roots) {}

  void Handle(HTTPServerRequest& req, HTTPServerResponse& resp);

 private:
  // server.cpp
  void Route(HTTPServerRequest& req, HTTPServerResponse& resp);
  void Health(HTTPServerResponse& resp);
  // Replaces a pool's bootstrap token with the sandbox's own, once.
  void ClaimToken(HTTPServerRequest& req, HTTPServerResponse& resp);
  void PutEnv(HTTPServerRequest& req, HTTPServerResponse& resp);
  std::vector<std::string> Environment(const std::map<std::string, std::string>& request_env);
  std::string Cwd(const Object& body);

  // routes_exec.cpp
  void Exec(HTTPServerRequest& req, HTTPServerResponse& resp);
  void KillExec(const std::string& id, HTTPServerResponse& resp);

  // routes_processes.cpp
  Object Describe(BackgroundProcess& p);
  std::shared_ptr<BackgroundProcess> FindProcess(const std::string& id);
  void StartProcess(HTTPServerRequest& req, HTTPServerResponse& resp);
  void ListProcesses(HTTPServerResponse& resp);
  void GetProcess(const std::string& id, HTTPServerResponse& resp);
  void ProcessLogs(const std::string& id, HTTPServerRequest& req, HTTPServerResponse& resp);
  void SignalProcess(const std::string& id, HTTPServerRequest& req, HTTPServerResponse& resp);

  // routes_files.cpp
  std::string PathParam(HTTPServerRequest& req);
  static Object StatObject(const std::string& path, const struct stat& st);
  void GetFile(HTTPServerRequest& req, HTTPServerResponse& resp);
  void PutFile(HTTPServerRequest& req, HTTPServerResponse& resp);
  void RemoveFile(HTTPServerRequest& req, HTTPServerResponse& resp);
  void StatFile(HTTPServerRequest& req, HTTPServerResponse& resp);
  void ListFiles(HTTPServerRequest& req, HTTPServerResponse& resp);

  // routes_archive.cpp
  void Archive(HTTPServerRequest& req, HTTPServerResponse& resp);
  void Restore(HTTPServerRequest& req, HTTPServerResponse& resp);

  Options options_;  // a copy: the token may be replaced (ClaimToken)
  Roots roots_;
  std::mutex mu_;
  bool claimable_ = options_.claimable;
  std::map<std::string, std::string> session_env_;
  std::map<std::string, std::pair<pid_t, std::shared_ptr<std::atomic<bool>>>> execs_;
  std::map<std::string, std::shared_ptr<BackgroundProcess>> processes_;
  std::atomic<std::uint64_t> next_process_{0};
  std::atomic<std::uint64_t> next_spool_{0};
};

}  // namespace paddock::runtime
