-- Agents, sessions, leased runs, events and Idempotency-Keys. Times are milliseconds since the
-- epoch; lease times come from the database's clock, so workers on other hosts agree on them.
CREATE TABLE agents (
  id                  TEXT PRIMARY KEY,
  name                TEXT NOT NULL,
  harness             TEXT NOT NULL,
  model               TEXT NOT NULL DEFAULT '',
  prompt              TEXT NOT NULL DEFAULT '',
  run_timeout_seconds BIGINT NOT NULL,
  created_at          BIGINT NOT NULL,
  updated_at          BIGINT NOT NULL
);

CREATE TABLE agent_env (
  agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  name     TEXT NOT NULL,
  value    TEXT NOT NULL,
  PRIMARY KEY (agent_id, name)
);

CREATE TABLE sessions (
  id            TEXT PRIMARY KEY,
  agent_id      TEXT NOT NULL REFERENCES agents(id),
  status        TEXT NOT NULL,
  status_reason TEXT NOT NULL DEFAULT '',
  sandbox_id    TEXT NOT NULL DEFAULT '',
  last_seq      BIGINT NOT NULL DEFAULT 0,
  created_at    BIGINT NOT NULL,
  updated_at    BIGINT NOT NULL
);
CREATE INDEX sessions_by_agent ON sessions (agent_id, id);
CREATE INDEX sessions_by_status ON sessions (status, id);

-- position gives the arrival order that runs of a session are handed out in.
CREATE TABLE runs (
  position         BIGSERIAL PRIMARY KEY,
  id               TEXT NOT NULL UNIQUE,
  session_id       TEXT NOT NULL REFERENCES sessions(id),
  status           TEXT NOT NULL,
  content          TEXT NOT NULL,
  exit_code        INTEGER,
  error            TEXT NOT NULL DEFAULT '',
  attempt          INTEGER NOT NULL DEFAULT 0,
  created_at       BIGINT NOT NULL,
  started_at       BIGINT NOT NULL DEFAULT 0,
  finished_at      BIGINT NOT NULL DEFAULT 0,
  generation       BIGINT NOT NULL DEFAULT 0,
  lease_owner      TEXT NOT NULL DEFAULT '',
  lease_expires_at BIGINT NOT NULL DEFAULT 0,
  cancel_requested BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX runs_by_session ON runs (session_id, position);
CREATE INDEX runs_queued ON runs (position) WHERE status = 'queued';
CREATE INDEX runs_by_lease ON runs (lease_expires_at) WHERE status = 'running';
-- The last word on "one run per session at a time", whatever the number of workers.
CREATE UNIQUE INDEX runs_one_running_per_session ON runs (session_id) WHERE status = 'running';

CREATE TABLE events (
  session_id TEXT NOT NULL REFERENCES sessions(id),
  seq        BIGINT NOT NULL,
  run_id     TEXT NOT NULL DEFAULT '',
  type       TEXT NOT NULL,
  data       TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (session_id, seq)
);

CREATE TABLE idempotency_keys (
  scope        TEXT NOT NULL,
  key          TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  resource_id  TEXT NOT NULL,
  created_at   BIGINT NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
