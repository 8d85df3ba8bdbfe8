#include "services/runs/host_turn_context.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cstdio>

#include "metrics/metrics.h"
#include "paddock/json.h"
#include "services/events/event_service.h"

namespace paddock {

Status NoteStoreError(Status s, std::atomic<bool>& lease_lost, std::atomic<bool>& store_down) {
  if (s.code() == StatusCode::kAborted) lease_lost = true;
  if (s.code() == StatusCode::kUnavailable) store_down = true;
  return s;
}

HostTurnContext::HostTurnContext(const Agent& agent, const Session& session, const Run& run,
                                 RuntimeClient runtime, Host host, Flags flags, TurnResume resume)
    : agent_(agent),
      session_(session),
      run_(run),
      runtime_(std::move(runtime)),
      host_(std::move(host)),
      events_(host_.events),
      flags_(flags),
      resume_(std::move(resume)),
      native_id_(session.native_session_id),
      output_(events_.redactor()) {}

Result<ExecResult> HostTurnContext::Exec(const ExecRequest& request, ExecObserver& observer) noexcept {
  try {
    // The session's env and secrets are in the runtime already (SandboxManager::Bind).
    ExecRequest r = request;
    if (r.timeout.count() == 0) r.timeout = std::chrono::seconds(agent_.run_timeout_seconds);
    return runtime_.Exec(r, observer, &flags_.cancelled);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("exec: ") + e.what());
  }
}

Status HostTurnContext::Emit(std::string_view type, std::string_view data) noexcept {
  try {
    std::lock_guard lock(emit_mu_);
    if (type == "output" && !events_.redactor().empty()) {
      std::optional<std::pair<std::string, std::string>> chunk = OutputChunk(data);
      if (chunk) {
        std::string shown = output_.Feed(chunk->first, chunk->second);
        return shown.empty() ? Status::Ok() : AppendOutput(chunk->first, shown);
      }
    }
    PADDOCK_RETURN_IF_ERROR(FlushOutputLocked());
    return Noted(events_.Append(session_.id, run_.id, type, data, run_.generation).status());
  } catch (const std::exception& e) {
    return Status::Internal(std::string("emit: ") + e.what());
  }
}

Status HostTurnContext::FlushOutput() noexcept {
  try {
    std::lock_guard lock(emit_mu_);
    return FlushOutputLocked();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("emit: ") + e.what());
  }
}

Status HostTurnContext::RecordUsage(const Usage& usage) noexcept {
  try {
    if (usage.input_tokens < 0 || usage.output_tokens < 0 || usage.cache_read_tokens < 0 ||
        (usage.cost_usd && *usage.cost_usd < 0)) {
      return Status::InvalidArgument("usage must not be negative");
    }
    const NewEvent event = events_.Prepare(run_.id, event::UsageRecorded(usage));
    Result<Event> stored = host_.store.RecordRunUsage(host_.lease, usage, event);
    if (!stored.ok()) return Noted(stored.status());
    events_.Published(*stored);
    host_.metrics.ModelUsage(agent_.id, agent_.harness, usage);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("usage: ") + e.what());
  }
}

std::string HostTurnContext::native_session_id() const noexcept {
  std::lock_guard lock(native_mu_);
  return native_id_;
}

Status HostTurnContext::SetNativeSessionId(std::string_view id) noexcept {
  try {
    Status s = Noted(host_.store.SetNativeSessionId(host_.lease, id));
    if (s.ok()) {
      std::lock_guard lock(native_mu_);
      native_id_ = std::string(id);
    }
    return s;
  } catch (const std::exception& e) {
    return Status::Internal(std::string("native session id: ") + e.what());
  }
}

std::optional<std::pair<std::string, std::string>> HostTurnContext::OutputChunk(std::string_view data) {
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var parsed = parser.parse(std::string(data));
    if (parsed.type() != typeid(Poco::JSON::Object::Ptr)) return std::nullopt;
    auto obj = parsed.extract<Poco::JSON::Object::Ptr>();
    if (obj->size() != 2 || !obj->has("stream") || !obj->has("text")) return std::nullopt;
    Poco::Dynamic::Var stream = obj->get("stream"), text = obj->get("text");
    if (!stream.isString() || !text.isString()) return std::nullopt;
    return std::make_pair(stream.extract<std::string>(), text.extract<std::string>());
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

Status HostTurnContext::AppendOutput(const std::string& stream, const std::string& text) {
  return Noted(events_.Append(session_.id, run_.id, event::Output(stream, text), run_.generation).status());
}

Status HostTurnContext::FlushOutputLocked() {
  for (const std::string& stream : output_.Pending()) {
    std::string text = output_.Flush(stream);
    if (!text.empty()) PADDOCK_RETURN_IF_ERROR(AppendOutput(stream, text));
  }
  return Status::Ok();
}

}  // namespace paddock
