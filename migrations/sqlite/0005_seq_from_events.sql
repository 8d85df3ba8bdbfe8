-- A session's last seq is the largest seq of its events (read through the events primary key),
-- not a counter on the session row: an append then writes one row of one table.
ALTER TABLE sessions DROP COLUMN last_seq;
