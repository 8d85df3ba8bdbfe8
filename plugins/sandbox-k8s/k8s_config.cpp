#include "k8s_config.h"

namespace paddock::plugins::sandbox_k8s {

std::vector<paddock_config_key> SharedConfigKeys(const char* access_default) {
  return {
      {"namespace", PADDOCK_CONFIG_STRING, 0, "",
       "Namespace of the sandboxes; empty: the context's (or the service account's) namespace, else "
       "'default'."},
      {"namespace_per_team", PADDOCK_CONFIG_BOOL, 0, "false",
       "Put a team's sandboxes in namespace '<namespace>-<team>' (each needs the templates, pools and "
       "RBAC)."},
      {"team_network_policies", PADDOCK_CONFIG_BOOL, 0, "true",
       "With namespace_per_team: before a team's first sandbox, write NetworkPolicy "
       "'<instance>-team-isolation' (in only from the control plane's sandbox clients, out nowhere but where "
       "the copies allow: the egress proxy) and "
       "copies of the policies in <namespace> labelled paddock.dev/copy-to-team-namespaces=true into the "
       "team's namespace; no sandbox starts where they cannot be written. false: you manage them."},
      {"mode", PADDOCK_CONFIG_STRING, 0, "claim",
       "'claim': a SandboxClaim against the profile's SandboxWarmPool (warm or cold); 'sandbox': a Sandbox "
       "built from the profile's SandboxTemplate, with a workspace volume per session."},
      {"runtime_access", PADDOCK_CONFIG_STRING, 0, access_default,
       "How sandboxes' runtimes are reached: 'pod_ip' (the pod network is routable from here, as inside the "
       "cluster) or 'apiserver' (through the API server's pod proxy: no route to the pod network needed; "
       "RBAC pods/proxy)."},
      {"warm_pool", PADDOCK_CONFIG_STRING, 0, "paddock-{profile}",
       "SandboxWarmPool name for a profile (claim mode)."},
      {"template", PADDOCK_CONFIG_STRING, 0, "paddock-{profile}",
       "SandboxTemplate name for a profile (sandbox mode)."},
      {"instance", PADDOCK_CONFIG_STRING, 0, "paddock",
       "Value of the paddock.dev/instance label on everything this Paddock creates (several may share a "
       "namespace)."},
      {"pool_token_secret", PADDOCK_CONFIG_STRING, 0, "paddock-runtime-pool",
       "Secret (key 'token') that warm pods' runtimes start with until they are claimed; created if "
       "missing."},
      {"token_volume", PADDOCK_CONFIG_STRING, 0, "runtime-token",
       "The template's volume holding the runtime's token (sandbox mode mounts the sandbox's own Secret "
       "there)."},
      {"workspace_volume", PADDOCK_CONFIG_STRING, 0, "workspace",
       "The template's volume mounted at /workspace (sandbox mode mounts the session's volume there)."},
      {"workspace_size", PADDOCK_CONFIG_STRING, 0, "10Gi",
       "Size of a session's workspace volume when the profile sets no disk limit (sandbox mode)."},
      {"storage_class", PADDOCK_CONFIG_STRING, 0, "",
       "StorageClass of workspace volumes (sandbox mode); empty: the cluster's default."},
      {"runtime_port", PADDOCK_CONFIG_INT, 0, "8888", "Port paddock-runtime listens on in the pod."},
      {"ready_timeout", PADDOCK_CONFIG_DURATION, 0, "180s", "How long a sandbox may take to become Ready."},
      {"destroy_timeout", PADDOCK_CONFIG_DURATION, 0, "60s",
       "How long deleting a sandbox may take to finish."},
  };
}

std::vector<paddock_config_rule> SharedConfigRules() {
  return {
      config::OneOf("mode", "claim,sandbox"), config::OneOf("runtime_access", "pod_ip,apiserver"),
      config::NotEmpty("warm_pool"),          config::NotEmpty("template"),
      config::NotEmpty("instance"),           config::NotEmpty("pool_token_secret"),
      config::NotEmpty("token_volume"),       config::NotEmpty("workspace_volume"),
      config::NotEmpty("workspace_size"),     config::Range("runtime_port", 1, 65535),
      config::AtLeast("ready_timeout", 1),    config::AtLeast("destroy_timeout", 1),
  };
}

Result<K8sConfig> ParseK8sConfig(const ConfigView& config) {
  K8sConfig c;
  c.mode = config.GetString("mode");
  c.runtime_access = config.GetString("runtime_access");
  c.namespace_ = config.GetString("namespace");
  c.namespace_per_team = config.GetBool("namespace_per_team");
  c.team_network_policies = config.GetBool("team_network_policies");
  c.warm_pool = config.GetString("warm_pool");
  c.template_ = config.GetString("template");
  c.instance = config.GetString("instance");
  c.pool_token_secret = config.GetString("pool_token_secret");
  c.token_volume = config.GetString("token_volume");
  c.workspace_volume = config.GetString("workspace_volume");
  c.workspace_size = config.GetString("workspace_size");
  c.storage_class = config.GetString("storage_class");
  c.runtime_port = static_cast<int>(config.GetInt("runtime_port"));
  c.ready_timeout_ms = config.GetDurationMs("ready_timeout");
  c.destroy_timeout_ms = config.GetDurationMs("destroy_timeout");
  return c;
}

}  // namespace paddock::plugins::sandbox_k8s
