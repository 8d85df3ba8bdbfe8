// The parsed but not yet validated form of a config section, independent of the TOML library.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace paddock {

struct RawValue {
  enum class Type { kString, kInt, kFloat, kBool, kArray, kTable, kOther };
  Type type = Type::kOther;
  std::string str;
  std::int64_t i = 0;
  double d = 0;
  bool b = false;
  std::vector<RawValue> items;  // kArray
  int line = 0;                 // 1-based line in the config file; 0 when unknown
};

const char* TypeName(RawValue::Type t);

struct RawSection {
  std::string name;    // "store.config"
  std::string source;  // the file it came from
  int line = 0;
  std::map<std::string, RawValue> values;
};

}  // namespace paddock
