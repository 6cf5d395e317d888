//! Streaming TDA signals in PostgreSQL: the statement whose SQL is this dialect's own.

use super::PostgresStore;
use crate::signals::SignalSql;

impl SignalSql for PostgresStore {
    const UPSERT_SIGNAL: &'static str = "INSERT INTO tda_signals (basket, window_start, window_end, points, h1_bars, \
         landscape_l1, landscape_l2, entropy, wasserstein, volatility, zscore, alarm, alarm_raised, emitted_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (basket, window_end) DO UPDATE SET window_start = excluded.window_start, \
         points = excluded.points, h1_bars = excluded.h1_bars, landscape_l1 = excluded.landscape_l1, \
         landscape_l2 = excluded.landscape_l2, entropy = excluded.entropy, wasserstein = excluded.wasserstein, \
         volatility = excluded.volatility, zscore = excluded.zscore, alarm = excluded.alarm, \
         alarm_raised = excluded.alarm_raised, emitted_at = excluded.emitted_at";
}
