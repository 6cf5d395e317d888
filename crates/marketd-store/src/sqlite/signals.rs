//! Streaming TDA signals in SQLite: the statement whose SQL is this dialect's own.

use super::SqliteStore;
use crate::signals::SignalSql;

impl SignalSql for SqliteStore {
    const UPSERT_SIGNAL: &'static str = "INSERT INTO tda_signals (basket, window_start, window_end, points, h1_bars, \
         landscape_l1, landscape_l2, entropy, wasserstein, volatility, zscore, alarm, alarm_raised, emitted_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (basket, window_end) DO UPDATE SET window_start = excluded.window_start, \
         points = excluded.points, h1_bars = excluded.h1_bars, landscape_l1 = excluded.landscape_l1, \
         landscape_l2 = excluded.landscape_l2, entropy = excluded.entropy, wasserstein = excluded.wasserstein, \
         volatility = excluded.volatility, zscore = excluded.zscore, alarm = excluded.alarm, \
         alarm_raised = excluded.alarm_raised, emitted_at = excluded.emitted_at";
}
