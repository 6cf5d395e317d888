-- Streaming topological signals: one row per (basket, window_end), written
-- by an upsert so a redelivered or recomputed window replaces itself.
CREATE TABLE tda_signals (
    basket        TEXT    NOT NULL,
    window_end    INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    points        INTEGER NOT NULL,
    h1_bars       INTEGER NOT NULL,
    landscape_l1  REAL    NOT NULL,
    landscape_l2  REAL    NOT NULL,
    entropy       REAL    NOT NULL,
    wasserstein   REAL,
    volatility    REAL    NOT NULL,
    zscore        REAL,
    alarm         INTEGER NOT NULL,
    alarm_raised  INTEGER NOT NULL,
    emitted_at    INTEGER NOT NULL,
    PRIMARY KEY (basket, window_end)
) WITHOUT ROWID;
