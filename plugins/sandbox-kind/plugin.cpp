// sandbox.kind: sandbox.k8s on a local kind cluster. It asks `kind get kubeconfig` for the
// cluster's credentials itself and reaches the sandboxes' runtimes through the API server
// (runtime_access "apiserver" by default), so nothing on this machine needs a route to the
// pod network (deploy/kind/kind-up.sh makes the cluster).
#include <chrono>
#include <cstdlib>

#include "k8s_config.h"
#include "k8s_sandbox_provider.h"
#include "paddock/plugin/sdk.h"
#include "paddock/process.h"

namespace paddock::plugins::sandbox_kind {
namespace {

using sandbox_k8s::K8sConfig;
using sandbox_k8s::K8sSandboxProvider;
using sandbox_k8s::KubeCredentials;

const std::vector<paddock_config_key>& Keys() {
  static const std::vector<paddock_config_key> keys = [] {
    std::vector<paddock_config_key> k = {
        {"cluster", PADDOCK_CONFIG_STRING, 0, "paddock",
         "Name of the kind cluster (kind create cluster --name)."},
        {"kind", PADDOCK_CONFIG_STRING, 0, "kind", "The kind command: a path, or a name looked up in $PATH."},
        {"kubeconfig_timeout", PADDOCK_CONFIG_DURATION, 0, "30s", "How long `kind get kubeconfig` may take."},
    };
    for (const auto& shared : sandbox_k8s::SharedConfigKeys("apiserver")) k.push_back(shared);
    return k;
  }();
  return keys;
}

// What kind needs from our environment to find the container engine, and nothing else (the
// server's environment may hold secrets for the env secrets plugin).
std::vector<std::string> KindEnvironment() {
  std::vector<std::string> env;
  for (const char* name : {"PATH", "HOME", "USER", "TMPDIR", "XDG_RUNTIME_DIR", "DOCKER_HOST",
                           "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_CONTEXT",
                           "CONTAINER_HOST", "KIND_EXPERIMENTAL_PROVIDER"}) {
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  }
  return env;
}

struct Output {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `argv` and collects its output, killing it when `timeout` passes.
Result<Output> Capture(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  process::ChildSpec spec;
  spec.argv = std::move(argv);
  spec.env = KindEnvironment();
  Output o;
  PADDOCK_ASSIGN_OR_RETURN(
      ExecResult ran, process::RunAndStream(spec, {timeout}, [&](ExecStream stream, std::string_view chunk) {
        std::string& to = stream == ExecStream::kStdout ? o.out : o.err;
        if (to.size() < (1u << 20)) to.append(chunk);
      }));
  if (ran.timed_out)
    return Status::DeadlineExceeded("did not finish in " + std::to_string(timeout.count()) + " ms");
  o.exit_code = ran.exit_code;
  return o;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

const std::vector<paddock_config_rule>& Rules() {
  static const std::vector<paddock_config_rule> rules = [] {
    std::vector<paddock_config_rule> r = {config::NotEmpty("cluster"), config::NotEmpty("kind"),
                                          config::AtLeast("kubeconfig_timeout", 1)};
    for (const auto& shared : sandbox_k8s::SharedConfigRules()) r.push_back(shared);
    return r;
  }();
  return rules;
}

Result<SandboxProviderPtr> Create(const PluginContext& ctx, const ConfigView& config) {
  PADDOCK_ASSIGN_OR_RETURN(K8sConfig c, sandbox_k8s::ParseK8sConfig(config));
  const std::string cluster = config.GetString("cluster");
  const std::string kind = config.GetString("kind");
  const auto timeout = std::chrono::milliseconds(config.GetDurationMs("kubeconfig_timeout"));
  std::optional<std::string> binary = process::FindExecutable(kind);
  if (!binary) {
    return Status::FailedPrecondition("the kind command '" + kind +
                                      "' is not on PATH; install kind or set [sandbox.config] kind");
  }
  const std::string what = "`kind get kubeconfig --name " + cluster + "`";
  Result<Output> ran = Capture({*binary, "get", "kubeconfig", "--name", cluster}, timeout);
  if (!ran.ok()) return Status::Unavailable(what + ": " + ran.status().message());
  if (ran->exit_code != 0) {
    return Status::FailedPrecondition(what + " failed (exit " + std::to_string(ran->exit_code) +
                                      "): " + Trimmed(ran->err) +
                                      "; is the cluster up? deploy/kind/kind-up.sh creates it");
  }
  // kind names the context kind-<cluster> and makes it the current one.
  Result<KubeCredentials> creds = sandbox_k8s::ParseKubeconfig(ran->out, what, "");
  if (!creds.ok()) return creds.status();
  creds->source = "kind cluster '" + cluster + "' (" + what + ")";
  return SandboxProviderPtr(
      std::make_unique<K8sSandboxProvider>(std::move(c), std::move(*creds), *ctx.logger));
}

}  // namespace
}  // namespace paddock::plugins::sandbox_kind

PADDOCK_DEFINE_PLUGIN(
    sandbox, kind, "0.1.0",
    "Sandboxes on a local kind cluster: sandbox.k8s with the cluster's kubeconfig from `kind get "
    "kubeconfig`, runtimes reached through the API server (no route to the pod network).",
    paddock::ConfigSchema(paddock::plugins::sandbox_kind::Keys(), paddock::plugins::sandbox_kind::Rules()),
    paddock::plugins::sandbox_kind::Create)
