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

size_t Redactor::PartialAtEnd(std::string_view text) const {
  std::shared_lock lock(mu_);
  size_t longest = 0;
  for (const std::string& v : values_) {
    for (size_t n = std::min(v.size() - 1, text.size()); n > longest; --n) {
      if (text.substr(text.size() - n) == std::string_view(v).substr(0, n)) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

std::string StreamRedactor::Feed(const std::string& stream, std::string_view chunk) {
  auto it = std::find_if(held_.begin(), held_.end(), [&](const auto& h) { return h.first == stream; });
  if (it == held_.end()) it = held_.insert(held_.end(), {stream, std::string()});
  std::string text = redactor_.Redact(it->second + std::string(chunk));
  size_t keep = redactor_.PartialAtEnd(text);
  it->second = text.substr(text.size() - keep);
  text.resize(text.size() - keep);
  return text;
}

std::string StreamRedactor::Flush(const std::string& stream) {
  auto it = std::find_if(held_.begin(), held_.end(), [&](const auto& h) { return h.first == stream; });
  if (it == held_.end()) return std::string();
  std::string out = redactor_.Redact(it->second);
  held_.erase(it);
  return out;
}

std::vector<std::string> StreamRedactor::Pending() const {
  std::vector<std::string> out;
  for (const auto& [stream, text] : held_) {
    if (!text.empty()) out.push_back(stream);
  }
  return out;
}

}  // namespace paddock
