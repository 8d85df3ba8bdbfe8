// JSON renderings of the resources, as the API documents them (docs/openapi.json).
#pragma once

#include <Poco/JSON/Object.h>

#include <string>
#include <vector>

#include "paddock/types.h"
#include "services/sessions/session_service.h"

namespace paddock {

class Redactor;

Poco::JSON::Object::Ptr RenderAgent(const Agent& a);
Poco::JSON::Object::Ptr RenderSession(const Session& s);
// The same as JSON text, its strings redacted.
std::string RenderSessionJson(const Session& s, const Redactor& redactor);
Poco::JSON::Object::Ptr RenderRun(const Run& r);
Poco::JSON::Object::Ptr RenderTeam(const Team& t);
// One quota of a team: name, limit, used, source ("team" or "default"), resets_at.
Poco::JSON::Object::Ptr RenderQuota(const QuotaLine& l);
// A key as it is listed: never its hash, never the key.
Poco::JSON::Object::Ptr RenderKey(const ApiKey& k);
// Name, team, version and dates: never the value.
Poco::JSON::Object::Ptr RenderSecret(const SecretInfo& s);
Poco::JSON::Object::Ptr RenderAudit(const AuditEvent& e);
Poco::JSON::Object::Ptr RenderTranscriptEntry(const TranscriptEntry& t);
Poco::JSON::Object::Ptr RenderSnapshot(const SnapshotInfo& s);
// Events carry their stored data verbatim, so they are rendered as text.
std::string RenderEventJson(const Event& e);

}  // namespace paddock
