//! Replays: reading an archive's events of a time range and publishing them again, in their
//! original order, to chosen subscriptions of the bus.
//!
//! A replay is a document in the store (its request, state, counts and cursor), so any request
//! can show it and a restarted server resumes the replays that were running. It runs on the node
//! that started it; on a shared store, a node resumes only the replays it was running (by
//! `--node-id`), so two nodes never run one replay. Only the runner writes a running replay's
//! document: a cancel on its node asks it to stop and waits for it; a cancel on another node
//! leaves a cancel request (a document of its own) that the runner reads before each batch, and
//! waits for the runner to stop. Names are taken with a create-only write, so two nodes cannot
//! start two replays of one name.
//!
//! A replay goes at the pace of its slowest target: it waits while any of them has a lane's worth
//! of deliveries pending (`--lane-capacity`), so replaying a large archive fills neither memory
//! nor the store ahead of what receivers take, and progress means something.
//!
//! Invariants: a replayed event carries the top-level field `replay-name`, goes only to the
//! replay's subscriptions and is never archived again; a replay never reads events accepted after
//! it started, so it cannot chase its own tail. Delivery is at least once: a crash between a
//! batch's commit and the saving of the cursor replays that batch again on resume.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_model::{Event, ReplaySpec, now_ms, replayed_envelope};
use switchyard_store::{ArchiveCursor, ArchivedEvent, DocumentKind, NewEvent, StoreError};
use tokio_util::sync::CancellationToken;

use crate::publish::{Origin, commit};
use crate::{App, ServerError};

/// Archived events read and committed per step: large enough to batch commits, small enough that
/// a cancel or a shutdown takes effect quickly.
const BATCH: usize = 256;
/// Store failures in a row after which a replay gives up as `failed`.
const MAX_FAILURES: u32 = 5;
/// How long a cancel waits for the runner to stop before answering with the state it has.
const CANCEL_WAIT: Duration = Duration::from_secs(10);
/// How often a paced replay looks again at its targets' backlog.
const PACE_CHECK: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReplayState {
    Running,
    Completed,
    Cancelled,
    Failed,
}

/// As the API spells it (`completed`), for messages.
impl std::fmt::Display for ReplayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReplayState::Running => "running",
            ReplayState::Completed => "completed",
            ReplayState::Cancelled => "cancelled",
            ReplayState::Failed => "failed",
        })
    }
}

/// A replay as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplayRecord {
    pub(crate) spec: ReplaySpec,
    /// Ids of the subscriptions replayed to, resolved when it started.
    pub(crate) targets: Vec<u64>,
    pub(crate) archive_id: u64,
    pub(crate) state: ReplayState,
    /// Events of the archive in the time range when the replay started.
    pub(crate) events_total: u64,
    pub(crate) events_replayed: u64,
    pub(crate) deliveries: u64,
    /// The last archived event replayed; where a resumed replay goes on.
    pub(crate) cursor: Option<ArchiveCursor>,
    /// The node running it, on a shared store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) node: Option<String>,
    /// The target the replay is waiting for now (its backlog is a lane's worth), and since
    /// when: what makes a stalled replay say why it stalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) waiting_for: Option<Waiting>,
    pub(crate) started_ms: u64,
    pub(crate) finished_ms: Option<u64>,
    pub(crate) error: Option<String>,
}

/// A target whose backlog holds a replay up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Waiting {
    /// The subscription's name on the replay's bus.
    pub(crate) subscription: String,
    pub(crate) since_ms: u64,
}

/// The replays running in this process, by name.
#[derive(Default)]
pub(crate) struct Replays {
    running: Mutex<HashMap<String, Arc<Control>>>,
}

/// How a request reaches a running replay.
#[derive(Default)]
struct Control {
    /// A cancel of this replay alone, by request; shutdown is the app's own token, and leaves
    /// the replay `running` to be resumed.
    cancel: CancellationToken,
    /// Notified when the runner has saved its final state.
    stopped: tokio::sync::Notify,
}

impl Replays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Control>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn encode(record: &ReplayRecord) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|e| StoreError::internal("cannot encode the replay", e))
}

fn decode(body: &str) -> Result<ReplayRecord, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        table: "documents",
        detail: format!("a stored replay cannot be read: {e}"),
    })
}

impl App {
    pub(crate) async fn list_replays(&self) -> Result<Vec<ReplayRecord>, StoreError> {
        self.store()
            .list_documents(DocumentKind::Replay)
            .await?
            .iter()
            .map(|d| decode(&d.body))
            .collect()
    }

    pub(crate) async fn get_replay(&self, name: &str) -> Result<ReplayRecord, StoreError> {
        self.list_replays()
            .await?
            .into_iter()
            .find(|r| r.spec.name == name)
            .ok_or_else(|| StoreError::NotFound(format!("replay {name:?} does not exist")))
    }

    /// Checks the request against the catalog, counts what it will replay, stores it as
    /// `running` and starts it. The caller holds the change lock (see `ops`).
    pub(crate) async fn begin_replay(
        self: &Arc<Self>,
        mut spec: ReplaySpec,
    ) -> Result<ReplayRecord, ServerError> {
        if let Ok(existing) = self.get_replay(&spec.name).await {
            return Err(name_taken(&existing).into());
        }
        let index = self.catalog().bus(&spec.bus).ok_or_else(|| {
            ServerError::Invalid(format!("field \"bus\": bus {:?} does not exist", spec.bus))
        })?;
        let archive = index.archive(&spec.archive).ok_or_else(|| {
            ServerError::Invalid(format!(
                "field \"archive\": archive {:?} does not exist on bus {:?}",
                spec.archive, spec.bus
            ))
        })?;
        let targets = match &spec.subscriptions {
            None => index.subscriptions().map(|s| s.id).collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    index.subscription(name).map(|s| s.id).ok_or_else(|| {
                        ServerError::Invalid(format!(
                            "field \"subscriptions\": subscription {name:?} does not exist on bus {:?}",
                            spec.bus
                        ))
                    })
                })
                .collect::<Result<Vec<u64>, _>>()?,
        };
        let started_ms = now_ms();
        // Events accepted from now on are delivered live; replaying them too would be a copy.
        spec.to_ms = spec.to_ms.min(started_ms);
        let events_total = if spec.from_ms < spec.to_ms {
            self.store()
                .count_archived(archive.id, spec.from_ms, spec.to_ms)
                .await?
        } else {
            0
        };
        let record = ReplayRecord {
            spec,
            targets,
            archive_id: archive.id,
            state: ReplayState::Running,
            events_total,
            events_replayed: 0,
            deliveries: 0,
            cursor: None,
            node: self.cluster().map(|c| c.node_id.clone()),
            waiting_for: None,
            started_ms,
            finished_ms: None,
            error: None,
        };
        // Created only if the name is free, also against a node starting one at the same time.
        let body = encode(&record)?;
        let stored = self
            .store()
            .create_document(DocumentKind::Replay, &record.spec.name, body.clone())
            .await?;
        if stored.body != body {
            return Err(name_taken(&decode(&stored.body)?).into());
        }
        self.run_replay(record.clone());
        Ok(record)
    }

    /// Asks a running replay to stop and returns its final state. A replay that is not running
    /// is a conflict.
    pub(crate) async fn stop_replay(&self, name: &str) -> Result<ReplayRecord, StoreError> {
        let record = self.get_replay(name).await?;
        if record.state != ReplayState::Running {
            return Err(StoreError::Conflict(format!(
                "replay {name:?} is {} already; only a running replay can be cancelled",
                record.state
            )));
        }
        let control = self.replays().lock().get(name).cloned();
        match control {
            Some(control) => {
                let stopped = control.stopped.notified();
                control.cancel.cancel();
                let _ = tokio::time::timeout(CANCEL_WAIT, stopped).await;
            }
            // Running elsewhere (or nowhere): leave the runner a request and wait for it to stop.
            // A runner that never answers is gone; the replay is then marked here.
            None => {
                self.store()
                    .create_document(DocumentKind::ReplayCancel, name, String::from("{}"))
                    .await?;
                let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
                loop {
                    let current = self.get_replay(name).await?;
                    if current.state != ReplayState::Running {
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        self.save_replay(&finish(current, ReplayState::Cancelled, None))
                            .await?;
                        self.forget_cancel(name).await;
                        break;
                    }
                    tokio::time::sleep(PACE_CHECK).await;
                }
            }
        }
        self.get_replay(name).await
    }

    /// Resumes the replays a previous run of this node left running.
    pub(crate) async fn resume_replays(self: &Arc<Self>) -> Result<(), StoreError> {
        let node = self.cluster().map(|c| c.node_id.as_str());
        for record in self.list_replays().await? {
            let ours = node.is_none() || record.node.as_deref() == node;
            if record.state == ReplayState::Running && ours {
                tracing::info!(replay = %record.spec.name, "resuming replay");
                self.run_replay(record);
            }
        }
        Ok(())
    }

    async fn save_replay(&self, record: &ReplayRecord) -> Result<(), StoreError> {
        self.store()
            .put_document(DocumentKind::Replay, &record.spec.name, encode(record)?)
            .await
            .map(drop)
    }

    fn run_replay(self: &Arc<Self>, record: ReplayRecord) {
        let control = Arc::new(Control::default());
        self.replays()
            .lock()
            .insert(record.spec.name.clone(), Arc::clone(&control));
        let app = Arc::clone(self);
        self.tasks().spawn(async move {
            let name = record.spec.name.clone();
            // At shutdown the replay stays `running` with the cursor of its last batch, and is
            // resumed at the next start.
            if let Some(record) = app.replay_until_done(record, &control).await {
                if let Err(error) = app.save_replay(&record).await {
                    tracing::error!(replay = %name, %error, "cannot save the replay's final state");
                }
                if app.cluster().is_some() {
                    app.forget_cancel(&name).await;
                }
                tracing::info!(replay = %name, state = ?record.state, events = record.events_replayed, "replay finished");
            }
            app.replays().lock().remove(&name);
            control.stopped.notify_waiters();
        });
    }

    /// Replays batch after batch until the range is done, the replay is cancelled or the store
    /// keeps failing; returns the final record, not yet saved, or `None` at shutdown.
    async fn replay_until_done(
        &self,
        mut record: ReplayRecord,
        control: &Control,
    ) -> Option<ReplayRecord> {
        let mut failures = 0;
        let targets: HashSet<u64> = record.targets.iter().copied().collect();
        loop {
            if control.cancel.is_cancelled() || self.cancelled_elsewhere(&record).await {
                return Some(finish(record, ReplayState::Cancelled, None));
            }
            if self.shutdown().is_cancelled() {
                return None;
            }
            let step = match self.backlogged(&record.targets).await {
                Ok(Some(target)) => {
                    self.wait_for(&mut record, target).await;
                    self.pause(PACE_CHECK, control).await;
                    continue;
                }
                Ok(None) => {
                    record.waiting_for = None;
                    self.replay_batch(&mut record, &targets).await
                }
                Err(error) => Err(error.into()),
            };
            match step {
                Ok(true) => {
                    failures = 0;
                    if let Err(error) = self.save_replay(&record).await {
                        tracing::warn!(replay = %record.spec.name, %error, "cannot save replay progress");
                    }
                }
                Ok(false) => return Some(finish(record, ReplayState::Completed, None)),
                Err(error) if failures + 1 >= MAX_FAILURES => {
                    return Some(finish(record, ReplayState::Failed, Some(error.to_string())));
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(replay = %record.spec.name, %error, "replay step failed; retrying");
                    self.pause(Duration::from_millis(200 << failures), control)
                        .await;
                }
            }
        }
    }

    /// Waits `period` between steps, or less if the replay is cancelled or shutdown begins.
    async fn pause(&self, period: Duration, control: &Control) {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = control.cancel.cancelled() => {}
            () = self.shutdown().cancelled() => {}
        }
    }

    /// Whether a cancel on another node left a request for this replay.
    async fn cancelled_elsewhere(&self, record: &ReplayRecord) -> bool {
        self.cluster().is_some()
            && self
                .store()
                .list_documents(DocumentKind::ReplayCancel)
                .await
                .is_ok_and(|requests| requests.iter().any(|r| r.name == record.spec.name))
    }

    /// Removes a cancel request once its replay has ended.
    async fn forget_cancel(&self, name: &str) {
        match self
            .store()
            .delete_document(DocumentKind::ReplayCancel, name)
            .await
        {
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(error) => tracing::warn!(replay = %name, %error, "cannot remove a cancel request"),
        }
    }

    /// The first target with a lane's worth of deliveries pending; deleted targets have none.
    async fn backlogged(&self, targets: &[u64]) -> Result<Option<u64>, StoreError> {
        for &target in targets {
            match self.store().stats(target).await {
                Ok(stats) if stats.pending >= self.config().lane_capacity as u64 => {
                    return Ok(Some(target));
                }
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    /// Notes that the replay waits for `target`, saving it once when the target changes (not
    /// on every check), so that every node's answer says which subscription holds it up.
    async fn wait_for(&self, record: &mut ReplayRecord, target: u64) {
        let Some(subscription) = self
            .catalog()
            .bus(&record.spec.bus)
            .and_then(|index| index.subscriptions().find(|s| s.id == target).cloned())
        else {
            return;
        };
        if record
            .waiting_for
            .as_ref()
            .is_some_and(|w| w.subscription == subscription.name)
        {
            return;
        }
        record.waiting_for = Some(Waiting {
            subscription: subscription.name.clone(),
            since_ms: now_ms(),
        });
        if let Err(error) = self.save_replay(record).await {
            tracing::warn!(replay = %record.spec.name, %error, "cannot save replay progress");
        }
    }

    /// Replays the next batch; `false` when nothing was left.
    async fn replay_batch(
        &self,
        record: &mut ReplayRecord,
        targets: &HashSet<u64>,
    ) -> Result<bool, ServerError> {
        let spec = &record.spec;
        let index = self
            .catalog()
            .bus(&spec.bus)
            .filter(|index| index.archive(&spec.archive).map(|a| a.id) == Some(record.archive_id))
            .ok_or_else(|| {
                ServerError::Invalid(format!(
                    "archive {:?} of bus {:?} was deleted during the replay",
                    spec.archive, spec.bus
                ))
            })?;
        let batch = self
            .store()
            .read_archive(
                record.archive_id,
                spec.from_ms,
                spec.to_ms,
                record.cursor,
                BATCH,
            )
            .await?;
        let Some(last) = batch.last().map(|a| a.cursor) else {
            return Ok(false);
        };
        let count = batch.len() as u64;
        let mut events = Vec::with_capacity(batch.len());
        for ArchivedEvent { event, .. } in batch {
            let envelope = replayed_envelope(&event.envelope, &spec.name);
            // The pattern decides with `replay-name` present, so a subscription can exclude
            // replays; an event it cannot match any more is skipped, not a failed replay.
            let subscriptions = match index.route(&envelope) {
                Ok(routes) => routes
                    .subscriptions
                    .into_iter()
                    .filter(|id| targets.contains(id))
                    .collect(),
                Err(_) => Vec::new(),
            };
            events.push(NewEvent {
                bus: spec.bus.clone(),
                event: Arc::new(Event {
                    id: event.id.clone(),
                    envelope,
                    ingested_ms: now_ms(),
                    hops: event.hops,
                    trace: event.trace.clone(),
                    ordering_key: event.ordering_key.clone(),
                    explicit_id: false,
                }),
                subscriptions,
                archives: Vec::new(),
                once: None,
            });
        }
        record.deliveries += commit(self, &spec.bus, events, Origin::Replay).await?;
        record.events_replayed += count;
        record.cursor = Some(last);
        Ok(true)
    }
}

fn name_taken(existing: &ReplayRecord) -> StoreError {
    StoreError::Conflict(format!(
        "replay {:?} already exists ({}); replay names are unique, choose another",
        existing.spec.name, existing.state
    ))
}

fn finish(mut record: ReplayRecord, state: ReplayState, error: Option<String>) -> ReplayRecord {
    record.state = state;
    record.error = error;
    record.waiting_for = None;
    record.finished_ms = Some(now_ms());
    record
}
