//! The connector aggregate (tables `connectors`, `connector_status`,
//! `connector_data`, `raw_messages`): the [`ConnectorStore`] trait, written
//! once for every backend. Its statements are built with sqlx's query
//! builder, which writes each dialect's placeholders, and use only SQL both
//! dialects share; what differs (identity columns, JSON and blob types)
//! lives in the migrations.

use crate::Result;
use crate::backend::{Backend, BuilderOf, Dialect, read_all, read_one, write_built};
use crate::error::conflict;
use crate::rows::{Cols, SqlRow, to_i64};
use crate::sql::Filter;
use marketd_model::{
    Connector, ConnectorKind, ConnectorRecord, ConnectorState, ConnectorStatus, Desired,
};
use std::future::Future;
use uuid::Uuid;

/// A collected message to store (its `seq` is given by the store).
#[derive(Debug, Clone, PartialEq)]
pub struct NewConnectorRecord {
    pub connector_id: Uuid,
    pub received_at: i64,
    /// The processed records as JSON text (`null` when none came out).
    pub data: String,
    pub raw: String,
    pub error: Option<String>,
}

/// A raw feed frame kept for replay (`raw_messages`).
#[derive(Debug, Clone, PartialEq)]
pub struct RawMessage {
    pub connector_id: Uuid,
    pub received_at: i64,
    /// `data`, `control` or `rejected`.
    pub class: String,
    pub frame: String,
}

/// Connectors, their latest status, what they collected and their raw frames.
pub trait ConnectorStore: Send + Sync {
    /// Stores a new connector; [`crate::Error::Conflict`] when its name is taken.
    fn insert_connector(&self, c: &Connector) -> impl Future<Output = Result<()>> + Send;
    /// Replaces a connector's name, spec, desired state and `updated_at`;
    /// false when there is none with its id.
    fn update_connector(&self, c: &Connector) -> impl Future<Output = Result<bool>> + Send;
    fn connector(&self, id: Uuid) -> impl Future<Output = Result<Option<Connector>>> + Send;
    /// Every connector, oldest first.
    fn connectors(&self) -> impl Future<Output = Result<Vec<Connector>>> + Send;
    /// Deletes a connector with its status, data and raw frames; false when
    /// there was none.
    fn delete_connector(&self, id: Uuid) -> impl Future<Output = Result<bool>> + Send;

    /// Records a status unless a newer one (by `updated_at`) is stored.
    fn put_connector_status(&self, s: &ConnectorStatus) -> impl Future<Output = Result<()>> + Send;
    fn connector_status(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<ConnectorStatus>>> + Send;

    /// Appends collected messages; the number stored.
    fn insert_connector_records(
        &self,
        xs: &[NewConnectorRecord],
    ) -> impl Future<Output = Result<u64>> + Send;
    /// A connector's records with `seq` above `after`, oldest first.
    fn connector_records(
        &self,
        id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ConnectorRecord>>> + Send;

    /// Appends raw frames to the archive; the number stored.
    fn insert_raw_messages(&self, xs: &[RawMessage]) -> impl Future<Output = Result<u64>> + Send;
    /// A connector's archived frames from `from` (ns) on, oldest first.
    fn raw_messages(
        &self,
        id: Uuid,
        from: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RawMessage>>> + Send;
    /// Deletes a connector's archived frames received before `before` (ns);
    /// the number deleted. Per connector: each keeps its own retention.
    fn prune_raw_messages(&self, id: Uuid, before: i64)
    -> impl Future<Output = Result<u64>> + Send;
}

/// Rows bound per multi-row insert: well under SQLite's parameter limit.
const INSERT_CHUNK: usize = 500;

impl<B: Backend> ConnectorStore for B {
    async fn insert_connector(&self, c: &Connector) -> Result<()> {
        let mut qb = B::Db::builder(
            "INSERT INTO connectors (id, name, kind, spec, desired, created_at, updated_at) VALUES (",
        );
        qb.owned(c.id.to_string())
            .sql(", ")
            .text(&c.name)
            .sql(", ")
            .text(c.kind.as_str())
            .sql(", ")
            .owned(c.spec.to_string())
            .sql(", ")
            .text(c.desired.as_str())
            .sql(", ")
            .int(c.created_at)
            .sql(", ")
            .int(c.updated_at)
            .sql(")");
        let _turn = self.write_turn().await;
        B::Db::run(self.writer(), &mut qb)
            .await
            .map_err(|e| conflict(e, "inserting a connector", &c.name))?;
        Ok(())
    }

    async fn update_connector(&self, c: &Connector) -> Result<bool> {
        let mut qb = B::Db::builder("UPDATE connectors SET name = ");
        qb.text(&c.name)
            .sql(", spec = ")
            .owned(c.spec.to_string())
            .sql(", desired = ")
            .text(c.desired.as_str())
            .sql(", updated_at = ")
            .int(c.updated_at)
            .sql(" WHERE id = ")
            .owned(c.id.to_string());
        let _turn = self.write_turn().await;
        let changed = B::Db::run(self.writer(), &mut qb)
            .await
            .map_err(|e| conflict(e, "updating a connector", &c.name))?;
        Ok(changed > 0)
    }

    async fn connector(&self, id: Uuid) -> Result<Option<Connector>> {
        let mut qb = B::Db::builder(CONNECTOR_SELECT);
        qb.sql(" WHERE id = ").owned(id.to_string());
        read_one(self, &mut qb, "reading a connector", connector_from_row).await
    }

    async fn connectors(&self) -> Result<Vec<Connector>> {
        let mut qb = B::Db::builder(CONNECTOR_SELECT);
        qb.sql(" ORDER BY created_at, id");
        read_all(self, &mut qb, "listing connectors", |r, _| {
            connector_from_row(r)
        })
        .await
    }

    async fn delete_connector(&self, id: Uuid) -> Result<bool> {
        // Children first: neither dialect is asked to cascade.
        for table in ["raw_messages", "connector_data", "connector_status"] {
            let mut qb = B::Db::builder(&format!("DELETE FROM {table} WHERE connector_id = "));
            qb.owned(id.to_string());
            write_built(self, &mut qb, "deleting a connector's rows").await?;
        }
        let mut qb = B::Db::builder("DELETE FROM connectors WHERE id = ");
        qb.owned(id.to_string());
        write_built(self, &mut qb, "deleting a connector").await
    }

    async fn put_connector_status(&self, s: &ConnectorStatus) -> Result<()> {
        let mut qb = B::Db::builder(
            "INSERT INTO connector_status (connector_id, state, reconnects, gaps, backfilled, \
             messages_received, ticks, errors, last_message_at, last_error, cooldown_until, \
             updated_at) VALUES (",
        );
        qb.owned(s.connector_id.to_string())
            .sql(", ")
            .text(s.state.as_str())
            .sql(", ")
            .int(to_i64(s.reconnects))
            .sql(", ")
            .int(to_i64(s.gaps))
            .sql(", ")
            .int(to_i64(s.backfilled))
            .sql(", ")
            .int(to_i64(s.messages_received))
            .sql(", ")
            .int(to_i64(s.ticks))
            .sql(", ")
            .int(to_i64(s.errors))
            .sql(", ")
            .opt_int(s.last_message_at)
            .sql(", ")
            .opt_text(s.last_error.as_deref())
            .sql(", ")
            .opt_int(s.cooldown_until)
            .sql(", ")
            .int(s.updated_at)
            .sql(
                ") ON CONFLICT (connector_id) DO UPDATE SET state = excluded.state, \
                 reconnects = excluded.reconnects, gaps = excluded.gaps, \
                 backfilled = excluded.backfilled, \
                 messages_received = excluded.messages_received, ticks = excluded.ticks, \
                 errors = excluded.errors, last_message_at = excluded.last_message_at, \
                 last_error = excluded.last_error, cooldown_until = excluded.cooldown_until, \
                 updated_at = excluded.updated_at \
                 WHERE excluded.updated_at >= connector_status.updated_at",
            );
        write_built(self, &mut qb, "recording a connector status").await?;
        Ok(())
    }

    async fn connector_status(&self, id: Uuid) -> Result<Option<ConnectorStatus>> {
        let mut qb = B::Db::builder(STATUS_SELECT);
        qb.sql(" WHERE connector_id = ").owned(id.to_string());
        read_one(self, &mut qb, "reading a connector status", status_from_row).await
    }

    async fn insert_connector_records(&self, xs: &[NewConnectorRecord]) -> Result<u64> {
        let head =
            "INSERT INTO connector_data (connector_id, received_at, data, raw, error) VALUES ";
        insert_rows(self, head, xs, "storing connector records", |qb, x| {
            qb.owned(x.connector_id.to_string())
                .sql(", ")
                .int(x.received_at)
                .sql(", ")
                .text(&x.data)
                .sql(", ")
                .text(&x.raw)
                .sql(", ")
                .opt_text(x.error.as_deref());
        })
        .await
    }

    async fn connector_records(
        &self,
        id: Uuid,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ConnectorRecord>> {
        let mut qb = B::Db::builder(RECORD_SELECT);
        qb.sql(" WHERE connector_id = ").owned(id.to_string());
        if let Some(after) = after {
            qb.sql(" AND seq > ").int(after);
        }
        qb.sql(" ORDER BY seq LIMIT ").int(i64::from(limit));
        read_all(self, &mut qb, "reading connector records", |r, _| {
            record_from_row(r)
        })
        .await
    }

    async fn insert_raw_messages(&self, xs: &[RawMessage]) -> Result<u64> {
        let head = "INSERT INTO raw_messages (connector_id, received_at, class, frame) VALUES ";
        insert_rows(self, head, xs, "archiving raw frames", |qb, x| {
            qb.owned(x.connector_id.to_string())
                .sql(", ")
                .int(x.received_at)
                .sql(", ")
                .text(&x.class)
                .sql(", ")
                .text(&x.frame);
        })
        .await
    }

    async fn raw_messages(&self, id: Uuid, from: i64, limit: u32) -> Result<Vec<RawMessage>> {
        let mut qb = B::Db::builder(
            "SELECT connector_id, received_at, class, frame FROM raw_messages WHERE connector_id = ",
        );
        qb.owned(id.to_string())
            .sql(" AND received_at >= ")
            .int(from)
            .sql(" ORDER BY received_at, seq LIMIT ")
            .int(i64::from(limit));
        read_all(self, &mut qb, "reading raw frames", |r, _| {
            let c = Cols::new(r, "raw_messages");
            Ok(RawMessage {
                connector_id: c.uuid(0)?,
                received_at: c.int(1)?,
                class: c.string(2)?,
                frame: c.string(3)?,
            })
        })
        .await
    }

    async fn prune_raw_messages(&self, id: Uuid, before: i64) -> Result<u64> {
        let mut qb = B::Db::builder("DELETE FROM raw_messages WHERE connector_id = ");
        qb.owned(id.to_string())
            .sql(" AND received_at < ")
            .int(before);
        let _turn = self.write_turn().await;
        B::Db::run(self.writer(), &mut qb)
            .await
            .map_err(crate::error::failed("pruning raw frames"))
    }
}

/// Inserts `xs` with multi-row `INSERT`s of [`INSERT_CHUNK`] rows, `bind`
/// writing one row's values; the number of rows stored.
async fn insert_rows<'x, B: Backend, T>(
    b: &B,
    head: &str,
    xs: &'x [T],
    op: &'static str,
    bind: impl Fn(&mut BuilderOf<'x, B>, &'x T),
) -> Result<u64> {
    let mut stored = 0;
    for chunk in xs.chunks(INSERT_CHUNK) {
        let mut qb = B::Db::builder(head);
        for (i, x) in chunk.iter().enumerate() {
            qb.sql(if i == 0 { "(" } else { ", (" });
            bind(&mut qb, x);
            qb.sql(")");
        }
        let _turn = b.write_turn().await;
        stored += B::Db::run(b.writer(), &mut qb)
            .await
            .map_err(crate::error::failed(op))?;
    }
    Ok(stored)
}

/// The columns every backend reads, in [`connector_from_row`]'s order.
const CONNECTOR_SELECT: &str =
    "SELECT id, name, kind, spec, desired, created_at, updated_at FROM connectors";

fn connector_from_row<R: SqlRow>(row: &R) -> Result<Connector> {
    let c = Cols::new(row, "connectors");
    Ok(Connector {
        id: c.uuid(0)?,
        name: c.string(1)?,
        kind: c.case(2, "kind", ConnectorKind::parse)?,
        spec: c.parse(3, "spec", |s| serde_json::from_str::<serde_json::Value>(s))?,
        desired: c.case(4, "desired", Desired::parse)?,
        created_at: c.int(5)?,
        updated_at: c.int(6)?,
    })
}

const STATUS_SELECT: &str = "SELECT connector_id, state, reconnects, gaps, messages_received, ticks, errors, \
     last_message_at, last_error, cooldown_until, updated_at, backfilled FROM connector_status";

fn status_from_row<R: SqlRow>(row: &R) -> Result<ConnectorStatus> {
    let c = Cols::new(row, "connector_status");
    Ok(ConnectorStatus {
        connector_id: c.uuid(0)?,
        state: c.case(1, "state", ConnectorState::parse)?,
        reconnects: c.count(2)?,
        gaps: c.count(3)?,
        messages_received: c.count(4)?,
        ticks: c.count(5)?,
        errors: c.count(6)?,
        last_message_at: c.opt_int(7)?,
        last_error: c.opt_string(8)?,
        cooldown_until: c.opt_int(9)?,
        updated_at: c.int(10)?,
        backfilled: c.count(11)?,
    })
}

const RECORD_SELECT: &str =
    "SELECT seq, connector_id, received_at, data, raw, error FROM connector_data";

fn record_from_row<R: SqlRow>(row: &R) -> Result<ConnectorRecord> {
    let c = Cols::new(row, "connector_data");
    Ok(ConnectorRecord {
        seq: c.int(0)?,
        connector_id: c.uuid(1)?,
        received_at: c.int(2)?,
        data: c.parse(3, "data", |s| serde_json::from_str::<serde_json::Value>(s))?,
        raw: c.string(4)?,
        error: c.opt_string(5)?,
    })
}
