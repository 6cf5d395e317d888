-- marketd PostgreSQL schema, version 1 (same tables and semantics as
-- migrations/sqlite/0001_init.sql).
--
-- Timestamps are BIGINT nanoseconds since the Unix epoch (UTC). Decimals are
-- NUMERIC, which is exact: no `_exact` companions are needed. Integers are
-- BIGINT throughout. Text keys use the "C" collation so orderings (ids,
-- sources) are bytewise, as in SQLite.

-- `id` orders ticks of one event time by insertion, which keeps history
-- cursors (ts_event, id) stable and exact. Ids of ticks skipped as
-- duplicates are consumed and never reused.
CREATE TABLE ticks (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol        TEXT    COLLATE "C" NOT NULL,
    source        TEXT    COLLATE "C" NOT NULL,
    kind          TEXT    NOT NULL,
    price         NUMERIC NOT NULL,
    size          NUMERIC NOT NULL,
    bid           NUMERIC,
    ask           NUMERIC,
    trade_id      TEXT,
    sequence      BIGINT,
    venue_symbol  TEXT,
    ts_event      BIGINT  NOT NULL,
    ts_received   BIGINT  NOT NULL,
    -- Ticks without a trade id: their Tick::content_hash() (the hash of
    -- (source, symbol, ts_event, price, size)). NULL for ticks with one.
    tick_key      BYTEA
);
-- Query paths: (symbol, ts_event DESC) and (source, symbol, ts_event DESC),
-- with id as the tie-break of history cursors.
CREATE INDEX ticks_symbol_ts ON ticks (symbol, ts_event DESC, id DESC);
CREATE INDEX ticks_source_symbol_ts ON ticks (source, symbol, ts_event DESC, id DESC);
-- Idempotency: Tick::identity() is unique per (source, symbol):
-- - hashed ticks ('h:<hash>') on their content hash;
-- - trade ids ('t:<trade id>') whatever their event time.
-- Inserts use ON CONFLICT DO NOTHING (no target), so either index applies.
CREATE UNIQUE INDEX ticks_hash_identity ON ticks (source, symbol, tick_key) WHERE tick_key IS NOT NULL;
CREATE UNIQUE INDEX ticks_trade_identity ON ticks (source, symbol, trade_id) WHERE trade_id IS NOT NULL;

CREATE TABLE bars (
    source        TEXT    COLLATE "C" NOT NULL,
    symbol        TEXT    COLLATE "C" NOT NULL,
    "interval"    TEXT    NOT NULL,
    start         BIGINT  NOT NULL,
    open          NUMERIC NOT NULL,
    high          NUMERIC NOT NULL,
    low           NUMERIC NOT NULL,
    close         NUMERIC NOT NULL,
    volume        NUMERIC NOT NULL,
    trades        BIGINT  NOT NULL,
    first_ts      BIGINT  NOT NULL,
    last_ts       BIGINT  NOT NULL,
    closed        BOOLEAN NOT NULL,
    PRIMARY KEY (source, symbol, "interval", start)
);
CREATE INDEX bars_symbol_interval_start ON bars (symbol, "interval", start DESC);

CREATE TABLE indicators (
    source        TEXT    COLLATE "C" NOT NULL,
    symbol        TEXT    COLLATE "C" NOT NULL,
    "interval"    TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    "window"      BIGINT  NOT NULL,
    ts            BIGINT  NOT NULL,
    value         DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (source, symbol, "interval", kind, "window", ts)
);
CREATE INDEX indicators_symbol_series_ts ON indicators (symbol, "interval", kind, "window", ts DESC);

CREATE TABLE price_requests (
    id            TEXT    COLLATE "C" PRIMARY KEY,
    symbol        TEXT    COLLATE "C" NOT NULL,
    provider      TEXT    NOT NULL,
    requested_at  BIGINT  NOT NULL,
    outcome       TEXT    NOT NULL,
    latency_us    BIGINT  NOT NULL,
    error         TEXT,
    request_id    TEXT
);
CREATE INDEX price_requests_symbol_ts ON price_requests (symbol, requested_at DESC);
CREATE INDEX price_requests_ts ON price_requests (requested_at DESC);

CREATE TABLE polling_jobs (
    id            TEXT    COLLATE "C" PRIMARY KEY,
    symbol        TEXT    COLLATE "C" NOT NULL,
    provider      TEXT    NOT NULL,
    interval_ms   BIGINT  NOT NULL,
    status        TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    run_count     BIGINT  NOT NULL DEFAULT 0,
    error_count   BIGINT  NOT NULL DEFAULT 0,
    last_run_at   BIGINT,
    last_error    TEXT
);
CREATE INDEX polling_jobs_created ON polling_jobs (created_at, id);
