// The event catalogue: every event type the core, the SDK's stores and the harnesses write, and a
// typed builder for each one the core writes. Core-built events carry their data as a JSON object
// built field by field, so no event JSON is written by hand and none is parsed again on its way
// into the log (EventService::Append(CoreEvent)). The events reference in docs/architecture.md
// is checked against kEventCatalogue (tests/unit/catalogue_test.cpp).
#pragma once

#include <Poco/JSON/Object.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "paddock/harness.h"
#include "paddock/types.h"

namespace paddock {

// A core-built event: its type (one of kEventCatalogue's) and its data.
struct CoreEvent {
  std::string_view type;
  Poco::JSON::Object::Ptr data;
};

// Who writes an event of a type.
enum class EventWriter { kCore, kStore, kHarness };

struct EventKind {
  std::string_view type;
  EventWriter writer;
  std::string_view fields;  // the data's fields, as the reference shows them
};

// Every type, in the order the events reference lists them.
extern const std::vector<EventKind> kEventCatalogue;

namespace event {

CoreEvent SessionCreated(std::string_view agent_id);
CoreEvent SessionClosed();
CoreEvent MessageUser(std::string_view content);
CoreEvent SandboxReady(std::string_view sandbox_id, double provision_ms, std::string_view source,
                       std::string_view profile);
CoreEvent SandboxFailed(std::string_view error);
CoreEvent SandboxLost(std::string_view sandbox_id, std::string_view detail);
CoreEvent SandboxReplaced(std::string_view sandbox_id, std::string_view detail);
// `workspace_kept` only for a suspend (the disk copy may go when the snapshot holds it).
CoreEvent SandboxReleased(std::string_view sandbox_id, std::string_view reason,
                          std::optional<bool> workspace_kept = std::nullopt);
CoreEvent SandboxExec(const std::vector<std::string>& argv, int exit_code, bool timed_out);
CoreEvent EgressRefused(std::string_view host, int port);
// A request carrying a vault placeholder that the proxy did not send: `secret` is the entry's
// name ("" when the placeholder is of no entry of the session), `reason` why.
CoreEvent VaultRefused(std::string_view secret, std::string_view host, int port, std::string_view reason);
CoreEvent RunStarted(int attempt, std::string_view sandbox_id);
CoreEvent RunResumed(int attempt, const TurnResume& resume, std::string_view sandbox_id);
CoreEvent RunFinished(RunStatus status, std::optional<int> exit_code, std::string_view error);
// snapshot.taken, or snapshot.partial when something was left out.
CoreEvent SnapshotTaken(const SnapshotInfo& stored, const std::vector<std::string>& paths, bool workspace,
                        bool native, double duration_ms, std::string_view omitted);
CoreEvent SnapshotRestored(std::int64_t version, std::int64_t size_bytes, std::string_view sandbox_id,
                           const std::vector<std::string>& paths, double duration_ms);
CoreEvent SnapshotFailed(std::string_view error);
CoreEvent Output(std::string_view stream, std::string_view text);
CoreEvent UsageRecorded(const Usage& usage);

}  // namespace event
}  // namespace paddock
