// sandbox.process: local sandboxes as bubblewrap jails (Linux namespaces, no network).
#include <unistd.h>

#include "paddock/plugin/sdk.h"
#include "process_sandbox_provider.h"

namespace paddock::plugins::sandbox_process {
namespace {

constexpr paddock_config_key kConfigKeys[] = {
    {"root", PADDOCK_CONFIG_STRING, 0, "",
     "Directory for sandbox state and workspaces; empty: the plugin's data directory."},
    {"bwrap", PADDOCK_CONFIG_STRING, 0, "bwrap", "The bubblewrap executable."},
    {"runtime", PADDOCK_CONFIG_STRING, 0, "",
     "The paddock-runtime executable; empty: the one next to the paddock binary, else from PATH."},
    {"disk_quota", PADDOCK_CONFIG_BOOL, 0, "true",
     "Enforce a profile's disk limit with a loop-mounted ext4 image per workspace (needs root)."},
    {"spare_volumes", PADDOCK_CONFIG_INT, 0, "2",
     "Workspace images formatted and mounted ahead per disk size, so a new workspace need not wait "
     "for mkfs and a loop mount (0: none)."},
    {"disk_overcommit", PADDOCK_CONFIG_INT, 0, "4",
     "Refuse a new workspace image once the images' sizes together would pass this many times the "
     "root's filesystem (sparse images promise more than they use); 0: never refuse."},
    {"mkfs", PADDOCK_CONFIG_STRING, 0, "mkfs.ext4", "mkfs for workspace images (e2fsprogs)."},
    {"mount", PADDOCK_CONFIG_STRING, 0, "mount", "mount for workspace images (util-linux)."},
    {"ro_binds", PADDOCK_CONFIG_STRING_LIST, 0, "/usr,/etc/alternatives,/etc/ssl/certs,/etc/ca-certificates",
     "Host paths mounted read-only into every sandbox (missing ones are skipped)."},
    {"hostname", PADDOCK_CONFIG_STRING, 0, "sandbox", "Host name inside the sandbox."},
    {"sandbox_uid", PADDOCK_CONFIG_INT, 0, "1000", "uid and gid that commands run as inside."},
    {"run_as_uid", PADDOCK_CONFIG_INT, 0, "65534",
     "When the server runs as root: the unprivileged host uid that sandboxes run as."},
    {"run_as_gid", PADDOCK_CONFIG_INT, 0, "65534",
     "When the server runs as root: the host gid that sandboxes run as."},
    {"start_timeout", PADDOCK_CONFIG_DURATION, 0, "10s", "How long a sandbox may take to start."},
    {"destroy_on_stop", PADDOCK_CONFIG_BOOL, 0, "false",
     "Destroy every sandbox when the server stops (otherwise the next start does)."},
};

constexpr paddock_config_rule kConfigRules[] = {
    config::NotEmpty("bwrap"),
    config::Range("spare_volumes", 0, 64),
    config::Range("disk_overcommit", 0, 1000),
    config::NotEmpty("hostname"),
    config::Range("sandbox_uid", 1, 65533),  // not root, not nobody
    config::Range("run_as_uid", 1, 0xfffffffe),
    config::Range("run_as_gid", 1, 0xfffffffe),
    config::AtLeast("start_timeout", 100),
};

Result<SandboxProviderPtr> Create(const PluginContext& ctx, const ConfigView& config) {
  ProcessConfig c;
  c.root = config.GetString("root");
  if (c.root.empty()) c.root = ctx.data_dir;
  c.destroy_on_stop = config.GetBool("destroy_on_stop");
  JailOptions& j = c.jail;
  auto bwrap = FindExecutable(config.GetString("bwrap"));
  if (!bwrap) {
    return Status::FailedPrecondition("bwrap '" + config.GetString("bwrap") +
                                      "' not found; install bubblewrap (apt-get install bubblewrap)");
  }
  j.bwrap = *bwrap;
  std::string runtime = config.GetString("runtime");
  if (runtime.empty()) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    std::string next_to = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string();
    next_to = next_to.substr(0, next_to.rfind('/') + 1) + "paddock-runtime";
    runtime = access(next_to.c_str(), X_OK) == 0 ? next_to : "paddock-runtime";
  }
  auto runtime_path = FindExecutable(runtime);
  if (!runtime_path) {
    return Status::FailedPrecondition(
        "paddock-runtime '" + runtime +
        "' not found; build it (ninja paddock-runtime) or set [sandbox.config] runtime");
  }
  j.runtime = *runtime_path;
  c.disk_quota = config.GetBool("disk_quota");
  c.spare_volumes = static_cast<int>(config.GetInt("spare_volumes"));
  c.disk_overcommit = static_cast<int>(config.GetInt("disk_overcommit"));
  c.mkfs = FindExecutable(config.GetString("mkfs")).value_or("/usr/sbin/mkfs.ext4");
  c.mount = FindExecutable(config.GetString("mount")).value_or("/usr/bin/mount");
  j.ro_binds = config.GetStringList("ro_binds");
  for (const auto& p : j.ro_binds) {
    if (p.empty() || p[0] != '/')
      return Status::InvalidArgument("ro_binds entries must be absolute paths: '" + p + "'");
  }
  j.hostname = config.GetString("hostname");
  std::int64_t uid = config.GetInt("sandbox_uid");
  j.sandbox_uid = static_cast<uid_t>(uid);
  j.sandbox_gid = static_cast<gid_t>(uid);
  if (geteuid() == 0) {
    std::int64_t host_uid = config.GetInt("run_as_uid");
    std::int64_t host_gid = config.GetInt("run_as_gid");
    j.host_creds = Credentials{static_cast<uid_t>(host_uid), static_cast<gid_t>(host_gid)};
  }
  j.start_timeout_ms = config.GetDurationMs("start_timeout");
  return SandboxProviderPtr(std::make_unique<ProcessSandboxProvider>(std::move(c), *ctx.logger));
}

}  // namespace
}  // namespace paddock::plugins::sandbox_process

PADDOCK_DEFINE_PLUGIN(sandbox, process, "0.1.0",
                      "Local sandboxes: bubblewrap jails running paddock-runtime, with cgroup limits and "
                      "egress only through the proxy.",
                      paddock::ConfigSchema(paddock::plugins::sandbox_process::kConfigKeys,
                                            paddock::plugins::sandbox_process::kConfigRules),
                      paddock::plugins::sandbox_process::Create)
