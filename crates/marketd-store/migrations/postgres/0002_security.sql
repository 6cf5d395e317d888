-- marketd PostgreSQL schema, version 2: access control and encrypted credentials.

-- API keys. Only the SHA-256 of a key (64 lowercase hex digits) is stored;
-- the key itself is shown once, when it is created. `prefix` is the first
-- characters of the key, to recognise it in a list.
CREATE TABLE api_keys (
    id            TEXT    COLLATE "C" PRIMARY KEY,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    key_hash      TEXT    COLLATE "C" NOT NULL UNIQUE,
    prefix        TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    revoked_at    BIGINT,
    -- NULL: the key never expires.
    expires_at    BIGINT
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);

-- Upstream credentials (provider API keys, connector secrets), encrypted
-- with an AEAD cipher: `key_id` names the encryption key that sealed the
-- value, `nonce` is random per value, `ciphertext` includes the tag.
CREATE TABLE credentials (
    name          TEXT    COLLATE "C" PRIMARY KEY,
    key_id        TEXT    NOT NULL,
    nonce         BYTEA   NOT NULL,
    ciphertext    BYTEA   NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
