//! The single writer thread of the embedded store: group commit.
//!
//! Every write of the embedded store is a job sent to this thread. The thread takes all jobs that
//! are waiting, runs them in one redb write transaction, commits it once (one fsync for the whole
//! group) and only then answers each caller. Concurrent publishers and delivery outcomes so share
//! commits, which is what lets durable publishing reach tens of thousands of events per second.
//!
//! Invariant: a job that fails with a logical error (not found, conflict) has written nothing; a
//! job that fails with a storage error aborts the whole group, and every caller of the group gets
//! an error, so no caller is ever told "done" for a write that was rolled back.
//!
//! After an [`Outage`] (a full disk, an I/O error) the thread has the file re-opened
//! ([`StoreFile::reopen`], on a helper thread) with backoff until that works, and meanwhile
//! answers every job at once with the outage, so that callers hear what is wrong instead of
//! waiting for the disk. Every commit that returned was durable, and nothing else was
//! acknowledged, so the re-opened file holds everything acknowledged.
//!
//! Must not: die of a job's panic (it is caught, and its group rolled back as a bug:
//! [`StoreError::Internal`]), or answer a caller before its group's commit.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use redb::Database;
use tokio::sync::oneshot;

use super::codec::Tables;
use super::file::StoreFile;
use crate::{Outage, OutageKind, StoreError};

/// Upper bound on jobs per transaction, so that one commit never grows without bound under load.
const MAX_JOBS_PER_COMMIT: usize = 1024;
/// How long re-opening waits between attempts: soon after a short fault, rarely during a long one.
const MIN_REOPEN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_REOPEN_BACKOFF: Duration = Duration::from_secs(2);
/// How often the reads still using a closed handle are checked for being done.
const DRAIN_POLL: Duration = Duration::from_millis(10);

pub(super) trait Job: Send {
    /// Runs the job's reads and writes; returns the error that must abort the group, if it met
    /// one.
    fn run(&mut self, tables: &mut Tables<'_>) -> Option<StoreError>;
    /// Answers the caller once the group's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct ClosureJob<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for ClosureJob<T, F>
where
    T: Send,
    F: FnOnce(&mut Tables<'_>) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, tables: &mut Tables<'_>) -> Option<StoreError> {
        let work = self.work.take()?;
        match work(tables) {
            Err(
                error @ (StoreError::Storage { .. }
                | StoreError::Corrupt { .. }
                | StoreError::Unavailable(_)
                | StoreError::Internal { .. }),
            ) => Some(error),
            result => {
                self.result = Some(result);
                None
            }
        }
    }

    fn finish(self: Box<Self>, commit: Result<(), &StoreError>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(error), _) => Err(error.for_each_caller()),
            (Ok(()), None) => Err(StoreError::internal_message("a write job never ran")),
        };
        // The caller may have gone away (request cancelled); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// Handle for submitting writes; cloning it is cheap.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread. It ends when every `Writer` handle is dropped.
    pub(super) fn start(file: Arc<StoreFile>) -> Result<Writer, StoreError> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&file, &queue))
            .map_err(|e| StoreError::storage("cannot start the writer thread", e))?;
        Ok(Writer { jobs })
    }

    /// Runs `work` inside the next group commit and returns its result once the commit is durable.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = ClosureJob {
            work: Some(work),
            result: None,
            reply,
        };
        // The thread outlives every handle unless it panicked: its queue and its answers go
        // only with it.
        let gone = || StoreError::internal_message("the store's writer thread panicked");
        self.jobs.send(Box::new(job)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn run(file: &Arc<StoreFile>, queue: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_JOBS_PER_COMMIT {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let outcome = match file.database() {
            Ok(db) => commit_group(&db, &mut group),
            Err(error) => Err(error),
        };
        if let Err(error) = &outcome {
            tracing::error!(%error, jobs = group.len(), "store: group commit failed");
        }
        let commit = outcome.as_ref().map(|_| ());
        group.into_iter().for_each(|job| job.finish(commit));
        if let Err(StoreError::Unavailable(outage)) = outcome
            && recover(file, queue, outage).is_err()
        {
            return;
        }
    }
}

fn commit_group(db: &Database, group: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    let failed = {
        let mut tables = Tables::open(&txn)?;
        group.iter_mut().find_map(|job| {
            // A job that panics must not take the writer thread (and every later write) with it.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&mut tables)))
                .unwrap_or_else(|_| {
                    Some(StoreError::internal_message(
                        "a write job panicked; its group was rolled back",
                    ))
                })
        })
    };
    match failed {
        Some(error) => {
            let _ = txn.abort();
            Err(error)
        }
        None => Ok(txn.commit()?),
    }
}

/// The queue's senders are all gone: the store was dropped while recovering.
struct Stopped;

/// Drops the failed handle and opens the file again, with backoff, until that works; jobs that
/// arrive meanwhile are answered with the outage at once.
fn recover(
    file: &Arc<StoreFile>,
    queue: &mpsc::Receiver<Box<dyn Job>>,
    mut outage: Outage,
) -> Result<(), Stopped> {
    tracing::error!(error = %outage, "store: the store file failed; re-opening it until that works");
    let mut failed = file.close(outage.clone());
    // Reads that took the handle before it was closed finish (or fail) on their own.
    while let Some(db) = failed.take() {
        match Arc::try_unwrap(db) {
            Ok(db) => drop(db),
            Err(in_use) => {
                failed = Some(in_use);
                turn_away(&outage, queue, DRAIN_POLL)?;
            }
        }
    }
    let mut backoff = MIN_REOPEN_BACKOFF;
    loop {
        match attempt_reopen(file, &outage, queue)? {
            Ok(()) => {
                tracing::info!("store: re-opened the store file; writing again");
                return Ok(());
            }
            Err(StoreError::Unavailable(latest)) => {
                tracing::warn!(error = %latest, "store: cannot re-open the store file yet");
                outage = latest;
            }
            Err(error) => tracing::error!(%error, "store: cannot re-open the store file yet"),
        }
        turn_away(&outage, queue, backoff)?;
        backoff = (backoff * 2).min(MAX_REOPEN_BACKOFF);
    }
}

/// One attempt: room on the disk first if it was full, then the file opened (and repaired, if
/// the failure left it mid-commit). On a thread of its own, since a repair reads the whole file:
/// jobs are answered meanwhile rather than left waiting for it.
fn attempt_reopen(
    file: &Arc<StoreFile>,
    outage: &Outage,
    queue: &mpsc::Receiver<Box<dyn Job>>,
) -> Result<Result<(), StoreError>, Stopped> {
    let (done, attempt) = mpsc::channel();
    let (file, kind) = (Arc::clone(file), outage.kind);
    let started = std::thread::Builder::new()
        .name("store-reopen".into())
        .spawn(move || {
            let result = match kind {
                OutageKind::DiskFull => file.check_room().map_err(StoreError::Unavailable),
                OutageKind::WriteFailed | OutageKind::Unreachable => Ok(()),
            }
            .and_then(|()| file.reopen());
            let _ = done.send(result);
        });
    if let Err(e) = started {
        return Ok(Err(StoreError::storage(
            "cannot start a thread to re-open the store file",
            e,
        )));
    }
    loop {
        match attempt.try_recv() {
            Ok(result) => return Ok(result),
            Err(mpsc::TryRecvError::Empty) => turn_away(outage, queue, DRAIN_POLL)?,
            Err(mpsc::TryRecvError::Disconnected) => {
                return Ok(Err(StoreError::internal_message(
                    "the thread re-opening the store file panicked",
                )));
            }
        }
    }
}

/// Answers every job that arrives within `wait` with the outage.
#[expect(
    clippy::disallowed_methods,
    reason = "a std thread waiting on a std channel: no runtime clock applies"
)]
fn turn_away(
    outage: &Outage,
    queue: &mpsc::Receiver<Box<dyn Job>>,
    wait: Duration,
) -> Result<(), Stopped> {
    let deadline = Instant::now() + wait;
    let error = StoreError::Unavailable(outage.clone());
    loop {
        match queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(job) => job.finish(Err(&error)),
            Err(mpsc::RecvTimeoutError::Timeout) => return Ok(()),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Stopped),
        }
    }
}
