// The server's Prometheus metrics (prometheus-cpp), exposed as text on /metrics.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "paddock/sandbox_provider.h"
#include "paddock/session_store.h"

namespace paddock {

// Thread safety: every method may be called concurrently.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // route is the pattern ("/api/sessions/{id}"), never the raw path.
  void ObserveHttp(std::string_view route, std::string_view method, int status, double seconds);
  void RunFinished(std::string_view outcome);
  void RunInterrupted();
  // source: "cold" (created for a session), "warm" (claimed from the pool), "pool" (created
  // for the pool).
  void SandboxProvisioned(double seconds, bool ok, std::string_view source);
  void EgressRefused();
  // A request with vault placeholders: substituted, or refused.
  void VaultRequest(bool substituted);
  // op: "snapshot" or "restore"; result: "ok", "partial" (something left out) or "error".
  void SnapshotOp(std::string_view op, std::string_view result, double seconds, std::int64_t bytes);
  // A sandbox found dead (during a run or between runs), a session suspended when idle, a run
  // resumed after an interruption.
  void SandboxLost();
  void SessionSuspended();
  void RunResumed(std::string_view restored);
  // What a model spent for an agent (by its id), through a harness.
  void ModelUsage(std::string_view agent, std::string_view harness, const Usage& usage);
  void EventsAppended(std::int64_t n);
  // An append waited this long for its session's share of the store's write rate.
  void AppendWaited(double seconds);
  // The front door: delta +1 when a connection (stream) opens, -1 when it closes.
  void ConnectionOpened(int delta);
  void StreamOpened(int delta);
  // reason: "busy", "connections" or "draining".
  void RequestShed(std::string_view reason);
  // reason: "missing", "malformed", "unknown", "expired", "revoked", "rate_limited",
  // "forbidden" (a valid key without the role).
  void AuthRefused(std::string_view reason);
  // A team's quota and its use (services/teams/quota_service.h); a request refused by one.
  void SetTeamQuota(std::string_view team, std::string_view quota, double limit, double used);
  void QuotaRefused(std::string_view team, std::string_view quota);
  // phase: "header", "body", "idle" or "write".
  void ConnectionTimedOut(std::string_view phase);
  // reason: "slow" or "shutdown".
  void StreamCut(std::string_view reason);
  void EventDelivered(double seconds);
  void SetSessionCounts(const SessionCounts& counts);
  // What the sandbox provider's workspaces promise of its disk, and what the disk has.
  void SetDisk(const DiskCommitment& disk);
  void PluginLoaded(std::string_view kind, std::string_view name, std::string_view version);

  // Every metric in the Prometheus text exposition format.
  std::string Serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace paddock
