//! The thread that owns the rusqlite writer connection ([`TickWriter`]) and
//! runs every job on it in the order the jobs were queued.
//!
//! Why a thread of its own rather than `spawn_blocking` per write: with the
//! tick sink keeping two batches in flight, the next batch is already
//! waiting when one commits. Handed over through the async gate, that next
//! write only started once a runtime worker polled its task, and on a busy
//! 2-core machine (the aggregator and the encoding of the following batch
//! on the workers) the writer idled ~7% of an ingest run between batches
//! (docs/benchmarks.md). This thread takes the next queued job the moment
//! the last one ends.
//!
//! The write gate is still taken around each job (blocking, on this thread),
//! so writes through the sqlx writer connection take turns with it.

use super::tick_writer::TickWriter;
use crate::{Error, Result};
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// A job on the writer connection; it reports its own outcome.
type Job = Box<dyn FnOnce(&TickWriter) + Send>;

/// What a job returned, or the panic it raised (re-raised in the caller).
type Outcome<T> = std::result::Result<T, Box<dyn Any + Send>>;

/// The writer thread's queue. Dropping the last handle (or [`close`]) lets
/// the thread finish the queued jobs and close the connection.
///
/// [`close`]: WriterThread::close
pub(super) struct WriterThread {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for WriterThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterThread").finish_non_exhaustive()
    }
}

impl WriterThread {
    /// Starts the thread that runs jobs on `writer`, each holding `gate`.
    pub(super) fn start(
        writer: TickWriter,
        gate: Arc<tokio::sync::Mutex<()>>,
    ) -> std::io::Result<WriterThread> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                // Ends when every sender is gone: after close, or when the
                // last clone of the store is dropped.
                while let Ok(job) = queue.recv() {
                    let _turn = gate.blocking_lock();
                    job(&writer);
                }
                // Closing checkpoints the WAL, a write like any other: it
                // takes its turn too.
                let _turn = gate.blocking_lock();
                writer.close();
            })?;
        Ok(WriterThread {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `f` on the writer connection after the jobs queued before it,
    /// holding the write gate; a panic in `f` is raised again here.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&TickWriter) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, outcome) = tokio::sync::oneshot::channel::<Outcome<Result<T>>>();
        let job: Job = Box::new(move |w| {
            // The caller may have gone (a cancelled write): nothing to tell.
            let _ = reply.send(catch_unwind(AssertUnwindSafe(|| f(w))));
        });
        let queued = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|jobs| jobs.send(job));
        if !matches!(queued, Some(Ok(()))) {
            return Err(closed(op));
        }
        match outcome.await {
            Ok(Ok(res)) => res,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => Err(closed(op)),
        }
    }

    /// Lets the queued jobs finish, then closes the connection (checkpointing
    /// the WAL) and waits for the thread. Later jobs fail as closed.
    pub(super) fn close(&self) {
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(Err(panic)) = thread.map(JoinHandle::join) {
            tracing::warn!(?panic, "the SQLite writer thread panicked");
        }
    }
}

fn closed(op: &'static str) -> Error {
    Error::Database {
        op,
        source: "the writer connection is closed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(dir: &tempfile::TempDir) -> WriterThread {
        let path = dir.path().join("w.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER NOT NULL)")
            .unwrap();
        drop(conn);
        WriterThread::start(TickWriter::open(&path).unwrap(), Arc::default()).unwrap()
    }

    fn insert(n: i64) -> impl FnOnce(&TickWriter) -> Result<Vec<i64>> + Send + 'static {
        move |w| {
            w.transaction("inserting", |tx| {
                tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                let mut st = tx.prepare("SELECT n FROM t ORDER BY rowid")?;
                st.query_map([], |r| r.get(0))?.collect()
            })
        }
    }

    /// Jobs run in the order they were queued, each seeing the writes of
    /// the ones before it.
    #[tokio::test]
    async fn jobs_run_in_the_order_they_were_queued() {
        let dir = tempfile::tempdir().unwrap();
        let w = started(&dir);
        let (a, b, c) = tokio::join!(
            w.run("inserting", insert(1)),
            w.run("inserting", insert(2)),
            w.run("inserting", insert(3)),
        );
        assert_eq!(a.unwrap(), [1]);
        assert_eq!(b.unwrap(), [1, 2]);
        assert_eq!(c.unwrap(), [1, 2, 3]);
        w.close();
    }

    /// A job that panics raises the panic in its caller; the thread and the
    /// connection keep serving the next jobs.
    #[tokio::test]
    async fn a_panicking_job_panics_its_caller_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(started(&dir));
        let w2 = w.clone();
        let caller = tokio::spawn(async move {
            w2.run("panicking", |_| -> Result<()> { panic!("boom in a job") })
                .await
        });
        let panic = caller.await.unwrap_err().into_panic();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom in a job"));
        assert_eq!(w.run("inserting", insert(7)).await.unwrap(), [7]);
        w.close();
    }

    /// Close lets the queued jobs finish; a job after it fails as closed.
    #[tokio::test]
    async fn after_close_jobs_fail_as_closed() {
        let dir = tempfile::tempdir().unwrap();
        let w = started(&dir);
        assert_eq!(w.run("inserting", insert(1)).await.unwrap(), [1]);
        w.close();
        let err = w.run("inserting ticks", insert(2)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "database error while inserting ticks: the writer connection is closed"
        );
        let conn = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
