#include "services/sandboxes/idle_watch.h"

#include <algorithm>

namespace paddock {

IdleWatch::IdleWatch(SessionStore& store, std::chrono::milliseconds idle_timeout, SuspendFn suspend)
    : store_(store), idle_timeout_(idle_timeout), suspend_(std::move(suspend)) {}

IdleWatch::~IdleWatch() { Stop(); }

void IdleWatch::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void IdleWatch::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void IdleWatch::Touch(const std::string& session_id) {
  std::lock_guard lock(mu_);
  last_active_[session_id] = std::chrono::steady_clock::now();
}

void IdleWatch::Forget(const std::string& session_id) {
  std::lock_guard lock(mu_);
  last_active_.erase(session_id);
}

std::vector<std::string> IdleWatch::Idle() {
  std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>> candidates;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, at] : last_active_) candidates.emplace_back(id, at);
  }
  std::vector<std::string> out;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [id, at] : candidates) {
    std::chrono::milliseconds timeout = idle_timeout_;
    Result<Session> session = store_.GetSession(id);
    if (!session.ok()) continue;
    if (Result<Agent> agent = store_.GetAgent(session->agent_id); agent.ok() && agent->idle_timeout_seconds) {
      timeout = std::chrono::seconds(*agent->idle_timeout_seconds);
    }
    if (timeout.count() > 0 && now - at >= timeout) out.push_back(id);
  }
  return out;
}

void IdleWatch::Loop() {
  // Often enough that an agent's short timeout is honoured within a few seconds.
  const auto interval = idle_timeout_.count() > 0 ? std::clamp<std::chrono::milliseconds>(
                                                        idle_timeout_ / 4, std::chrono::milliseconds(200),
                                                        std::chrono::milliseconds(5000))
                                                  : std::chrono::milliseconds(5000);
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, interval, [&] { return stopping_; });
      if (stopping_) return;
    }
    for (const std::string& id : Idle()) suspend_(id);
  }
}

}  // namespace paddock
