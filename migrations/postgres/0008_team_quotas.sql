-- Team quotas ("name=value" pairs, the unset ones left out: the install's defaults apply); the
-- index that finds a team's runs of the last minute; and what each team's runs spent per UTC
-- day (the day a run was sent), kept by RecordRunUsage so a quota check reads one row instead
-- of summing the day's runs. A purged session's spend stays spent.
ALTER TABLE teams ADD COLUMN quotas TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_by_created ON runs (created_at);
CREATE TABLE team_days (
  team_id       TEXT NOT NULL,
  day           BIGINT NOT NULL,
  tokens        BIGINT NOT NULL DEFAULT 0,
  cost_microusd BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (team_id, day)
);
INSERT INTO team_days (team_id, day, tokens, cost_microusd)
  SELECT s.team_id, r.created_at - r.created_at % 86400000, SUM(r.input_tokens + r.output_tokens),
         COALESCE(SUM(r.cost_microusd), 0)
  FROM runs r JOIN sessions s ON s.id = r.session_id
  GROUP BY s.team_id, r.created_at - r.created_at % 86400000;
