//! The store side of each [`super::Table`] sink, and which event variant
//! carries each row type.

use super::Carried;
use futures::future::BoxFuture;
use marketd_model::{Bar, Event, Indicator, PriceRequest, Tick};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, Result};
use std::collections::HashSet;

/// `impl Carried for $row` reading the `Event::$variant` payload.
macro_rules! carried {
    ($($variant:ident => $row:ty),* $(,)?) => {$(
        impl Carried for $row {
            fn of(event: &Event) -> Option<&Self> {
                match event {
                    Event::$variant(row) => Some(row),
                    _ => None,
                }
            }
        }
    )*};
}

carried!(Tick => Tick, Bar => Bar, Indicator => Indicator, PriceRequest => PriceRequest);

/// Inserts ticks (duplicates are ignored by the store), counting both.
pub(super) fn ticks(store: &AnyStore, ticks: Vec<Tick>) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        let inserted = store.insert_ticks(&ticks).await?;
        metrics::counter!("marketd_ticks_stored_total").increment(inserted);
        let dup = ticks.len() as u64 - inserted.min(ticks.len() as u64);
        if dup > 0 {
            metrics::counter!("marketd_ticks_duplicate_total").increment(dup);
        }
        Ok(())
    })
}

/// Upserts bars; later versions of a bar supersede earlier ones in the same
/// batch (some dialects refuse to upsert one key twice in a statement).
pub(super) fn bars(store: &AnyStore, batch: Vec<Bar>) -> BoxFuture<'_, Result<()>> {
    let mut seen = HashSet::new();
    let mut bars: Vec<Bar> = batch
        .into_iter()
        .rev()
        .filter(|b| seen.insert((b.source.clone(), b.symbol.clone(), b.interval, b.start)))
        .collect();
    bars.reverse();
    Box::pin(async move { store.upsert_bars(&bars).await })
}

pub(super) fn indicators(store: &AnyStore, rows: Vec<Indicator>) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move { store.upsert_indicators(&rows).await })
}

pub(super) fn price_requests(
    store: &AnyStore,
    rows: Vec<PriceRequest>,
) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move { store.insert_price_requests(&rows).await })
}
