-- Team secrets, sealed by the secrets injector that keeps them (the store never sees a
-- value); which secrets and which sandbox profile an agent gets; the profiles a team may use.
CREATE TABLE team_secrets (
  team_id    TEXT NOT NULL REFERENCES teams(id),
  name       TEXT NOT NULL,
  version    INTEGER NOT NULL,
  key_id     TEXT NOT NULL,
  sealed     TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (team_id, name)
);

ALTER TABLE teams ADD COLUMN profiles TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN profile TEXT NOT NULL DEFAULT 'default';
ALTER TABLE agents ADD COLUMN secrets TEXT NOT NULL DEFAULT '';
