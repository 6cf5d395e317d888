//! The access aggregate (tables `api_keys` and `credentials`): the
//! [`AccessStore`] trait, implemented once for every backend that supplies
//! its dialect's statements ([`AccessSql`]).

use crate::Result;
use crate::backend::{Backend, Dialect, RowOf, read_all, read_one, write_built, write_stmt};
use crate::error::{conflict, failed};
use crate::rows::{Cols, SqlRow};
use crate::sql::{Binds, Filter};
use marketd_model::{ApiKey, Role, SealedSecret, StoredCredential};
use std::future::Future;
use uuid::Uuid;

/// API keys (stored by hash) and sealed upstream credentials.
pub trait AccessStore: Send + Sync {
    /// Stores a new API key with the SHA-256 hash (hex) of its text. A
    /// duplicate id or hash is [`crate::Error::Conflict`].
    fn insert_api_key(&self, key: &ApiKey, hash: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stores `key` only when no API key was ever stored (atomically), for the
    /// bootstrap admin key of a first start. True when it was stored.
    fn insert_first_api_key(
        &self,
        key: &ApiKey,
        hash: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// The key whose text hashes to `hash`, revoked or not.
    fn api_key_by_hash(&self, hash: &str) -> impl Future<Output = Result<Option<ApiKey>>> + Send;
    /// Every key (revoked ones too), oldest first.
    fn api_keys(&self) -> impl Future<Output = Result<Vec<ApiKey>>> + Send;
    /// Revokes the key at `at` (ns); false when no active key had that id.
    fn revoke_api_key(&self, id: Uuid, at: i64) -> impl Future<Output = Result<bool>> + Send;

    /// Inserts or replaces a sealed credential by name (`created_at` of an
    /// existing one is kept).
    fn put_credential(&self, c: &StoredCredential) -> impl Future<Output = Result<()>> + Send;
    fn credential(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<StoredCredential>>> + Send;
    /// Every credential, by name.
    fn credentials(&self) -> impl Future<Output = Result<Vec<StoredCredential>>> + Send;
    /// False when there was none of that name.
    fn delete_credential(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;
}

/// The statements of [`AccessStore`] whose SQL differs between dialects.
pub(crate) trait AccessSql: Backend {
    /// Inserts an API key, binding [`bind_api_key`]'s columns.
    const INSERT_KEY: &'static str;
    /// Inserts or replaces a credential, binding [`bind_credential`]'s
    /// columns; `created_at` of an existing one is kept.
    const PUT_CREDENTIAL: &'static str;
    /// [`AccessStore::insert_first_api_key`]: the check and the insert must
    /// be one step, which each dialect achieves its own way.
    fn insert_first_key(
        &self,
        key: &ApiKey,
        hash: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
}

/// What a failed API key insert was doing.
pub(crate) const INSERTING_KEY: &str = "inserting an API key";

impl<B: AccessSql> AccessStore for B {
    async fn insert_api_key(&self, key: &ApiKey, hash: &str) -> Result<()> {
        let q = bind_api_key(B::Db::stmt(B::INSERT_KEY), key, hash);
        write_stmt(self, q, |e| conflict(e, INSERTING_KEY, "api key")).await?;
        Ok(())
    }

    async fn insert_first_api_key(&self, key: &ApiKey, hash: &str) -> Result<bool> {
        self.insert_first_key(key, hash).await
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let mut qb = B::Db::builder(API_KEY_SELECT);
        qb.sql(" WHERE key_hash = ").text(hash);
        read_one(self, &mut qb, "looking up an API key", api_key_from_row).await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let mut qb = B::Db::builder(&format!("{API_KEY_SELECT} ORDER BY created_at, id"));
        read_all(self, &mut qb, "listing API keys", |r, _| {
            api_key_from_row(r)
        })
        .await
    }

    async fn revoke_api_key(&self, id: Uuid, at: i64) -> Result<bool> {
        let mut qb = B::Db::builder("UPDATE api_keys SET revoked_at = ");
        qb.int(at).sql(" WHERE id = ").owned(id.to_string());
        qb.sql(" AND revoked_at IS NULL");
        write_built(self, &mut qb, "revoking an API key").await
    }

    async fn put_credential(&self, c: &StoredCredential) -> Result<()> {
        let q = bind_credential(B::Db::stmt(B::PUT_CREDENTIAL), c);
        write_stmt(self, q, failed("storing a credential")).await?;
        Ok(())
    }

    async fn credential(&self, name: &str) -> Result<Option<StoredCredential>> {
        let mut qb = B::Db::builder(CREDENTIAL_SELECT);
        qb.sql(" WHERE name = ").text(name);
        read_one(self, &mut qb, "reading a credential", credential_from_row).await
    }

    async fn credentials(&self) -> Result<Vec<StoredCredential>> {
        let sql = format!("{CREDENTIAL_SELECT} ORDER BY name");
        let decode = |r: &RowOf<B>, _: &mut _| credential_from_row(r);
        read_all(
            self,
            &mut B::Db::builder(&sql),
            "listing credentials",
            decode,
        )
        .await
    }

    async fn delete_credential(&self, name: &str) -> Result<bool> {
        let mut qb = B::Db::builder("DELETE FROM credentials WHERE name = ");
        qb.text(name);
        write_built(self, &mut qb, "deleting a credential").await
    }
}

/// The columns every backend reads, in [`api_key_from_row`]'s order.
const API_KEY_SELECT: &str =
    "SELECT id, name, role, prefix, created_at, revoked_at, expires_at FROM api_keys";

fn api_key_from_row<R: SqlRow>(row: &R) -> Result<ApiKey> {
    let c = Cols::new(row, "api_keys");
    Ok(ApiKey {
        role: c.case(2, "role", Role::parse)?,
        id: c.uuid(0)?,
        name: c.string(1)?,
        prefix: c.string(3)?,
        created_at: c.int(4)?,
        revoked_at: c.opt_int(5)?,
        expires_at: c.opt_int(6)?,
    })
}

pub(crate) fn bind_api_key<'q, Q: Binds<'q>>(q: Q, key: &'q ApiKey, hash: &'q str) -> Q {
    q.owned(key.id.to_string())
        .text(&key.name)
        .text(key.role.as_str())
        .text(hash)
        .text(&key.prefix)
        .int(key.created_at)
        .opt_int(key.revoked_at)
        .opt_int(key.expires_at)
}

/// The columns every backend reads, in [`credential_from_row`]'s order.
const CREDENTIAL_SELECT: &str =
    "SELECT name, key_id, nonce, ciphertext, created_at, updated_at FROM credentials";

fn credential_from_row<R: SqlRow>(row: &R) -> Result<StoredCredential> {
    let c = Cols::new(row, "credentials");
    Ok(StoredCredential {
        name: c.string(0)?,
        sealed: SealedSecret {
            key_id: c.string(1)?,
            nonce: c.bytes(2)?,
            ciphertext: c.bytes(3)?,
        },
        created_at: c.int(4)?,
        updated_at: c.int(5)?,
    })
}

/// Binds `c` in the order of both dialects' credential upserts (name,
/// key_id, nonce, ciphertext, created_at, updated_at).
fn bind_credential<'q, Q: Binds<'q>>(q: Q, c: &'q StoredCredential) -> Q {
    q.text(&c.name)
        .text(&c.sealed.key_id)
        .blob(&c.sealed.nonce)
        .blob(&c.sealed.ciphertext)
        .int(c.created_at)
        .int(c.updated_at)
}
