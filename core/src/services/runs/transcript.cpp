#include "services/runs/transcript.h"

#include <map>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

namespace paddock {

Result<std::vector<TranscriptEntry>> BuildTranscript(SessionStore& store, const std::string& session_id,
                                                     const std::string& exclude_run) {
  std::vector<TranscriptEntry> out;
  std::map<std::string, size_t> assistant;  // run id -> index in out
  std::int64_t after = 0;
  for (;;) {
    PADDOCK_ASSIGN_OR_RETURN(std::vector<Event> page, store.ListEvents(session_id, after, 1000));
    for (const Event& e : page) {
      after = e.seq;
      if (e.type != "message.user" && e.type != "output" && e.type != "run.finished" &&
          e.type != "run.started" && e.type != "run.interrupted" && e.type != "run.resumed")
        continue;
      if (!exclude_run.empty() && e.run_id == exclude_run) continue;
      Poco::JSON::Parser parser;
      Poco::JSON::Object::Ptr data;
      try {
        data = parser.parse(e.data).extract<Poco::JSON::Object::Ptr>();
      } catch (const Poco::Exception&) {
        continue;  // not ours to render
      }
      if (e.type == "message.user") {
        out.push_back({"user",
                       e.run_id,
                       data->optValue<std::string>("content", ""),
                       std::nullopt,
                       std::nullopt,
                       e.created_at,
                       {}});
        continue;
      }
      auto [it, inserted] = assistant.try_emplace(e.run_id, out.size());
      if (inserted) out.push_back({"assistant", e.run_id, "", std::nullopt, std::nullopt, e.created_at, {}});
      TranscriptEntry& entry = out[it->second];
      if (e.type == "run.started" || e.type == "run.resumed") {
        entry.content.clear();  // a new attempt: what an interrupted one printed is not the answer
        if (e.type == "run.resumed") entry.interruptions.push_back(data->optValue<std::string>("reason", ""));
      } else if (e.type == "run.interrupted") {
        // Recorded again by the run.resumed of the next attempt; a run that ends here keeps it.
        if (data->optValue<std::string>("next", "") != "queued")
          entry.interruptions.push_back(data->optValue<std::string>("reason", ""));
      } else if (e.type == "output") {
        entry.content += data->optValue<std::string>("text", "");
        entry.content += "\n";
      } else {
        entry.status = ParseRunStatus(data->optValue<std::string>("status", ""));
        if (data->has("exit_code") && !data->isNull("exit_code"))
          entry.exit_code = data->getValue<int>("exit_code");
      }
    }
    if (page.size() < 1000) break;
  }
  return out;
}

}  // namespace paddock
