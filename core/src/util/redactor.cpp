#include "util/redactor.h"

#include <algorithm>
#include <mutex>

namespace paddock {

void Redactor::Add(std::string_view value) {
  if (value.empty()) return;
  std::unique_lock lock(mu_);
  if (std::find(values_.begin(), values_.end(), value) != values_.end()) return;
  values_.emplace_back(value);
  std::stable_sort(values_.begin(), values_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

bool Redactor::empty() const {
  std::shared_lock lock(mu_);
  return values_.empty();
}

std::string Redactor::Redact(std::string_view text) const {
  std::string out(text);
  std::shared_lock lock(mu_);
  for (const std::string& v : values_) {
    size_t pos = 0;
    while ((pos = out.find(v, pos)) != std::string::npos) {
      out.replace(pos, v.size(), kRedacted);
      pos += kRedacted.size();
    }
  }
  return out;
}

}  // namespace paddock
