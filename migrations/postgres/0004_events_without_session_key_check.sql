-- An event is written only by the append statement, which inserts it only when its UPDATE of
-- the session's row (the next seq) found that row, and holds that row's lock until it commits;
-- a purge locks the row, deletes the events, then the session. So the foreign key on
-- events.session_id checked again what the append already knows, on every append (about a
-- fifth of its time in bench/store_bench); it goes.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_session_id_fkey;
