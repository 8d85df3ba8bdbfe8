// Loading plugins: open paddock-<kind>-<name>.so with Boost.DLL, check its manifest (ABI,
// SDK hash, toolchain, kind, name), validate its config section against its declared keys,
// and call its factory. Every refusal is one line naming the file, the check, and expected vs
// actual. Call only from the main thread, at start-up.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "paddock/plugin/sdk.h"

namespace paddock {

inline constexpr std::string_view kPluginKinds[] = {"store", "sandbox", "harness", "secrets"};

// An opened, checked library. The manifest points into it and lives as long as it does.
class LoadedPlugin;

struct PluginSummary {
  std::string path;
  std::string kind;
  std::string name;
  std::string version;
  std::string description;
  std::string keys_json;  // the declared config keys, as a JSON array
};

// One created plugin instance. Exactly one of the four pointers is set. Each pointer keeps
// the library (and the plugin's logger) alive until the last copy is gone.
struct PluginObjects {
  PluginSummary summary;
  std::shared_ptr<SessionStore> store;
  std::shared_ptr<SandboxProvider> sandbox;
  std::shared_ptr<Harness> harness;
  std::shared_ptr<SecretInjector> secrets;
  Lifecycle* lifecycle = nullptr;  // whichever of the above is set
};

// "paddock-<kind>-<name>.so"
std::string PluginFileName(std::string_view kind, std::string_view name);

// The directory to load plugins from: `configured` if set, else $PADDOCK_PLUGIN_DIR, else
// <dir of this executable>/../plugins, else <exe>/../lib/paddock/plugins.
std::string ResolvePluginDir(const std::string& configured);

// Opens and checks a plugin file; `kind`/`name` are what the file name promises.
// kFailedPrecondition with the one-line reason when it is refused.
Result<std::shared_ptr<LoadedPlugin>> OpenPlugin(const std::string& path, std::string_view kind,
                                                 std::string_view name);

PluginSummary Summarize(const LoadedPlugin& plugin);

// Opens <plugin_dir>/paddock-<kind>-<name>.so, validates `choice.config` and creates the
// instance, with `data_dir`/<kind>-<name> as its data directory (created here).
Result<PluginObjects> CreatePlugin(const std::string& plugin_dir, const PluginChoice& choice,
                                   const std::string& data_dir);

// Every paddock-*.so in `plugin_dir`: the ones that load, and one line per refused file.
struct Discovery {
  std::vector<PluginSummary> loadable;
  std::vector<std::string> refused;
};
Discovery DiscoverPlugins(const std::string& plugin_dir);

}  // namespace paddock
