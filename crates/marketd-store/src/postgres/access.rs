//! API keys and credentials in PostgreSQL: the statements whose SQL is this
//! dialect's own.

use super::PostgresStore;
use crate::Result;
use crate::access::{AccessSql, INSERTING_KEY, bind_api_key};
use crate::error::{During, conflict};
use marketd_model::ApiKey;

impl AccessSql for PostgresStore {
    const INSERT_KEY: &'static str = "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, revoked_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

    const PUT_CREDENTIAL: &'static str = "INSERT INTO credentials (name, key_id, nonce, ciphertext, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, \
         nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at";

    async fn insert_first_key(&self, key: &ApiKey, hash: &str) -> Result<bool> {
        // Instances starting together: the table lock makes the emptiness
        // check and the insert one step, so only one of them adds a key.
        let mut tx = self.pool.begin().await.during(INSERTING_KEY)?;
        sqlx::query("LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .during(INSERTING_KEY)?;
        let done = bind_api_key(
            sqlx::query(
                "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, revoked_at, expires_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM api_keys)",
            ),
            key,
            hash,
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, INSERTING_KEY, "api key"))?;
        tx.commit().await.during(INSERTING_KEY)?;
        Ok(done.rows_affected() > 0)
    }
}
