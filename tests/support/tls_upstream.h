// A recording TLS upstream for the credential vault tests: tests/e2e/vault_upstream.py under
// python3, with certificates of a CA of its own.
#pragma once

#include <signal.h>
#include <sys/wait.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "paddock/process.h"
#include "paddock/testing/assert.h"
#include "services/vault/certificate_authority.h"
#include "testing.h"

namespace paddock::testing {

// The upstream: tests/e2e/vault_upstream.py under python3, with certificates of a CA of its
// own (a "public" CA the server is told to trust with [vault] upstream_ca_file).
class Upstream {
 public:
  explicit Upstream(const std::string& dir) : dir_(dir) {}
  ~Upstream() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  void Start(const std::string& name) {
    Result<std::unique_ptr<CertificateAuthority>> ca =
        CertificateAuthority::LoadOrCreate(dir_ + "/public-ca", "Public test CA");
    ASSERT_OK(ca);
    ca_file_ = (*ca)->certificate_file();
    auto write = [&](const std::string& host) {
      Result<IssuedCertificate> c = (*ca)->Issue(host);
      EXPECT_OK(c);
      std::ofstream(dir_ + "/" + host + ".crt") << c->certificate_pem;
      std::ofstream(dir_ + "/" + host + ".key") << c->key_pem;
    };
    write("127.0.0.2");
    write(name);
    record_ = dir_ + "/record.jsonl";
    std::ofstream(record_).close();
    const std::string port_file = dir_ + "/port";
    process::ChildSpec spec;
    spec.argv = {*process::FindExecutable("python3"),
                 SourceDir() + "/tests/e2e/vault_upstream.py",
                 dir_ + "/127.0.0.2.crt",
                 dir_ + "/127.0.0.2.key",
                 dir_ + "/" + name + ".crt",
                 dir_ + "/" + name + ".key",
                 record_,
                 port_file};
    spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
    Result<pid_t> pid = process::Spawn(spec);
    ASSERT_OK(pid);
    pid_ = *pid;
    for (int i = 0; i < 200 && !std::filesystem::exists(port_file); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in(port_file);
    in >> port_;
    ASSERT_GT(port_, 0) << "the upstream did not start";
  }
  int port() const { return port_; }
  const std::string& ca_file() const { return ca_file_; }
  // Every request the upstream received, one JSON object a line.
  std::string Record() const {
    std::ifstream in(record_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The recorded lines whose path starts with `path`.
  std::vector<std::string> RequestsTo(const std::string& path) const {
    std::vector<std::string> out;
    std::istringstream in(Record());
    for (std::string line; std::getline(in, line);) {
      if (JsonField(line, "path").rfind(path, 0) == 0) out.push_back(line);
    }
    return out;
  }
  // The value of header `name` (as sent) in a recorded line; "" when absent.
  static std::string Header(const std::string& line, const std::string& name) {
    for (int i = 0; i < 64; ++i) {
      const std::string key = "headers." + std::to_string(i);
      std::string n = JsonField(line, key + ".0");
      if (n.empty()) break;
      if (Lower(n) == Lower(name)) return JsonField(line, key + ".1");
    }
    return "";
  }

 private:
  static std::string Lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  std::string dir_;
  std::string record_;
  std::string ca_file_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace paddock::testing
