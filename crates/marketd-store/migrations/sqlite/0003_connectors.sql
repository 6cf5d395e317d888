-- marketd SQLite schema, version 3: connectors (user-configured REST and
-- WebSocket sources), their status, what they collected and raw frames.

-- A connector's definition. `spec` is the JSON the user gave, secrets
-- removed (they are sealed in `credentials` as `connectors.<id>.secrets`).
CREATE TABLE connectors (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    kind          TEXT    NOT NULL CHECK (kind IN ('rest', 'websocket')),
    spec          TEXT    NOT NULL,
    desired       TEXT    NOT NULL CHECK (desired IN ('running', 'stopped')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX connectors_created ON connectors (created_at, id);

-- The latest status of each connector (newest `updated_at` wins).
CREATE TABLE connector_status (
    connector_id      TEXT    PRIMARY KEY,
    state             TEXT    NOT NULL,
    reconnects        INTEGER NOT NULL,
    gaps              INTEGER NOT NULL,
    messages_received INTEGER NOT NULL,
    ticks             INTEGER NOT NULL,
    errors            INTEGER NOT NULL,
    last_message_at   INTEGER,
    last_error        TEXT,
    cooldown_until    INTEGER,
    updated_at        INTEGER NOT NULL
);

-- What a connector collected: the processed records and the raw response.
CREATE TABLE connector_data (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    connector_id  TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    data          TEXT    NOT NULL,
    raw           TEXT    NOT NULL,
    error         TEXT
);
CREATE INDEX connector_data_by_connector ON connector_data (connector_id, seq);

-- Optional archive of raw feed frames, for replay; pruned by age.
CREATE TABLE raw_messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    connector_id  TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    class         TEXT    NOT NULL,
    frame         TEXT    NOT NULL
);
CREATE INDEX raw_messages_by_connector ON raw_messages (connector_id, received_at, seq);
CREATE INDEX raw_messages_by_time ON raw_messages (received_at);
