-- Agents, sessions, runs and events.
CREATE TABLE agents (
  id                  TEXT PRIMARY KEY,
  name                TEXT NOT NULL,
  harness             TEXT NOT NULL,
  model               TEXT NOT NULL DEFAULT '',
  prompt              TEXT NOT NULL DEFAULT '',
  run_timeout_seconds INTEGER NOT NULL,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL
);

CREATE TABLE agent_env (
  agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  name     TEXT NOT NULL,
  value    TEXT NOT NULL,
  PRIMARY KEY (agent_id, name)
) WITHOUT ROWID;

CREATE TABLE sessions (
  id            TEXT PRIMARY KEY,
  agent_id      TEXT NOT NULL REFERENCES agents(id),
  status        TEXT NOT NULL,
  status_reason TEXT NOT NULL DEFAULT '',
  sandbox_id    TEXT NOT NULL DEFAULT '',
  last_seq      INTEGER NOT NULL DEFAULT 0,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);
CREATE INDEX sessions_by_agent ON sessions (agent_id, id);
CREATE INDEX sessions_by_status ON sessions (status, id);

-- position gives the arrival order that runs of a session are handed out in.
CREATE TABLE runs (
  position    INTEGER PRIMARY KEY AUTOINCREMENT,
  id          TEXT NOT NULL UNIQUE,
  session_id  TEXT NOT NULL REFERENCES sessions(id),
  status      TEXT NOT NULL,
  content     TEXT NOT NULL,
  exit_code   INTEGER,
  error       TEXT NOT NULL DEFAULT '',
  attempt     INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  started_at  INTEGER NOT NULL DEFAULT 0,
  finished_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_session ON runs (session_id, position);
CREATE INDEX runs_by_status ON runs (status, position);

CREATE TABLE events (
  session_id TEXT NOT NULL REFERENCES sessions(id),
  seq        INTEGER NOT NULL,
  run_id     TEXT NOT NULL DEFAULT '',
  type       TEXT NOT NULL,
  data       TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
