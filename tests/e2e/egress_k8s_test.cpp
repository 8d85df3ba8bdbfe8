// Sandboxes on Kubernetes reach the network only through a `paddock egress` process, and the
// credential vault works there as on one machine. The fake API server's pods (real
// paddock-runtime jails) are the sandboxes of a real `paddock serve`; a real `paddock egress`
// beside it, on the same Postgres and the same vault keys, is their way out to a recording TLS
// upstream. From the side of whoever holds a pass: it opens its own sandbox's allow list and
// placeholders only, and nothing once its sandbox is gone.
#include <Poco/JSON/Parser.h>
#include <Poco/Net/DNS.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "../integration/cluster.h"
#include "fake_kube.h"
#include "paddock/testing/assert.h"
#include "testing.h"
#include "tls_upstream.h"
#include "two_teams.h"

namespace paddock::testing {
namespace {

using Poco::JSON::Object;

const std::string kApiKey = "sk-k8s-vault-real-key-3e8b1d27";
const std::string kSecretsKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";  // 32 bytes, base64

std::string RuntimeBinary() {
  const std::string paddock = PaddockBinary();
  return paddock.substr(0, paddock.rfind('/') + 1) + "paddock-runtime";
}

class RemoteEgress : public ::testing::Test {
 protected:
  void SetUp() override {
    // The cluster, with the profile's template and pool as deployed (deploy/base).
    FakeKubeOptions o;
    o.crd_dir = PADDOCK_TEST_CRD_DIR;
    o.data_dir = dir_.path() + "/kube";
    o.runtime = RuntimeBinary();
    kube_ = std::make_unique<FakeKube>(o);
    ASSERT_OK(kube_->Start());
    const std::string kubeconfig = kube_->WriteKubeconfig(dir_.path() + "/kubeconfig");
    for (const std::string& doc : YamlDocumentsAsJson(SourceDir() + "/deploy/base/sandbox-templates.yaml")) {
      Poco::JSON::Parser p;
      Object::Ptr obj = p.parse(doc).extract<Object::Ptr>();
      if (obj->getValue<std::string>("kind") == "SandboxWarmPool") obj->getObject("spec")->set("replicas", 0);
      obj->getObject("metadata")->set("namespace", "paddock");
      std::ostringstream ss;
      obj->stringify(ss);
      ASSERT_OK(kube_->Create(ss.str()));
    }

    host_ = Poco::Net::DNS::hostName();
    upstream_ = std::make_unique<Upstream>(dir_.path());
    upstream_->Start(host_);
    if (HasFatalFailure()) return;
    named_ = host_ + ":" + std::to_string(upstream_->port());
    ip_ = "127.0.0.2:" + std::to_string(upstream_->port());

    // What both processes share: the store, the team secrets' key, the vault's keys and the
    // pass key (deploy/base: Secrets mounted into both Deployments).
    const std::string store = StoreToml(TestPostgresConninfo(), UniqueSchema(), true);
    const std::string egress_keys =
        "allow = [\"" + named_ + "\", \"" + ip_ + "\"]\npass_key_file = \"" + dir_.path() + "/pass.key\"\n";
    const std::string vault =
        "[vault]\ndir = \"" + dir_.path() + "/vault\"\nupstream_ca_file = \"" + upstream_->ca_file() + "\"\n";
    const std::vector<std::string> env = {"PADDOCK_SECRETS_KEY=" + kSecretsKey};

    ServerOptions e;
    e.args = {"egress", "--egress-port", "0", "--egress-port-file", dir_.path() + "/egress.port"};
    e.store_toml = store;
    e.extra_toml = "[egress]\n" + egress_keys + vault;
    e.env = env;
    egress_ = std::make_unique<ServerProcess>(e);
    ASSERT_OK(egress_->Start());
    std::ifstream(dir_.path() + "/egress.port") >> egress_port_;
    ASSERT_GT(egress_port_, 0);

    ServerOptions a;
    a.store_toml = store;
    a.sandbox_toml = "[sandbox]\ntype = \"k8s\"\n[sandbox.config]\nkubeconfig = \"" + kubeconfig +
                     "\"\nmode = \"claim\"\nready_timeout = \"60s\"\n";
    a.extra_toml =
        "[egress]\nremote = \"localhost:" + std::to_string(egress_port_) + "\"\n" + egress_keys + vault;
    a.env = env;
    api_ = std::make_unique<ServerProcess>(a);
    ASSERT_OK(api_->Start());

    auto secret = api_->Request("PUT", "/api/secrets/API_KEY",
                                "{\"value\":\"" + kApiKey + "\",\"vault\":{\"hosts\":[\"" + named_ +
                                    "\"],\"header\":\"x-api-key\"}}");
    ASSERT_EQ(secret.status, 200) << secret.body;
    // Another entry bound to the upstream by address, so the proxy reads what goes there.
    secret = api_->Request("PUT", "/api/secrets/OTHER_KEY",
                           "{\"value\":\"other-k8s-real-key-55c0e2\",\"vault\":{\"hosts\":[\"" + ip_ +
                               "\"],\"header\":\"Authorization\",\"format\":\"Bearer {}\"}}");
    ASSERT_EQ(secret.status, 200) << secret.body;
    auto agent = api_->Request("POST", "/api/agents",
                               R"({"name":"pod","harness":"shell","secrets":["API_KEY","OTHER_KEY"]})");
    ASSERT_EQ(agent.status, 201) << agent.body;
    auto session =
        api_->Request("POST", "/api/sessions", "{\"agent_id\":\"" + JsonField(agent.body, "id") + "\"}");
    ASSERT_EQ(session.status, 201) << session.body;
    session_ = JsonField(session.body, "id");
  }

  void TearDown() override {
    api_.reset();  // its sandboxes go first
    egress_.reset();
    if (kube_) kube_->Stop();
  }

  // stdout and stderr of `command` in the session's pod.
  std::string Pod(const std::string& command) {
    auto r = api_->Request("POST", "/api/sessions/" + session_ + "/sandbox/exec",
                           Json("command", command + " 2>&1"));
    EXPECT_EQ(r.status, 200) << r.body << "\n" << api_->log();
    return JsonField(r.body, "stdout");
  }
  std::string Curl(const std::string& args) { return Pod("curl -sS --max-time 20 " + args); }
  // The session's events of `type`, as JSON.
  std::vector<std::string> Events(const std::string& type) {
    std::vector<std::string> out;
    for (const auto& e : AllEvents(*api_, session_)) {
      if (e->getValue<std::string>("type") != type) continue;
      std::ostringstream ss;
      e->stringify(ss);
      out.push_back(ss.str());
    }
    return out;
  }
  // `curl` on this host through the egress process with `proxy_user` ("" for none); the status.
  std::string FromHost(const std::string& proxy_user, const std::string& url) {
    std::vector<std::string> argv = {
        "curl",         "-sS",        "-o", "/dev/null", "-w",
        "%{http_code}", "--max-time", "20", "-x",        "http://127.0.0.1:" + std::to_string(egress_port_)};
    if (!proxy_user.empty()) argv.insert(argv.end(), {"-U", proxy_user});
    argv.push_back(url);
    return RunCommand(argv).second;
  }

  TempDir dir_;
  std::unique_ptr<FakeKube> kube_;
  std::unique_ptr<Upstream> upstream_;
  std::unique_ptr<ServerProcess> egress_;
  std::unique_ptr<ServerProcess> api_;
  int egress_port_ = 0;
  std::string host_, named_, ip_, session_;
};

TEST_F(RemoteEgress, APodGoesOutThroughTheEgressProcessWhichPutsTheVaultValueIn) {
  // The pod holds a placeholder, a proxy URL with its pass, and the vault's trust.
  const std::string placeholder = Pod("printf %s \"$API_KEY\"");
  EXPECT_EQ(placeholder.rfind("pdk_ph_", 0), 0u) << placeholder;
  const std::string proxy = Unbase64(Pod("printf %s \"$HTTPS_PROXY\" | base64 -w0"));
  EXPECT_EQ(proxy.rfind("http://" + session_ + ":default.", 0), 0u) << proxy;
  EXPECT_NE(proxy.find("@127.0.0.1:" + std::to_string(egress_port_)), std::string::npos)
      << "the worker hands pods the service's address, resolved: " << proxy;
  EXPECT_EQ(Pod("echo $SSL_CERT_FILE $NODE_EXTRA_CA_CERTS"),
            "/tmp/paddock-egress/ca-bundle.crt /tmp/paddock-egress/ca.crt\n");
  std::ifstream ca_file(dir_.path() + "/vault/ca.crt");
  std::stringstream ca;
  ca << ca_file.rdbuf();
  EXPECT_EQ(Pod("cat /tmp/paddock-egress/ca.crt"), ca.str());

  // curl in the pod, through the egress process: the upstream gets the value.
  EXPECT_EQ(Curl("-H \"x-api-key: $API_KEY\" https://" + named_ + "/pod"), "ok\n");
  std::vector<std::string> got = upstream_->RequestsTo("/pod");
  ASSERT_EQ(got.size(), 1u) << upstream_->Record() << "\n" << egress_->log();
  EXPECT_EQ(Upstream::Header(got[0], "x-api-key"), kApiKey);
  // Python's urllib too (the proxy's credentials from the URL, the trust from the variables).
  EXPECT_EQ(Pod("python3 -c \"import os, urllib.request; r = urllib.request.Request('https://" + named_ +
                "/python', headers={'x-api-key': os.environ['API_KEY']}); "
                "print(urllib.request.urlopen(r, timeout=20).read().decode().strip())\""),
            "ok\n");
  got = upstream_->RequestsTo("/python");
  ASSERT_EQ(got.size(), 1u) << upstream_->Record();
  EXPECT_EQ(Upstream::Header(got[0], "x-api-key"), kApiKey);

  // A host off the allow list: refused by the egress process, recorded on the session.
  const std::string off = Curl("-o /dev/null -w '%{http_connect}' https://example.invalid/ ; echo");
  EXPECT_NE(off.find("403"), std::string::npos) << off;
  EXPECT_FALSE(Events("egress.refused").empty()) << egress_->log();
  // The placeholder to a host it is not bound to (one the proxy reads, for OTHER_KEY): refused,
  // never sent, recorded.
  const std::string stolen =
      Curl("-k -o /dev/null -w '%{http_code}' -H \"x-api-key: $API_KEY\" https://" + ip_ + "/stolen");
  EXPECT_EQ(stolen, "403") << stolen << "\n" << egress_->log();
  EXPECT_TRUE(upstream_->RequestsTo("/stolen").empty()) << upstream_->Record();
  std::vector<std::string> refused = Events("vault.refused");
  ASSERT_EQ(refused.size(), 1u) << egress_->log();
  EXPECT_NE(refused[0].find("\"secret\":\"API_KEY\""), std::string::npos) << refused[0];
  EXPECT_NE(
      egress_->Request("GET", "/metrics").body.find("paddock_vault_requests_total{result=\"refused\"} 1"),
      std::string::npos);
  // The value is in no log.
  EXPECT_EQ(egress_->log().find(kApiKey), std::string::npos);
  EXPECT_EQ(api_->log().find(kApiKey), std::string::npos);
}

TEST_F(RemoteEgress, APassOpensOnlyItsOwnSandboxAndNothingOnceItIsGone) {
  const std::string proxy = Unbase64(Pod("printf %s \"$HTTPS_PROXY\" | base64 -w0"));
  const auto at = proxy.find('@');
  ASSERT_NE(at, std::string::npos) << proxy;
  const std::string pass = proxy.substr(7, at - 7);  // "<session>:<profile>.<mac>"
  const std::string unlisted = "http://unlisted.invalid/";
  // The pass opens the sandbox's allow list (a refusal of the host, not of the caller) ...
  EXPECT_EQ(FromHost(pass, unlisted), "403");
  // ... no pass, a made-up one, or one changed in any part opens nothing.
  EXPECT_EQ(FromHost("", unlisted), "407");
  EXPECT_EQ(FromHost(session_ + ":default." + std::string(48, '0'), unlisted), "407");
  std::string flipped = pass;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  EXPECT_EQ(FromHost(flipped, unlisted), "407");
  EXPECT_EQ(FromHost("sess_other:" + pass.substr(pass.find(':') + 1), unlisted), "407");
  // Once the session is gone, so is its pass.
  auto gone = api_->Request("DELETE", "/api/sessions/" + session_);
  ASSERT_TRUE(gone.status == 200 || gone.status == 204) << gone.body;
  EXPECT_EQ(FromHost(pass, unlisted), "407");
}

}  // namespace
}  // namespace paddock::testing
