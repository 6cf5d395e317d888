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

-- The tables keep event times as BIGINT nanoseconds since the Unix epoch:
-- exchange feeds stamp nanoseconds and `timestamptz` holds microseconds, and
-- integer keys are the cheapest to index. For people querying with SQL (psql,
-- Grafana's PostgreSQL data source) these views add the same times as
-- `timestamptz` (truncated to the microsecond, computed in integers so no
-- float rounding enters); filter on the BIGINT columns to use the indexes.
CREATE FUNCTION marketd_ns_to_timestamptz(ns BIGINT) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT timestamptz 'epoch' + (ns / 1000) * interval '1 microsecond' $$;

CREATE VIEW ticks_at AS
    SELECT t.*, marketd_ns_to_timestamptz(ts_event) AS event_time,
           marketd_ns_to_timestamptz(ts_received) AS received_time
    FROM ticks t;

CREATE VIEW bars_at AS
    SELECT b.*, marketd_ns_to_timestamptz(start) AS start_time,
           marketd_ns_to_timestamptz(first_ts) AS first_time,
           marketd_ns_to_timestamptz(last_ts) AS last_time
    FROM bars b;

CREATE VIEW indicators_at AS
    SELECT i.*, marketd_ns_to_timestamptz(ts) AS time
    FROM indicators i;
