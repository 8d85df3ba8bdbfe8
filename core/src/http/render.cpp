#include "http/render.h"

#include <Poco/JSON/Array.h>

#include "http/exchange.h"
#include "paddock/json.h"
#include "util/money.h"
#include "util/redactor.h"

namespace paddock {

namespace {
Poco::JSON::Object::Ptr NewObject() { return new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER); }

Poco::JSON::Object::Ptr RenderUsage(const Usage& u) {
  auto o = NewObject();
  o->set("model", u.model.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(u.model));
  o->set("input_tokens", u.input_tokens);
  o->set("output_tokens", u.output_tokens);
  o->set("cache_read_tokens", u.cache_read_tokens);
  o->set("cost_usd", u.cost_usd ? Poco::Dynamic::Var(*u.cost_usd) : Poco::Dynamic::Var());
  return o;
}
}  // namespace

Poco::JSON::Object::Ptr RenderAgent(const Agent& a) {
  auto o = NewObject();
  o->set("id", a.id);
  o->set("team_id", a.team_id);
  o->set("name", a.name);
  o->set("harness", a.harness);
  o->set("model", a.model);
  o->set("prompt", a.prompt);
  auto env = NewObject();
  for (const auto& [k, v] : a.env) env->set(k, v);
  o->set("env", env);
  o->set("profile", a.profile);
  Poco::JSON::Array::Ptr secrets = new Poco::JSON::Array();
  for (const SecretRef& r : a.secrets) {
    auto ref = NewObject();
    ref->set("name", r.name);
    ref->set("as", std::string(r.file ? "file" : "env"));
    secrets->add(ref);
  }
  o->set("secrets", secrets);
  o->set("run_timeout_seconds", a.run_timeout_seconds);
  o->set("idle_timeout_seconds",
         a.idle_timeout_seconds ? Poco::Dynamic::Var(*a.idle_timeout_seconds) : Poco::Dynamic::Var());
  o->set("created_at", FormatTime(a.created_at));
  o->set("updated_at", FormatTime(a.updated_at));
  return o;
}

Poco::JSON::Object::Ptr RenderSession(const Session& s) {
  auto o = NewObject();
  o->set("id", s.id);
  o->set("agent_id", s.agent_id);
  o->set("team_id", s.team_id);
  o->set("status", std::string(ToString(s.status)));
  o->set("status_reason", s.status_reason);
  o->set("sandbox_id", s.sandbox_id.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(s.sandbox_id));
  o->set("last_seq", s.last_seq);
  o->set("native_session_id",
         s.native_session_id.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(s.native_session_id));
  o->set("usage", RenderUsage(s.usage));
  o->set("created_at", FormatTime(s.created_at));
  o->set("updated_at", FormatTime(s.updated_at));
  return o;
}

std::string RenderSessionJson(const Session& s, const Redactor& redactor) {
  // Written directly: sessions are what clients poll, and a list holds up to 1,000 of them.
  auto text = [&](const std::string& v) { return JsonQuote(redactor.empty() ? v : redactor.Redact(v)); };
  auto text_or_null = [&](const std::string& v) { return v.empty() ? std::string("null") : text(v); };
  std::string out;
  out.reserve(512);
  out += "{\"id\":" + text(s.id);
  out += ",\"agent_id\":" + text(s.agent_id);
  out += ",\"team_id\":" + text(s.team_id);
  out += ",\"status\":" + JsonQuote(ToString(s.status));
  out += ",\"status_reason\":" + text(s.status_reason);
  out += ",\"sandbox_id\":" + text_or_null(s.sandbox_id);
  out += ",\"last_seq\":" + std::to_string(s.last_seq);
  out += ",\"native_session_id\":" + text_or_null(s.native_session_id);
  const Usage& u = s.usage;
  out += ",\"usage\":{\"model\":" + text_or_null(u.model);
  out += ",\"input_tokens\":" + std::to_string(u.input_tokens);
  out += ",\"output_tokens\":" + std::to_string(u.output_tokens);
  out += ",\"cache_read_tokens\":" + std::to_string(u.cache_read_tokens);
  // The number as the JSON library writes it everywhere else.
  out += ",\"cost_usd\":" + (u.cost_usd ? Poco::Dynamic::Var(*u.cost_usd).toString() : std::string("null")) +
         "}";
  out += ",\"created_at\":" + JsonQuote(FormatTime(s.created_at));
  out += ",\"updated_at\":" + JsonQuote(FormatTime(s.updated_at)) + "}";
  return out;
}

Poco::JSON::Object::Ptr RenderTeam(const Team& t) {
  auto o = NewObject();
  o->set("id", t.id);
  o->set("name", t.name);
  Poco::JSON::Array::Ptr profiles = new Poco::JSON::Array();
  for (const std::string& p : t.profiles) profiles->add(p);
  o->set("profiles", profiles);
  // The team's own quotas; null: the install's default ([quotas]).
  auto quotas = NewObject();
  auto count = [](const std::optional<std::int64_t>& v) {
    return v ? Poco::Dynamic::Var(*v) : Poco::Dynamic::Var();
  };
  quotas->set("sandboxes", count(t.quotas.sandboxes));
  quotas->set("open_sessions", count(t.quotas.open_sessions));
  quotas->set("runs_per_minute", count(t.quotas.runs_per_minute));
  quotas->set("tokens_per_day", count(t.quotas.tokens_per_day));
  quotas->set("cost_per_day_usd", t.quotas.cost_per_day_microusd
                                      ? Poco::Dynamic::Var(MicrosToUsd(*t.quotas.cost_per_day_microusd))
                                      : Poco::Dynamic::Var());
  o->set("quotas", quotas);
  o->set("created_at", FormatTime(t.created_at));
  return o;
}

Poco::JSON::Object::Ptr RenderQuota(const QuotaLine& l) {
  auto o = NewObject();
  const bool money = l.name == "cost_per_day_usd";
  o->set("name", l.name);
  o->set("limit", money ? Poco::Dynamic::Var(MicrosToUsd(l.limit)) : Poco::Dynamic::Var(l.limit));
  o->set("used", money ? Poco::Dynamic::Var(MicrosToUsd(l.used)) : Poco::Dynamic::Var(l.used));
  o->set("source", l.team_set ? "team" : "default");
  o->set("resets_at", l.resets_at > 0 ? Poco::Dynamic::Var(FormatTime(l.resets_at)) : Poco::Dynamic::Var());
  return o;
}

Poco::JSON::Object::Ptr RenderSecret(const SecretInfo& s) {
  auto o = NewObject();
  o->set("name", s.name);
  o->set("team_id", s.team_id);
  o->set("version", s.version);
  o->set("created_at", FormatTime(s.created_at));
  o->set("updated_at", FormatTime(s.updated_at));
  if (s.vault.bound()) {
    auto v = NewObject();
    Poco::JSON::Array::Ptr hosts = new Poco::JSON::Array();
    for (const std::string& h : s.vault.hosts) hosts->add(h);
    v->set("hosts", hosts);
    switch (s.vault.form) {
      case VaultForm::kHeader:
        v->set("header", s.vault.field);
        v->set("format", s.vault.format);
        break;
      case VaultForm::kBasic:
        v->set("basic", true);
        break;
      case VaultForm::kQuery:
        v->set("query", s.vault.field);
        break;
    }
    Poco::JSON::Array::Ptr agents = new Poco::JSON::Array();
    for (const std::string& a : s.vault.agents) agents->add(a);
    v->set("agents", agents);
    o->set("vault", v);
  } else {
    o->set("vault", Poco::Dynamic::Var());
  }
  return o;
}

Poco::JSON::Object::Ptr RenderKey(const ApiKey& k) {
  auto o = NewObject();
  o->set("id", k.id);
  o->set("team_id", k.team_id);
  o->set("name", k.name);
  o->set("role", std::string(ToString(k.role)));
  o->set("prefix", k.prefix);
  o->set("created_at", FormatTime(k.created_at));
  o->set("expires_at", k.expires_at ? Poco::Dynamic::Var(FormatTime(k.expires_at)) : Poco::Dynamic::Var());
  o->set("revoked_at", k.revoked_at ? Poco::Dynamic::Var(FormatTime(k.revoked_at)) : Poco::Dynamic::Var());
  return o;
}

Poco::JSON::Object::Ptr RenderAudit(const AuditEvent& e) {
  auto o = NewObject();
  auto text_or_null = [](const std::string& v) {
    return v.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(v);
  };
  o->set("id", e.id);
  o->set("at", FormatTime(e.at));
  o->set("team_id", text_or_null(e.team_id));
  o->set("key_id", text_or_null(e.key_id));
  o->set("source", e.source);
  o->set("request_id", e.request_id);
  o->set("action", e.action);
  o->set("resource", text_or_null(e.resource));
  o->set("status", e.status);
  o->set("outcome", e.outcome);
  o->set("detail", e.detail);
  return o;
}

Poco::JSON::Object::Ptr RenderRun(const Run& r) {
  auto o = NewObject();
  o->set("id", r.id);
  o->set("session_id", r.session_id);
  o->set("status", std::string(ToString(r.status)));
  o->set("content", r.content);
  o->set("exit_code", r.exit_code ? Poco::Dynamic::Var(*r.exit_code) : Poco::Dynamic::Var());
  o->set("error", r.error);
  o->set("attempt", r.attempt);
  o->set("cancel_requested", r.cancel_requested);
  o->set("usage", RenderUsage(r.usage));
  o->set("worker", r.lease_owner.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(r.lease_owner));
  o->set("lease_expires_at",
         r.lease_expires_at ? Poco::Dynamic::Var(FormatTime(r.lease_expires_at)) : Poco::Dynamic::Var());
  o->set("created_at", FormatTime(r.created_at));
  o->set("started_at", r.started_at ? Poco::Dynamic::Var(FormatTime(r.started_at)) : Poco::Dynamic::Var());
  o->set("finished_at", r.finished_at ? Poco::Dynamic::Var(FormatTime(r.finished_at)) : Poco::Dynamic::Var());
  return o;
}

Poco::JSON::Object::Ptr RenderTranscriptEntry(const TranscriptEntry& t) {
  auto o = NewObject();
  o->set("role", t.role);
  o->set("run_id", t.run_id);
  o->set("content", t.content);
  if (t.role == "assistant") {
    o->set("status", t.status ? Poco::Dynamic::Var(std::string(ToString(*t.status))) : Poco::Dynamic::Var());
    o->set("exit_code", t.exit_code ? Poco::Dynamic::Var(*t.exit_code) : Poco::Dynamic::Var());
    Poco::JSON::Array::Ptr interruptions = new Poco::JSON::Array();
    for (const std::string& why : t.interruptions) interruptions->add(why);
    o->set("interruptions", interruptions);
  }
  o->set("created_at", FormatTime(t.created_at));
  return o;
}

Poco::JSON::Object::Ptr RenderSnapshot(const SnapshotInfo& s) {
  auto o = NewObject();
  o->set("version", s.version);
  o->set("run_id", s.run_id.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(s.run_id));
  o->set("size_bytes", s.size_bytes);
  o->set("sha256", s.sha256);
  o->set("compression", s.gzip ? "gzip" : "none");
  Poco::JSON::Array::Ptr paths = new Poco::JSON::Array();
  for (const std::string& p : s.paths) paths->add(p);
  o->set("paths", paths);
  o->set("workspace", s.workspace);
  o->set("native", s.native);
  o->set("omitted", s.omitted);
  o->set("created_at", FormatTime(s.created_at));
  return o;
}

std::string RenderEventJson(const Event& e) {
  return "{\"seq\":" + std::to_string(e.seq) + ",\"session_id\":" + JsonQuote(e.session_id) +
         ",\"run_id\":" + (e.run_id.empty() ? std::string("null") : JsonQuote(e.run_id)) +
         ",\"type\":" + JsonQuote(e.type) + ",\"data\":" + (e.data.empty() ? std::string("{}") : e.data) +
         ",\"created_at\":" + JsonQuote(FormatTime(e.created_at)) + "}";
}

}  // namespace paddock
