// /api/sessions/{id}/sandbox, .../sandbox/exec and .../restart
#include <Poco/JSON/Array.h>

#include "http/exchange.h"
#include "http/handlers.h"
#include "http/render.h"
#include "services/app.h"
#include "services/sessions/session_service.h"

namespace paddock::handlers {
namespace {

constexpr size_t kMaxExecOutput = 1 << 20;

// {"command": "..."} or {"argv": [...]}, with optional cwd, env and timeout_seconds.
Result<ExecRequest> ParseExec(const Poco::JSON::Object& body) {
  PADDOCK_RETURN_IF_ERROR(CheckFields(body, {"command", "argv", "cwd", "env", "timeout_seconds"}));
  ExecRequest r;
  PADDOCK_ASSIGN_OR_RETURN(std::optional<std::string> command, StringField(body, "command", 1 << 16));
  if (body.has("argv")) {
    if (command) return Status::InvalidArgument("give either 'command' or 'argv', not both");
    Poco::JSON::Array::Ptr argv = body.getArray("argv");
    if (!argv || argv->size() == 0 || argv->size() > 256) {
      return Status::InvalidArgument("field 'argv' must be an array of 1-256 strings");
    }
    for (unsigned i = 0; i < argv->size(); ++i) {
      if (!argv->get(i).isString()) return Status::InvalidArgument("field 'argv' must hold only strings");
      r.argv.push_back(argv->get(i).extract<std::string>());
    }
  } else if (command && !command->empty()) {
    r.argv = {"/bin/sh", "-c", *command};
  } else {
    return Status::InvalidArgument("field 'command' (a shell command) or 'argv' is required");
  }
  PADDOCK_ASSIGN_OR_RETURN(std::optional<std::string> cwd, StringField(body, "cwd", 4096));
  if (cwd) {
    if (cwd->empty() || cwd->front() != '/')
      return Status::InvalidArgument("field 'cwd' must be an absolute path");
    r.cwd = *cwd;
  }
  PADDOCK_ASSIGN_OR_RETURN(std::optional<EnvMap> env, StringMapField(body, "env"));
  if (env) r.env = *env;
  PADDOCK_ASSIGN_OR_RETURN(std::optional<std::int64_t> timeout, IntField(body, "timeout_seconds"));
  std::int64_t seconds = timeout.value_or(60);
  if (seconds < 1 || seconds > 3600)
    return Status::InvalidArgument("field 'timeout_seconds' must be 1..3600");
  r.timeout = std::chrono::seconds(seconds);
  return r;
}

}  // namespace

void ListSnapshots(Exchange& x) {
  if (Status s = x.CheckQuery({}); !s.ok()) return x.SendError(s);
  Result<std::vector<SnapshotInfo>> snapshots = x.app.sessions().Snapshots(x.Param("id"));
  if (!snapshots.ok()) return x.SendError(snapshots.status());
  Poco::JSON::Array::Ptr items = new Poco::JSON::Array();
  for (const SnapshotInfo& s : *snapshots) items->add(RenderSnapshot(s));
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("snapshots", items);
  x.SendJson(200, o);
}

void GetSandbox(Exchange& x) {
  Result<SandboxInfo> info = x.app.sessions().Sandbox(x.Param("id"));
  if (!info.ok()) return x.SendError(info.status());
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("id", info->id);
  o->set("session_id", info->session_id);
  o->set("state", std::string(ToString(info->state)));
  o->set("detail", info->detail);
  o->set("profile", info->profile);
  o->set("created_at", FormatTime(info->created_at));
  // Which limits are in force and how ("268435456 (cgroup v1)"); the runtime token never leaves.
  Poco::JSON::Object::Ptr limits = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const auto& [name, how] : info->limits) limits->set(name, how);
  o->set("limits", limits);
  x.SendJson(200, o);
}

void ExecInSandbox(Exchange& x) {
  auto body = x.JsonBody();
  if (!body) return;
  Result<ExecRequest> request = ParseExec(*body);
  if (!request.ok()) return x.SendError(request.status());
  Result<SessionService::ExecOutput> out = x.app.sessions().Exec(x.Param("id"), *request, kMaxExecOutput);
  if (!out.ok()) return x.SendError(out.status());
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("exit_code", out->result.exit_code);
  o->set("timed_out", out->result.timed_out);
  o->set("stdout", out->stdout_text);
  o->set("stderr", out->stderr_text);
  o->set("truncated", out->truncated);
  x.SendJson(200, o);
}

void RestartSession(Exchange& x) {
  auto body = x.JsonBody(/*required=*/false);
  if (!body) return;
  if (Status s = CheckFields(*body, {}); !s.ok()) return x.SendError(s);
  Result<Session> session = x.app.sessions().Restart(x.Param("id"));
  if (!session.ok()) return x.SendError(session.status());
  x.SendJson(200, RenderSession(*session));
}

}  // namespace paddock::handlers
