#include "util/json_redact.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>

#include "util/redactor.h"

namespace paddock {

Poco::Dynamic::Var RedactJson(const Poco::Dynamic::Var& v, const Redactor& r) {
  if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
    auto in = v.extract<Poco::JSON::Object::Ptr>();
    Poco::JSON::Object::Ptr out = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    for (const auto& key : in->getNames()) out->set(key, RedactJson(in->get(key), r));
    return out;
  }
  if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
    auto in = v.extract<Poco::JSON::Array::Ptr>();
    Poco::JSON::Array::Ptr out = new Poco::JSON::Array();
    for (unsigned i = 0; i < in->size(); ++i) out->add(RedactJson(in->get(i), r));
    return out;
  }
  if (v.type() == typeid(std::string)) return r.Redact(v.extract<std::string>());
  return v;
}

}  // namespace paddock
