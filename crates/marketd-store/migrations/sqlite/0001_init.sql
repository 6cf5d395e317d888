-- marketd SQLite schema, version 1.
--
-- Timestamps are INTEGER nanoseconds since the Unix epoch (UTC).
-- Decimals are written as text into NUMERIC columns, where SQLite turns them
-- into INTEGER or REAL. REAL keeps only ~15 significant digits, so every
-- decimal column has an `<name>_exact` TEXT companion that holds the exact
-- text when the value has more than 15 significant digits (NULL otherwise).
-- Readers use COALESCE(<name>_exact, CAST(<name> AS TEXT)).

CREATE TABLE ticks (
    id            INTEGER PRIMARY KEY,
    symbol        TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    price         NUMERIC NOT NULL,
    price_exact   TEXT,
    size          NUMERIC NOT NULL,
    size_exact    TEXT,
    bid           NUMERIC,
    bid_exact     TEXT,
    ask           NUMERIC,
    ask_exact     TEXT,
    trade_id      TEXT,
    sequence      INTEGER,
    venue_symbol  TEXT,
    ts_event      INTEGER NOT NULL,
    ts_received   INTEGER NOT NULL,
    tick_key      TEXT    NOT NULL
);
-- Idempotency: (source, symbol, tick_key) is unique, tick_key being
-- Tick::identity(): 't:<trade id>' or 'h:<hash of source, symbol, ts_event,
-- price, size>'. Enforced without a hash-ordered index (which made every
-- batch rewrite thousands of scattered index pages):
-- - ticks_source_symbol_ts is unique on (source, symbol, ts_event, tick_key).
--   A hash covers ts_event, so for hashed keys this is exactly uniqueness of
--   (source, symbol, tick_key); for trade ids it is implied by the next
--   index. It doubles as the (source, symbol, ts_event DESC) query index.
-- - ticks_trade_identity: trade ids (mostly increasing per venue) are unique
--   per (source, symbol) whatever their event time.
CREATE UNIQUE INDEX ticks_source_symbol_ts ON ticks (source, symbol, ts_event DESC, tick_key);
CREATE UNIQUE INDEX ticks_trade_identity ON ticks (source, symbol, tick_key) WHERE trade_id IS NOT NULL;
CREATE INDEX ticks_symbol_ts ON ticks (symbol, ts_event DESC);

CREATE TABLE bars (
    source        TEXT    NOT NULL,
    symbol        TEXT    NOT NULL,
    interval      TEXT    NOT NULL,
    start         INTEGER NOT NULL,
    open          NUMERIC NOT NULL,
    open_exact    TEXT,
    high          NUMERIC NOT NULL,
    high_exact    TEXT,
    low           NUMERIC NOT NULL,
    low_exact     TEXT,
    close         NUMERIC NOT NULL,
    close_exact   TEXT,
    volume        NUMERIC NOT NULL,
    volume_exact  TEXT,
    trades        INTEGER NOT NULL,
    first_ts      INTEGER NOT NULL,
    last_ts       INTEGER NOT NULL,
    closed        INTEGER NOT NULL,
    PRIMARY KEY (source, symbol, interval, start)
);
CREATE INDEX bars_symbol_interval_start ON bars (symbol, interval, start DESC);

CREATE TABLE indicators (
    source        TEXT    NOT NULL,
    symbol        TEXT    NOT NULL,
    interval      TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    "window"      INTEGER NOT NULL,
    ts            INTEGER NOT NULL,
    value         REAL    NOT NULL,
    PRIMARY KEY (source, symbol, interval, kind, "window", ts)
);
CREATE INDEX indicators_symbol_series_ts ON indicators (symbol, interval, kind, "window", ts DESC);

CREATE TABLE price_requests (
    id            TEXT    PRIMARY KEY,
    symbol        TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    requested_at  INTEGER NOT NULL,
    outcome       TEXT    NOT NULL,
    latency_us    INTEGER NOT NULL,
    error         TEXT,
    request_id    TEXT
);
CREATE INDEX price_requests_symbol_ts ON price_requests (symbol, requested_at DESC);
CREATE INDEX price_requests_ts ON price_requests (requested_at DESC);

CREATE TABLE polling_jobs (
    id            TEXT    PRIMARY KEY,
    symbol        TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    interval_ms   INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    run_count     INTEGER NOT NULL DEFAULT 0,
    error_count   INTEGER NOT NULL DEFAULT 0,
    last_run_at   INTEGER,
    last_error    TEXT
);
CREATE INDEX polling_jobs_created ON polling_jobs (created_at, id);
