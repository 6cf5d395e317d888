//! API keys and credentials in SQLite: the statements whose SQL is this
//! dialect's own.

use super::SqliteStore;
use crate::Result;
use crate::access::{AccessSql, INSERTING_KEY, bind_api_key};
use crate::error::conflict;
use marketd_model::ApiKey;

impl AccessSql for SqliteStore {
    const INSERT_KEY: &'static str = "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, revoked_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

    const PUT_CREDENTIAL: &'static str = "INSERT INTO credentials (name, key_id, nonce, ciphertext, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, \
         nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at";

    async fn insert_first_key(&self, key: &ApiKey, hash: &str) -> Result<bool> {
        // One writer connection behind the gate: the check and the insert
        // are one statement, so no second first key can slip in.
        let _gate = self.gate.lock().await;
        let done = bind_api_key(
            sqlx::query(
                "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, revoked_at, expires_at) \
                 SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM api_keys)",
            ),
            key,
            hash,
        )
        .execute(&self.write)
        .await
        .map_err(|e| conflict(e, INSERTING_KEY, "api key"))?;
        Ok(done.rows_affected() > 0)
    }
}
