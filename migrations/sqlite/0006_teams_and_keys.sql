-- Teams and API keys. Everything that existed before teams belongs to the team "default".
CREATE TABLE teams (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
INSERT INTO teams (id, name, created_at) VALUES ('default', 'default', CAST(strftime('%s', 'now') AS INTEGER) * 1000);

-- Only the key's SHA-256 is kept; `prefix` is what people recognise it by.
CREATE TABLE api_keys (
  id         TEXT PRIMARY KEY,
  team_id    TEXT NOT NULL REFERENCES teams(id),
  name       TEXT NOT NULL,
  role       TEXT NOT NULL,
  prefix     TEXT NOT NULL,
  hash       TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL DEFAULT 0,
  revoked_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_by_team ON api_keys (team_id, id);

-- SQLite refuses ADD COLUMN ... REFERENCES with a non-NULL default while foreign keys are on;
-- the store checks the team on insert instead.
ALTER TABLE agents ADD COLUMN team_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE sessions ADD COLUMN team_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX agents_by_team ON agents (team_id, id);
CREATE INDEX sessions_by_team ON sessions (team_id, id);
