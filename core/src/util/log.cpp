#include "util/log.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <mutex>

#include "util/redactor.h"

namespace paddock {
namespace {

// Formats, redacts, and writes to stderr.
class RedactingSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit RedactingSink(std::shared_ptr<const Redactor> redactor) : redactor_(std::move(redactor)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    std::string text = redactor_->Redact(std::string_view(formatted.data(), formatted.size()));
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  std::shared_ptr<const Redactor> redactor_;
};

std::shared_ptr<spdlog::sinks::sink>& Sink() {
  static std::shared_ptr<spdlog::sinks::sink> sink;
  return sink;
}

class SpdLogger final : public Logger {
 public:
  explicit SpdLogger(std::shared_ptr<spdlog::logger> l) : logger_(std::move(l)) {}
  void Log(LogLevel level, std::string_view message) noexcept override {
    try {
      switch (level) {
        case LogLevel::kDebug:
          logger_->debug("{}", message);
          break;
        case LogLevel::kInfo:
          logger_->info("{}", message);
          break;
        case LogLevel::kWarn:
          logger_->warn("{}", message);
          break;
        case LogLevel::kError:
          logger_->error("{}", message);
          break;
      }
    } catch (...) {
    }
  }

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace

bool InitLogging(std::shared_ptr<const Redactor> redactor, std::string_view level) {
  spdlog::level::level_enum lvl;
  if (level == "debug") {
    lvl = spdlog::level::debug;
  } else if (level == "info") {
    lvl = spdlog::level::info;
  } else if (level == "warn") {
    lvl = spdlog::level::warn;
  } else if (level == "error") {
    lvl = spdlog::level::err;
  } else {
    return false;
  }
  Sink() = std::make_shared<RedactingSink>(std::move(redactor));
  auto core = std::make_shared<spdlog::logger>("core", Sink());
  core->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v");
  spdlog::set_default_logger(core);
  spdlog::set_level(lvl);
  return true;
}

std::unique_ptr<Logger> MakeLogger(std::string name) {
  auto l = Sink() ? std::make_shared<spdlog::logger>(std::move(name), Sink())
                  : std::make_shared<spdlog::logger>(std::move(name),
                                                     std::make_shared<spdlog::sinks::stderr_sink_mt>());
  l->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v");
  l->set_level(spdlog::get_level());
  return std::make_unique<SpdLogger>(std::move(l));
}

void LogDebug(std::string_view m) { spdlog::debug("{}", m); }
bool LogDebugEnabled() { return spdlog::default_logger_raw()->should_log(spdlog::level::debug); }
void LogInfo(std::string_view m) { spdlog::info("{}", m); }
void LogWarn(std::string_view m) { spdlog::warn("{}", m); }
void LogError(std::string_view m) { spdlog::error("{}", m); }

}  // namespace paddock
