// JSON lines for CliHarness subclasses, read with Poco's parser (a plugin that includes this
// links Poco::JSON).
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <string>
#include <string_view>

namespace paddock::plugin {

// The line as a JSON object, or null when it is none (the CLI printed plain text, or a value
// that is not an object): OnLine shows such a line as output.
inline Poco::JSON::Object::Ptr JsonObjectLine(std::string_view line) {
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var v = parser.parse(std::string(line));
    if (v.type() != typeid(Poco::JSON::Object::Ptr)) return nullptr;
    return v.extract<Poco::JSON::Object::Ptr>();
  } catch (...) {
    return nullptr;
  }
}

}  // namespace paddock::plugin
