-- marketd PostgreSQL schema, version 4: connectors (user-configured REST
-- and WebSocket sources), their status, what they collected and raw frames.

-- A connector's definition. `spec` is the JSON the user gave, secrets
-- removed (they are sealed in `credentials` as `connectors.<id>.secrets`).
CREATE TABLE connectors (
    id            TEXT    COLLATE "C" PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    kind          TEXT    NOT NULL CHECK (kind IN ('rest', 'websocket')),
    spec          TEXT    NOT NULL,
    desired       TEXT    NOT NULL CHECK (desired IN ('running', 'stopped')),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX connectors_created ON connectors (created_at, id);

-- The latest status of each connector (newest `updated_at` wins).
CREATE TABLE connector_status (
    connector_id      TEXT    COLLATE "C" PRIMARY KEY,
    state             TEXT    NOT NULL,
    reconnects        BIGINT  NOT NULL,
    gaps              BIGINT  NOT NULL,
    messages_received BIGINT  NOT NULL,
    ticks             BIGINT  NOT NULL,
    errors            BIGINT  NOT NULL,
    last_message_at   BIGINT,
    last_error        TEXT,
    cooldown_until    BIGINT,
    updated_at        BIGINT  NOT NULL
);

-- What a connector collected: the processed records and the raw response.
CREATE TABLE connector_data (
    seq           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connector_id  TEXT    COLLATE "C" NOT NULL,
    received_at   BIGINT  NOT NULL,
    data          TEXT    NOT NULL,
    raw           TEXT    NOT NULL,
    error         TEXT
);
CREATE INDEX connector_data_by_connector ON connector_data (connector_id, seq);

-- Optional archive of raw feed frames, for replay; pruned by age.
CREATE TABLE raw_messages (
    seq           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connector_id  TEXT    COLLATE "C" NOT NULL,
    received_at   BIGINT  NOT NULL,
    class         TEXT    NOT NULL,
    frame         TEXT    NOT NULL
);
CREATE INDEX raw_messages_by_connector ON raw_messages (connector_id, received_at, seq);
CREATE INDEX raw_messages_by_time ON raw_messages (received_at);
