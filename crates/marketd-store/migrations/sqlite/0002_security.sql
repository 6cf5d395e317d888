-- marketd SQLite schema, version 2: access control and encrypted credentials.

-- API keys. Only the SHA-256 of a key (64 lowercase hex digits) is stored;
-- the key itself is shown once, when it is created. `prefix` is the first
-- characters of the key, to recognise it in a list.
CREATE TABLE api_keys (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    key_hash      TEXT    NOT NULL UNIQUE,
    prefix        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    -- NULL: the key never expires.
    expires_at    INTEGER
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);

-- Upstream credentials (provider API keys, connector secrets), encrypted
-- with an AEAD cipher: `key_id` names the encryption key that sealed the
-- value, `nonce` is random per value, `ciphertext` includes the tag.
CREATE TABLE credentials (
    name          TEXT    PRIMARY KEY,
    key_id        TEXT    NOT NULL,
    nonce         BLOB    NOT NULL,
    ciphertext    BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
