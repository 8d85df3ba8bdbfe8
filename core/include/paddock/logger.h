// Logger: how a plugin writes to the host's log. The host redacts secret values and adds the
// plugin id; plugins never open log files or write to stderr themselves.
#pragma once

#include <string_view>

namespace paddock {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// Thread safety: Log may be called concurrently from any thread.
class Logger {
 public:
  virtual ~Logger() = default;
  virtual void Log(LogLevel level, std::string_view message) noexcept = 0;

  void Debug(std::string_view m) noexcept { Log(LogLevel::kDebug, m); }
  void Info(std::string_view m) noexcept { Log(LogLevel::kInfo, m); }
  void Warn(std::string_view m) noexcept { Log(LogLevel::kWarn, m); }
  void Error(std::string_view m) noexcept { Log(LogLevel::kError, m); }
};

}  // namespace paddock
