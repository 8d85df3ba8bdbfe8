// What a client sends, parsed and bounded: the JSON body, its typed fields, integers in
// headers and queries. No server state here, so a fuzz target (fuzz/request_fuzz.cpp) runs the
// very code the handlers do.
#pragma once

#include <Poco/JSON/Object.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "paddock/status.h"
#include "paddock/types.h"
#include "util/ids.h"

namespace paddock {

// The longest page cursor a client may send back (the API's are far shorter).
inline constexpr size_t kMaxCursorLength = 512;

// The first `max` bytes of `text`, with "..." when there was more: how an error quotes what a
// client sent, so a probe gets little of itself echoed back.
std::string Excerpt(std::string_view text, size_t max);

// How deeply a request body may nest.
inline constexpr int kMaxBodyDepth = 32;

// The body as a JSON object; kInvalidArgument ("request body must be a JSON object", "request
// body is not valid JSON: ...") otherwise.
Result<Poco::JSON::Object::Ptr> ParseBodyObject(std::string_view body);

// The seq a Last-Event-ID header names; kInvalidArgument quoting (the start of) what it held.
Result<std::int64_t> ParseLastEventId(std::string_view value);

// ---- reading typed fields from a JSON object ----------------------------------------------

// kInvalidArgument naming the first key of `obj` not in `allowed`.
Status CheckFields(const Poco::JSON::Object& obj, std::initializer_list<std::string_view> allowed);
// A string field: nullopt when absent; kInvalidArgument when of another type or too long.
Result<std::optional<std::string>> StringField(const Poco::JSON::Object& obj, const std::string& name,
                                               size_t max_bytes);
Result<std::optional<std::int64_t>> IntField(const Poco::JSON::Object& obj, const std::string& name);
// An object of string values.
Result<std::optional<EnvMap>> StringMapField(const Poco::JSON::Object& obj, const std::string& name);

// An array of strings (each at most max_bytes; at most max_items of them).
Result<std::optional<std::vector<std::string>>> StringListField(const Poco::JSON::Object& obj,
                                                                const std::string& name, size_t max_items,
                                                                size_t max_bytes);
// An agent's "secrets": each a name (an environment variable) or {"name": N, "as": "env"|"file"}.
Result<std::optional<std::vector<SecretRef>>> SecretRefsField(const Poco::JSON::Object& obj,
                                                              const std::string& name);

// A team's "quotas": an object of quota names (sandboxes, open_sessions, runs_per_minute,
// tokens_per_day, cost_per_day_usd) to a non-negative number (a whole one but for
// cost_per_day_usd, dollars) or null (back to the install's default). Each as (name, value),
// cost in millionths of a dollar; nullopt value for null.
using QuotaChanges = std::vector<std::pair<std::string, std::optional<std::int64_t>>>;
Result<std::optional<QuotaChanges>> QuotasField(const Poco::JSON::Object& obj, const std::string& name);

// A secret's "vault": {"hosts": [...], one of "header": NAME (with "format", default "{}"),
// "basic": true or "query": NAME, and "agents": [...]}, or null (a plain secret). Shapes only;
// SecretService checks the values.
Result<std::optional<VaultBinding>> VaultField(const Poco::JSON::Object& obj, const std::string& name);

// `text` as a whole decimal integer, or nullopt (empty, trailing characters, out of range).
std::optional<std::int64_t> ParseInt64(std::string_view text);

}  // namespace paddock
