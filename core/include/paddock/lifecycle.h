// Lifecycle: what every plugin instance shares, whatever its kind.
#pragma once

#include <string>

#include "paddock/status.h"

namespace paddock {

enum class HealthState { kOk, kDegraded, kDown };

struct Health {
  HealthState state = HealthState::kOk;
  std::string detail;  // one line a person can act on; empty when kOk
};

// The host constructs every configured plugin, then calls Start() in the order secrets, store,
// sandbox, harness; Stop() runs in reverse order before the instance is destroyed.
// Thread safety: Start and Stop are called from the main thread; GetHealth may be called
// concurrently from any thread at any time between them.
class Lifecycle {
 public:
  virtual ~Lifecycle() = default;
  Lifecycle(const Lifecycle&) = delete;
  Lifecycle& operator=(const Lifecycle&) = delete;

  // Called once after construction; may start background work. A non-ok status aborts start-up.
  [[nodiscard]] virtual Status Start() noexcept { return Status::Ok(); }
  // Must stop all background work; after it returns no thread of the plugin runs.
  virtual void Stop() noexcept {}
  // Must not block on I/O for long: /readyz calls it for every request.
  [[nodiscard]] virtual Health GetHealth() const noexcept { return {}; }

 protected:
  Lifecycle() = default;
};

}  // namespace paddock
