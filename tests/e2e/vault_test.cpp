// The credential vault from the side of code inside a sandbox that wants a real key: real
// clients in a real bubblewrap sandbox (curl on OpenSSL, git on GnuTLS, Node's TLS, Python's
// urllib) reach a recording TLS upstream through the egress proxy. The upstream must see the
// values; the sandbox, its snapshot, the events and the log only placeholders; a placeholder
// sent anywhere its binding does not say is refused and never reaches the upstream.
#include <Poco/Base64Encoder.h>
#include <Poco/Net/DNS.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "paddock/process.h"
#include "paddock/testing/assert.h"
#include "services/vault/certificate_authority.h"
#include "testing.h"
#include "tls_upstream.h"
#include "two_teams.h"

namespace paddock::testing {
namespace {

namespace fs = std::filesystem;

std::string Base64(const std::string& raw) {
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.rdbuf()->setLineLength(0);
  encoder << raw;
  encoder.close();
  return out.str();
}

const std::string kApiKey = "sk-vault-real-api-key-6c1f0e9a";
const std::string kGitToken = "ghp_vault-real-git-token-2b7d94c3";
const std::string kQueryKey = "AIza-vault+real/query=key-90e1";
const std::string kOtherKey = "other-vault-real-key-f03a5d18";

class Vault : public TwoTeams {
 protected:
  void SetUp() override {
    host_ = Poco::Net::DNS::hostName();
    upstream_ = std::make_unique<Upstream>(dir_.path());
    upstream_->Start(host_);
    if (HasFatalFailure()) return;
    named_ = host_ + ":" + std::to_string(upstream_->port());
    ip_ = "127.0.0.2:" + std::to_string(upstream_->port());
    ServerOptions o;
    o.extra_toml = "[egress]\nallow = [\"" + named_ + "\", \"" + ip_ + "\"]\n[vault]\nupstream_ca_file = \"" +
                   upstream_->ca_file() + "\"\n" + MoreVaultToml();
    StartTeams(o, {"viewer", "member", "admin"});
    if (HasFatalFailure()) return;
    Bind("API_KEY", kApiKey, "{\"hosts\":[\"" + named_ + "\"],\"header\":\"x-api-key\"}");
    Bind("GIT_TOKEN", kGitToken, "{\"hosts\":[\"" + named_ + "\"],\"basic\":true}");
    Bind("QUERY_KEY", kQueryKey, "{\"hosts\":[\"" + named_ + "\"],\"query\":\"key\"}");
    Bind("OTHER_KEY", kOtherKey,
         "{\"hosts\":[\"" + ip_ + "\"],\"header\":\"Authorization\",\"format\":\"Bearer {}\"}");
    agent_ =
        Agent("alpha", R"(,"secrets":["API_KEY","GIT_TOKEN","QUERY_KEY",{"name":"OTHER_KEY","as":"file"}])");
    session_ = Session("alpha", agent_);
  }

  virtual std::string MoreVaultToml() const { return ""; }

  void Bind(const std::string& name, const std::string& value, const std::string& vault) {
    auto r = As("alpha.admin", "PUT", "/api/secrets/" + name,
                "{\"value\":" + Quoted(value) + ",\"vault\":" + vault + "}");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  static std::string Quoted(const std::string& s) {
    std::string j = Json("v", s);
    return j.substr(5, j.size() - 6);
  }
  // The command's stdout and stderr, through the session's sandbox.
  std::string Sh(const std::string& command) { return Exec("alpha", session_, command + " 2>&1"); }
  std::string Curl(const std::string& args) { return Sh("curl -sS --max-time 20 " + args); }

  std::string host_;
  std::string named_;  // the upstream by name: the host API_KEY, GIT_TOKEN and QUERY_KEY are bound to
  std::string ip_;     // the upstream by address: the host OTHER_KEY is bound to
  std::unique_ptr<Upstream> upstream_;
  std::string agent_;
  std::string session_;
};

TEST_P(Vault, ClientsInTheSandboxHoldPlaceholdersAndTheUpstreamGetsTheValues) {
  const std::string placeholder = Sh("printf %s \"$API_KEY\"");
  EXPECT_EQ(placeholder.rfind("pdk_ph_", 0), 0u) << placeholder;
  EXPECT_EQ(placeholder.size(), 55u) << placeholder;
  EXPECT_EQ(Sh("head -c 7 /tmp/paddock-secrets/OTHER_KEY"), "pdk_ph_");
  // Unique per session: another session of the same agent holds another.
  const std::string other = Session("alpha", agent_);
  const std::string theirs = Exec("alpha", other, "printf %s \"$API_KEY\"");
  EXPECT_EQ(theirs.rfind("pdk_ph_", 0), 0u);
  EXPECT_NE(theirs, placeholder);
  // The variables common clients read point at the bundle with the install's CA.
  EXPECT_EQ(
      Sh("echo $SSL_CERT_FILE $NODE_EXTRA_CA_CERTS $REQUESTS_CA_BUNDLE $GIT_SSL_CAINFO $CURL_CA_BUNDLE"),
      "/run/paddock-egress/ca-bundle.crt /run/paddock-egress/ca.crt /run/paddock-egress/ca-bundle.crt "
      "/run/paddock-egress/ca-bundle.crt /run/paddock-egress/ca-bundle.crt\n");

  // curl (OpenSSL), a header.
  EXPECT_EQ(Curl("-H \"x-api-key: $API_KEY\" https://" + named_ + "/curl"), "ok\n");
  // Python's urllib, a query parameter (its value percent-encoded on the way).
  EXPECT_EQ(Sh("python3 -c \"import os, urllib.request; print(urllib.request.urlopen('https://" + named_ +
               "/python?key=' + os.environ['QUERY_KEY'] + '&x=1', timeout=20).read().decode().strip())\""),
            "ok\n");
  // Node's TLS client (trusting NODE_EXTRA_CA_CERTS), through the proxy's CONNECT, a file's
  // placeholder in the header the binding names.
  const std::string node = R"JS(
const http = require('http'), tls = require('tls'), fs = require('fs');
const proxy = new URL(process.env.HTTPS_PROXY);
const key = fs.readFileSync('/tmp/paddock-secrets/OTHER_KEY', 'utf8');
const [host, port] = process.argv[1].split(':');
http.request({host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: process.argv[1]})
  .on('connect', (res, socket) => {
    const t = tls.connect({socket, host, servername: host.match(/^[0-9.]+$/) ? undefined : host}, () => {
      t.write(`GET /node HTTP/1.1\r\nHost: ${process.argv[1]}\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`);
    });
    let got = '';
    t.on('data', (d) => got += d).on('end', () => console.log(got.split('\r\n')[0]))
     .on('error', (e) => console.log('error', e.message));
  }).end();
)JS";
  EXPECT_EQ(Sh("node -e \"$(printf %s " + Base64(node) + " | base64 -d)\" " + ip_), "HTTP/1.1 200 OK\n");
  // git over HTTPS (libcurl-gnutls: GnuTLS checks the chain), basic credentials.
  std::string git = Sh("git ls-remote https://x-access-token:$GIT_TOKEN@" + named_ + "/git/repo.git");
  EXPECT_NE(git.find("not found"), std::string::npos) << git;  // the 404 after the credentials

  auto one = [&](const std::string& path) {
    std::vector<std::string> got = upstream_->RequestsTo(path);
    EXPECT_FALSE(got.empty()) << path << " never reached the upstream:\n" << upstream_->Record();
    return got.empty() ? std::string() : got.back();
  };
  EXPECT_EQ(Upstream::Header(one("/curl"), "x-api-key"), kApiKey);
  EXPECT_EQ(JsonField(one("/python"), "path"), "/python?key=AIza-vault%2Breal%2Fquery%3Dkey-90e1&x=1");
  EXPECT_EQ(Upstream::Header(one("/node"), "Authorization"), "Bearer " + kOtherKey);
  std::string basic = Upstream::Header(one("/git/repo.git/info/refs"), "Authorization");
  ASSERT_EQ(basic.rfind("Basic ", 0), 0u) << upstream_->Record();
  EXPECT_EQ(Unbase64(basic.substr(6)), "x-access-token:" + kGitToken);
  // The upstream never saw a placeholder.
  EXPECT_EQ(upstream_->Record().find("pdk_ph_"), std::string::npos) << upstream_->Record();
}

TEST_P(Vault, APlaceholderWhereItsBindingDoesNotSayIsRefusedAndNeverSent) {
  // To a host the proxy reads (OTHER_KEY is bound there), API_KEY's placeholder is refused.
  std::string out = Curl("-i -H \"x-api-key: $API_KEY\" https://" + ip_ + "/wrong-host");
  EXPECT_NE(out.find("403 Forbidden"), std::string::npos) << out;
  EXPECT_NE(out.find("'API_KEY' is not bound to 127.0.0.2"), std::string::npos) << out;
  // In another place than its binding says: the URL instead of the header.
  out = Curl("-i \"https://" + named_ + "/wrong-place?x=$API_KEY\"");
  EXPECT_NE(out.find("403 Forbidden"), std::string::npos) << out;
  EXPECT_NE(out.find("goes in the header x-api-key only"), std::string::npos) << out;
  // Plain HTTP, even to the host it is bound to: a value never goes out in the clear.
  out = Curl("-i -H \"x-api-key: $API_KEY\" http://" + named_ + "/plain");
  EXPECT_NE(out.find("403 Forbidden"), std::string::npos) << out;
  EXPECT_NE(out.find("over TLS only"), std::string::npos) << out;
  // A made-up or mangled placeholder is no entry's.
  out = Curl("-i -H \"x-api-key: pdk_ph_0123456789abcdef0123456789abcdef0123456789abcdef\" https://" +
             named_ + "/made-up");
  EXPECT_NE(out.find("403 Forbidden"), std::string::npos) << out;
  // Another session's placeholder is not this one's.
  const std::string other = Session("alpha", agent_);
  const std::string theirs = Exec("alpha", other, "printf %s \"$API_KEY\"");
  out = Curl("-i -H \"x-api-key: " + theirs + "\" https://" + named_ + "/stolen");
  EXPECT_NE(out.find("403 Forbidden"), std::string::npos) << out;
  for (const char* path : {"/wrong-host", "/wrong-place", "/plain", "/made-up", "/stolen"}) {
    EXPECT_TRUE(upstream_->RequestsTo(path).empty()) << path << " reached the upstream";
  }
  // Each refusal is an event on the session, naming the secret and the host, and a metric.
  auto events = As("alpha.viewer", "GET", "/api/sessions/" + session_ + "/events?limit=500");
  ASSERT_EQ(events.status, 200) << events.body;
  EXPECT_NE(events.body.find("\"vault.refused\""), std::string::npos) << events.body;
  EXPECT_NE(events.body.find("\"secret\":\"API_KEY\",\"host\":\"127.0.0.2\""), std::string::npos)
      << events.body;
  auto metrics = server_->Request("GET", "/metrics");
  EXPECT_NE(metrics.body.find("paddock_vault_requests_total{result=\"refused\"} 5"), std::string::npos)
      << metrics.body;
}

TEST_P(Vault, ChangingOrDeletingAnEntryTakesEffectOnTheNextRequest) {
  EXPECT_EQ(Curl("-H \"x-api-key: $API_KEY\" https://" + named_ + "/before"), "ok\n");
  const std::string rotated = "sk-vault-rotated-key-aa41c7d2";
  Bind("API_KEY", rotated, "{\"hosts\":[\"" + named_ + "\"],\"header\":\"x-api-key\"}");
  EXPECT_EQ(Curl("-H \"x-api-key: $API_KEY\" https://" + named_ + "/rotated"), "ok\n");
  ASSERT_EQ(upstream_->RequestsTo("/rotated").size(), 1u);
  EXPECT_EQ(Upstream::Header(upstream_->RequestsTo("/rotated")[0], "x-api-key"), rotated);
  // Bound elsewhere now: this host no longer gets it.
  Bind("API_KEY", rotated, "{\"hosts\":[\"" + ip_ + "\"],\"header\":\"x-api-key\"}");
  EXPECT_NE(Curl("-i -H \"x-api-key: $API_KEY\" https://" + named_ + "/rebound").find("403 Forbidden"),
            std::string::npos);
  // Deleted while a process of the sandbox holds its placeholder: that process's next request
  // is refused. (The process reports what it got to the upstream, without a placeholder:
  // the sandbox itself takes no more commands, as its agent names a secret that is gone.)
  Sh("(sleep 2; code=$(curl -s -o /dev/null -w '%{http_code}' -H \"x-api-key: $API_KEY\" https://" + ip_ +
     "/deleted); curl -s https://" + named_ + "/report?code=$code) >/dev/null 2>&1 </dev/null &");
  ASSERT_EQ(As("alpha.admin", "DELETE", "/api/secrets/API_KEY").status, 204);
  for (int i = 0; i < 200 && upstream_->RequestsTo("/report").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(upstream_->RequestsTo("/report").size(), 1u) << upstream_->Record();
  EXPECT_EQ(JsonField(upstream_->RequestsTo("/report")[0], "path"), "/report?code=403");
  EXPECT_TRUE(upstream_->RequestsTo("/rebound").empty());
  EXPECT_TRUE(upstream_->RequestsTo("/deleted").empty());
}

TEST_P(Vault, ARotatedCaTakesOverInTheRunningServerAndItsSandboxesAndTheOldOneIsTrustedNoMore) {
  EXPECT_EQ(Curl("-H \"x-api-key: $API_KEY\" https://" + named_ + "/before"), "ok\n");
  const std::string before = Sh("cat /run/paddock-egress/ca.crt");
  ASSERT_NE(before.find("BEGIN CERTIFICATE"), std::string::npos) << before;
  Sh("cp /run/paddock-egress/ca.crt /tmp/old-ca.crt");

  auto [code, out] = RunCommand({PaddockBinary(), "rotate-ca", "--config", server_->config_path()});
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("rotated"), std::string::npos) << out;
  // The running server follows, and rewrites the trust files of the sandbox it serves.
  std::string after;
  for (int i = 0; i < 100; ++i) {
    after = Sh("cat /run/paddock-egress/ca.crt");
    if (after != before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(after, before) << "the sandbox still trusts only the old CA\n" << server_->log();
  std::ifstream written(server_->data_dir() + "/vault/ca.crt");
  std::stringstream ca;
  ca << written.rdbuf();
  EXPECT_EQ(after, ca.str());
  EXPECT_NE(Sh("cat /etc/ssl/certs/ca-certificates.crt").find(after), std::string::npos)
      << "the sandbox's system trust store lacks the new CA";

  // A client started now gets the value in through a certificate of the new CA ...
  EXPECT_EQ(Curl("-H \"x-api-key: $API_KEY\" https://" + named_ + "/after"), "ok\n");
  std::vector<std::string> got = upstream_->RequestsTo("/after");
  ASSERT_EQ(got.size(), 1u) << upstream_->Record();
  EXPECT_EQ(Upstream::Header(got[0], "x-api-key"), kApiKey);
  // ... and one that trusts only the old CA is turned away by its own TLS check.
  const std::string old =
      Sh("curl -sS --max-time 20 --cacert /tmp/old-ca.crt -H \"x-api-key: $API_KEY\" https://" + named_ +
         "/old; echo exit=$?");
  EXPECT_NE(old.find("exit=60"), std::string::npos) << old;  // CURLE_PEER_FAILED_VERIFICATION
  EXPECT_TRUE(upstream_->RequestsTo("/old").empty()) << upstream_->Record();
  EXPECT_NE(server_->log().find("the vault CA changed"), std::string::npos);
}

TEST_P(Vault, AStreamedResponseArrivesAsItIsSentAndKeepAliveCarriesOn) {
  // The client reads the first event, then asks for the rest: were the stream held back until
  // it ended, the first event would come only after the upstream gave up waiting.
  const std::string py =
      "import os, urllib.request\n"
      "base = 'https://" +
      named_ +
      "'\n"
      "h = {'x-api-key': os.environ['API_KEY']}\n"
      "s = urllib.request.urlopen(urllib.request.Request(base + '/sse', headers=h), timeout=60)\n"
      "first = s.readline().decode().strip(); s.readline()\n"
      "urllib.request.urlopen(urllib.request.Request(base + '/release', headers=h), timeout=20).read()\n"
      "print(first, s.readline().decode().strip())\n";
  EXPECT_EQ(Sh("python3 -c \"$(printf %s " + Base64(py) + " | base64 -d)\""), "data: one data: two\n");
  // Three requests on one connection (curl reuses it), each with the value put in.
  std::string three = Curl("-H \"x-api-key: $API_KEY\" https://" + named_ + "/ka1 https://" + named_ +
                           "/ka2 https://" + named_ + "/ka3");
  EXPECT_EQ(three, "ok\nok\nok\n");
  for (const char* path : {"/ka1", "/ka2", "/ka3"}) {
    ASSERT_EQ(upstream_->RequestsTo(path).size(), 1u) << path;
    EXPECT_EQ(Upstream::Header(upstream_->RequestsTo(path)[0], "x-api-key"), kApiKey) << path;
  }
}

TEST_P(Vault, TheValueIsNowhereInTheSandboxItsSnapshotTheEventsOrTheLog) {
  EXPECT_EQ(Curl("-H \"x-api-key: $API_KEY\" https://" + named_ + "/used"), "ok\n");
  // Everything the sandbox can read that might hold a value (base64: the server redacts
  // values it knows from output, which would hide a leak).
  const std::string everything = Unbase64(Exec(
      "alpha", session_,
      "{ for p in /proc/[0-9]*; do cat $p/environ $p/cmdline; echo; done; "
      "find /tmp /workspace \"$HOME\" /run/paddock-egress -xdev -type f -exec cat {} + ; } 2>/dev/null | "
      "base64 -w0"));
  ASSERT_GT(everything.size(), 1000u);
  EXPECT_NE(everything.find("pdk_ph_"), std::string::npos) << "the probe sees nothing";
  // A run writes the placeholder into the workspace, which the snapshot keeps.
  Run("alpha", session_, "echo \"$API_KEY $GIT_TOKEN $QUERY_KEY\" > /workspace/keys.txt");
  auto store = Store();
  ASSERT_TRUE(store);
  Result<std::optional<SnapshotInfo>> latest = store->LatestSnapshot(session_);
  ASSERT_OK(latest);
  ASSERT_TRUE(latest->has_value());
  Result<std::string> archive = store->ReadSnapshot(session_, (*latest)->version);
  ASSERT_OK(archive);
  const std::string tarball = dir_ / "snapshot.tar.gz";
  std::ofstream(tarball, std::ios::binary) << *archive;
  auto [code, contents] = RunCommand({"sh", "-c", "tar -xzOf " + tarball + " | base64 -w0"});
  ASSERT_EQ(code, 0) << contents;
  const std::string unpacked = Unbase64(contents);
  EXPECT_NE(unpacked.find("pdk_ph_"), std::string::npos) << "the snapshot does not hold keys.txt";
  auto events = As("alpha.viewer", "GET", "/api/sessions/" + session_ + "/events?limit=500");
  for (const std::string& v : {kApiKey, kGitToken, kQueryKey, kOtherKey}) {
    EXPECT_EQ(everything.find(v), std::string::npos) << v << " is readable in the sandbox";
    EXPECT_EQ(unpacked.find(v), std::string::npos) << v << " is in the snapshot";
    EXPECT_EQ(events.body.find(v), std::string::npos) << v << " is in the events";
    EXPECT_EQ(server_->log().find(v), std::string::npos) << v << " is in the log";
  }
  // The CA's key stays beside the server.
  EXPECT_EQ(Sh("cat " + server_->data_dir() + "/vault/ca.key >/dev/null && echo readable || echo absent"),
            "absent\n");
  EXPECT_EQ(everything.find("PRIVATE KEY"), std::string::npos);
}

TEST_P(Vault, ABadBindingIsRefusedWithWhatToFix) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{\"header\":\"x-api-key\"}", "must name at least one host"},
      {"{\"hosts\":[\"api.example.com\"]}", "exactly one way"},
      {"{\"hosts\":[\"api.example.com\"],\"header\":\"x\",\"query\":\"k\"}", "exactly one way"},
      {"{\"hosts\":[\"api.example.com\"],\"header\":\"Host\"}", "frames or routes"},
      {"{\"hosts\":[\"api.example.com\"],\"header\":\"Authorization\",\"format\":\"Bearer\"}", "'{}'"},
      {"{\"hosts\":[\"*\"],\"header\":\"x-k\"}", "*.domain"},
      {"{\"hosts\":[\"api.example.com:99999\"],\"header\":\"x-k\"}", "1..65535"},
      {"{\"hosts\":[\"a b\"],\"header\":\"x-k\"}", "letters, digits"},
      {"{\"hosts\":[\"api.example.com\"],\"query\":\"a&b\"}", "query parameter name"},
      {"{\"hosts\":[\"api.example.com\"],\"header\":\"x-k\",\"agents\":[\"no such\"]}", "not an agent id"},
      {"{\"hosts\":[\"api.example.com\"],\"header\":\"x-k\",\"to\":\"x\"}", "no member 'to'"},
      {"[1]", "must be an object"},
  };
  for (const auto& [vault, says] : bad) {
    auto r = As("alpha.admin", "PUT", "/api/secrets/BAD_ONE",
                "{\"value\":\"abcdefghijkl\",\"vault\":" + vault + "}");
    EXPECT_EQ(r.status, 400) << vault << ": " << r.body;
    EXPECT_NE(JsonField(r.body, "error.message").find(says), std::string::npos) << vault << ": " << r.body;
  }
  EXPECT_EQ(JsonField(As("alpha.admin", "GET", "/api/secrets").body, "secrets.4.name"), "") << "one was kept";
  // A placeholder is not a value.
  auto r = As("alpha.admin", "PUT", "/api/secrets/BAD_ONE",
              "{\"value\":\"pdk_ph_0123456789abcdef0123456789abcdef0123456789abcdef\"}");
  EXPECT_EQ(r.status, 400) << r.body;
  // An entry lists its binding, never its value; an agent it does not list gets no sandbox.
  auto listed = As("alpha.viewer", "GET", "/api/secrets");
  EXPECT_EQ(JsonField(listed.body, "secrets.0.name"), "API_KEY") << listed.body;
  EXPECT_EQ(JsonField(listed.body, "secrets.0.vault.header"), "x-api-key") << listed.body;
  EXPECT_EQ(JsonField(listed.body, "secrets.0.vault.hosts.0"), named_) << listed.body;
  EXPECT_EQ(listed.body.find(kApiKey), std::string::npos);
  Bind("ONLY_CODER", "only-for-the-coder-value",
       "{\"hosts\":[\"" + named_ + "\"],\"header\":\"x-k\",\"agents\":[\"agt_coder\"]}");
  const std::string session = Session("alpha", Agent("alpha", R"(,"secrets":["ONLY_CODER"])"));
  auto exec =
      As("alpha.member", "POST", "/api/sessions/" + session + "/sandbox/exec", Json("command", "true"));
  EXPECT_NE(exec.status, 200);
  EXPECT_NE(exec.body.find("does not list it in 'agents'"), std::string::npos) << exec.body;
}

INSTANTIATE_TEST_SUITE_P(Stores, Vault, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// [vault] inspect = "all": the proxy reads every TLS connection, so a placeholder is refused
// wherever its binding does not say, not only at the hosts some entry is bound to.
class VaultInspectAll : public Vault {
 protected:
  std::string MoreVaultToml() const override { return "inspect = \"all\"\n"; }
};

TEST_P(VaultInspectAll, APlaceholderToAHostNoEntryIsBoundToIsRefusedAndOtherTrafficPasses) {
  // OTHER_KEY becomes a plain secret: no entry is bound to the upstream by address any more.
  auto plain = As("alpha.admin", "PUT", "/api/secrets/OTHER_KEY", Json("value", kOtherKey));
  ASSERT_EQ(plain.status, 200) << plain.body;
  // Traffic without placeholders goes through, read by the proxy (its certificate, the
  // install's CA).
  EXPECT_EQ(Curl("https://" + ip_ + "/plain"), "ok\n");
  EXPECT_EQ(upstream_->RequestsTo("/plain").size(), 1u) << upstream_->Record();
  const std::string issuer =
      Sh("curl -sS -v -o /dev/null https://" + ip_ + "/issuer 2>&1 | grep -i 'issuer:'");
  EXPECT_NE(issuer.find("Paddock egress CA"), std::string::npos) << issuer;
  // A placeholder there: refused, never sent, recorded.
  EXPECT_EQ(Curl("-o /dev/null -w '%{http_code}' -H \"x-api-key: $API_KEY\" https://" + ip_ + "/anywhere"),
            "403");
  EXPECT_TRUE(upstream_->RequestsTo("/anywhere").empty()) << upstream_->Record();
  auto events = As("alpha.viewer", "GET", "/api/sessions/" + session_ + "/events?limit=500");
  EXPECT_NE(events.body.find("vault.refused"), std::string::npos) << events.body;
  EXPECT_NE(events.body.find("is not bound to 127.0.0.2"), std::string::npos) << events.body;
}

INSTANTIATE_TEST_SUITE_P(Stores, VaultInspectAll, ::testing::Values("sqlite"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace paddock::testing
