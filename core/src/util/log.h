// Logging: spdlog behind a sink that redacts secret values, and the SDK Logger for plugins.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "paddock/logger.h"

namespace paddock {

class Redactor;

// Sets up the default logger ("core") writing to stderr through `redactor`. Level names:
// debug, info, warn, error. Returns false for an unknown level.
bool InitLogging(std::shared_ptr<const Redactor> redactor, std::string_view level);

// A named logger for a plugin or subsystem, e.g. "plugin.store.sqlite".
std::unique_ptr<Logger> MakeLogger(std::string name);

// Logs through the core logger.
void LogDebug(std::string_view message);
// Whether LogDebug writes anything (build a costly message only then).
bool LogDebugEnabled();
void LogInfo(std::string_view message);
void LogWarn(std::string_view message);
void LogError(std::string_view message);

}  // namespace paddock
