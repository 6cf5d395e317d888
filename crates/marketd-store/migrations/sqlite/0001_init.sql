-- marketd SQLite schema, version 1.
--
-- Timestamps are INTEGER nanoseconds since the Unix epoch (UTC).
-- Decimals are written as text into NUMERIC columns, where SQLite turns them
-- into INTEGER or REAL. REAL keeps only ~15 significant digits, so every
-- decimal column has an `<name>_exact` TEXT companion that holds the exact
-- text when the value has more than 15 significant digits (NULL otherwise).
-- Readers use COALESCE(<name>_exact, CAST(<name> AS TEXT)).

-- Ticks are clustered on (symbol, ts_event, id) (WITHOUT ROWID): the table
-- itself is the (symbol, ts_event) access path (SQLite walks it either way,
-- so it serves ts_event DESC too), and `id` orders ticks of one event time by
-- insertion, which keeps history cursors (ts_event, id) stable and exact.
-- `id` is assigned by the writer from tick_ids (one row), increasing with
-- every batch; ids of ticks skipped as duplicates are never reused.
CREATE TABLE ticks (
    id            INTEGER NOT NULL,
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
    -- Ticks without a trade id: 64 bits of their Tick::identity() hash of
    -- (source, symbol, ts_event, price, size). NULL for ticks with one.
    tick_key      INTEGER,
    PRIMARY KEY (symbol, ts_event, id)
) WITHOUT ROWID;
-- Idempotency: Tick::identity() is unique per (source, symbol):
-- - ticks_source_symbol_ts is unique on (source, symbol, ts_event, tick_key).
--   The hash covers ts_event, so for hashed ticks this is exactly
--   uniqueness of their identity (a 64-bit key only has to tell apart ticks
--   of one source, symbol and nanosecond). It doubles as the
--   (source, symbol, ts_event) query index.
-- - ticks_trade_identity: trade ids (identity 't:<trade id>') are unique per
--   (source, symbol) whatever their event time.
CREATE UNIQUE INDEX ticks_source_symbol_ts ON ticks (source, symbol, ts_event, tick_key);
CREATE UNIQUE INDEX ticks_trade_identity ON ticks (source, symbol, trade_id) WHERE trade_id IS NOT NULL;

CREATE TABLE tick_ids (
    next          INTEGER NOT NULL
);
INSERT INTO tick_ids (next) VALUES (1);

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
