-- Persistent-homology service: uploaded inputs and jobs.

-- An uploaded point cloud or distance matrix, its bytes as received.
CREATE TABLE uploads (
    id          TEXT    COLLATE "C" PRIMARY KEY,
    format      TEXT    NOT NULL,
    name        TEXT,
    size        BIGINT  NOT NULL,
    sha256      TEXT    NOT NULL,
    points      BIGINT  NOT NULL,
    dimension   BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    body        BYTEA   NOT NULL
);
CREATE INDEX uploads_created ON uploads (created_at, id);

-- A job: its state (published on `jobs` at every change), the request it
-- was submitted with and, once it succeeded, its result (JSON text, dropped
-- when it expires; the row stays so that the result answers 410).
CREATE TABLE tda_jobs (
    id               TEXT    COLLATE "C" PRIMARY KEY,
    kind             TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    progress         DOUBLE PRECISION NOT NULL,
    stage            TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL,
    max_attempts     BIGINT  NOT NULL,
    upload_id        TEXT,
    submitted_at     BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT  NOT NULL,
    expires_at       BIGINT,
    error_code       TEXT,
    error_detail     TEXT,
    cancel_requested BIGINT  NOT NULL DEFAULT 0,
    request          TEXT    NOT NULL,
    request_hash     TEXT    NOT NULL,
    idempotency_key  TEXT    UNIQUE,
    result           TEXT
);
CREATE INDEX tda_jobs_submitted ON tda_jobs (submitted_at, id);
CREATE INDEX tda_jobs_status ON tda_jobs (status, submitted_at);
