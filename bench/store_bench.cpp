// Event append throughput and append -> SSE delivery latency, for the sqlite and postgres
// stores, each next to the raw floor measured in the same run on the same database server:
// a plain single-row INSERT through sqlite3 (WAL) or libpq, in alternating rounds with the
// store's appends. For postgres, the steps of an append are each measured against the floor too.
//
//   build/bin/store_bench [N]      (default N = 2000 appends per measurement)
//
// Starts its own PostgreSQL (scripts/test-postgres.sh, fsync off). The latency is measured
// through a real HTTP event stream served in this process; for postgres the events are appended
// through a second store instance (another connection pool, as a worker process would), so they
// reach the stream by LISTEN/NOTIFY.
#include <libpq-fe.h>
#include <poll.h>
#include <sched.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "config/config.h"
#include "http/router.h"
#include "http/server.h"
#include "plugins/plugin_host.h"
#include "services/app.h"
#include "services/events/event_service.h"
#include "testing.h"
#include "util/log.h"
#include "util/redactor.h"

using namespace paddock;
using namespace paddock::testing;
using Clock = std::chrono::steady_clock;

namespace {

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

struct Figures {
  double per_second = 0;  // appends (inserts) per second, one thread
  double p50_us = 0;      // one append (insert) round trip
};

// `floor` and `path` in alternating rounds (n/10 calls each, the order swapped every round),
// after a warm-up of both: a small VM's speed drifts over seconds, and measured one after the
// other the two would see different machines.
std::pair<Figures, Figures> Alternate(int n, const std::function<void(int)>& floor,
                                      const std::function<void(int)>& path) {
  constexpr int kRounds = 10;
  const int per = std::max(1, n / kRounds);
  for (int i = 0; i < per; ++i) {
    floor(n + i);
    path(n + i);
  }
  std::vector<double> each[2];
  double seconds[2] = {0, 0};
  int next[2] = {0, 0};
  for (int round = 0; round < kRounds; ++round) {
    for (int k = 0; k < 2; ++k) {
      const int which = (round + k) % 2;
      const auto& one = which == 0 ? floor : path;
      auto start = Clock::now();
      for (int i = 0; i < per; ++i) {
        auto t0 = Clock::now();
        one(next[which]++);
        each[which].push_back(Us(Clock::now() - t0));
      }
      seconds[which] += std::chrono::duration<double>(Clock::now() - start).count();
    }
  }
  auto figures = [&](int which) {
    return Figures{static_cast<double>(each[which].size()) / seconds[which], Percentile(each[which], 0.5)};
  };
  return {figures(0), figures(1)};
}

void Check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "store_bench: %s\n", what.c_str());
    std::exit(1);
  }
}

// The floor: a plain single-row INSERT of a prepared statement.
class RawSqlite {
 public:
  explicit RawSqlite(const std::string& path) {
    Check(sqlite3_open(path.c_str(), &db_) == SQLITE_OK, "open sqlite");
    sqlite3_exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", nullptr, nullptr, nullptr);
    sqlite3_exec(db_,
                 "CREATE TABLE raw (session TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, "
                 "PRIMARY KEY (session, seq)) WITHOUT ROWID",
                 nullptr, nullptr, nullptr);
    sqlite3_prepare_v2(db_, "INSERT INTO raw VALUES ('s', ?, '{\"i\":1}')", -1, &st_, nullptr);
  }
  ~RawSqlite() {
    sqlite3_finalize(st_);
    sqlite3_close(db_);
  }
  void Insert(int i) {
    sqlite3_bind_int64(st_, 1, i);
    Check(sqlite3_step(st_) == SQLITE_DONE, "raw sqlite insert");
    sqlite3_reset(st_);
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* st_ = nullptr;
};

class RawPostgres {
 public:
  explicit RawPostgres(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str())) {
    Check(PQstatus(c_) == CONNECTION_OK, "connect to postgres");
    PQclear(PQexec(c_,
                   "CREATE TABLE IF NOT EXISTS raw (session TEXT NOT NULL, seq BIGINT NOT NULL, data TEXT "
                   "NOT NULL, PRIMARY KEY (session, seq))"));
    PQclear(PQprepare(c_, "ins", "INSERT INTO raw VALUES ($1, $2, '{\"i\":1}')", 2, nullptr));
  }
  ~RawPostgres() { PQfinish(c_); }
  // Rows of `session`: each user of the floor keeps to its own.
  void Insert(const std::string& session, int i) {
    std::string v = std::to_string(i);
    const char* values[] = {session.c_str(), v.c_str()};
    PGresult* r = PQexecPrepared(c_, "ins", 2, values, nullptr, nullptr, 0);
    Check(PQresultStatus(r) == PGRES_COMMAND_OK, "raw postgres insert");
    PQclear(r);
  }

 private:
  PGconn* c_;
};

// What an append asks of the server, one step at a time, each a prepared statement on one
// connection like the floor: the events table's row (wider, its primary key), the next seq
// from the session's row, then the notification that wakes other processes' streams. The
// store's append is the last step plus the store's own code (pool, fence check, result).
void PostgresSteps(const std::string& conninfo, int n, RawPostgres& floor, const std::string& store_schema,
                   const std::string& store_session) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  Check(PQstatus(c) == CONNECTION_OK, "connect to postgres");
  PQclear(
      PQexec(c,
             "CREATE TABLE st_sessions (id TEXT PRIMARY KEY, last_seq BIGINT NOT NULL DEFAULT 0);"
             "CREATE TABLE st_events (session_id TEXT NOT NULL, seq BIGINT NOT NULL, run_id TEXT NOT NULL, "
             "type TEXT NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL, "
             "PRIMARY KEY (session_id, seq));"
             "CREATE TABLE st_events_fk (LIKE st_events INCLUDING ALL, "
             "FOREIGN KEY (session_id) REFERENCES st_sessions (id));"
             "INSERT INTO st_sessions (id) VALUES ('a'), ('b'), ('c'), ('d');"));
  // The store's append (plugins/store-postgres AppendOn) for an event outside a run.
  const std::string store_sql = "WITH r AS (SELECT 1 FROM " + store_schema +
                                ".runs WHERE id = '' AND generation = 0 AND status = 'running' "
                                "AND session_id = $1 FOR SHARE), s AS (UPDATE " +
                                store_schema +
                                ".sessions SET last_seq = last_seq + 1 WHERE id = $1 "
                                "AND ($2::bigint >= 0 OR EXISTS (SELECT 1 FROM r)) RETURNING last_seq), "
                                "e AS (INSERT INTO " +
                                store_schema +
                                ".events (session_id, seq, run_id, type, data, created_at) "
                                "SELECT $1, s.last_seq, '', 'bench', '{\"i\":1}', 0 FROM s RETURNING seq) "
                                "SELECT e.seq, pg_notify('st', $1 || ':' || e.seq) FROM e";
  struct Step {
    const char* label;
    const char* session;
    const char* sql;
    bool listened = false;
  };
  const Step steps[] = {
      {"events row, seq from the client", "a",
       "INSERT INTO st_events VALUES ($1, $2::bigint, '', 'bench', '{\"i\":1}', 0)"},
      {"or: seq as MAX(seq)+1 (index probe)", "e",
       "INSERT INTO st_events SELECT $1, COALESCE(MAX(seq), 0) + 1, '', 'bench', '{\"i\":1}', 0 FROM "
       "st_events "
       "WHERE session_id = $1 AND $2::bigint >= 0"},
      {"+ next seq from the session row", "b",
       "WITH s AS (UPDATE st_sessions SET last_seq = last_seq + 1 WHERE id = $1 AND $2::bigint >= 0 "
       "RETURNING last_seq) INSERT INTO st_events SELECT $1, s.last_seq, '', 'bench', '{\"i\":1}', 0 FROM s"},
      {"+ pg_notify (the store's statement)", "c",
       "WITH s AS (UPDATE st_sessions SET last_seq = last_seq + 1 WHERE id = $1 AND $2::bigint >= 0 "
       "RETURNING last_seq), e AS (INSERT INTO st_events SELECT $1, s.last_seq, '', 'bench', '{\"i\":1}', 0 "
       "FROM s RETURNING seq) SELECT pg_notify('st', $1 || ':' || e.seq) FROM e"},
      {"+ a foreign key (0004 dropped it)", "d",
       "WITH s AS (UPDATE st_sessions SET last_seq = last_seq + 1 WHERE id = $1 AND $2::bigint >= 0 "
       "RETURNING last_seq), e AS (INSERT INTO st_events_fk SELECT $1, s.last_seq, '', 'bench', '{\"i\":1}', "
       "0 FROM s RETURNING seq) SELECT pg_notify('st', $1 || ':' || e.seq) FROM e"},
      {"the store's statement, its tables", store_session.c_str(), store_sql.c_str()},
      {"+ another connection LISTENing", store_session.c_str(), store_sql.c_str(), true},
  };
  int k = 0;
  for (const Step& step : steps) {
    // A listener as every paddock process keeps: its backend is woken for each notification and
    // it reads them on a thread of its own, on the same two cores.
    std::atomic<bool> stop{false};
    std::thread listener;
    if (step.listened) {
      listener = std::thread([&] {
        PGconn* l = PQconnectdb(conninfo.c_str());
        PQclear(PQexec(l, "LISTEN st"));
        while (!stop) {
          pollfd pfd{PQsocket(l), POLLIN, 0};
          if (poll(&pfd, 1, 100) > 0) PQconsumeInput(l);
          while (PGnotify* note = PQnotifies(l)) PQfreemem(note);
        }
        PQfinish(l);
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const std::string name = "st" + std::to_string(k++);
    PQclear(PQprepare(c, name.c_str(), step.sql, 2, nullptr));
    const std::string floor_rows = "floor-" + name;
    auto [base, f] = Alternate(
        n, [&](int i) { floor.Insert(floor_rows, i); },
        [&](int i) {
          std::string v = std::to_string(i);
          const char* values[] = {step.session, v.c_str()};
          PGresult* r = PQexecPrepared(c, name.c_str(), 2, values, nullptr, nullptr, 0);
          const auto st = PQresultStatus(r);
          Check(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK,
                std::string(step.label) + ": " + PQerrorMessage(c));
          PQclear(r);
        });
    std::printf("    %-38s %8.0f/s  p50 %6.1f us   %.2fx the floor's time (floor %.0f/s)\n", step.label,
                f.per_second, f.p50_us, base.per_second / f.per_second, base.per_second);
    stop = true;
    if (listener.joinable()) listener.join();
  }
  PQfinish(c);
}

std::string MakeSession(SessionStore& store) {
  Agent a;
  a.id = "agt_bench_" + UniqueSchema();
  a.name = "bench";
  a.harness = "shell";
  Check(store.CreateAgent(a).ok(), "create agent");
  Session s;
  s.id = "ses_bench_" + UniqueSchema();
  s.agent_id = a.id;
  s.status = SessionStatus::kReady;
  Check(store.CreateSession(s, {}).ok(), "create session");
  return s.id;
}

// One append to a new session of `store` per call.
std::function<void(int)> Appender(SessionStore& store) {
  const std::string session = MakeSession(store);
  return [&store, session](int i) {
    Check(store.AppendEvent(session, NewEvent{"", "bench", "{\"i\":" + std::to_string(i) + "}"}).ok(),
          "append");
  };
}

// Appends `n` events with `append` (spaced a little, as a run's output is) and times each from
// the start of its append to its arrival on an SSE stream of `app`'s HTTP server.
std::vector<double> DeliveryLatency(App& app, const std::string& session, int n,
                                    const std::function<void(int)>& append) {
  ServerSettings settings;
  settings.listen = "127.0.0.1";
  HttpServer server(app, ApiRouter(), settings, 0);
  Check(server.Start().ok(), "http server");
  std::vector<Clock::time_point> sent(n), received(n);
  std::atomic<bool> connected{false};
  std::thread reader([&] {
    int got = 0;
    ReadStream(
        server.port(), "/api/sessions/" + session + "/events/stream", {},
        [&](const std::vector<SseEvent>& ev) {
          connected = true;
          while (got < static_cast<int>(ev.size())) {
            std::int64_t i = std::stoll(JsonField(ev[got].data, "data.i"));
            received[i] = Clock::now();
            ++got;
          }
          return got >= n;
        },
        std::chrono::seconds(120));
  });
  // The first event opens the stream; then measure.
  append(0);
  sent[0] = Clock::now();
  while (!connected) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (int i = 1; i < n; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(1500));
    sent[i] = Clock::now();
    append(i);
  }
  reader.join();
  server.Stop();
  std::vector<double> out;
  for (int i = 1; i < n; ++i) out.push_back(Us(received[i] - sent[i]));
  return out;
}

// A quiet session's append round trip (one every 2 ms) alone, and while two threads flood
// another session's log as fast as they can, through the app's EventService (and so through
// its per-session share of the store's write rate, if it has one).
struct Neighbour {
  std::vector<double> alone, flooded;
  long flood_events = 0;
  double flood_seconds = 0;
};
Neighbour QuietNextToFlood(App& app, int n) {
  const std::string quiet = MakeSession(app.store()), noisy = MakeSession(app.store());
  Neighbour out;
  auto sample = [&](std::vector<double>& into) {
    for (int i = 0; i < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      auto t0 = Clock::now();
      Check(app.events().Append(quiet, "", "bench", "{\"i\":" + std::to_string(i) + "}").ok(),
            "quiet append");
      into.push_back(Us(Clock::now() - t0));
    }
  };
  sample(out.alone);
  std::atomic<bool> stop{false};
  std::atomic<long> flooded{0};
  std::vector<std::thread> flood;
  const std::string chunk = "{\"stream\":\"stdout\",\"text\":\"" + std::string(200, 'x') + "\"}";
  auto start = Clock::now();
  for (int t = 0; t < 2; ++t) {
    flood.emplace_back([&] {
      while (!stop.load()) {
        Check(app.events().Append(noisy, "", "output", chunk).ok(), "flood append");
        flooded.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  sample(out.flooded);
  stop = true;
  for (auto& t : flood) t.join();
  out.flood_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  out.flood_events = flooded.load();
  return out;
}

void ReportNeighbour(const char* label, const Neighbour& n) {
  std::printf(
      "  %-34s alone p50 %6.1f us p99 %7.1f us | neighbour flooding p50 %7.1f us p99 %8.1f us "
      "(%.1fx / %.1fx); the flood got %.0f events/s\n",
      label, Percentile(n.alone, 0.5), Percentile(n.alone, 0.99), Percentile(n.flooded, 0.5),
      Percentile(n.flooded, 0.99), Percentile(n.flooded, 0.5) / Percentile(n.alone, 0.5),
      Percentile(n.flooded, 0.99) / Percentile(n.alone, 0.99),
      static_cast<double>(n.flood_events) / n.flood_seconds);
}

std::unique_ptr<App> StartApp(const std::string& store_toml, const std::string& data_dir) {
  std::string toml = "[server]\nlog_level = \"warn\"\ndata_dir = \"" + data_dir + "\"\nplugin_dir = \"" +
                     PluginDir() + "\"\n[worker]\nenabled = false\n[secrets]\ntype = \"env\"\n" + store_toml +
                     "[sandbox]\ntype = \"process\"\n[[harness]]\ntype = \"shell\"\n";
  Result<Config> config = ParseConfig(toml, "bench");
  Check(config.ok(), config.status().ToString());
  auto redactor = std::make_shared<Redactor>();
  Result<std::unique_ptr<App>> app = App::Create(*config, PluginDir(), redactor);
  Check(app.ok(), app.status().ToString());
  Check((*app)->Start().ok(), "app start");
  return std::move(app).value();
}

void Report(const char* store, const Figures& paddock, const Figures& raw,
            const std::vector<double>& latency) {
  std::printf("%s\n", store);
  std::printf(
      "  append throughput   %8.0f events/s   raw insert %8.0f rows/s   ratio %.2fx the floor's time\n",
      paddock.per_second, raw.per_second, raw.per_second / paddock.per_second);
  std::printf("  append round trip   p50 %7.1f us        raw insert p50 %7.1f us\n", paddock.p50_us,
              raw.p50_us);
  double p50 = Percentile(latency, 0.5), p99 = Percentile(latency, 0.99);
  std::printf("  append->SSE         p50 %7.1f us  p99 %7.1f us   (%.1fx / %.1fx the raw insert p50)\n", p50,
              p99, p50 / raw.p50_us, p99 / raw.p50_us);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  InitLogging(std::make_shared<Redactor>(), "warn");
  TempDir dir;

  // ---- sqlite ----
  Figures sqlite_raw, sqlite_store;
  {
    RawSqlite raw(dir / "raw.db");
    auto store = LoadStore("sqlite", "path = \"throughput.db\"", dir / "sqlite-throughput");
    Check(store.ok(), "sqlite store");
    std::tie(sqlite_raw, sqlite_store) = Alternate(
        n, [&](int i) { raw.Insert(i); }, Appender(**store));
  }
  std::vector<double> sqlite_latency;
  {
    auto app = StartApp("[store]\ntype = \"sqlite\"\n", dir / "sqlite-app");
    const std::string session = MakeSession(app->store());
    sqlite_latency = DeliveryLatency(*app, session, std::min(n, 1000), [&](int i) {
      Check(app->events().Append(session, "", "bench", "{\"i\":" + std::to_string(i) + "}").ok(), "append");
    });
    app->Stop();
  }
  Report("sqlite (in-process append, WAL, synchronous=NORMAL)", sqlite_store, sqlite_raw, sqlite_latency);
  // A quiet session next to a flooding one, without and with the per-session share.
  {
    auto app = StartApp("[store]\ntype = \"sqlite\"\n[sessions]\nappend_rate = 0\nappend_bytes_rate = 0\n",
                        dir / "sqlite-unshared");
    Neighbour nb = QuietNextToFlood(*app, 300);
    app->Stop();
    std::printf("  quiet session's append, one every 2 ms, next to 2 threads flooding another session:\n");
    ReportNeighbour("no share (append_rate = 0)", nb);
  }
  {
    auto app = StartApp("[store]\ntype = \"sqlite\"\n", dir / "sqlite-shared");
    Neighbour nb = QuietNextToFlood(*app, 300);
    app->Stop();
    ReportNeighbour("default share (1000 events/s)", nb);
  }

  // ---- postgres ----
  // This process and the server it starts share one CPU from here: on a small VM a wake-up on
  // the other CPU costs ~100 us (through the hypervisor), several times a round trip's work, and
  // which connection's backend lands where is chance; so unpinned, a ratio measured the
  // scheduler, not the statements.
  {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    Check(sched_getaffinity(0, sizeof allowed, &allowed) == 0, "sched_getaffinity");
    int first = 0;
    while (first < CPU_SETSIZE && !CPU_ISSET(first, &allowed)) ++first;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    Check(sched_setaffinity(0, sizeof one, &one) == 0, "sched_setaffinity");
    std::printf("(postgres rows: this process and the server pinned to CPU %d)\n", first);
  }
  const std::string pg = dir / "pg";
  Check(RunCommand({"bash", SourceDir() + "/scripts/test-postgres.sh", "start", pg}).first == 0,
        "start postgres");
  std::string conninfo;
  std::getline(std::ifstream(pg + "/conninfo"), conninfo);
  RawPostgres pg_floor(conninfo);
  Figures pg_raw, pg_store;
  std::string steps_session;
  {
    auto store =
        LoadStore("postgres", "url = \"" + conninfo + "\"\nschema = \"throughput\"", dir / "pg-throughput");
    Check(store.ok(), store.ok() ? "" : store.status().ToString());
    std::tie(pg_raw, pg_store) = Alternate(
        n, [&](int i) { pg_floor.Insert("store", i); }, Appender(**store));
    steps_session = MakeSession(**store);
  }
  std::vector<double> pg_latency;
  {
    const std::string store_toml =
        "[store]\ntype = \"postgres\"\n[store.config]\nurl = \"" + conninfo + "\"\nschema = \"latency\"\n";
    auto app = StartApp(store_toml, dir / "pg-app");
    auto writer =
        LoadStore("postgres", "url = \"" + conninfo + "\"\nschema = \"latency\"", dir / "pg-writer");
    Check(writer.ok(), "postgres writer");
    const std::string session = MakeSession(**writer);
    pg_latency = DeliveryLatency(*app, session, std::min(n, 1000), [&](int i) {
      Check((*writer)->AppendEvent(session, NewEvent{"", "bench", "{\"i\":" + std::to_string(i) + "}"}).ok(),
            "append");
    });
    writer->reset();
    app->Stop();
  }
  Report("postgres (append from another connection pool, delivered by LISTEN/NOTIFY)", pg_store, pg_raw,
         pg_latency);
  std::printf("  where an append's time goes, step by step on the same server:\n");
  PostgresSteps(conninfo, n, pg_floor, "throughput", steps_session);
  RunCommand({"bash", SourceDir() + "/scripts/test-postgres.sh", "stop", pg});
  return 0;
}
