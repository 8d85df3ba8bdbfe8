#include "util/json_redact.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>

#include <optional>
#include <string>
#include <vector>

#include "util/redactor.h"

namespace paddock {

namespace {

// The redacted copy of `v`, or nullopt when redaction changes nothing in it (then nothing is
// copied: most responses hold no secret).
std::optional<Poco::Dynamic::Var> Redacted(const Poco::Dynamic::Var& v, const Redactor& r) {
  if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
    auto in = v.extract<Poco::JSON::Object::Ptr>();
    const std::vector<std::string> names = in->getNames();
    Poco::JSON::Object::Ptr out;
    for (size_t i = 0; i < names.size(); ++i) {
      std::optional<Poco::Dynamic::Var> child = Redacted(in->get(names[i]), r);
      if (child && !out) {
        out = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
        for (size_t j = 0; j < i; ++j) out->set(names[j], in->get(names[j]));
      }
      if (out) out->set(names[i], child ? *child : in->get(names[i]));
    }
    if (!out) return std::nullopt;
    return Poco::Dynamic::Var(out);
  }
  if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
    auto in = v.extract<Poco::JSON::Array::Ptr>();
    Poco::JSON::Array::Ptr out;
    for (unsigned i = 0; i < in->size(); ++i) {
      std::optional<Poco::Dynamic::Var> child = Redacted(in->get(i), r);
      if (child && !out) {
        out = new Poco::JSON::Array();
        for (unsigned j = 0; j < i; ++j) out->add(in->get(j));
      }
      if (out) out->add(child ? *child : in->get(i));
    }
    if (!out) return std::nullopt;
    return Poco::Dynamic::Var(out);
  }
  if (v.type() == typeid(std::string)) {
    const std::string& text = v.extract<std::string>();
    std::string redacted = r.Redact(text);
    if (redacted == text) return std::nullopt;
    return Poco::Dynamic::Var(std::move(redacted));
  }
  return std::nullopt;
}

}  // namespace

Poco::Dynamic::Var RedactJson(const Poco::Dynamic::Var& v, const Redactor& r) {
  if (r.empty()) return v;
  std::optional<Poco::Dynamic::Var> redacted = Redacted(v, r);
  return redacted ? *redacted : v;
}

}  // namespace paddock
