-- Session snapshots (archives in chunks) and the agent's idle timeout.
ALTER TABLE agents ADD COLUMN idle_timeout_seconds INTEGER;

CREATE TABLE snapshots (
  session_id TEXT NOT NULL REFERENCES sessions(id),
  version    INTEGER NOT NULL,
  run_id     TEXT NOT NULL DEFAULT '',
  size_bytes INTEGER NOT NULL,
  sha256     TEXT NOT NULL,
  gzip       INTEGER NOT NULL DEFAULT 0,
  paths      TEXT NOT NULL DEFAULT '',  -- newline-separated
  workspace  INTEGER NOT NULL DEFAULT 0,
  native     INTEGER NOT NULL DEFAULT 0,
  omitted    TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  PRIMARY KEY (session_id, version)
) WITHOUT ROWID;

CREATE TABLE snapshot_chunks (
  session_id TEXT NOT NULL,
  version    INTEGER NOT NULL,
  idx        INTEGER NOT NULL,
  data       BLOB NOT NULL,
  PRIMARY KEY (session_id, version, idx),
  FOREIGN KEY (session_id, version) REFERENCES snapshots(session_id, version) ON DELETE CASCADE
);
