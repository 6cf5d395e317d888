//! The streaming-signal aggregate (table `tda_signals`): the
//! [`SignalStore`] trait, written once here for every backend that supplies
//! its dialect's upsert ([`SignalSql`]).

use crate::Result;
use crate::backend::{Backend, Dialect, read_all, write_stmt};
use crate::error::failed;
use crate::rows::{Cols, SqlRow};
use crate::sql::{Binds, Filter, ascending};
use marketd_model::TdaSignal;
use std::future::Future;

/// Filters of `GET /tda/signals`: one basket's windows by `window_end` in
/// `[from, to)`. Without `from` the newest `limit` windows are returned;
/// the result is ascending by window end.
#[derive(Debug, Clone)]
pub struct SignalQuery {
    pub basket: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: u32,
}

/// Signals of the streaming baskets, one per (basket, window_end).
pub trait SignalStore: Send + Sync {
    /// Inserts the signal or replaces the one stored for its (basket,
    /// window_end): a recomputed window never makes a second row.
    fn upsert_tda_signal(&self, s: &TdaSignal) -> impl Future<Output = Result<()>> + Send;
    fn tda_signals(&self, q: &SignalQuery) -> impl Future<Output = Result<Vec<TdaSignal>>> + Send;
}

/// The statement of [`SignalStore`] whose SQL differs between dialects.
pub(crate) trait SignalSql: Backend {
    /// Upsert on (basket, window_end), binding [`bind_signal`]'s columns.
    const UPSERT_SIGNAL: &'static str;
}

impl<B: SignalSql> SignalStore for B {
    async fn upsert_tda_signal(&self, s: &TdaSignal) -> Result<()> {
        let q = bind_signal(B::Db::stmt(B::UPSERT_SIGNAL), s);
        write_stmt(self, q, failed("upserting a tda signal")).await?;
        Ok(())
    }

    async fn tda_signals(&self, q: &SignalQuery) -> Result<Vec<TdaSignal>> {
        let mut qb = B::Db::builder(SIGNAL_SELECT);
        qb.sql(" WHERE basket = ").text(&q.basket);
        let newest = qb.window("window_end", q.from, q.to, q.limit, "basket");
        let xs = read_all(self, &mut qb, "reading tda signals", |r, _| {
            signal_from_row(r)
        })
        .await?;
        Ok(ascending(xs, newest))
    }
}

/// The columns every backend reads, in [`signal_from_row`]'s order (and the
/// upserts' column order).
const SIGNAL_SELECT: &str = "SELECT basket, window_start, window_end, points, h1_bars, landscape_l1, \
     landscape_l2, entropy, wasserstein, volatility, zscore, alarm, alarm_raised, emitted_at FROM tda_signals";

fn signal_from_row<R: SqlRow>(row: &R) -> Result<TdaSignal> {
    let c = Cols::new(row, "tda_signals");
    let small = |i: usize| -> Result<u32> {
        let v = c.int(i)?;
        u32::try_from(v).map_err(|_| c.corrupt(format!("bad count {v}")))
    };
    Ok(TdaSignal {
        basket: c.string(0)?,
        window_start: c.int(1)?,
        window_end: c.int(2)?,
        points: small(3)?,
        h1_bars: small(4)?,
        landscape_l1: c.float(5)?,
        landscape_l2: c.float(6)?,
        entropy: c.float(7)?,
        wasserstein: c.opt_float(8)?,
        volatility: c.float(9)?,
        zscore: c.opt_float(10)?,
        alarm: c.flag(11)?,
        alarm_raised: c.flag(12)?,
        emitted_at: c.int(13)?,
    })
}

/// Binds every column of `s` in [`SIGNAL_COLUMNS`] order. Non-finite
/// numbers are stored as NULL (optional columns) or 0.
pub(crate) fn bind_signal<'q, Q: Binds<'q>>(q: Q, s: &'q TdaSignal) -> Q {
    let fin = |x: f64| if x.is_finite() { x } else { 0.0 };
    let opt = |x: Option<f64>| x.filter(|v| v.is_finite());
    q.text(&s.basket)
        .int(s.window_start)
        .int(s.window_end)
        .int(i64::from(s.points))
        .int(i64::from(s.h1_bars))
        .float(fin(s.landscape_l1))
        .float(fin(s.landscape_l2))
        .float(fin(s.entropy))
        .opt_float(opt(s.wasserstein))
        .float(fin(s.volatility))
        .opt_float(opt(s.zscore))
        .flag(s.alarm)
        .flag(s.alarm_raised)
        .int(s.emitted_at)
}
