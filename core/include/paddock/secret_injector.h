// SecretInjector: resolves the secrets a sandbox receives, as environment variables.
#pragma once

#include <memory>
#include <vector>

#include "paddock/lifecycle.h"
#include "paddock/status.h"
#include "paddock/types.h"

namespace paddock {

// The host redacts every value it receives from Resolve out of events, logs and API
// responses, so a plugin must return each secret it injects, and only secrets.
// Thread safety: Resolve may be called concurrently from any thread.
class SecretInjector : public Lifecycle {
 public:
  // The secrets for `scope`, as (name, value) pairs with valid environment variable names.
  // kUnavailable when the backing secret store cannot be reached.
  [[nodiscard]] virtual Result<std::vector<Secret>> Resolve(const SecretScope& scope) noexcept = 0;
};

using SecretInjectorPtr = std::unique_ptr<SecretInjector>;

}  // namespace paddock
