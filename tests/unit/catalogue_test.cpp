// The event catalogue: every builder writes a type the catalogue lists, with the fields it says;
// the events reference in docs/architecture.md names exactly the catalogue's types; core events
// are redacted like any other.
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "metrics/metrics.h"
#include "services/events/catalogue.h"
#include "services/events/event_service.h"
#include "testing.h"
#include "util/redactor.h"

namespace paddock {
namespace {

const EventKind* Kind(std::string_view type) {
  for (const EventKind& k : kEventCatalogue) {
    if (k.type == type) return &k;
  }
  return nullptr;
}

// "{a, b[, c]}" -> required {a, b}, optional {c}.
void Fields(std::string_view spec, std::set<std::string>& required, std::set<std::string>& optional) {
  std::string s(spec);
  bool in_optional = false;
  std::string name;
  auto flush = [&] {
    if (!name.empty()) (in_optional ? optional : required).insert(name);
    name.clear();
  };
  for (char c : s) {
    if (c == '[') {
      flush();
      in_optional = true;
    } else if (c == ',' || c == ']' || c == '{' || c == '}' || c == ' ') {
      flush();
    } else {
      name += c;
    }
  }
  flush();
}

TEST(EventCatalogue, EveryBuilderWritesACataloguedTypeWithItsFields) {
  Usage usage;
  usage.model = "m";
  usage.cost_usd = 0.5;
  SnapshotInfo snap;
  snap.version = 3;
  TurnResume resume;
  resume.reason = "r";
  const std::vector<CoreEvent> built = {
      event::SessionCreated("agt_1"),
      event::SessionClosed(),
      event::MessageUser("hi"),
      event::SandboxReady("psb_1", 12.5, "warm", "default"),
      event::SandboxFailed("no"),
      event::SandboxLost("psb_1", "gone"),
      event::SandboxReplaced("psb_1", "elsewhere"),
      event::SandboxReleased("psb_1", "idle", true),
      event::SandboxReleased("psb_1", "closed"),
      event::SandboxExec({"ls", "-l"}, 0, false),
      event::EgressRefused("example.com", 443),
      event::VaultRefused("API_KEY", "example.com", 443, "not bound"),
      event::RunStarted(1, "psb_1"),
      event::RunResumed(2, resume, "psb_1"),
      event::RunFinished(RunStatus::kSucceeded, 0, ""),
      event::RunFinished(RunStatus::kCancelled, std::nullopt, "cancelled"),
      event::SnapshotTaken(snap, {"/workspace"}, true, false, 1.25, ""),
      event::SnapshotTaken(snap, {"/workspace"}, true, false, 1.25, "too big"),
      event::SnapshotRestored(3, 10, "psb_1", {"/workspace"}, 2),
      event::SnapshotFailed("disk"),
      event::Output("stdout", "a\nb"),
      event::UsageRecorded(usage),
  };
  std::set<std::string> core_types;
  for (const CoreEvent& e : built) {
    const EventKind* kind = Kind(e.type);
    ASSERT_NE(kind, nullptr) << e.type << " is not in the catalogue";
    core_types.insert(std::string(e.type));
    std::set<std::string> required, optional;
    Fields(kind->fields, required, optional);
    std::vector<std::string> names;
    e.data->getNames(names);
    for (const std::string& r : required) EXPECT_TRUE(e.data->has(r)) << e.type << " lacks " << r;
    for (const std::string& n : names)
      EXPECT_TRUE(required.count(n) || optional.count(n))
          << e.type << " has " << n << ", not in " << kind->fields;
  }
  // Every type the core writes has a builder that is exercised here.
  for (const EventKind& k : kEventCatalogue) {
    if (k.writer == EventWriter::kCore) {
      EXPECT_TRUE(core_types.count(std::string(k.type))) << k.type;
    }
  }
}

TEST(EventCatalogue, TheEventsReferenceNamesExactlyTheCataloguesTypes) {
  std::ifstream in(testing::SourceDir() + "/docs/architecture.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  const size_t start = doc.find("Types written today");
  ASSERT_NE(start, std::string::npos);
  const std::string paragraph = doc.substr(start, doc.find("\n\n", start) - start);
  std::set<std::string> documented;
  const std::regex type("`([a-z_]+(\\.[a-z_]+)*)`");
  for (std::sregex_iterator it(paragraph.begin(), paragraph.end(), type), end; it != end; ++it) {
    const std::string t = (*it)[1];
    if (Kind(t) || t.find('.') != std::string::npos || t == "output" || t == "usage") documented.insert(t);
  }
  std::set<std::string> catalogued;
  for (const EventKind& k : kEventCatalogue) catalogued.insert(std::string(k.type));
  EXPECT_EQ(documented, catalogued);
}

TEST(EventCatalogue, CoreEventsAreRedactedLikeAnyOther) {
  auto store = testing::LoadStore("sqlite", "", testing::TempDir().path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Redactor redactor;
  redactor.Add("s3cr3t-value");
  Metrics metrics;
  EventService events(**store, redactor, metrics);
  NewEvent e = events.Prepare("run_1", event::MessageUser("the key is s3cr3t-value"));
  EXPECT_EQ(e.type, "message.user");
  EXPECT_EQ(e.data, R"({"content":"the key is [redacted]"})");
  NewEvent plain =
      EventService(**store, Redactor(), metrics).Prepare("", event::SandboxLost("psb_1", "gone"));
  EXPECT_EQ(plain.data, R"({"sandbox_id":"psb_1","detail":"gone"})");
}

}  // namespace
}  // namespace paddock
