#include "services/secrets/secret_chain.h"

#include <algorithm>

namespace paddock {

SecretChain::SecretChain(std::vector<std::shared_ptr<SecretInjector>> injectors)
    : injectors_(std::move(injectors)) {
  for (const auto& i : injectors_) {
    if (!team_secrets_) team_secrets_ = i->team_secrets();
  }
}

Result<std::vector<Secret>> SecretChain::Resolve(const SecretScope& scope) noexcept {
  try {
    std::vector<Secret> out;
    for (const auto& injector : injectors_) {
      PADDOCK_ASSIGN_OR_RETURN(std::vector<Secret> got, injector->Resolve(scope));
      for (Secret& s : got) {
        auto same = std::find_if(out.begin(), out.end(), [&](const Secret& o) { return o.name == s.name; });
        if (same != out.end()) {
          *same = std::move(s);
        } else {
          out.push_back(std::move(s));
        }
      }
    }
    for (const SecretRef& want : scope.wanted) {
      auto found = std::find_if(out.begin(), out.end(), [&](const Secret& s) { return s.name == want.name; });
      if (found != out.end()) {
        found->file = want.file;  // the agent says how, whichever injector gave it
      } else {
        return Status::FailedPrecondition("agent '" + scope.agent_id + "' names the secret '" + want.name +
                                          "', which team '" + scope.team_id +
                                          "' does not have: set it with PUT /api/secrets/" + want.name +
                                          ", or take it out of the agent's secrets");
      }
    }
    return out;
  } catch (...) {
    return Status::ResourceExhausted("out of memory resolving secrets");
  }
}

}  // namespace paddock
