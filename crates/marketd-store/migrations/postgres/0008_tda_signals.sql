-- Streaming topological signals: one row per (basket, window_end), written
-- by an upsert so a redelivered or recomputed window replaces itself.
CREATE TABLE tda_signals (
    basket        TEXT    COLLATE "C" NOT NULL,
    window_end    BIGINT  NOT NULL,
    window_start  BIGINT  NOT NULL,
    points        BIGINT  NOT NULL,
    h1_bars       BIGINT  NOT NULL,
    landscape_l1  DOUBLE PRECISION NOT NULL,
    landscape_l2  DOUBLE PRECISION NOT NULL,
    entropy       DOUBLE PRECISION NOT NULL,
    wasserstein   DOUBLE PRECISION,
    volatility    DOUBLE PRECISION NOT NULL,
    zscore        DOUBLE PRECISION,
    alarm         BOOLEAN NOT NULL,
    alarm_raised  BOOLEAN NOT NULL,
    emitted_at    BIGINT  NOT NULL,
    PRIMARY KEY (basket, window_end)
);
