// Reconciler: destroys this provider's sandboxes that no open session is bound to any more —
// say, one a session left behind when another worker re-created its sandbox, or one of a
// session closed meanwhile (whose data goes too). It spares sandboxes younger than a minimum
// age, which may be about to be bound, and the warm pool's.
#pragma once

#include <chrono>
#include <functional>

#include "paddock/sandbox_provider.h"
#include "paddock/session_store.h"
#include "services/sandboxes/session_locks.h"
#include "services/sandboxes/warm_pool.h"

namespace paddock {

// Thread safety: Run may be called concurrently with everything else of the sandboxes room;
// each sandbox is decided under its session's lock.
class Reconciler {
 public:
  // `destroy` destroys a sandbox and what it holds of the host (its egress socket).
  using DestroyFn = std::function<Status(const SandboxInfo&)>;
  Reconciler(SessionStore& store, SandboxProvider& provider, SessionLocks& locks, WarmPool& warm,
             DestroyFn destroy)
      : store_(store), provider_(provider), locks_(locks), warm_(warm), destroy_(std::move(destroy)) {}

  // How many sandboxes it destroyed.
  Result<int> Run(std::chrono::milliseconds min_age);

 private:
  SessionStore& store_;
  SandboxProvider& provider_;
  SessionLocks& locks_;
  WarmPool& warm_;
  DestroyFn destroy_;
};

}  // namespace paddock
