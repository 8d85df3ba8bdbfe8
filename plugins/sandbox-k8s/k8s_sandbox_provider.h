// K8sSandboxProvider: sandboxes as kubernetes-sigs/agent-sandbox resources, created and watched
// through the Kubernetes REST API; the core reaches each one's paddock-runtime at pod IP + port,
// or through the API server's pod proxy (runtime_access "apiserver", api_relay.h).
//
// mode "claim" (default): a SandboxClaim against the profile's SandboxWarmPool; the pod comes
//   from the pool's SandboxTemplate, warm or cold. Its runtime starts with the pool's bootstrap
//   token (Secret `pool_token_secret`) and is handed its own token after adoption.
// mode "sandbox": a Sandbox built from the profile's SandboxTemplate, with the sandbox's own
//   token Secret and the session's workspace PersistentVolumeClaim mounted.
//
// Per sandbox, besides the claim or Sandbox: a Secret `<name>-runtime` holding the runtime's
// token (owned by the claim or Sandbox, deleted with it). Everything the provider creates is
// labelled app.kubernetes.io/managed-by=paddock and paddock.dev/instance=<instance>.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "api_relay.h"
#include "kube_client.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugins::sandbox_k8s {

struct K8sConfig {
  std::string mode = "claim";  // "claim" or "sandbox"
  std::string namespace_;      // empty: the credentials' namespace, else "default"
  bool namespace_per_team = false;
  // With namespace_per_team: a team's namespace gets <instance>-team-isolation and copies of the
  // control plane namespace's policies labelled paddock.dev/copy-to-team-namespaces=true before
  // its first sandbox.
  bool team_network_policies = true;
  std::string warm_pool = "paddock-{profile}";  // claim mode
  std::string template_ = "paddock-{profile}";  // sandbox mode
  std::string instance = "paddock";
  std::string pool_token_secret = "paddock-runtime-pool";
  std::string token_volume = "runtime-token";  // the template's volume holding the token
  std::string workspace_volume = "workspace";  // the template's volume mounted at /workspace
  std::string workspace_size = "10Gi";         // sandbox mode: a session's PersistentVolumeClaim
  std::string storage_class;                   // sandbox mode; empty: the cluster's default
  int runtime_port = 8888;
  // How the core reaches a sandbox's runtime: "pod_ip" (the pod network is routable from
  // here: the control plane runs in the cluster) or "apiserver" (through the API server's pod
  // proxy, by a loopback relay: no route to the pod network needed).
  std::string runtime_access = "pod_ip";
  std::int64_t ready_timeout_ms = 180000;
  std::int64_t destroy_timeout_ms = 60000;
};

class K8sSandboxProvider final : public SandboxProvider {
 public:
  K8sSandboxProvider(K8sConfig config, KubeCredentials credentials, Logger& logger);
  ~K8sSandboxProvider() override;

  Status Start() noexcept override;

  Result<SandboxInfo> Create(const SandboxSpec& spec) noexcept override;
  Result<SandboxInfo> Claim(std::string_view id, std::string_view session_id) noexcept override;
  Result<SandboxInfo> Inspect(std::string_view id) noexcept override;
  Status Destroy(std::string_view id) noexcept override;
  Result<std::vector<SandboxInfo>> List() noexcept override;
  Status Suspend(std::string_view id) noexcept override;
  Result<SandboxInfo> Resume(std::string_view id) noexcept override;
  bool KeepsSessionData() const noexcept override { return config_.mode == "sandbox"; }
  Status DeleteSessionData(std::string_view session_id) noexcept override;

  KubeClient& client() { return *client_; }

 private:
  struct Ref {
    std::string name;
    std::string ns;
  };
  Result<SandboxInfo> CreateImpl(const SandboxSpec& spec);
  Result<SandboxInfo> InspectImpl(const Ref& ref);
  Result<SandboxInfo> ResumeImpl(const Ref& ref);
  Status DestroyImpl(const Ref& ref);
  Result<std::vector<SandboxInfo>> ListImpl();

  std::optional<Ref> ParseId(std::string_view id) const;
  std::string Namespace(const std::string& team) const;
  std::string ResourcePath(const std::string& ns, const std::string& name = "") const;  // claim or Sandbox
  std::string PoliciesPath(const std::string& ns, const std::string& name = "") const;
  // A team namespace's own NetworkPolicy: every pod reachable only from the control plane's
  // runtime clients (in its namespace, on the runtime port), and out nowhere (the copied policies
  // add the way out: the egress proxy's pods).
  Poco::JSON::Object::Ptr IsolationPolicy(const std::string& ns, const std::string& team) const;
  // Creates the policy, or puts it back where it differs.
  Status ApplyPolicy(const std::string& ns, const Poco::JSON::Object::Ptr& policy);
  // Once per namespace and process: the isolation policy and the copies, or an error that
  // stops the sandbox (it would otherwise start open).
  Status EnsureTeamNamespace(const std::string& ns, const std::string& team);
  std::string SandboxesPath(const std::string& ns, const std::string& name = "") const;
  std::string CorePath(const std::string& ns, const std::string& resource,
                       const std::string& name = "") const;
  std::string Selector() const;  // this instance's objects

  // A watch of one object by name from `rv`, with bookmarks, ending by the deadline.
  std::string WatchQuery(const std::string& collection, const std::string& name, const std::string& rv,
                         std::chrono::steady_clock::time_point deadline) const;
  // Watches the claim or Sandbox from `rv` until Ready=True (returns it), a terminal reason,
  // its deletion or the deadline. 410 Gone: lists it again and watches from there.
  Result<Poco::JSON::Object::Ptr> WaitReady(const Ref& ref, std::string rv,
                                            std::chrono::steady_clock::time_point deadline);
  // Watches a Sandbox until its Suspended condition is True.
  Status WaitSuspended(const Ref& sandbox, std::string rv, std::chrono::steady_clock::time_point deadline);
  // Watches until the object is gone.
  Status WaitGone(const std::string& collection, const std::string& name,
                  std::chrono::steady_clock::time_point deadline);

  Result<std::string> PoolToken(const std::string& ns);
  Result<std::string> SandboxToken(const Ref& ref);
  Status CreateTokenSecret(const Ref& ref, const Poco::JSON::Object::Ptr& owner, const std::string& token,
                           const std::map<std::string, std::string>& labels);
  // Gives a claimed pod's runtime its own token (it started with the pool's).
  Status HandOverToken(const std::string& address, const RelayTarget& pod, const std::string& pool_token,
                       const std::string& token, std::chrono::steady_clock::time_point deadline);
  // One call to a runtime the provider makes itself: at `address`, or through the API server.
  Result<int> CallRuntime(const std::string& address, const RelayTarget& pod, const std::string& method,
                          const std::string& path, const std::string& token, const std::string& body);
  // The pod of a claim or Sandbox (agent-sandbox's pod-name annotation, else the Sandbox's name).
  Result<RelayTarget> PodOf(const Ref& ref, const Poco::JSON::Object::Ptr& object);
  // apiserver access: requests with the info's token are relayed to its pod.
  Status Route(SandboxInfo& info, const Ref& ref, const Poco::JSON::Object::Ptr& object);
  Result<Poco::JSON::Object::Ptr> BuildSandbox(const SandboxSpec& spec, const Ref& ref,
                                               const std::map<std::string, std::string>& labels,
                                               const std::string& pvc);
  Result<std::string> SessionVolume(const std::string& ns, const std::string& session);  // "" if none

  SandboxInfo InfoOf(const Ref& ref, const Poco::JSON::Object::Ptr& object) const;
  Status ApiError(const KubeReply& reply, const std::string& what) const;

  K8sConfig config_;
  std::unique_ptr<KubeClient> client_;
  std::unique_ptr<ApiServerRelay> relay_;  // runtime_access "apiserver"
  Logger& logger_;
  std::string default_namespace_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> pool_tokens_;  // namespace → pool token
  std::map<std::string, std::string> tokens_;       // sandbox id → its runtime token
  std::map<std::string, std::string> pods_;         // sandbox id → its pod's name (claim mode)
  std::set<std::string> ready_namespaces_;          // team namespaces with their policies
};

}  // namespace paddock::plugins::sandbox_k8s
