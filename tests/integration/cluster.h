// Helpers for tests that run several paddock processes against one PostgreSQL.
#pragma once

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "testing.h"

namespace paddock::testing {

using Clock = std::chrono::steady_clock;

// Short leases and sweeps so that a dead worker's runs come back within seconds.
constexpr char kWorkerToml[] =
    "[worker]\nthreads = 3\nlease_ttl = \"3s\"\nheartbeat_interval = \"500ms\"\nsweep_interval = \"500ms\"\n"
    "poll_interval = \"200ms\"\nmax_attempts = 3\n";

inline std::string StoreToml(const std::string& conninfo, const std::string& schema, bool migrate) {
  return std::string("[store]\ntype = \"postgres\"\nmigrate = ") + (migrate ? "true" : "false") +
         "\n[store.config]\nurl = \"" + conninfo + "\"\nschema = \"" + schema +
         "\"\nconnect_timeout = \"2s\"\n";
}

inline Poco::JSON::Object::Ptr Parse(const std::string& body) {
  Poco::JSON::Parser parser;
  return parser.parse(body).extract<Poco::JSON::Object::Ptr>();
}

inline std::vector<Poco::JSON::Object::Ptr> Items(const std::string& body, const std::string& key) {
  std::vector<Poco::JSON::Object::Ptr> out;
  try {
    auto arr = Parse(body)->getArray(key);
    for (unsigned i = 0; arr && i < arr->size(); ++i) out.push_back(arr->getObject(i));
  } catch (const std::exception&) {
  }
  return out;
}

inline std::vector<Poco::JSON::Object::Ptr> AllEvents(const ServerProcess& api, const std::string& session) {
  std::vector<Poco::JSON::Object::Ptr> out;
  std::int64_t after = 0;
  for (;;) {
    auto r =
        api.Request("GET", "/api/sessions/" + session + "/events?limit=1000&after=" + std::to_string(after));
    auto page = Items(r.body, "events");
    if (page.empty()) break;
    for (auto& e : page) out.push_back(e);
    after = out.back()->getValue<std::int64_t>("seq");
  }
  return out;
}

inline bool AllTerminal(const ServerProcess& api, const std::vector<std::string>& sessions,
                        size_t runs_each) {
  for (const std::string& s : sessions) {
    auto runs = Items(api.Request("GET", "/api/sessions/" + s + "/runs").body, "runs");
    if (runs.size() != runs_each) return false;
    for (auto& r : runs) {
      std::string st = r->getValue<std::string>("status");
      if (st == "queued" || st == "running") return false;
    }
  }
  return true;
}

inline std::string Message(const std::string& content) {
  Poco::JSON::Object body;
  body.set("content", content);
  std::ostringstream ss;
  body.stringify(ss);
  return ss.str();
}

}  // namespace paddock::testing
