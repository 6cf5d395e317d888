-- marketd PostgreSQL schema, version 3: one B-tree per tick.
--
-- Version 1 kept four B-trees per tick (the identity primary key, two query
-- indexes and the content-hash identity); each costs about as much as the
-- heap insert itself, and the hash index inserts at random places. Ingest
-- through Kafka into PostgreSQL is bounded by this per-row work, so ticks
-- now carry one index that is at once
-- - the query path: (symbol, ts_event) ranges, newest first by a backward
--   scan; queries by source filter within the symbol (a symbol has few
--   sources); the `id` tie-break of history cursors is sorted within equal
--   event times;
-- - the idempotency of hashed ticks: Tick::content_hash() covers (source,
--   symbol, ts_event, price, size), so a duplicate has the same
--   (symbol, ts_event, source, tick_key), and uniqueness on that key is
--   uniqueness of the hash per (source, symbol);
-- and it inserts near the right edge of each symbol's range (feeds deliver
-- in event-time order), not at random places.
-- Ticks with a trade id (tick_key NULL: NULLs are distinct here) keep their
-- own identity index, ticks_trade_identity, untouched.
-- `id` stays (identity, ordering by insertion within one event time) without
-- an index of its own: nothing looks a tick up by id.
DROP INDEX ticks_symbol_ts;
DROP INDEX ticks_source_symbol_ts;
DROP INDEX ticks_hash_identity;
ALTER TABLE ticks DROP CONSTRAINT ticks_pkey;
CREATE UNIQUE INDEX ticks_identity ON ticks (symbol, ts_event, source, tick_key);
