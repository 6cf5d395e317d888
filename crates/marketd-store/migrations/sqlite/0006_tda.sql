-- Persistent-homology service: uploaded inputs and jobs.

-- An uploaded point cloud or distance matrix, its bytes as received.
CREATE TABLE uploads (
    id          TEXT    PRIMARY KEY,
    format      TEXT    NOT NULL,
    name        TEXT,
    size        INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    points      INTEGER NOT NULL,
    dimension   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    body        BLOB    NOT NULL
);
CREATE INDEX uploads_created ON uploads (created_at, id);

-- A job: its state (published on `jobs` at every change), the request it
-- was submitted with and, once it succeeded, its result (JSON text, dropped
-- when it expires; the row stays so that the result answers 410).
CREATE TABLE tda_jobs (
    id               TEXT    PRIMARY KEY,
    kind             TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    progress         REAL    NOT NULL,
    stage            TEXT    NOT NULL,
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    upload_id        TEXT,
    submitted_at     INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    updated_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    error_code       TEXT,
    error_detail     TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    request          TEXT    NOT NULL,
    request_hash     TEXT    NOT NULL,
    idempotency_key  TEXT    UNIQUE,
    result           TEXT
);
CREATE INDEX tda_jobs_submitted ON tda_jobs (submitted_at, id);
CREATE INDEX tda_jobs_status ON tda_jobs (status, submitted_at);
