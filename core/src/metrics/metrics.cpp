#include "metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <map>
#include <mutex>
#include <unordered_map>

namespace paddock {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

struct Metrics::Impl {
  struct HttpChildren {
    prometheus::Counter* requests;
    prometheus::Histogram* duration;
  };
  std::mutex http_mu;
  std::unordered_map<std::string, HttpChildren> http_children;  // "route method status"
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& http_requests =
      BuildCounter()
          .Name("paddock_http_requests_total")
          .Help("HTTP requests by route pattern, method and status code.")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& http_duration =
      BuildHistogram()
          .Name("paddock_http_request_duration_seconds")
          .Help("Time to answer an HTTP request (event streams: until the stream ends).")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& sessions =
      BuildGauge().Name("paddock_sessions").Help("Sessions in the store, by status.").Register(*registry);
  prometheus::Family<prometheus::Gauge>& disk =
      BuildGauge()
          .Name("paddock_sandbox_disk_bytes")
          .Help(
              "The sandbox provider's disk: what its workspace images promise (committed), hold "
              "(used), and the filesystem's size and free space.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& runs =
      BuildCounter().Name("paddock_runs_total").Help("Finished runs, by outcome.").Register(*registry);
  prometheus::Family<prometheus::Histogram>& provision =
      BuildHistogram()
          .Name("paddock_sandbox_provision_duration_seconds")
          .Help("Time to create a sandbox, by result.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& events =
      BuildCounter()
          .Name("paddock_events_appended_total")
          .Help("Events appended to session logs by this process.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& append_waits =
      BuildCounter()
          .Name("paddock_event_append_wait_seconds_total")
          .Help("Time appends waited because their session was over its share of the store's write rate.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& plugins =
      BuildGauge()
          .Name("paddock_plugin_loaded_info")
          .Help("Loaded plugins (value 1), by kind, name and version.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& interrupted =
      BuildCounter()
          .Name("paddock_runs_interrupted_total")
          .Help("Runs whose lease expired (worker gone, paused or cut off), found by this process's sweeper.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& egress =
      BuildCounter()
          .Name("paddock_egress_refused_total")
          .Help("Connections from sandboxes that the egress proxy refused (host not on the allow list).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& vault_requests =
      BuildCounter()
          .Name("paddock_vault_requests_total")
          .Help(
              "Requests from sandboxes that carried vault placeholders, by result: substituted (the "
              "values went in) or refused (placeholder for a host, place or agent it is not bound to).")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& snapshot_seconds =
      BuildHistogram()
          .Name("paddock_snapshot_duration_seconds")
          .Help(
              "Time to take (archive and store) or restore (read and extract) a session snapshot, by op and "
              "result.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& snapshot_bytes =
      BuildCounter()
          .Name("paddock_snapshot_bytes_total")
          .Help("Bytes of snapshot archives written (op=snapshot) and restored (op=restore).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& durability =
      BuildCounter()
          .Name("paddock_durability_events_total")
          .Help(
              "Sandboxes found lost, sessions suspended when idle, and runs resumed (by how the sandbox got "
              "its state back).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& tokens =
      BuildCounter()
          .Name("paddock_model_tokens_total")
          .Help("Tokens models spent, by agent, harness, model and kind (input, output, cache_read).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& cost =
      BuildCounter()
          .Name("paddock_model_cost_usd_total")
          .Help("US dollars models cost, as the agents reported it, by agent, harness and model.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& open =
      BuildGauge()
          .Name("paddock_http_open")
          .Help("Open HTTP connections (kind=connection) and, among them, event streams (kind=stream).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& shed =
      BuildCounter()
          .Name("paddock_http_shed_total")
          .Help(
              "Requests answered 503 without running, by reason (busy: handlers full; connections: a limit "
              "on connections; draining: shutting down).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& auth_refused =
      BuildCounter()
          .Name("paddock_auth_refused_total")
          .Help(
              "Requests refused by authentication (401, or 429 for an address failing too often) or by "
              "role (403), by reason.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& quota_limit =
      BuildGauge()
          .Name("paddock_team_quota_limit")
          .Help("Each team's quota, by team and quota (cost_per_day_usd in US dollars); 0: no limit.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& quota_used =
      BuildGauge()
          .Name("paddock_team_quota_used")
          .Help("What each team uses against each quota, by team and quota (as of the last check or scrape).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& quota_refused =
      BuildCounter()
          .Name("paddock_quota_refused_total")
          .Help("Requests answered 429 because a team was at a quota, by team and quota.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& timeouts =
      BuildCounter()
          .Name("paddock_http_timeouts_total")
          .Help("Connections closed on a deadline, by phase (header, body, idle, write).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& cut =
      BuildCounter()
          .Name("paddock_http_streams_cut_total")
          .Help("Event streams the server ended, by reason (slow: the client read too slowly; shutdown).")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& delivery =
      BuildHistogram()
          .Name("paddock_event_delivery_seconds")
          .Help("From an event's append to its hand-over to a stream's socket, per stream.")
          .Register(*registry);
  prometheus::Counter& events_counter = events.Add({});
  prometheus::Counter& append_wait_seconds = append_waits.Add({});
  prometheus::Gauge& open_connections = open.Add({{"kind", "connection"}});
  prometheus::Gauge& open_streams = open.Add({{"kind", "stream"}});
  prometheus::Histogram& delivery_seconds =
      delivery.Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                               0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  prometheus::Counter& interrupted_counter = interrupted.Add({});
  prometheus::Counter& egress_refused = egress.Add({});
  prometheus::Counter& vault_substituted = vault_requests.Add({{"result", "substituted"}});
  prometheus::Counter& vault_refused = vault_requests.Add({{"result", "refused"}});
};

namespace {
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                                 0.25,  0.5,    1,     2.5,  5,     10,   30};
}

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::ObserveHttp(std::string_view route, std::string_view method, int status, double seconds) {
  // The children of a (route, method, status) are looked up once: Family::Add builds and hashes
  // a label map, which is most of a request's metrics cost.
  std::string key;
  key.reserve(route.size() + method.size() + 8);
  key.append(route).append(1, ' ').append(method).append(1, ' ').append(std::to_string(status));
  Impl::HttpChildren* children = nullptr;
  {
    std::lock_guard lock(impl_->http_mu);
    auto it = impl_->http_children.find(key);
    if (it == impl_->http_children.end()) {
      prometheus::Counter& c = impl_->http_requests.Add({{"route", std::string(route)},
                                                         {"method", std::string(method)},
                                                         {"status", std::to_string(status)}});
      prometheus::Histogram& h = impl_->http_duration.Add({{"route", std::string(route)}}, kLatencyBuckets);
      it = impl_->http_children.emplace(std::move(key), Impl::HttpChildren{&c, &h}).first;
    }
    children = &it->second;
  }
  children->requests->Increment();
  children->duration->Observe(seconds);
}

void Metrics::RunFinished(std::string_view outcome) {
  impl_->runs.Add({{"outcome", std::string(outcome)}}).Increment();
}

void Metrics::SandboxProvisioned(double seconds, bool ok, std::string_view source) {
  impl_->provision.Add({{"result", ok ? "ok" : "error"}, {"source", std::string(source)}}, kLatencyBuckets)
      .Observe(seconds);
}

void Metrics::EgressRefused() { impl_->egress_refused.Increment(); }

void Metrics::VaultRequest(bool substituted) {
  (substituted ? impl_->vault_substituted : impl_->vault_refused).Increment();
}

void Metrics::SnapshotOp(std::string_view op, std::string_view result, double seconds, std::int64_t bytes) {
  impl_->snapshot_seconds.Add({{"op", std::string(op)}, {"result", std::string(result)}}, kLatencyBuckets)
      .Observe(seconds);
  impl_->snapshot_bytes.Add({{"op", std::string(op)}}).Increment(static_cast<double>(bytes));
}

void Metrics::SandboxLost() { impl_->durability.Add({{"event", "sandbox_lost"}}).Increment(); }

void Metrics::SessionSuspended() { impl_->durability.Add({{"event", "session_suspended"}}).Increment(); }

void Metrics::RunResumed(std::string_view restored) {
  impl_->durability
      .Add({{"event", "run_resumed"}, {"restored", std::string(restored.empty() ? "none" : restored)}})
      .Increment();
}

void Metrics::ModelUsage(std::string_view agent, std::string_view harness, const Usage& usage) {
  std::string model = usage.model.empty() ? "unknown" : usage.model;
  auto labels = [&](const char* kind) -> std::map<std::string, std::string> {
    return {
        {"agent", std::string(agent)}, {"harness", std::string(harness)}, {"model", model}, {"kind", kind}};
  };
  impl_->tokens.Add(labels("input")).Increment(static_cast<double>(usage.input_tokens));
  impl_->tokens.Add(labels("output")).Increment(static_cast<double>(usage.output_tokens));
  impl_->tokens.Add(labels("cache_read")).Increment(static_cast<double>(usage.cache_read_tokens));
  if (usage.cost_usd) {
    impl_->cost.Add({{"agent", std::string(agent)}, {"harness", std::string(harness)}, {"model", model}})
        .Increment(*usage.cost_usd);
  }
}

void Metrics::RunInterrupted() { impl_->interrupted_counter.Increment(); }

void Metrics::ConnectionOpened(int delta) { impl_->open_connections.Increment(delta); }
void Metrics::StreamOpened(int delta) { impl_->open_streams.Increment(delta); }
void Metrics::RequestShed(std::string_view reason) {
  impl_->shed.Add({{"reason", std::string(reason)}}).Increment();
}
void Metrics::AuthRefused(std::string_view reason) {
  impl_->auth_refused.Add({{"reason", std::string(reason)}}).Increment();
}
void Metrics::SetTeamQuota(std::string_view team, std::string_view quota, double limit, double used) {
  const std::map<std::string, std::string> labels = {{"team", std::string(team)},
                                                     {"quota", std::string(quota)}};
  impl_->quota_limit.Add(labels).Set(limit);
  impl_->quota_used.Add(labels).Set(used);
}
void Metrics::QuotaRefused(std::string_view team, std::string_view quota) {
  impl_->quota_refused.Add({{"team", std::string(team)}, {"quota", std::string(quota)}}).Increment();
}
void Metrics::ConnectionTimedOut(std::string_view phase) {
  impl_->timeouts.Add({{"phase", std::string(phase)}}).Increment();
}
void Metrics::StreamCut(std::string_view reason) {
  impl_->cut.Add({{"reason", std::string(reason)}}).Increment();
}
void Metrics::EventDelivered(double seconds) { impl_->delivery_seconds.Observe(seconds); }

void Metrics::EventsAppended(std::int64_t n) { impl_->events_counter.Increment(static_cast<double>(n)); }

void Metrics::AppendWaited(double seconds) { impl_->append_wait_seconds.Increment(seconds); }

void Metrics::SetSessionCounts(const SessionCounts& counts) {
  for (SessionStatus s : kAllSessionStatuses) {
    impl_->sessions.Add({{"status", std::string(ToString(s))}})
        .Set(static_cast<double>(counts.by_status[static_cast<int>(s)]));
  }
}

void Metrics::SetDisk(const DiskCommitment& disk) {
  for (auto [kind, value] : {std::pair{"committed", disk.committed_bytes}, std::pair{"used", disk.used_bytes},
                             std::pair{"size", disk.size_bytes}, std::pair{"free", disk.free_bytes}}) {
    impl_->disk.Add({{"kind", kind}}).Set(static_cast<double>(value));
  }
}

void Metrics::PluginLoaded(std::string_view kind, std::string_view name, std::string_view version) {
  impl_->plugins
      .Add({{"kind", std::string(kind)}, {"name", std::string(name)}, {"version", std::string(version)}})
      .Set(1);
}

std::string Metrics::Serialize() const {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(impl_->registry->Collect());
}

}  // namespace paddock
