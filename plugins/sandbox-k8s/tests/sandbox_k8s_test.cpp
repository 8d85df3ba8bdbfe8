// sandbox.k8s against the fake Kubernetes API server (tests/support/fake_kube): the
// SandboxProvider conformance suite in both modes, and what the plugin promises on top — warm
// adoption with the token handed over after it, fail-fast reasons, the ready deadline,
// relisting after 410, deletion, the orphan-sweep list, suspend/resume, credentials — plus the
// fake's own fidelity to the API (what it refuses, as the real server would).
#include <filesystem>
#include <fstream>
#include <thread>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>

#include "fake_kube.h"
#include "kube_client.h"
#include "paddock/testing/sandbox_provider_conformance.h"
#include "probe.h"
#include "runtime/runtime_client.h"
#include "testing.h"

namespace paddock::testing {
namespace {

using paddock::plugins::sandbox_k8s::KubeClient;
using paddock::plugins::sandbox_k8s::LoadKubeconfig;
using Poco::JSON::Array;
using Poco::JSON::Object;
namespace fs = std::filesystem;

std::string RuntimeBinary() {
  std::string paddock = PADDOCK_TEST_BINARY;
  return paddock.substr(0, paddock.rfind('/') + 1) + "paddock-runtime";
}

// A fake cluster with the agent-sandbox CRDs, the profile's SandboxTemplate and SandboxWarmPool
// from deploy/base/sandbox-templates.yaml (so those manifests are checked against the CRDs and
// used as deployed), and a provider configured against it.
struct Cluster {
  TempDir dir;
  std::unique_ptr<FakeKube> kube;
  std::string kubeconfig;

  // `namespaces`: the ones that exist (empty: any); the profiles' template and pool are in each.
  explicit Cluster(int warm_replicas = 0, std::vector<std::string> namespaces = {}) {
    FakeKubeOptions o;
    o.namespaces = namespaces;
    if (namespaces.empty()) namespaces = {"paddock"};
    o.crd_dir = PADDOCK_TEST_CRD_DIR;
    o.data_dir = dir.path() + "/kube";
    o.runtime = RuntimeBinary();
    kube = std::make_unique<FakeKube>(o);
    Status started = kube->Start();
    EXPECT_OK(started) << "the agent-sandbox CRDs are looked up at " << PADDOCK_TEST_CRD_DIR
                       << " (set PADDOCK_AGENT_SANDBOX_CRDS when configuring)";
    kubeconfig = kube->WriteKubeconfig(dir.path() + "/kubeconfig");
    for (const std::string& doc :
         YamlDocumentsAsJson(std::string(PADDOCK_TEST_SOURCE_DIR) + "/deploy/base/sandbox-templates.yaml")) {
      Poco::JSON::Parser p;
      Object::Ptr o2 = p.parse(doc).extract<Object::Ptr>();
      if (o2->getValue<std::string>("kind") == "SandboxWarmPool")
        o2->getObject("spec")->set("replicas", warm_replicas);
      for (const std::string& ns : namespaces) {
        o2->getObject("metadata")->set("namespace", ns);
        std::ostringstream ss;
        o2->stringify(ss);
        EXPECT_OK(kube->Create(ss.str()));
      }
    }
  }
  ~Cluster() { kube->Stop(); }

  std::string Config(const std::string& mode, const std::string& extra = "") const {
    std::string timeout = extra.find("ready_timeout") == std::string::npos ? "ready_timeout = \"30s\"\n" : "";
    return "kubeconfig = \"" + kubeconfig + "\"\nmode = \"" + mode + "\"\n" + timeout + extra;
  }
  Result<std::shared_ptr<SandboxProvider>> Provider(const std::string& mode, const std::string& extra = "") {
    return LoadSandbox("k8s", Config(mode, extra), dir.path());
  }

  // A stand-in for the kind CLI (kind needs a container engine, which these machines do not
  // have, and only this is kind's part): `kind get kubeconfig --name paddock` prints a
  // kubeconfig for the fake API server the way kind writes one (context, cluster and user
  // kind-paddock, the CA inline, no namespace); any other cluster gets kind's error and exit 1.
  // It writes its environment to <dir>/kind.env.
  std::string FakeKind() const {
    const std::string script = dir.path() + "/kind";
    std::ofstream(script) << "#!/bin/sh\nenv > '" << dir.path() << "/kind.env'\n"
                          << R"(
if [ "$1 $2 $3" != 'get kubeconfig --name' ]; then echo "unknown command" >&2; exit 1; fi
if [ "$4" != paddock ]; then
  echo "ERROR: could not locate any control plane nodes for cluster named '$4'. Use the --name option to select a different cluster" >&2
  exit 1
fi
cat <<KUBECONFIG
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 < ')"
                          << kube->ca_file() << R"(')
    server: )" << kube->server()
                          << R"(
  name: kind-paddock
contexts:
- context:
    cluster: kind-paddock
    user: kind-paddock
  name: kind-paddock
current-context: kind-paddock
kind: Config
preferences: {}
users:
- name: kind-paddock
  user:
    token: fake-kube-token-0123456789
KUBECONFIG
)";
    fs::permissions(script, fs::perms::owner_all);
    return script;
  }
  std::string KindConfig(const std::string& mode, const std::string& extra = "") const {
    return "kind = \"" + FakeKind() + "\"\nnamespace = \"paddock\"\nmode = \"" + mode +
           "\"\nready_timeout = \"30s\"\n" + extra;
  }
};

// A provider on a cluster of its own: sandbox.k8s with `extra` config, or sandbox.kind.
Result<std::shared_ptr<SandboxProvider>> FreshProvider(const std::string& mode, const std::string& extra = "",
                                                       bool kind = false) {
  auto cluster = std::make_shared<Cluster>();
  auto loaded = kind ? LoadSandbox("kind", cluster->KindConfig(mode, extra), cluster->dir.path())
                     : cluster->Provider(mode, extra);
  PADDOCK_ASSIGN_OR_RETURN(auto p, loaded);
  // The provider goes first, then the cluster.
  return std::shared_ptr<SandboxProvider>(p.get(), [p, cluster](SandboxProvider*) mutable {
    p.reset();
    cluster.reset();
  });
}

INSTANTIATE_TEST_SUITE_P(
    K8s, SandboxProviderConformance,
    ::testing::Values(
        SandboxProviderUnderTest{"claim", [] { return FreshProvider("claim"); }},
        SandboxProviderUnderTest{"sandbox", [] { return FreshProvider("sandbox"); }},
        // The same suite with every runtime call through the API server's pod proxy.
        SandboxProviderUnderTest{"claim_apiserver",
                                 [] { return FreshProvider("claim", "runtime_access = \"apiserver\"\n"); }},
        SandboxProviderUnderTest{"sandbox_apiserver",
                                 [] { return FreshProvider("sandbox", "runtime_access = \"apiserver\"\n"); }},
        // sandbox.kind: its credentials from `kind get kubeconfig`, API-server access by default.
        SandboxProviderUnderTest{"kind", [] { return FreshProvider("claim", "", /*kind=*/true); }}),
    [](const ::testing::TestParamInfo<SandboxProviderUnderTest>& i) { return i.param.name; });

SandboxSpec Spec(const std::string& session, const std::string& profile = "default") {
  SandboxSpec s;
  s.session_id = session;
  s.agent_id = "agt_test";
  s.profile = profile;
  return s;
}

std::string NameOf(const SandboxInfo& info) { return info.id.substr(0, info.id.find('.')); }

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

template <class Ptr>
std::string ToJson(const Ptr& json) {
  std::ostringstream ss;
  json->stringify(ss);
  return ss.str();
}

int Count(const std::vector<std::string>& lines, const std::string& needle) {
  int n = 0;
  for (const auto& l : lines) n += l.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

TEST(SandboxK8s, AWarmSandboxIsAdoptedAndGetsItsOwnTokenOnlyAfterAdoption) {
  Cluster c(/*warm_replicas=*/1);
  auto p = c.Provider("claim");
  ASSERT_OK(p);
  // The pool's pod starts once the provider made the pool token Secret.
  ASSERT_TRUE(WaitFor([&] {
    auto pools = c.kube->List("sandboxwarmpools", "paddock");
    return !pools.empty() && pools[0]->has("status") &&
           pools[0]->getObject("status")->optValue<int>("readyReplicas", 0) == 1;
  }));
  c.kube->ClearLog();
  auto sb = (*p)->Create(Spec("ses_warm"));
  ASSERT_OK(sb);
  EXPECT_NE(sb->detail.find("sandbox paddock-default-"), std::string::npos)
      << sb->detail;  // adopted, not cold
  // The runtime answers to the sandbox's own token, no longer to the pool's.
  EXPECT_OK(RuntimeClient(sb->runtime).Health());
  auto pool_secret = c.kube->Get("secrets", "paddock", "paddock-runtime-pool");
  ASSERT_TRUE(pool_secret);
  RuntimeEndpoint with_pool = sb->runtime;
  // The token is in a Secret owned by the claim, and in no custom resource the plugin sent.
  auto secret = c.kube->Get("secrets", "paddock", NameOf(*sb) + "-runtime");
  ASSERT_TRUE(secret);
  auto owner = secret->getObject("metadata")->getArray("ownerReferences")->getObject(0);
  EXPECT_EQ(owner->getValue<std::string>("kind"), "SandboxClaim");
  EXPECT_EQ(owner->getValue<std::string>("name"), NameOf(*sb));
  for (const std::string& body : c.kube->Bodies()) {
    EXPECT_EQ(body.find(sb->runtime.token), std::string::npos) << body;
  }
  // The pool's token (which the pod can read) no longer opens its runtime.
  CapturingObserver out;
  ASSERT_OK(Sh(*sb, "cat /var/run/paddock/token/token", out));
  with_pool.token = out.out;
  EXPECT_CODE(RuntimeClient(with_pool).Health(), kPermissionDenied);
  // One warm create: the claim, one watch, the token Secret.
  EXPECT_EQ(Count(c.kube->Requests(),
                  "POST /apis/extensions.agents.x-k8s.io/v1beta1/namespaces/paddock/sandboxclaims"),
            1);
  EXPECT_EQ(Count(c.kube->Requests(), "watch=1"), 1);
  EXPECT_EQ(Count(c.kube->Requests(), "POST /api/v1/namespaces/paddock/secrets"), 1);
  ASSERT_OK((*p)->Destroy(sb->id));
  EXPECT_FALSE(c.kube->Get("secrets", "paddock", NameOf(*sb) + "-runtime"));
  EXPECT_FALSE(c.kube->Get("sandboxclaims", "paddock", NameOf(*sb)));
}

TEST(SandboxK8s, ATerminalReasonFailsFastWithTheReasonAndLeavesNothing) {
  Cluster c;
  auto p = c.Provider("claim");
  ASSERT_OK(p);
  auto start = std::chrono::steady_clock::now();
  auto sb = (*p)->Create(Spec("ses_x", "gpu"));  // no SandboxWarmPool paddock-gpu
  EXPECT_CODE(sb, kFailedPrecondition);
  EXPECT_NE(sb.status().message().find("WarmPoolNotFound"), std::string::npos) << sb.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));  // well within ready_timeout
  EXPECT_TRUE(c.kube->List("sandboxclaims", "paddock").empty());
  EXPECT_TRUE(c.kube->List("secrets", "paddock").size() == 1);  // only the pool token
}

TEST(SandboxK8s, ASandboxThatNeverBecomesReadyFailsAtTheDeadlineWithTheLastReason) {
  Cluster c;
  // A template whose pod waits for a Secret that never comes.
  ASSERT_OK(c.kube->Create(R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxTemplate",
    "metadata":{"name":"paddock-stuck","namespace":"paddock"},
    "spec":{"podTemplate":{"spec":{"containers":[{"name":"runtime","image":"paddock-sandbox:dev",
      "command":["paddock-runtime"],"args":["--listen","tcp:0.0.0.0:8888","--token-file","/t/token"],
      "volumeMounts":[{"name":"t","mountPath":"/t"}]}],
      "volumes":[{"name":"t","secret":{"secretName":"never"}}]}}}})"));
  ASSERT_OK(c.kube->Create(R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxWarmPool",
    "metadata":{"name":"paddock-stuck","namespace":"paddock"},"spec":{"replicas":0,"sandboxTemplateRef":{"name":"paddock-stuck"}}})"));
  auto p = c.Provider("claim", "ready_timeout = \"2s\"\n");
  ASSERT_OK(p);
  auto sb = (*p)->Create(Spec("ses_stuck", "stuck"));
  EXPECT_CODE(sb, kUnavailable);
  EXPECT_NE(sb.status().message().find("not Ready within 2 s"), std::string::npos) << sb.status().message();
  EXPECT_NE(sb.status().message().find("secret \"never\" not found"), std::string::npos)
      << sb.status().message();
  EXPECT_TRUE(WaitFor([&] { return c.kube->List("sandboxclaims", "paddock").empty(); }));
}

TEST(SandboxK8s, AWatchThatLostItsPlaceRelistsAndCarriesOn) {
  Cluster c;
  ASSERT_OK(c.kube->Create(R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxTemplate",
    "metadata":{"name":"paddock-late","namespace":"paddock"},
    "spec":{"podTemplate":{"spec":{"containers":[{"name":"runtime","image":"paddock-sandbox:dev",
      "command":["paddock-runtime"],"args":["--listen","tcp:0.0.0.0:8888","--token-file","/t/token","--claimable"],
      "volumeMounts":[{"name":"t","mountPath":"/t"}]}],
      "volumes":[{"name":"t","secret":{"secretName":"late"}}]}}}})"));
  ASSERT_OK(c.kube->Create(R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxWarmPool",
    "metadata":{"name":"paddock-late","namespace":"paddock"},"spec":{"replicas":0,"sandboxTemplateRef":{"name":"paddock-late"}}})"));
  auto p = c.Provider("claim");
  ASSERT_OK(p);
  Result<SandboxInfo> sb = Status::Internal("not run");
  std::thread create([&] { sb = (*p)->Create(Spec("ses_late", "late")); });
  struct Join {
    std::thread& t;
    ~Join() { t.join(); }
  } join{create};
  ASSERT_TRUE(WaitFor([&] { return Count(c.kube->Requests(), "watch=1") >= 1; }));
  // History moves on and is forgotten, and every watch is dropped (as after an etcd compaction
  // and an API server restart): the plugin's next watch gets 410 Expired and must relist.
  c.kube->Compact();
  ASSERT_OK(c.kube->Create(
      R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"unrelated","namespace":"paddock"}})"));
  c.kube->Compact();
  c.kube->DropWatches();
  ASSERT_TRUE(WaitFor([&] { return Count(c.kube->Requests(), "watch=1") >= 3; }));
  // The pool token the pod needs arrives; the claim becomes Ready.
  auto pool = c.kube->Get("secrets", "paddock", "paddock-runtime-pool");
  ASSERT_TRUE(pool);
  ASSERT_OK(
      c.kube->Create(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"late","namespace":"paddock"},
    "data":{"token":")" +
                     pool->getObject("data")->getValue<std::string>("token") + R"("}})"));
  ASSERT_TRUE(WaitFor([&] { return sb.ok() || sb.status().code() != StatusCode::kInternal; }));
  ASSERT_OK(sb);
  EXPECT_OK(RuntimeClient(sb->runtime).Health());
  // Relisted by name after the 410.
  EXPECT_GE(
      Count(c.kube->Requests(),
            "GET /apis/extensions.agents.x-k8s.io/v1beta1/namespaces/paddock/sandboxclaims?fieldSelector"),
      1);
}

TEST(SandboxK8s, ListFindsThisInstancesSandboxesWithTheirTokensForTheOrphanSweep) {
  Cluster c;
  auto p = c.Provider("claim");
  ASSERT_OK(p);
  auto a = (*p)->Create(Spec("ses_a"));
  ASSERT_OK(a);
  auto b = (*p)->Create(Spec(""));
  ASSERT_OK(b);
  // Another Paddock's claim in the same namespace is not ours.
  ASSERT_OK(c.kube->Create(R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim",
    "metadata":{"name":"theirs","namespace":"paddock","labels":{"app.kubernetes.io/managed-by":"paddock","paddock.dev/instance":"other"}},
    "spec":{"warmPoolRef":{"name":"paddock-default"}}})"));
  // A new process of this Paddock (the old one's memory is gone) sees both, ready to use.
  auto again = c.Provider("claim");
  ASSERT_OK(again);
  auto all = (*again)->List();
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  for (const SandboxInfo& i : *all) {
    EXPECT_TRUE(i.id == a->id || i.id == b->id) << i.id;
    EXPECT_EQ(i.state, SandboxState::kRunning);
    EXPECT_OK(RuntimeClient(i.runtime).Health());
  }
  auto inspected = (*again)->Inspect(a->id);
  ASSERT_OK(inspected);
  EXPECT_EQ(inspected->session_id, "ses_a");
  EXPECT_EQ(inspected->runtime.token, a->runtime.token);
  EXPECT_CODE((*again)->Inspect("theirs.paddock"), kNotFound);
}

TEST(SandboxK8s, ADeadPodIsReportedGone) {
  Cluster c;
  auto p = c.Provider("claim");
  ASSERT_OK(p);
  auto sb = (*p)->Create(Spec("ses_dead"));
  ASSERT_OK(sb);
  c.kube->KillPod("paddock", NameOf(*sb));
  ASSERT_TRUE(WaitFor([&] {
    auto i = (*p)->Inspect(sb->id);
    return i.ok() && i->state == SandboxState::kGone;
  }));
  auto i = (*p)->Inspect(sb->id);
  ASSERT_OK(i);
  EXPECT_NE(i->detail.find("PodFailed"), std::string::npos) << i->detail;
}

class SuspendResume : public ::testing::TestWithParam<std::string> {};

TEST_P(SuspendResume, KeepsTheWorkspaceAndHandsTheNewPodItsToken) {
  Cluster c;
  auto p = c.Provider(GetParam());
  ASSERT_OK(p);
  auto sb = (*p)->Create(Spec("ses_sleep"));
  ASSERT_OK(sb);
  ASSERT_OK(RuntimeClient(sb->runtime).PutFile("/workspace/kept.txt", "kept"));
  ASSERT_OK((*p)->Suspend(sb->id));
  auto asleep = (*p)->Inspect(sb->id);
  ASSERT_OK(asleep);
  EXPECT_EQ(asleep->state, SandboxState::kGone);
  EXPECT_NE(asleep->detail.find("SandboxSuspended"), std::string::npos) << asleep->detail;
  EXPECT_CODE(RuntimeClient(sb->runtime).Health(), kUnavailable);
  auto awake = (*p)->Resume(sb->id);
  ASSERT_OK(awake);
  EXPECT_EQ(awake->state, SandboxState::kRunning);
  EXPECT_NE(awake->runtime.address, sb->runtime.address);  // a new pod, a new IP
  EXPECT_EQ(awake->runtime.token, sb->runtime.token);
  auto kept = RuntimeClient(awake->runtime).GetFile("/workspace/kept.txt");
  ASSERT_OK(kept);
  EXPECT_EQ(*kept, "kept");
  EXPECT_CODE((*p)->Suspend("psb-none.paddock"), kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Modes, SuspendResume, ::testing::Values("claim", "sandbox"));

TEST(SandboxK8s, ANamespacePerTeam) {
  Cluster c;
  auto p = c.Provider("claim", "namespace_per_team = true\n");
  ASSERT_OK(p);
  SandboxSpec s = Spec("ses_team");
  s.team_id = "blue";
  auto sb = (*p)->Create(s);  // paddock-blue has no warm pool: refused there, fast
  EXPECT_CODE(sb, kFailedPrecondition);
  EXPECT_GE(Count(c.kube->Requests(),
                  "POST /apis/extensions.agents.x-k8s.io/v1beta1/namespaces/paddock-blue/sandboxclaims"),
            1);
  s.team_id = "Not A Namespace";
  EXPECT_CODE((*p)->Create(s), kInvalidArgument);
}

// From the side of a team's sandbox: its namespace must be closed before it starts. The shipped
// policies go into the control plane's namespace as deployed (so they are checked against the
// NetworkPolicy schema); the team's namespace gets the isolation policy and the labelled
// copies before its first claim, and a namespace that is not ready starts nothing.
TEST(SandboxK8s, ATeamNamespaceGetsItsOwnNetworkPoliciesBeforeItsFirstSandbox) {
  Cluster c(0, {"paddock", "paddock-blue"});
  for (const char* file :
       {"/deploy/base/networkpolicy.yaml", "/deploy/overlays/production/sandbox-egress.yaml"}) {
    for (const std::string& doc : YamlDocumentsAsJson(std::string(PADDOCK_TEST_SOURCE_DIR) + file))
      ASSERT_OK(c.kube->Create(doc)) << file;
  }
  auto p = c.Provider("claim", "namespace_per_team = true\n");
  ASSERT_OK(p);
  SandboxSpec s = Spec("ses_blue");
  s.team_id = "blue";
  auto sb = (*p)->Create(s);
  ASSERT_OK(sb);
  EXPECT_EQ(sb->id.substr(sb->id.find('.') + 1), "paddock-blue");

  const std::string policies = "/apis/networking.k8s.io/v1/namespaces/paddock-blue/networkpolicies";
  std::vector<std::string> requests = c.kube->Requests();
  auto first = [&](const std::string& needle) {
    for (size_t i = 0; i < requests.size(); ++i) {
      if (requests[i].find(needle) != std::string::npos) return static_cast<long>(i);
    }
    return -1L;
  };
  const long claim =
      first("POST /apis/extensions.agents.x-k8s.io/v1beta1/namespaces/paddock-blue/sandboxclaims");
  ASSERT_GE(claim, 0);
  ASSERT_GE(first("POST " + policies), 0);
  EXPECT_LT(first("POST " + policies), claim);
  EXPECT_EQ(Count(requests, "POST " + policies), 2);

  std::vector<Object::Ptr> in_team = c.kube->List("networkpolicies", "paddock-blue");
  std::map<std::string, Object::Ptr> by_name;
  for (const Object::Ptr& o : in_team) by_name[o->getObject("metadata")->getValue<std::string>("name")] = o;
  ASSERT_EQ(by_name.size(), 2u);
  // Its own: every pod, in only from the control plane's namespace and clients, out nowhere.
  ASSERT_TRUE(by_name.count("paddock-team-isolation"));
  Object::Ptr spec = by_name["paddock-team-isolation"]->getObject("spec");
  EXPECT_EQ(spec->getObject("podSelector")->size(), 0u);
  EXPECT_EQ(ToJson(spec->getArray("policyTypes")), R"(["Ingress","Egress"])");  // an array keeps its order
  Array::Ptr ingress = spec->getArray("ingress");
  ASSERT_EQ(ingress->size(), 1u);
  Object::Ptr rule = ingress->getObject(0);
  ASSERT_EQ(rule->getArray("from")->size(), 1u);
  Object::Ptr peer = rule->getArray("from")->getObject(0);
  EXPECT_EQ(peer->getObject("namespaceSelector")->getObject("matchLabels")->size(), 1u);
  EXPECT_EQ(peer->getObject("namespaceSelector")
                ->getObject("matchLabels")
                ->getValue<std::string>("kubernetes.io/metadata.name"),
            "paddock");
  EXPECT_EQ(peer->getObject("podSelector")
                ->getObject("matchLabels")
                ->getValue<std::string>("paddock.dev/sandbox-client"),
            "true");
  EXPECT_FALSE(peer->has("ipBlock"));
  ASSERT_EQ(rule->getArray("ports")->size(), 1u);
  EXPECT_EQ(rule->getArray("ports")->getObject(0)->getValue<int>("port"), 8888);
  EXPECT_TRUE(!spec->getArray("egress") || spec->getArray("egress")->size() == 0u) << ToJson(spec);
  EXPECT_EQ(by_name["paddock-team-isolation"]
                ->getObject("metadata")
                ->getObject("labels")
                ->getValue<std::string>("paddock.dev/team"),
            "blue");
  // The labelled ones, copied as they are; the control plane's ingress policy (its own pods) not.
  // The copied one lets the team's sandboxes reach the egress proxy's pods, in the control
  // plane's namespace, and nothing else.
  ASSERT_TRUE(by_name.count("paddock-sandbox-egress"));
  EXPECT_NE(ToJson(by_name["paddock-sandbox-egress"]).find("paddock-egress"), std::string::npos);
  EXPECT_EQ(ToJson(by_name["paddock-sandbox-egress"]).find("kube-dns"), std::string::npos);
  for (const char* name : {"paddock-sandbox-egress"}) {
    ASSERT_TRUE(by_name.count(name)) << name;
    EXPECT_EQ(ToJson(by_name[name]->getObject("spec")),
              ToJson(c.kube->Get("networkpolicies", "paddock", name)->getObject("spec")))
        << name;
    Object::Ptr labels = by_name[name]->getObject("metadata")->getObject("labels");
    EXPECT_FALSE(labels->has("paddock.dev/copy-to-team-namespaces")) << name;
    EXPECT_EQ(labels->getValue<std::string>("paddock.dev/team"), "blue");
  }
  EXPECT_FALSE(by_name.count("paddock-sandbox-ingress"));
  EXPECT_FALSE(by_name.count("paddock-egress-out"));  // the proxy's own, not the sandboxes'
  EXPECT_FALSE(by_name.count("paddock-egress-ingress"));

  // The team's next sandbox does not write them again.
  c.kube->ClearLog();
  s.session_id = "ses_blue2";
  ASSERT_OK((*p)->Create(s));
  EXPECT_EQ(Count(c.kube->Requests(), policies), 0);

  // Someone opens the namespace by hand: the next process puts its policy back before a sandbox.
  auto creds = LoadKubeconfig(c.kubeconfig, "");
  ASSERT_OK(creds);
  KubeClient client(*creds);
  const std::string closed = ToJson(spec->getArray("ingress"));
  Object::Ptr opened = by_name["paddock-team-isolation"];
  opened->getObject("spec")->set("ingress", Array::Ptr(new Array));
  opened->getObject("spec")->getArray("ingress")->add(Object::Ptr(new Object));  // from anywhere
  auto put = client.Call("PUT", policies + "/paddock-team-isolation", ToJson(opened));
  ASSERT_OK(put);
  ASSERT_EQ(put->status, 200) << put->Message();
  auto again = c.Provider("claim", "namespace_per_team = true\n");
  ASSERT_OK(again);
  s.session_id = "ses_blue3";
  ASSERT_OK((*again)->Create(s));
  ASSERT_NE(c.kube->Get("networkpolicies", "paddock-blue", "paddock-team-isolation"), nullptr);
  EXPECT_EQ(ToJson(c.kube->Get("networkpolicies", "paddock-blue", "paddock-team-isolation")
                       ->getObject("spec")
                       ->getArray("ingress")),
            closed);

  // A team whose namespace does not exist: refused before anything is created, saying what to do.
  c.kube->ClearLog();
  s.team_id = "green";
  s.session_id = "ses_green";
  auto refused = (*p)->Create(s);
  EXPECT_CODE(refused, kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("namespaces \"paddock-green\" not found"), std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("team 'green' gets no sandbox"), std::string::npos);
  EXPECT_EQ(Count(c.kube->Requests(), "/namespaces/paddock-green/sandboxclaims"), 0);
  EXPECT_EQ(Count(c.kube->Requests(), "/namespaces/paddock-green/secrets"), 0);

  // Policies managed elsewhere: the provider writes none.
  c.kube->ClearLog();
  auto managed = c.Provider("claim", "namespace_per_team = true\nteam_network_policies = false\n");
  ASSERT_OK(managed);
  s.team_id = "blue";
  s.session_id = "ses_blue4";
  ASSERT_OK((*managed)->Create(s));
  EXPECT_EQ(Count(c.kube->Requests(), "networkpolicies"), 0);
}

TEST(SandboxK8s, CredentialsAreCheckedAtStartWithAMessageThatSaysWhatToFix) {
  Cluster c;
  std::string wrong = c.kube->WriteKubeconfig(c.dir.path() + "/wrong", "not-the-token-at-all");
  auto bad = LoadSandbox("k8s", "kubeconfig = \"" + wrong + "\"\n", c.dir.path());
  EXPECT_CODE(bad, kPermissionDenied);
  EXPECT_NE(bad.status().message().find("were refused"), std::string::npos) << bad.status().message();
  auto missing = LoadSandbox("k8s", "kubeconfig = \"" + c.dir.path() + "/none\"\n", c.dir.path());
  EXPECT_CODE(missing, kFailedPrecondition);
  std::ofstream(c.dir.path() + "/exec")
      << "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: x\n"
         "  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: x\n"
         "  context: {cluster: x, user: u}\nusers:\n- name: u\n"
         "  user: {exec: {command: aws}}\n";
  auto exec = LoadSandbox("k8s", "kubeconfig = \"" + c.dir.path() + "/exec\"\n", c.dir.path());
  EXPECT_CODE(exec, kInvalidArgument);
  EXPECT_NE(exec.status().message().find("exec"), std::string::npos);
  auto other_context =
      LoadSandbox("k8s", "kubeconfig = \"" + c.kubeconfig + "\"\ncontext = \"nope\"\n", c.dir.path());
  EXPECT_CODE(other_context, kInvalidArgument);
  EXPECT_CODE(LoadSandbox("k8s", "kubeconfig = \"" + c.kubeconfig + "\"\nmode = \"pods\"\n", c.dir.path()),
              kInvalidArgument);
  // A server whose certificate the kubeconfig's CA did not sign is refused.
  std::string text;
  {
    std::ifstream in(c.kubeconfig);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  auto pos = text.find("    certificate-authority:");
  ASSERT_NE(pos, std::string::npos);
  text.erase(pos, text.find('\n', pos) - pos + 1);
  std::ofstream(c.dir.path() + "/noca") << text;
  auto untrusted = LoadSandbox("k8s", "kubeconfig = \"" + c.dir.path() + "/noca\"\n", c.dir.path());
  EXPECT_CODE(untrusted, kUnavailable);
}

TEST(SandboxK8s, InAPodTheServiceAccountIsUsed) {
  Cluster c;
  // What the kubelet projects into a pod, and the environment it sets.
  TempDir sa;
  std::filesystem::copy_file(c.kube->ca_file(), sa.path() + "/ca.crt");
  std::ofstream(sa.path() + "/token") << "fake-kube-token-0123456789\n";
  std::ofstream(sa.path() + "/namespace") << "paddock";
  std::string server = c.kube->server();
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", server.substr(server.rfind(':') + 1).c_str(), 1);
  auto creds = paddock::plugins::sandbox_k8s::InClusterCredentials(sa.path());
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_OK(creds);
  EXPECT_EQ(creds->namespace_, "paddock");
  KubeClient client(*creds);
  auto listed =
      client.Call("GET", "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/paddock/sandboxwarmpools");
  ASSERT_OK(listed);
  EXPECT_EQ(listed->status, 200) << listed->Message();
  // Outside a pod it says so.
  EXPECT_CODE(paddock::plugins::sandbox_k8s::InClusterCredentials(sa.path()), kFailedPrecondition);
}

TEST(SandboxK8s, TheShippedKubernetesConfigsAreValid) {
  Cluster c;
  // kind.toml names the context kind writes; deploy's config uses the current one.
  std::string text;
  {
    std::ifstream in(c.kubeconfig);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  text.replace(text.find("contexts:\n"), 10,
               "contexts:\n- name: kind-paddock\n  context:\n    cluster: fake\n    user: tester\n");
  std::ofstream(c.dir.path() + "/both") << text;
  setenv("KUBECONFIG", (c.dir.path() + "/both").c_str(), 1);
  std::string plugin_dir = PADDOCK_TEST_PLUGIN_DIR_K8S;
  for (const std::string& file : {std::string(PADDOCK_TEST_SOURCE_DIR) + "/config/kind.toml",
                                  std::string(PADDOCK_TEST_SOURCE_DIR) + "/deploy/base/paddock.toml"}) {
    // config/kind.toml is sandbox.kind: it asks kind (here the stand-in) for the kubeconfig.
    const std::string path = std::getenv("PATH");
    setenv("PATH", (fs::path(c.FakeKind()).parent_path().string() + ":" + path).c_str(), 1);
    auto [code, out] =
        RunCommand({PADDOCK_TEST_BINARY, "check-config", "--config", file, "--plugin-dir", plugin_dir});
    setenv("PATH", path.c_str(), 1);
    EXPECT_EQ(code, 0) << file << ": " << out;
  }
  unsetenv("KUBECONFIG");
}

// ---- The fake refuses what the real API server refuses ------------------------------------

class FakeApi : public ::testing::Test {
 protected:
  void SetUp() override {
    auto creds = LoadKubeconfig(c_.kubeconfig, "");
    ASSERT_OK(creds);
    client_ = std::make_unique<KubeClient>(*creds);
  }
  Object::Ptr Call(const std::string& method, const std::string& path, const std::string& body, int want,
                   const std::string& ct = "application/json") {
    auto r = client_->Call(method, path, body, ct);
    EXPECT_OK(r);
    if (!r.ok()) return new Object;
    EXPECT_EQ(r->status, want) << method << " " << path << ": " << r->Message();
    return r->body;
  }
  static constexpr char kClaims[] =
      "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/paddock/sandboxclaims";
  Cluster c_;
  std::unique_ptr<KubeClient> client_;
};

TEST_F(FakeApi, RefusesWhatFailsTheCrdSchemaOrDoesNotMatchTheUrl) {
  auto wrong_version = Call(
      "POST", kClaims,
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1alpha1","kind":"SandboxClaim","metadata":{"name":"a"},"spec":{"warmPoolRef":{"name":"p"}}})",
      400);
  EXPECT_NE(wrong_version->getValue<std::string>("message").find("does not match the expected API version"),
            std::string::npos);
  Call(
      "POST", kClaims,
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"Sandbox","metadata":{"name":"a"},"spec":{}})",
      400);
  auto required = Call(
      "POST", kClaims,
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim","metadata":{"name":"a"},"spec":{}})",
      422);
  EXPECT_EQ(required->getValue<std::string>("reason"), "Invalid");
  EXPECT_NE(required->getValue<std::string>("message").find("spec.warmPoolRef: Required value"),
            std::string::npos);
  auto type = Call(
      "POST", kClaims,
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim","metadata":{"name":"a"},"spec":{"warmPoolRef":{"name":7}}})",
      422);
  EXPECT_NE(
      type->getValue<std::string>("message").find("spec.warmPoolRef.name in body must be of type string"),
      std::string::npos);
  auto unknown = Call(
      "POST", std::string(kClaims) + "?fieldValidation=Strict",
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim","metadata":{"name":"a"},"spec":{"warmPoolRef":{"name":"p"},"bogus":1}})",
      400);
  EXPECT_NE(unknown->getValue<std::string>("message").find("unknown field \"spec.bogus\""),
            std::string::npos);
  auto enum_ = Call(
      "POST", std::string(kClaims),
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim","metadata":{"name":"a"},"spec":{"warmPoolRef":{"name":"p"},"lifecycle":{"shutdownPolicy":"Sometimes"}}})",
      422);
  EXPECT_NE(enum_->getValue<std::string>("message").find("Unsupported value"), std::string::npos);
  Call(
      "POST", kClaims,
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim","metadata":{"name":"Not_A_Name"},"spec":{"warmPoolRef":{"name":"p"}}})",
      422);
  Call(
      "POST", kClaims,
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim","metadata":{"name":"a","namespace":"elsewhere"},"spec":{"warmPoolRef":{"name":"p"}}})",
      400);
  Call("POST", kClaims, "{not json", 400);
  // Without Strict, unknown fields are pruned (and a warning sent); status is not writable here.
  auto pruned = Call(
      "POST", kClaims,
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim","metadata":{"name":"a"},"spec":{"warmPoolRef":{"name":"p"},"bogus":1},"status":{"sandbox":{"name":"x"}}})",
      201);
  EXPECT_FALSE(pruned->getObject("spec")->has("bogus"));
  EXPECT_FALSE(pruned->has("status"));
  Call(
      "POST", kClaims,
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim","metadata":{"name":"a"},"spec":{"warmPoolRef":{"name":"p"}}})",
      409);
  Call("GET", std::string(kClaims) + "/none", "", 404);
  Call("GET", "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/paddock/gadgets", "", 404);
  Call("GET", std::string(kClaims) + "?fieldSelector=spec.warmPoolRef.name%3Dp", "", 400);
  Call("PATCH", std::string(kClaims) + "/a", R"({"spec":{}})", 415, "application/strategic-merge-patch+json");
  // Optimistic locking: a write with a stale resourceVersion is a Conflict.
  auto current = Call("GET", std::string(kClaims) + "/a", "", 200);
  std::string rv = current->getObject("metadata")->getValue<std::string>("resourceVersion");
  Call("PATCH", std::string(kClaims) + "/a", R"({"metadata":{"labels":{"x":"1"}}})", 200,
       "application/merge-patch+json");
  Call("PATCH", std::string(kClaims) + "/a",
       R"({"metadata":{"resourceVersion":")" + rv + R"(","labels":{"x":"2"}}})", 409,
       "application/merge-patch+json");
  // The status subresource: only status there, never status through the main resource.
  auto main = Call("PATCH", std::string(kClaims) + "/a", R"({"status":{"sandbox":{"name":"via-main"}}})", 200,
                   "application/merge-patch+json");
  auto sandbox_name = [](const Object::Ptr& o) -> std::string {
    auto st = o->getObject("status");
    auto sb = st ? st->getObject("sandbox") : nullptr;
    return sb ? sb->optValue<std::string>("name", "") : "";
  };
  EXPECT_NE(sandbox_name(main), "via-main");
  auto sub = Call("PATCH", std::string(kClaims) + "/a/status",
                  R"({"status":{"sandbox":{"name":"via-status"}},"spec":{"warmPoolRef":{"name":"changed"}}})",
                  200, "application/merge-patch+json");
  EXPECT_EQ(sandbox_name(sub), "via-status");
  EXPECT_EQ(sub->getObject("spec")->getObject("warmPoolRef")->getValue<std::string>("name"), "p");
  Call("DELETE", std::string(kClaims) + "/a", "", 200);
  Call("DELETE", std::string(kClaims) + "/a", "", 404);
  // A core Secret with data that is not base64 is refused.
  Call("POST", "/api/v1/namespaces/paddock/secrets",
       R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k":"***"}})", 422);
  // No token, no entry.
  auto creds = LoadKubeconfig(c_.kubeconfig, "");
  ASSERT_OK(creds);
  creds->token = "";
  auto anonymous = KubeClient(*creds).Call("GET", kClaims);
  ASSERT_OK(anonymous);
  EXPECT_EQ(anonymous->status, 401);
}

TEST_F(FakeApi, WatchesStreamFromAResourceVersionWithBookmarksSelectorsAnd410) {
  auto made = Call(
      "POST", kClaims,
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim","metadata":{"name":"w","labels":{"team":"a"}},"spec":{"warmPoolRef":{"name":"p"}}})",
      201);
  std::string rv = made->getObject("metadata")->getValue<std::string>("resourceVersion");
  Call(
      "POST", kClaims,
      R"({"apiVersion":"extensions.agents.x-k8s.io/v1beta1","kind":"SandboxClaim","metadata":{"name":"other","labels":{"team":"b"}},"spec":{"warmPoolRef":{"name":"p"}}})",
      201);
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    Call("PATCH", std::string(kClaims) + "/w", R"({"metadata":{"labels":{"step":"two"}}})", 200,
         "application/merge-patch+json");
    Call("PATCH", std::string(kClaims) + "/other", R"({"metadata":{"labels":{"step":"two"}}})", 200,
         "application/merge-patch+json");
    Call("DELETE", std::string(kClaims) + "/w", "", 200);
  });
  std::vector<std::string> seen;
  auto watched =
      client_->Watch(std::string(kClaims) +
                         "?watch=1&allowWatchBookmarks=true&labelSelector=team%3Da&resourceVersion=" + rv +
                         "&timeoutSeconds=5",
                     std::chrono::steady_clock::now() + std::chrono::seconds(10),
                     [&](const std::string& type, const Object::Ptr& o) {
                       seen.push_back(type + " " +
                                      (o->has("metadata") && o->getObject("metadata")->has("name")
                                           ? o->getObject("metadata")->getValue<std::string>("name")
                                           : ""));
                       return type != "DELETED";
                     });
  writer.join();
  ASSERT_OK(watched);
  // Only "w" (team=a), only what came after rv: MODIFIED (the claim controller may add more), then DELETED.
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.front(), "MODIFIED w");
  EXPECT_EQ(seen.back(), "DELETED w");
  for (const auto& s : seen) EXPECT_EQ(s.find("other"), std::string::npos) << s;
  // A quiet watch gets bookmarks.
  std::vector<std::string> quiet;
  (void)client_->Watch(std::string(kClaims) +
                           "?watch=1&allowWatchBookmarks=true&labelSelector=team%3Dnone&resourceVersion=" +
                           rv + "&timeoutSeconds=3",
                       std::chrono::steady_clock::now() + std::chrono::seconds(5),
                       [&](const std::string& type, const Object::Ptr&) {
                         quiet.push_back(type);
                         return type != "BOOKMARK";
                       });
  ASSERT_FALSE(quiet.empty());
  EXPECT_EQ(quiet.back(), "BOOKMARK");
  // A version older than the kept history: ERROR 410 Expired.
  c_.kube->Compact();
  int code = 0;
  (void)client_->Watch(std::string(kClaims) + "?watch=1&resourceVersion=" + rv,
                       std::chrono::steady_clock::now() + std::chrono::seconds(5),
                       [&](const std::string& type, const Object::Ptr& o) {
                         if (type == "ERROR") code = o->optValue<int>("code", 0);
                         return false;
                       });
  EXPECT_EQ(code, 410);
}

}  // namespace
}  // namespace paddock::testing

namespace paddock::testing {
namespace {

// The runtime in a pod keeps its descriptors, its memory and the refused calls from the code it
// runs, as it does under sandbox.process (the fake kubelet applies RuntimeDefault as the
// container runtime would: with the default filter).
TEST(SandboxK8sBoundary, CodeInAPodSeesOnlyItsStdioAndTheRefusedCallsFail) {
  for (const char* mode : {"claim", "sandbox"}) {
    Cluster c;
    auto p = c.Provider(mode);
    ASSERT_OK(p);
    auto sb = (*p)->Create(Spec(std::string("ses_probe_") + mode));
    ASSERT_OK(sb);
    CapturingObserver out;
    auto r = Sh(*sb, ProbeCommand(), out, std::chrono::seconds(60));
    ASSERT_OK(r);
    ExpectSealed(out.out + out.err, std::string("a command in a pod, mode ") + mode);
    ASSERT_OK((*p)->Destroy(sb->id));
  }
}

// A profile names the runtime class of its pods and may turn the filter off; both reach the pod.
TEST(SandboxK8sBoundary, TheProfilesRuntimeClassAndFilterReachThePod) {
  Cluster c;
  auto p = c.Provider("sandbox");
  ASSERT_OK(p);
  SandboxSpec spec = Spec("ses_gvisor");
  spec.hardening.runtime_class = "gvisor";
  auto sb = (*p)->Create(spec);
  ASSERT_OK(sb);
  auto pod = c.kube->Get("sandboxes", "paddock", NameOf(*sb))
                 ->getObject("spec")
                 ->getObject("podTemplate")
                 ->getObject("spec");
  EXPECT_EQ(pod->getValue<std::string>("runtimeClassName"), "gvisor");
  EXPECT_EQ(pod->getObject("securityContext")->getObject("seccompProfile")->getValue<std::string>("type"),
            "RuntimeDefault");
  ASSERT_OK((*p)->Destroy(sb->id));

  spec = Spec("ses_unconfined");
  spec.hardening.seccomp = false;
  sb = (*p)->Create(spec);
  ASSERT_OK(sb);
  pod = c.kube->Get("sandboxes", "paddock", NameOf(*sb))
            ->getObject("spec")
            ->getObject("podTemplate")
            ->getObject("spec");
  EXPECT_EQ(pod->getObject("securityContext")->getObject("seccompProfile")->getValue<std::string>("type"),
            "Unconfined");
  CapturingObserver out;
  ASSERT_OK(Sh(*sb, ProbeCommand(), out, std::chrono::seconds(60)));
  EXPECT_EQ(Line(out.out, "seccomp"), "0") << out.out;  // what the profile asked for
  EXPECT_EQ(Line(out.out, "fds"), "0 1 2") << out.out;  // the runtime's part holds regardless
  ASSERT_OK((*p)->Destroy(sb->id));
}

// ---- Through the API server: runtime_access "apiserver" and sandbox.kind -------------------

// What a process on this machine that is not the core can do with the relay's port.
HttpResponse RelayRequest(const std::string& address, const std::string& method, const std::string& uri,
                          const std::string& token) {
  const std::string hostport = address.substr(4);  // tcp:127.0.0.1:PORT
  HttpResponse out;
  try {
    Poco::Net::HTTPClientSession session(
        "127.0.0.1", static_cast<Poco::UInt16>(std::stoi(hostport.substr(hostport.rfind(':') + 1))));
    session.setTimeout(Poco::Timespan(10, 0));
    Poco::Net::HTTPRequest req(method, uri, Poco::Net::HTTPMessage::HTTP_1_1);
    if (!token.empty()) req.set("Authorization", "Bearer " + token);
    session.sendRequest(req);
    Poco::Net::HTTPResponse resp;
    std::istream& in = session.receiveResponse(resp);
    out.status = resp.getStatus();
    out.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const Poco::Exception& e) {
    out.status = -1;
    out.body = e.displayText();
  }
  return out;
}

int ProxyRequests(const FakeKube& kube) { return Count(kube.Requests(), "/proxy/"); }

TEST(SandboxK8sApiServer, EveryRuntimeCallGoesThroughThePodProxyAndStreams) {
  Cluster c(/*warm_replicas=*/1);
  auto p = c.Provider("claim", "runtime_access = \"apiserver\"\n");
  ASSERT_OK(p);
  auto sb = (*p)->Create(Spec("ses_proxy"));
  ASSERT_OK(sb);
  // The core is given the loopback relay, not the pod IP (which a control plane outside the
  // cluster could not route to).
  EXPECT_EQ(sb->runtime.address.rfind("tcp:127.0.0.1:", 0), 0u) << sb->runtime.address;
  EXPECT_EQ(sb->detail.find(sb->runtime.address.substr(4)), std::string::npos) << sb->detail;
  c.kube->ClearLog();

  // An exec's output arrives while the command runs: the command waits for a file that a
  // second exec, started when the first line arrives, creates. Buffered anywhere on the way,
  // the first line would never come and the command would run into its timeout.
  struct Streamed : ExecObserver {
    const SandboxInfo* sandbox = nullptr;
    std::string out;
    bool released = false;
    void OnOutput(ExecStream, std::string_view chunk) noexcept override {
      out.append(chunk);
      if (!released && out.find("first") != std::string::npos) {
        released = true;
        CapturingObserver ignored;
        (void)Sh(*sandbox, "touch /tmp/go", ignored);
      }
    }
  } streamed;
  streamed.sandbox = &*sb;
  ExecRequest wait_for_go;
  wait_for_go.argv = {"sh", "-c", "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second"};
  wait_for_go.timeout = std::chrono::seconds(20);
  auto ran = RuntimeClient(sb->runtime).Exec(wait_for_go, streamed);
  ASSERT_OK(ran);
  EXPECT_FALSE(ran->timed_out);
  EXPECT_EQ(ran->exit_code, 0);
  EXPECT_EQ(streamed.out, "first\nsecond\n");
  const std::string pod = c.kube->Get("sandboxclaims", "paddock", NameOf(*sb))
                              ->getObject("status")
                              ->getObject("sandbox")
                              ->getValue<std::string>("name");
  EXPECT_EQ(Count(c.kube->Requests(), "POST /api/v1/namespaces/paddock/pods/" + pod + ":8888/proxy/v1/exec"),
            2);
  ASSERT_OK((*p)->Destroy(sb->id));
}

TEST(SandboxK8sApiServer, TheRelayOpensNoDoorToTheClusterOrToOtherSandboxes) {
  Cluster c;
  auto p = c.Provider("sandbox", "runtime_access = \"apiserver\"\n");
  ASSERT_OK(p);
  auto sb = (*p)->Create(Spec("ses_door"));
  ASSERT_OK(sb);
  const std::string relay = sb->runtime.address;
  ASSERT_EQ(RelayRequest(relay, "GET", "/v1/health", sb->runtime.token).status, 200);
  c.kube->ClearLog();
  // No token, a made-up one, the pool's: 401, and nothing reaches the API server.
  for (const std::string& token : {std::string(), std::string("0123456789abcdef0123456789abcdef"),
                                   std::string("fake-kube-token-0123456789")}) {
    auto r = RelayRequest(relay, "GET", "/v1/health", token);
    EXPECT_EQ(r.status, 401) << token << ": " << r.body;
  }
  // A sandbox's own token does not climb out of its pod's proxy path to the API server's other
  // resources (which the relay would call with the provider's credentials).
  for (const std::string& uri :
       {std::string("/v1/../../../../../api/v1/namespaces/paddock/secrets"),
        std::string("/v1/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/api/v1/namespaces/paddock/secrets"),
        std::string("/api/v1/namespaces/paddock/secrets"), std::string("/v1/./health")}) {
    auto r = RelayRequest(relay, "GET", uri, sb->runtime.token);
    EXPECT_EQ(r.status, 400) << uri << ": " << r.body;
  }
  EXPECT_EQ(Count(c.kube->Requests(), "secrets"), 0);
  EXPECT_EQ(ProxyRequests(*c.kube), 0);
  // A destroyed sandbox's token opens nothing any more: its runtime is gone (503).
  const std::string token = sb->runtime.token;
  ASSERT_OK((*p)->Destroy(sb->id));
  EXPECT_EQ(RelayRequest(relay, "GET", "/v1/health", token).status, 503);
  EXPECT_EQ(ProxyRequests(*c.kube), 0);
}

TEST(SandboxK8sApiServer, AProviderRestartedFindsItsSandboxesThroughTheApiServer) {
  Cluster c;
  std::string id;
  {
    auto first = c.Provider("sandbox", "runtime_access = \"apiserver\"\n");
    ASSERT_OK(first);
    auto sb = (*first)->Create(Spec("ses_restart"));
    ASSERT_OK(sb);
    id = sb->id;
  }
  auto second = c.Provider("sandbox", "runtime_access = \"apiserver\"\n");
  ASSERT_OK(second);
  auto found = (*second)->Inspect(id);
  ASSERT_OK(found);
  EXPECT_EQ(found->state, SandboxState::kRunning);
  EXPECT_EQ(found->runtime.address.rfind("tcp:127.0.0.1:", 0), 0u);
  CapturingObserver out;
  ASSERT_OK(Sh(*found, "echo still here", out));
  EXPECT_EQ(out.out, "still here\n");
  ASSERT_OK((*second)->Destroy(id));
}

TEST(SandboxKind, FindsItsClusterThroughKindAndPassesKindNoSecrets) {
  Cluster c;
  setenv("PADDOCK_TEST_KIND_SECRET", "s3cr3t-value", 1);
  auto p = LoadSandbox("kind", c.KindConfig("claim"), c.dir.path());
  unsetenv("PADDOCK_TEST_KIND_SECRET");
  ASSERT_OK(p);
  auto sb = (*p)->Create(Spec("ses_kind"));
  ASSERT_OK(sb);
  EXPECT_EQ(sb->runtime.address.rfind("tcp:127.0.0.1:", 0), 0u)
      << "kind reaches runtimes through the API server";
  CapturingObserver out;
  ASSERT_OK(Sh(*sb, "echo via kind", out));
  EXPECT_EQ(out.out, "via kind\n");
  std::ifstream env(c.dir.path() + "/kind.env");
  std::string text((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("PATH="), std::string::npos) << text;
  EXPECT_EQ(text.find("s3cr3t"), std::string::npos) << text;
  ASSERT_OK((*p)->Destroy(sb->id));
}

TEST(SandboxKind, SaysWhatIsWrongWhenKindCannotHelp) {
  Cluster c;
  auto wrong = LoadSandbox("kind", c.KindConfig("claim", "cluster = \"other\"\n"), c.dir.path());
  EXPECT_CODE(wrong, kFailedPrecondition);
  EXPECT_NE(
      wrong.status().message().find("could not locate any control plane nodes for cluster named 'other'"),
      std::string::npos)
      << wrong.status().message();
  EXPECT_NE(wrong.status().message().find("kind-up.sh"), std::string::npos);
  auto missing = LoadSandbox("kind", "kind = \"no-such-kind-binary\"\n", c.dir.path());
  EXPECT_CODE(missing, kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("not on PATH"), std::string::npos) << missing.status().message();
  auto access = LoadSandbox("kind", c.KindConfig("claim", "runtime_access = \"nodeport\"\n"), c.dir.path());
  EXPECT_CODE(access, kInvalidArgument);
}

}  // namespace
}  // namespace paddock::testing
