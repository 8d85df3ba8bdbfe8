#include "plugins/plugin_host.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "config/schema.h"
#include "util/log.h"

namespace paddock {

namespace fs = std::filesystem;

class LoadedPlugin {
 public:
  std::string path;
  boost::dll::shared_library library;
  const paddock_plugin_manifest* manifest = nullptr;
  using CreateFn = void(const PluginContext*, const ConfigView*, PluginInstance*);
  CreateFn* create = nullptr;
};

namespace {

Status Refuse(const std::string& path, const std::string& why) {
  return Status::FailedPrecondition("plugin " + path + ": " + why);
}

std::string Str(const char* s) { return s ? s : "(null)"; }

// Holds what an instance needs after its factory returned: its library and its logger.
struct InstanceHome {
  std::shared_ptr<LoadedPlugin> plugin;
  std::unique_ptr<Logger> logger;
};

template <class T>
std::shared_ptr<T> Share(std::unique_ptr<T> p, std::shared_ptr<InstanceHome> home) {
  // The instance is deleted first, then (with the last reference) the library is unloaded.
  return std::shared_ptr<T>(p.release(), [home = std::move(home)](T* obj) { delete obj; });
}

}  // namespace

std::string PluginFileName(std::string_view kind, std::string_view name) {
  return "paddock-" + std::string(kind) + "-" + std::string(name) + ".so";
}

std::string ResolvePluginDir(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (const char* env = std::getenv("PADDOCK_PLUGIN_DIR"); env && *env) return env;
  std::error_code ec;
  fs::path exe_dir = boost::dll::program_location().parent_path().string();
  for (const fs::path& candidate :
       {exe_dir / ".." / "plugins", exe_dir / ".." / "lib" / "paddock" / "plugins"}) {
    if (fs::is_directory(candidate, ec)) return fs::weakly_canonical(candidate, ec).string();
  }
  return (exe_dir / ".." / "plugins").lexically_normal().string();
}

namespace {
// A manifest's schema; one built against ABI 1.0 (shorter, minor 0) has keys and no rules.
ConfigSchema SchemaOf(const paddock_plugin_manifest& m) {
  ConfigKeys keys(m.config_keys, m.config_key_count);
  if (m.abi_minor < 1 || m.struct_size < sizeof(paddock_plugin_manifest) || !m.config_rules) return keys;
  return ConfigSchema(keys, ConfigRules(m.config_rules, m.config_rule_count));
}
}  // namespace

Result<std::shared_ptr<LoadedPlugin>> OpenPlugin(const std::string& path, std::string_view kind,
                                                 std::string_view name) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return Refuse(path,
                  "file not found (expected " + PluginFileName(kind, name) + " in the plugin directory)");
  }
  if (st.st_mode & S_IWOTH) return Refuse(path, "file is world-writable; refusing to load it");
  auto plugin = std::make_shared<LoadedPlugin>();
  plugin->path = path;
  boost::dll::fs::error_code ec;
  plugin->library.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec) return Refuse(path, "cannot load: " + ec.message() + " (" + Str(dlerror()) + ")");
  if (!plugin->library.has(PADDOCK_PLUGIN_MANIFEST_SYMBOL)) {
    return Refuse(path, "no symbol " PADDOCK_PLUGIN_MANIFEST_SYMBOL
                        "; not a paddock plugin (use PADDOCK_DEFINE_PLUGIN)");
  }
  auto manifest_fn = plugin->library.get<const paddock_plugin_manifest*()>(PADDOCK_PLUGIN_MANIFEST_SYMBOL);
  const paddock_plugin_manifest* m = manifest_fn();
  if (!m) return Refuse(path, "manifest is null");
  if (m->struct_size < PADDOCK_PLUGIN_MANIFEST_SIZE_1_0) {
    return Refuse(path, "manifest size " + std::to_string(m->struct_size) + ", expected at least " +
                            std::to_string(PADDOCK_PLUGIN_MANIFEST_SIZE_1_0));
  }
  if (m->abi_major != PADDOCK_PLUGIN_ABI_MAJOR) {
    return Refuse(path, "ABI version " + std::to_string(m->abi_major) + "." + std::to_string(m->abi_minor) +
                            ", expected " + std::to_string(PADDOCK_PLUGIN_ABI_MAJOR) + ".x");
  }
  if (Str(m->sdk_hash) != PADDOCK_SDK_HASH) {
    return Refuse(path, "SDK hash " + Str(m->sdk_hash) + ", expected " + PADDOCK_SDK_HASH +
                            " (rebuild the plugin against this SDK)");
  }
  if (Str(m->toolchain) != PADDOCK_TOOLCHAIN) {
    return Refuse(path, "toolchain '" + Str(m->toolchain) + "', expected '" + PADDOCK_TOOLCHAIN + "'");
  }
  if (std::find(std::begin(kPluginKinds), std::end(kPluginKinds), Str(m->kind)) == std::end(kPluginKinds)) {
    return Refuse(path,
                  "unknown kind '" + Str(m->kind) + "', expected one of store, sandbox, harness, secrets");
  }
  if (Str(m->kind) != kind || Str(m->name) != name) {
    return Refuse(path, "manifest names " + Str(m->kind) + "." + Str(m->name) + ", expected " +
                            std::string(kind) + "." + std::string(name));
  }
  std::set<std::string> keys;
  for (uint32_t i = 0; i < m->config_key_count; ++i) {
    const paddock_config_key& k = m->config_keys[i];
    if (!k.name || !keys.insert(k.name).second) {
      return Refuse(path, "config key '" + Str(k.name) + "' is declared twice or unnamed");
    }
    if (k.type < PADDOCK_CONFIG_STRING || k.type > PADDOCK_CONFIG_STRING_LIST) {
      return Refuse(path, "config key '" + Str(k.name) + "' has unknown type " + std::to_string(k.type));
    }
  }
  if (Status sound = CheckSchema(SchemaOf(*m)); !sound.ok()) return Refuse(path, sound.message());
  if (!plugin->library.has(PADDOCK_PLUGIN_CREATE_SYMBOL)) {
    return Refuse(path, "no symbol " PADDOCK_PLUGIN_CREATE_SYMBOL);
  }
  plugin->create = &plugin->library.get<LoadedPlugin::CreateFn>(PADDOCK_PLUGIN_CREATE_SYMBOL);
  plugin->manifest = m;
  return plugin;
}

PluginSummary Summarize(const LoadedPlugin& plugin) {
  const paddock_plugin_manifest* m = plugin.manifest;
  return PluginSummary{plugin.path,           m->kind, m->name, Str(m->version), Str(m->description),
                       KeysJson(SchemaOf(*m))};
}

Result<PluginObjects> CreatePlugin(const std::string& plugin_dir, const PluginChoice& choice,
                                   const std::string& data_dir) {
  const std::string path = !choice.path.empty()
                               ? choice.path
                               : (fs::path(plugin_dir) / PluginFileName(choice.kind, choice.name)).string();
  PADDOCK_ASSIGN_OR_RETURN(std::shared_ptr<LoadedPlugin> plugin, OpenPlugin(path, choice.kind, choice.name));
  Result<ConfigView> config = ValidateSection(SchemaOf(*plugin->manifest), choice.config);
  if (!config.ok()) {
    return Status::InvalidArgument(config.status().message() + " (plugin " + choice.kind + "." + choice.name +
                                   ", " + path + ")");
  }
  auto home = std::make_shared<InstanceHome>();
  home->plugin = plugin;
  home->logger = MakeLogger("plugin." + choice.kind + "." + choice.name);
  PluginContext ctx;
  ctx.logger = home->logger.get();
  ctx.plugin_id = choice.kind + "." + choice.name;
  ctx.data_dir = (fs::path(data_dir) / (choice.kind + "-" + choice.name)).string();
  std::error_code ec;
  fs::create_directories(ctx.data_dir, ec);
  if (ec) return Status::FailedPrecondition("cannot create " + ctx.data_dir + ": " + ec.message());

  PluginInstance instance;
  plugin->create(&ctx, &config.value(), &instance);
  if (!instance.status.ok()) {
    return Status(instance.status.code(), "plugin " + path + ": create failed: " + instance.status.message());
  }
  PluginObjects out;
  out.summary = Summarize(*plugin);
  int set = 0;
  if (instance.store) {
    out.store = Share(std::move(instance.store), home);
    out.lifecycle = out.store.get();
    ++set;
  }
  if (instance.sandbox) {
    out.sandbox = Share(std::move(instance.sandbox), home);
    out.lifecycle = out.sandbox.get();
    ++set;
  }
  if (instance.harness) {
    out.harness = Share(std::move(instance.harness), home);
    out.lifecycle = out.harness.get();
    ++set;
  }
  if (instance.secrets) {
    out.secrets = Share(std::move(instance.secrets), home);
    out.lifecycle = out.secrets.get();
    ++set;
  }
  const bool right_kind =
      (choice.kind == "store" && out.store) || (choice.kind == "sandbox" && out.sandbox) ||
      (choice.kind == "harness" && out.harness) || (choice.kind == "secrets" && out.secrets);
  if (set != 1 || !right_kind) {
    return Status::FailedPrecondition("plugin " + path + ": factory did not return exactly one " +
                                      choice.kind + " instance");
  }
  return out;
}

Discovery DiscoverPlugins(const std::string& plugin_dir) {
  Discovery d;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(plugin_dir, ec)) {
    std::string f = entry.path().filename().string();
    if (f.rfind("paddock-", 0) == 0 && f.size() > 11 && f.substr(f.size() - 3) == ".so") {
      files.push_back(entry.path());
    }
  }
  if (ec) d.refused.push_back("plugin directory " + plugin_dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const fs::path& p : files) {
    std::string stem = p.filename().string();
    stem = stem.substr(8, stem.size() - 11);  // between "paddock-" and ".so"
    auto dash = stem.find('-');
    if (dash == std::string::npos) {
      d.refused.push_back("plugin " + p.string() + ": file name is not paddock-<kind>-<name>.so");
      continue;
    }
    auto opened = OpenPlugin(p.string(), stem.substr(0, dash), stem.substr(dash + 1));
    if (opened.ok()) {
      d.loadable.push_back(Summarize(**opened));
    } else {
      d.refused.push_back(opened.status().message());
    }
  }
  return d;
}

}  // namespace paddock
