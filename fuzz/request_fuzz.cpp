// What a client sends, through the code the handlers run (core/src/http/input.cpp): the JSON
// body and its typed fields, and the Last-Event-ID header. Input: one byte choosing which, then
// the bytes. A body that parses stays an object when written out and read again; every field
// reader answers a value or an error that says which field; a Last-Event-ID is a seq >= 0 or an
// error of bounded length, whatever the header held.
#include <Poco/JSON/Stringifier.h>

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include "http/input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    paddock::Result<Poco::JSON::Object::Ptr> body = paddock::ParseBodyObject(text);
    if (!body.ok()) {
      if (body.status().message().rfind("request body ", 0) != 0) __builtin_trap();
      return 0;
    }
    if (body->isNull()) __builtin_trap();
    const Poco::JSON::Object& obj = **body;
    if (paddock::Status s = paddock::CheckFields(obj, {"name", "content"}); !s.ok() && s.message().empty())
      __builtin_trap();
    for (const std::string& key : obj.getNames()) {
      auto str = paddock::StringField(obj, key, 16);
      if (!str.ok() && str.status().message().find(key) == std::string::npos) __builtin_trap();
      auto num = paddock::IntField(obj, key);
      if (!num.ok() && num.status().message().find(key) == std::string::npos) __builtin_trap();
      auto map = paddock::StringMapField(obj, key);
      if (!map.ok() && map.status().message().find(key) == std::string::npos) __builtin_trap();
      auto quotas = paddock::QuotasField(obj, key);
      if (!quotas.ok() && quotas.status().message().find(key) == std::string::npos) __builtin_trap();
      if (quotas.ok() && *quotas) {
        for (const auto& [name, value] : **quotas) {
          if (value && *value < 0) __builtin_trap();  // never a negative limit
        }
      }
    }
    std::ostringstream out;
    Poco::JSON::Stringifier::stringify(*body, out);
    if (!paddock::ParseBodyObject(out.str()).ok()) __builtin_trap();
  } else {
    paddock::Result<std::int64_t> seq = paddock::ParseLastEventId(text);
    if (seq.ok() && *seq < 0) __builtin_trap();
    if (!seq.ok() && seq.status().message().size() > 200) __builtin_trap();
  }
  return 0;
}
