//! The group commit of the PostgreSQL store: the hot writes of every caller in one transaction.
//!
//! Appends and outcomes are jobs sent to one task with its own connection. The task takes all
//! jobs waiting at that moment, runs them in one transaction (counters locked once, each kind of
//! row written by one multi-row statement, counters written once), commits once and only then
//! answers each caller. Concurrent publishers and delivery outcomes so share commits and round
//! trips, as they share fsyncs in the embedded store.
//!
//! Invariant: a caller is told "done" only after the commit that holds its write; if anything
//! in the group fails, the whole transaction rolls back and every caller of the group gets the
//! error, so nobody is told "done" for a write that was rolled back. Must not: take anything but
//! appends and outcomes (catalog writes are short transactions of their own), or answer a caller
//! before its group's commit.

use tokio::sync::{mpsc, oneshot};

use super::conn::{Conn, Session};
use super::deliveries::{self, Deltas};
use super::tls::Database;
use super::{collect, notify};
use crate::{NewEvent, Outcome, PendingDelivery, StoreError, StoreOptions};

/// Upper bound on jobs per transaction, so that one commit never grows without bound under load.
const MAX_JOBS_PER_COMMIT: usize = 1024;

type Created = Vec<Vec<PendingDelivery>>;

enum Job {
    Append {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Created, StoreError>>,
    },
    Outcomes {
        outcomes: Vec<Outcome>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// What the writer task needs besides its jobs.
pub(super) struct Context {
    /// For reconnecting after the writer's connection broke.
    pub(super) config: Database,
    /// Where the new pending deliveries of a commit are told.
    pub(super) channel: String,
    /// Retention and de-duplication windows, which appends and outcomes apply.
    pub(super) options: StoreOptions,
}

/// Handle for submitting writes; the task ends when the last handle is dropped.
pub(super) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    #[expect(
        clippy::disallowed_methods,
        reason = "the task ends when the last Writer is dropped, after the jobs queued before"
    )]
    pub(super) fn start(conn: Conn, context: Context) -> Writer {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(queue, conn, context));
        Writer { jobs }
    }

    pub(super) async fn append(&self, events: Vec<NewEvent>) -> Result<Created, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Append { events, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) async fn record_outcomes(&self, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Outcomes { outcomes, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(mut queue: mpsc::UnboundedReceiver<Job>, conn: Conn, context: Context) {
    let mut conn = Some(conn);
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_JOBS_PER_COMMIT {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &group, &context).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, jobs = group.len(), "store: group commit failed");
        }
        answer(group, result);
    }
}

/// Runs a group in one transaction; returns the deliveries made, per event of its appends in
/// job order.
async fn commit(
    conn: &mut Option<Conn>,
    group: &[Job],
    context: &Context,
) -> Result<Created, StoreError> {
    // A broken connection is replaced here, so one outage fails only the groups during it.
    let conn = match conn {
        Some(open) if !open.is_closed() => open,
        _ => conn.insert(Conn::connect(&context.config).await?),
    };
    let mut events = Vec::new();
    let mut outcomes = Vec::new();
    for job in group {
        match job {
            Job::Append { events: e, .. } => events.extend(e),
            Job::Outcomes { outcomes: o, .. } => outcomes.extend(o),
        }
    }
    let touched = events
        .iter()
        .flat_map(|e| e.subscriptions.iter().copied())
        .chain(outcomes.iter().map(|o| o.subscription));

    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    // All counter locks first and in one order, whatever the mix of jobs: see `deliveries`.
    let live = deliveries::lock_counters(&mut db, touched).await?;
    let mut deltas = Deltas::default();
    let created = match events.is_empty() {
        true => Vec::new(),
        false => deliveries::append(&mut db, &events, &live, context.options, &mut deltas).await?,
    };
    if !outcomes.is_empty() {
        let cursor = collect::gc_cursor_shared(&mut db).await?;
        deliveries::record_outcomes(
            &mut db,
            &outcomes,
            &live,
            cursor,
            context.options.history_retention_ms,
            &mut deltas,
        )
        .await?;
    }
    deltas.write(&mut db).await?;
    let pending = created.iter().flatten().map(|d| d.subscription);
    notify::pending(&mut db, &context.channel, pending).await?;
    tx.commit().await?;
    Ok(created)
}

fn answer(group: Vec<Job>, result: Result<Created, StoreError>) {
    // The caller may have gone away (request cancelled); the write stands regardless.
    match result {
        Ok(created) => {
            let mut created = created.into_iter();
            for job in group {
                match job {
                    Job::Append { events, reply } => {
                        let _ = reply.send(Ok(created.by_ref().take(events.len()).collect()));
                    }
                    Job::Outcomes { reply, .. } => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
        }
        Err(e) => {
            for job in group {
                let error = e.for_each_caller();
                match job {
                    Job::Append { reply, .. } => {
                        let _ = reply.send(Err(error));
                    }
                    Job::Outcomes { reply, .. } => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
        }
    }
}
