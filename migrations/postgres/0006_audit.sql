-- The audit log: append-only (the store has no statement that changes a row; retention deletes
-- whole rows older than [auth] audit_retention).
CREATE TABLE audit_events (
  id         BIGSERIAL PRIMARY KEY,
  at         BIGINT NOT NULL,
  team_id    TEXT NOT NULL DEFAULT '',
  key_id     TEXT NOT NULL DEFAULT '',
  source     TEXT NOT NULL DEFAULT '',
  request_id TEXT NOT NULL DEFAULT '',
  action     TEXT NOT NULL,
  resource   TEXT NOT NULL DEFAULT '',
  status     INTEGER NOT NULL DEFAULT 0,
  outcome    TEXT NOT NULL,
  detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_team ON audit_events (team_id, id);
CREATE INDEX audit_by_time ON audit_events (at);
