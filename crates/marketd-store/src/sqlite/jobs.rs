//! Polling jobs in SQLite: the statements whose SQL is this dialect's own.

use super::SqliteStore;
use crate::jobs::JobSql;

impl JobSql for SqliteStore {
    /// Inserts the job, or updates its definition (symbol, provider,
    /// interval, status) when it exists. Run statistics never go backwards:
    /// counts keep the larger value and the last run the later one, so a
    /// replayed (older) copy of the job cannot erase runs already recorded.
    const UPSERT_JOB: &'static str = "INSERT INTO polling_jobs (id, symbol, provider, interval_ms, status, created_at, run_count, error_count, \
         last_run_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET symbol = excluded.symbol, provider = excluded.provider, \
         interval_ms = excluded.interval_ms, status = excluded.status, \
         run_count = MAX(run_count, excluded.run_count), error_count = MAX(error_count, excluded.error_count), \
         last_error = CASE WHEN excluded.last_run_at >= COALESCE(last_run_at, excluded.last_run_at) \
             THEN excluded.last_error ELSE last_error END, \
         last_run_at = CASE WHEN excluded.last_run_at >= COALESCE(last_run_at, excluded.last_run_at) \
             THEN excluded.last_run_at ELSE last_run_at END";

    const RECORD_RUN: &'static str = "UPDATE polling_jobs SET run_count = run_count + 1, error_count = error_count + (?1 IS NOT NULL), \
         last_run_at = ?2, last_error = ?1 WHERE id = ?3";
}
