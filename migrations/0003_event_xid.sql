-- GET /v1/events delivers events in the order their transactions became safe to read, not in id order: ids come
-- from a sequence, taken before commit, so a transaction holding a smaller id may commit after one holding a
-- larger id, and a reader that resumed by id alone could pass the smaller one before it commits and never see it.
--
-- Each event records the id of the transaction that wrote it (pg_current_xact_id(): the write that caused the
-- event has already taken it). A reader hands out only events whose transaction is older than the oldest
-- transaction still running (pg_snapshot_xmin), in (xid, id) order: every event that commits later belongs to a
-- transaction at or past that horizon, so it sorts after everything already handed out. server/api/events.c has
-- the whole argument.
--
-- (xid, id) becomes the primary key instead of id alone, so an event insert (in the heartbeat's transaction, for
-- a transition) still maintains two indexes, not three; ids stay unique, as the sequence hands each out once, and
-- nothing looks an event up by its id alone (an assignment's events are read through (assignment_id, id)).
--
-- Rows written before this migration keep xid 0: they are all committed and come first, in id order.
ALTER TABLE assignment_events ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE assignment_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
ALTER TABLE assignment_events DROP CONSTRAINT assignment_events_pkey, ADD PRIMARY KEY (xid, id);

ALTER TABLE rollout_events ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE rollout_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
ALTER TABLE rollout_events DROP CONSTRAINT rollout_events_pkey, ADD PRIMARY KEY (xid, id);
