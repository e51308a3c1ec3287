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

use std::sync::mpsc;

use redb::Database;
use tokio::sync::oneshot;

use super::codec::Tables;
use crate::StoreError;

/// Upper bound on jobs per transaction, so that one commit never grows without bound under load.
const MAX_JOBS_PER_COMMIT: usize = 1024;

pub(super) trait Job: Send {
    /// Runs the job's reads and writes; returns true when the error it met must abort the group.
    fn run(&mut self, tables: &mut Tables<'_>) -> bool;
    /// Answers the caller once the group's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), &str>);
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
    fn run(&mut self, tables: &mut Tables<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(tables);
        let poisons = matches!(
            result,
            Err(StoreError::Storage(_) | StoreError::Corrupt { .. })
        );
        self.result = Some(result);
        poisons
    }

    fn finish(self: Box<Self>, commit: Result<(), &str>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(reason), _) => Err(StoreError::Storage(reason.to_string())),
            (Ok(()), None) => Err(StoreError::Storage("write job never ran".into())),
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
    pub(super) fn start(db: std::sync::Arc<Database>) -> Result<Writer, StoreError> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&db, &queue))
            .map_err(|e| StoreError::Storage(format!("cannot start the writer thread: {e}")))?;
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
        self.jobs
            .send(Box::new(job))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(db: &Database, queue: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_JOBS_PER_COMMIT {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(db, group);
    }
}

fn commit_group(db: &Database, mut group: Vec<Box<dyn Job>>) {
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            let reason = e.to_string();
            tracing::error!(error = %reason, "store: cannot begin a write transaction");
            return group.into_iter().for_each(|job| job.finish(Err(&reason)));
        }
    };
    let poisoned = match Tables::open(&txn) {
        // A job that panics must not take the writer thread (and every later write) with it.
        Ok(mut tables) => group.iter_mut().any(|job| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&mut tables)))
                .unwrap_or_else(|_| {
                    tracing::error!("store: a write job panicked; its group is rolled back");
                    true
                })
        }),
        Err(e) => {
            tracing::error!(error = %e, "store: cannot open tables");
            true
        }
    };
    let outcome = if poisoned {
        let _ = txn.abort();
        Err("the transaction was rolled back after a storage error".to_string())
    } else {
        txn.commit().map_err(|e| e.to_string())
    };
    if let Err(reason) = &outcome {
        tracing::error!(error = %reason, jobs = group.len(), "store: group commit failed");
    }
    let commit = outcome.as_ref().map(|_| ()).map_err(String::as_str);
    group.into_iter().for_each(|job| job.finish(commit));
}
