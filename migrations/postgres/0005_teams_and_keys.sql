-- Teams and API keys. Everything that existed before teams belongs to the team "default".
CREATE TABLE teams (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
INSERT INTO teams (id, name, created_at)
  VALUES ('default', 'default', (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT);

-- Only the key's SHA-256 is kept; `prefix` is what people recognise it by.
CREATE TABLE api_keys (
  id         TEXT PRIMARY KEY,
  team_id    TEXT NOT NULL REFERENCES teams(id),
  name       TEXT NOT NULL,
  role       TEXT NOT NULL,
  prefix     TEXT NOT NULL,
  hash       TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL DEFAULT 0,
  revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_by_team ON api_keys (team_id, id);

ALTER TABLE agents ADD COLUMN team_id TEXT NOT NULL DEFAULT 'default' REFERENCES teams(id);
ALTER TABLE sessions ADD COLUMN team_id TEXT NOT NULL DEFAULT 'default' REFERENCES teams(id);
CREATE INDEX agents_by_team ON agents (team_id, id);
CREATE INDEX sessions_by_team ON sessions (team_id, id);
