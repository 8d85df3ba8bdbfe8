// Redaction over parsed JSON: every string value (never a key) passes through the Redactor.
#pragma once

#include <Poco/Dynamic/Var.h>

namespace paddock {

class Redactor;

Poco::Dynamic::Var RedactJson(const Poco::Dynamic::Var& value, const Redactor& redactor);

}  // namespace paddock
