-- Session snapshots (archives in chunks) and the agent's idle timeout.
ALTER TABLE agents ADD COLUMN idle_timeout_seconds BIGINT;

CREATE TABLE snapshots (
  session_id TEXT NOT NULL REFERENCES sessions(id),
  version    BIGINT NOT NULL,
  run_id     TEXT NOT NULL DEFAULT '',
  size_bytes BIGINT NOT NULL,
  sha256     TEXT NOT NULL,
  gzip       BOOLEAN NOT NULL DEFAULT FALSE,
  paths      TEXT NOT NULL DEFAULT '',  -- newline-separated
  workspace  BOOLEAN NOT NULL DEFAULT FALSE,
  native     BOOLEAN NOT NULL DEFAULT FALSE,
  omitted    TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  PRIMARY KEY (session_id, version)
);

CREATE TABLE snapshot_chunks (
  session_id TEXT NOT NULL,
  version    BIGINT NOT NULL,
  idx        INTEGER NOT NULL,
  data       BYTEA NOT NULL,
  PRIMARY KEY (session_id, version, idx),
  FOREIGN KEY (session_id, version) REFERENCES snapshots(session_id, version) ON DELETE CASCADE
);
-- Chunks are written once and read whole: no compression or TOAST slicing on top of the archive's own.
ALTER TABLE snapshot_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
