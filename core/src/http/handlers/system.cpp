// /healthz, /readyz, /metrics, /api/openapi.json, /api/plugins
#include <Poco/JSON/Array.h>

#include "http/exchange.h"
#include "http/handlers.h"
#include "metrics/metrics.h"
#include "openapi_embedded.h"
#include "paddock/json.h"
#include "services/app.h"
#include "services/teams/quota_service.h"

namespace paddock::handlers {

void Healthz(Exchange& x) {
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object();
  o->set("status", "ok");
  x.SendJson(200, o);
}

void Readyz(Exchange& x) {
  bool ready = true;
  Poco::JSON::Object::Ptr checks = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const ReadinessCheck& c : x.app.Readiness()) {
    Poco::JSON::Object::Ptr one = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    const char* state = c.health.state == HealthState::kOk         ? "ok"
                        : c.health.state == HealthState::kDegraded ? "degraded"
                                                                   : "down";
    one->set("status", state);
    if (!c.health.detail.empty()) one->set("detail", c.health.detail);
    checks->set(c.component, one);
    ready = ready && c.health.state != HealthState::kDown;
  }
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("status", ready ? "ready" : "not_ready");
  o->set("checks", checks);
  x.SendJson(ready ? 200 : 503, o);
}

void MetricsText(Exchange& x) {
  if (auto counts = x.app.store().CountSessions(); counts.ok()) x.app.metrics().SetSessionCounts(*counts);
  x.app.quotas().Export();
  if (SandboxProvider* sandboxes = x.app.sandbox_provider()) {
    if (auto disk = sandboxes->Disk()) x.app.metrics().SetDisk(*disk);
  }
  std::string text = x.app.metrics().Serialize();
  x.SendText(200, "text/plain; version=0.0.4; charset=utf-8", std::move(text));
}

void OpenApi(Exchange& x) { x.SendRawJson(200, std::string(paddock::openapi::kFiles[0].content)); }

void ListPlugins(Exchange& x) {
  std::string out = "{\"plugins\":[";
  bool first = true;
  for (const PluginObjects& p : x.app.plugins()) {
    const PluginSummary& s = p.summary;
    out += std::string(first ? "" : ",") + "{\"id\":" + JsonQuote(s.kind + "." + s.name) +
           ",\"kind\":" + JsonQuote(s.kind) + ",\"name\":" + JsonQuote(s.name) +
           ",\"version\":" + JsonQuote(s.version) + ",\"description\":" + JsonQuote(s.description) +
           ",\"file\":" + JsonQuote(s.path) + ",\"config_schema\":" + s.keys_json + "}";
    first = false;
  }
  x.SendRawJson(200, out + "]}");
}

}  // namespace paddock::handlers
