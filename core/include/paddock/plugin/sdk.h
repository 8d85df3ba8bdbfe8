// What a plugin's plugin.cpp includes: the context the host hands to a factory, and
// PADDOCK_DEFINE_PLUGIN, which exports the manifest and the factory.
#pragma once

#include <exception>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "paddock/config.h"
#include "paddock/harness.h"
#include "paddock/logger.h"
#include "paddock/plugin/abi.h"
#include "paddock/plugin/config_schema.h"
#include "paddock/sandbox_provider.h"
#include "paddock/sdk_hash.h"  // generated at build time: PADDOCK_SDK_HASH
#include "paddock/secret_injector.h"
#include "paddock/session_store.h"
#include "paddock/status.h"

#define PADDOCK_STRINGIFY_INNER_(x) #x
#define PADDOCK_STRINGIFY_(x) PADDOCK_STRINGIFY_INNER_(x)

// Compiler and C++ library ABI; the host refuses a plugin built with another.
#define PADDOCK_TOOLCHAIN "gcc-" __VERSION__ "|libstdc++|cxx11abi=" PADDOCK_STRINGIFY_(_GLIBCXX_USE_CXX11_ABI)

namespace paddock {

// Everything a plugin gets from the host. Valid until the plugin's Stop() returns.
struct PluginContext {
  Logger* logger = nullptr;  // never null; owned by the host
  std::string plugin_id;     // "<kind>.<name>"
  std::string data_dir;      // a directory the plugin may keep state in (created by the host)
};

// Filled in by a plugin's factory: exactly one pointer of the plugin's kind is set, or
// status says why the plugin could not be created.
struct PluginInstance {
  Status status;
  std::unique_ptr<SessionStore> store;
  std::unique_ptr<SandboxProvider> sandbox;
  std::unique_ptr<Harness> harness;
  std::unique_ptr<SecretInjector> secrets;
};

namespace plugin {

inline void Place(PluginInstance& out, std::unique_ptr<SessionStore> p) { out.store = std::move(p); }
inline void Place(PluginInstance& out, std::unique_ptr<SandboxProvider> p) { out.sandbox = std::move(p); }
inline void Place(PluginInstance& out, std::unique_ptr<Harness> p) { out.harness = std::move(p); }
inline void Place(PluginInstance& out, std::unique_ptr<SecretInjector> p) { out.secrets = std::move(p); }

// Calls `factory` (returning Result<std::unique_ptr<Interface>>) and stores what it made;
// no exception leaves.
template <class Factory>
void CreateInto(PluginInstance& out, Factory&& factory) noexcept {
  try {
    auto made = factory();
    if (!made.ok()) {
      out.status = made.status();
      return;
    }
    if (!*made) {
      out.status = Status::Internal("factory returned null");
      return;
    }
    Place(out, std::move(made).value());
  } catch (const std::exception& e) {
    out.status = Status::Internal(std::string("factory threw: ") + e.what());
  } catch (...) {
    out.status = Status::Internal("factory threw a non-standard exception");
  }
}

// Runs `f` (returning Status or Result<T>) and turns any exception into kInternal, so that an
// interface method can be written as `return plugin::Guard([&] { ... });`.
template <class F>
auto Guard(F&& f) noexcept -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("unexpected exception: ") + e.what());
  } catch (...) {
    return Status::Internal("unexpected non-standard exception");
  }
}

}  // namespace plugin
}  // namespace paddock

// Exports the manifest and the factory of a plugin. KIND and NAME are bare words (store,
// sqlite); KEYS is a paddock::ConfigSchema (or a paddock::ConfigKeys, a schema without rules); FACTORY is
// callable as
//   Result<std::unique_ptr<Interface>> FACTORY(const PluginContext&, const ConfigView&)
// PADDOCK_DEFINE_PLUGIN_NAMED takes the name as a string, for names with a '-' ("claude-code").
#define PADDOCK_DEFINE_PLUGIN(KIND, NAME, VERSION, DESCRIPTION, KEYS, FACTORY) \
  PADDOCK_DEFINE_PLUGIN_NAMED(KIND, #NAME, VERSION, DESCRIPTION, KEYS, FACTORY)
#define PADDOCK_DEFINE_PLUGIN_NAMED(KIND, NAME, VERSION, DESCRIPTION, KEYS, FACTORY)                      \
  extern "C" PADDOCK_PLUGIN_EXPORT const paddock_plugin_manifest* paddock_plugin_manifest_v1(void) {      \
    static const paddock_plugin_manifest manifest = {                                                     \
        sizeof(paddock_plugin_manifest),                                                                  \
        PADDOCK_PLUGIN_ABI_MAJOR,                                                                         \
        PADDOCK_PLUGIN_ABI_MINOR,                                                                         \
        PADDOCK_SDK_HASH,                                                                                 \
        PADDOCK_TOOLCHAIN,                                                                                \
        #KIND,                                                                                            \
        NAME,                                                                                             \
        VERSION,                                                                                          \
        DESCRIPTION,                                                                                      \
        paddock::ConfigSchema(KEYS).keys.data(),                                                          \
        static_cast<uint32_t>(paddock::ConfigSchema(KEYS).keys.size()),                                   \
        paddock::ConfigSchema(KEYS).rules.data(),                                                         \
        static_cast<uint32_t>(paddock::ConfigSchema(KEYS).rules.size())};                                 \
    return &manifest;                                                                                     \
  }                                                                                                       \
  extern "C" PADDOCK_PLUGIN_EXPORT void paddock_plugin_create_v1(const paddock::PluginContext* ctx,       \
                                                                 const paddock::ConfigView* config,       \
                                                                 paddock::PluginInstance* out) noexcept { \
    paddock::plugin::CreateInto(*out, [&] { return FACTORY(*ctx, *config); });                            \
  }
