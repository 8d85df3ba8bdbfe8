#include "services/sandboxes/reconciler.h"

#include <set>

#include "util/log.h"

namespace paddock {

Result<int> Reconciler::Run(std::chrono::milliseconds min_age) {
  PADDOCK_ASSIGN_OR_RETURN(std::vector<SandboxInfo> all, provider_.List());
  const std::set<std::string> warm = warm_.Ids();
  int destroyed = 0;
  for (const SandboxInfo& info : all) {
    if (NowMs() - info.created_at < min_age.count()) continue;     // may be about to be bound
    if (info.session_id.empty() || warm.count(info.id)) continue;  // the warm pool's
    auto bound = [&](const Result<Session>& s) {
      return s.ok() && s->sandbox_id == info.id && s->status != SessionStatus::kClosed;
    };
    Result<Session> session = store_.GetSession(info.session_id);
    if (!session.ok() && session.status().code() != StatusCode::kNotFound) return session.status();
    if (bound(session)) continue;
    auto session_lock = locks_.For(info.session_id);
    std::lock_guard guard(*session_lock);
    // Again under the lock: an Ensure that held it may have bound this very sandbox meanwhile.
    session = store_.GetSession(info.session_id);
    if (!session.ok() && session.status().code() != StatusCode::kNotFound) return session.status();
    if (bound(session)) continue;
    LogInfo("destroying sandbox " + info.id + ": session " + info.session_id + " no longer uses it");
    PADDOCK_RETURN_IF_ERROR(destroy_(info));
    if (!session.ok() || session->status == SessionStatus::kClosed) {
      PADDOCK_RETURN_IF_ERROR(provider_.DeleteSessionData(info.session_id));
    }
    ++destroyed;
  }
  return destroyed;
}

}  // namespace paddock
