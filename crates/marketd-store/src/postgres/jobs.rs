//! Polling jobs in PostgreSQL: the statements whose SQL is this dialect's own.

use super::PostgresStore;
use crate::jobs::JobSql;

impl JobSql for PostgresStore {
    /// Same rules as SQLite: the definition is replaced, run statistics
    /// never go backwards.
    const UPSERT_JOB: &'static str = "INSERT INTO polling_jobs AS j (id, symbol, provider, interval_ms, status, created_at, run_count, \
         error_count, last_run_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (id) DO UPDATE SET symbol = excluded.symbol, provider = excluded.provider, \
         interval_ms = excluded.interval_ms, status = excluded.status, \
         run_count = GREATEST(j.run_count, excluded.run_count), \
         error_count = GREATEST(j.error_count, excluded.error_count), \
         last_error = CASE WHEN excluded.last_run_at >= COALESCE(j.last_run_at, excluded.last_run_at) \
             THEN excluded.last_error ELSE j.last_error END, \
         last_run_at = CASE WHEN excluded.last_run_at >= COALESCE(j.last_run_at, excluded.last_run_at) \
             THEN excluded.last_run_at ELSE j.last_run_at END";

    const RECORD_RUN: &'static str = "UPDATE polling_jobs SET run_count = run_count + 1, \
         error_count = error_count + (CASE WHEN $1::text IS NULL THEN 0 ELSE 1 END), \
         last_run_at = $2, last_error = $1::text WHERE id = $3";
}
