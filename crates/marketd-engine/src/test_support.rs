//! What the engine's unit tests share: a migrated SQLite file store in a
//! temporary directory.

use marketd_store::prelude::*;
use marketd_store::{AnyStore, StoreOptions};
use std::sync::Arc;

/// A migrated SQLite database file `t.db` in `dir` (the writer connection
/// and its batching are those of production, unlike `sqlite::memory:`).
pub(crate) async fn sqlite_store(dir: &tempfile::TempDir) -> Arc<AnyStore> {
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = AnyStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}
