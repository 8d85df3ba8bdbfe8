#include "services/events/catalogue.h"

#include <Poco/JSON/Array.h>

#include <cmath>

namespace paddock {
namespace {

Poco::JSON::Object::Ptr Data() { return new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER); }

Poco::JSON::Array::Ptr Strings(const std::vector<std::string>& items) {
  Poco::JSON::Array::Ptr out = new Poco::JSON::Array();
  for (const std::string& s : items) out->add(s);
  return out;
}

// Milliseconds to a tenth.
double Tenths(double ms) { return std::round(ms * 10) / 10; }

}  // namespace

const std::vector<EventKind> kEventCatalogue = {
    {"session.created", EventWriter::kCore, "{agent_id}"},
    {"sandbox.ready", EventWriter::kCore, "{sandbox_id, provision_ms, source, profile}"},
    {"sandbox.failed", EventWriter::kCore, "{error}"},
    {"sandbox.lost", EventWriter::kCore, "{sandbox_id, detail}"},
    {"sandbox.replaced", EventWriter::kCore, "{sandbox_id, detail}"},
    {"sandbox.released", EventWriter::kCore, "{sandbox_id, reason[, workspace_kept]}"},
    {"message.user", EventWriter::kCore, "{content}"},
    {"run.started", EventWriter::kCore, "{attempt, sandbox_id}"},
    {"run.resumed", EventWriter::kCore, "{attempt, reason, restored, snapshot_version, sandbox_id}"},
    {"output", EventWriter::kHarness, "{stream, text}"},
    {"run.interrupted", EventWriter::kStore, "{attempt, reason, next}"},
    {"snapshot.taken", EventWriter::kCore, "{version, size_bytes, paths, workspace, native, duration_ms}"},
    {"snapshot.partial", EventWriter::kCore,
     "{version, size_bytes, paths, workspace, native, duration_ms, omitted}"},
    {"snapshot.failed", EventWriter::kCore, "{error}"},
    {"snapshot.restored", EventWriter::kCore, "{version, size_bytes, sandbox_id, paths, duration_ms}"},
    {"harness.rehydrated", EventWriter::kHarness, "{messages, replayed}"},
    {"agent.session", EventWriter::kHarness, "{id}"},
    {"assistant.text", EventWriter::kHarness, "{text}"},
    {"tool.call", EventWriter::kHarness, "{id, name, input}"},
    {"tool.result", EventWriter::kHarness, "{id, output, is_error}"},
    {"agent.error", EventWriter::kHarness, "{message}"},
    {"usage", EventWriter::kCore, "{model, input_tokens, output_tokens, cache_read_tokens[, cost_usd]}"},
    {"run.finished", EventWriter::kCore, "{status, exit_code, error}"},
    {"sandbox.exec", EventWriter::kCore, "{argv, exit_code, timed_out}"},
    {"egress.refused", EventWriter::kCore, "{host, port}"},
    {"vault.refused", EventWriter::kCore, "{secret, host, port, reason}"},
    {"session.closed", EventWriter::kCore, "{}"},
};

namespace event {

CoreEvent SessionCreated(std::string_view agent_id) {
  auto d = Data();
  d->set("agent_id", std::string(agent_id));
  return {"session.created", d};
}

CoreEvent SessionClosed() { return {"session.closed", Data()}; }

CoreEvent MessageUser(std::string_view content) {
  auto d = Data();
  d->set("content", std::string(content));
  return {"message.user", d};
}

CoreEvent SandboxReady(std::string_view sandbox_id, double provision_ms, std::string_view source,
                       std::string_view profile) {
  auto d = Data();
  d->set("sandbox_id", std::string(sandbox_id));
  d->set("provision_ms", std::round(provision_ms * 1000) / 1000);
  d->set("source", std::string(source));
  d->set("profile", std::string(profile));
  return {"sandbox.ready", d};
}

CoreEvent SandboxFailed(std::string_view error) {
  auto d = Data();
  d->set("error", std::string(error));
  return {"sandbox.failed", d};
}

CoreEvent SandboxLost(std::string_view sandbox_id, std::string_view detail) {
  auto d = Data();
  d->set("sandbox_id", std::string(sandbox_id));
  d->set("detail", std::string(detail));
  return {"sandbox.lost", d};
}

CoreEvent SandboxReplaced(std::string_view sandbox_id, std::string_view detail) {
  auto d = Data();
  d->set("sandbox_id", std::string(sandbox_id));
  d->set("detail", std::string(detail));
  return {"sandbox.replaced", d};
}

CoreEvent SandboxReleased(std::string_view sandbox_id, std::string_view reason,
                          std::optional<bool> workspace_kept) {
  auto d = Data();
  d->set("sandbox_id", std::string(sandbox_id));
  d->set("reason", std::string(reason));
  if (workspace_kept) d->set("workspace_kept", *workspace_kept);
  return {"sandbox.released", d};
}

CoreEvent SandboxExec(const std::vector<std::string>& argv, int exit_code, bool timed_out) {
  auto d = Data();
  d->set("argv", Strings(argv));
  d->set("exit_code", exit_code);
  d->set("timed_out", timed_out);
  return {"sandbox.exec", d};
}

CoreEvent EgressRefused(std::string_view host, int port) {
  auto d = Data();
  d->set("host", std::string(host));
  d->set("port", port);
  return {"egress.refused", d};
}

CoreEvent VaultRefused(std::string_view secret, std::string_view host, int port, std::string_view reason) {
  auto d = Data();
  d->set("secret", std::string(secret));
  d->set("host", std::string(host));
  d->set("port", port);
  d->set("reason", std::string(reason));
  return {"vault.refused", d};
}

CoreEvent RunStarted(int attempt, std::string_view sandbox_id) {
  auto d = Data();
  d->set("attempt", attempt);
  d->set("sandbox_id", std::string(sandbox_id));
  return {"run.started", d};
}

CoreEvent RunResumed(int attempt, const TurnResume& resume, std::string_view sandbox_id) {
  auto d = Data();
  d->set("attempt", attempt);
  d->set("reason", resume.reason);
  d->set("restored", resume.restored.empty() ? std::string("none") : resume.restored);
  d->set("snapshot_version", resume.snapshot_version);
  d->set("sandbox_id", std::string(sandbox_id));
  return {"run.resumed", d};
}

CoreEvent RunFinished(RunStatus status, std::optional<int> exit_code, std::string_view error) {
  auto d = Data();
  d->set("status", std::string(ToString(status)));
  if (exit_code) {
    d->set("exit_code", *exit_code);
  } else {
    d->set("exit_code", Poco::Dynamic::Var());
  }
  d->set("error", std::string(error));
  return {"run.finished", d};
}

CoreEvent SnapshotTaken(const SnapshotInfo& stored, const std::vector<std::string>& paths, bool workspace,
                        bool native, double duration_ms, std::string_view omitted) {
  auto d = Data();
  d->set("version", stored.version);
  d->set("size_bytes", stored.size_bytes);
  d->set("paths", Strings(paths));
  d->set("workspace", workspace);
  d->set("native", native);
  d->set("duration_ms", Tenths(duration_ms));
  if (!omitted.empty()) d->set("omitted", std::string(omitted));
  return {omitted.empty() ? "snapshot.taken" : "snapshot.partial", d};
}

CoreEvent SnapshotRestored(std::int64_t version, std::int64_t size_bytes, std::string_view sandbox_id,
                           const std::vector<std::string>& paths, double duration_ms) {
  auto d = Data();
  d->set("version", version);
  d->set("size_bytes", size_bytes);
  d->set("sandbox_id", std::string(sandbox_id));
  d->set("paths", Strings(paths));
  d->set("duration_ms", Tenths(duration_ms));
  return {"snapshot.restored", d};
}

CoreEvent SnapshotFailed(std::string_view error) {
  auto d = Data();
  d->set("error", std::string(error));
  return {"snapshot.failed", d};
}

CoreEvent Output(std::string_view stream, std::string_view text) {
  auto d = Data();
  d->set("stream", std::string(stream));
  d->set("text", std::string(text));
  return {"output", d};
}

CoreEvent UsageRecorded(const Usage& usage) {
  auto d = Data();
  d->set("model", usage.model);
  d->set("input_tokens", usage.input_tokens);
  d->set("output_tokens", usage.output_tokens);
  d->set("cache_read_tokens", usage.cache_read_tokens);
  if (usage.cost_usd) d->set("cost_usd", std::round(*usage.cost_usd * 1e6) / 1e6);
  return {"usage", d};
}

}  // namespace event
}  // namespace paddock
