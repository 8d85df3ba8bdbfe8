// sandbox.k8s: sandboxes on Kubernetes through the kubernetes-sigs/agent-sandbox CRDs.
#include <cstdlib>

#include "k8s_config.h"
#include "k8s_sandbox_provider.h"
#include "paddock/plugin/sdk.h"

namespace paddock::plugins::sandbox_k8s {
namespace {

const std::vector<paddock_config_key>& Keys() {
  static const std::vector<paddock_config_key> keys = [] {
    std::vector<paddock_config_key> k = {
        {"kubeconfig", PADDOCK_CONFIG_STRING, 0, "",
         "Path of a kubeconfig; empty: the pod's service account when running in a cluster, else "
         "$KUBECONFIG, "
         "else ~/.kube/config."},
        {"context", PADDOCK_CONFIG_STRING, 0, "",
         "The kubeconfig context to use; empty: its current-context."},
    };
    for (const auto& shared : SharedConfigKeys("pod_ip")) k.push_back(shared);
    return k;
  }();
  return keys;
}

const std::vector<paddock_config_rule>& Rules() {
  static const std::vector<paddock_config_rule> rules = SharedConfigRules();
  return rules;
}

Result<SandboxProviderPtr> Create(const PluginContext& ctx, const ConfigView& config) {
  PADDOCK_ASSIGN_OR_RETURN(K8sConfig c, ParseK8sConfig(config));
  std::string kubeconfig = config.GetString("kubeconfig");
  Result<KubeCredentials> creds = Status::Internal("unset");
  if (kubeconfig.empty() && std::getenv("KUBERNETES_SERVICE_HOST")) {
    creds = InClusterCredentials();
  } else {
    if (kubeconfig.empty()) {
      if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
        kubeconfig = env;
        kubeconfig = kubeconfig.substr(0, kubeconfig.find(':'));
      } else if (const char* home = std::getenv("HOME")) {
        kubeconfig = std::string(home) + "/.kube/config";
      }
    }
    creds = LoadKubeconfig(kubeconfig, config.GetString("context"));
  }
  if (!creds.ok()) return creds.status();
  return SandboxProviderPtr(
      std::make_unique<K8sSandboxProvider>(std::move(c), std::move(*creds), *ctx.logger));
}

}  // namespace
}  // namespace paddock::plugins::sandbox_k8s

PADDOCK_DEFINE_PLUGIN(
    sandbox, k8s, "0.1.0",
    "Sandboxes on Kubernetes through the kubernetes-sigs/agent-sandbox CRDs (SandboxClaim against "
    "a warm pool, or a Sandbox), reached at pod IP + port or through the API server.",
    paddock::ConfigSchema(paddock::plugins::sandbox_k8s::Keys(), paddock::plugins::sandbox_k8s::Rules()),
    paddock::plugins::sandbox_k8s::Create)
