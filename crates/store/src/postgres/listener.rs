//! Hearing other nodes' writes: LISTEN on the deployment's channel, fed to a broadcast channel.
//!
//! Owns one dedicated connection, driven here (not by a spawned `Connection` future) so that
//! notifications can be read from it. Writers NOTIFY inside their transactions, so a
//! notification arrives only for a committed change; [`notify`] says what each one tells.
//!
//! Invariant: a listener never silently misses a change. If the connection drops, it reconnects
//! (with backoff) and then announces a change of everything, a [`Change::Catalog`] and a
//! [`Change::Pending`] of every subscription, since notifications sent meanwhile are lost.
//! Must not: block writers (a slow receiver lags on the broadcast channel, it does not hold
//! notifications back).

use std::future::poll_fn;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Notification};

use super::conn::unsigned;
use super::notify;
use super::tls::Database;
use crate::{Change, StoreError};

const ALL_SUBSCRIPTIONS: &str = "SELECT id FROM switchyard_subscriptions ORDER BY id";
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the listening connection is checked. A half-open TCP connection delivers nothing
/// and reports nothing for as long as keepalive takes (hours by default); a query that does not
/// answer within [`PING_TIMEOUT`] shows it, and the listener reconnects and resyncs.
const PING_EVERY: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The listening task; it stops when this is dropped.
pub(super) struct Listener {
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A LISTENing connection and the notifications read from it.
struct Listening {
    client: Client,
    notifications: mpsc::UnboundedReceiver<Notification>,
}

impl Listener {
    /// Starts listening before returning, so that nothing committed after `start` is missed.
    #[expect(
        clippy::disallowed_methods,
        reason = "the task is the Listener's, which ends it when dropped"
    )]
    pub(super) async fn start(
        config: Database,
        channel: String,
        changes: broadcast::Sender<Change>,
    ) -> Result<Listener, StoreError> {
        let first = listen(&config, &channel).await?;
        let task = tokio::spawn(run(config, channel, changes, first));
        Ok(Listener { task })
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "the task drives this connection and ends when its client is dropped"
)]
async fn listen(config: &Database, channel: &str) -> Result<Listening, StoreError> {
    let (client, mut connection) = config.connect().await?;
    let (sender, notifications) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if sender.send(n).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %StoreError::from(e), "store: the LISTEN connection failed");
                    return;
                }
                None => return,
            }
        }
    });
    // The channel name is ours (a fixed prefix and hex), so quoting it is enough.
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await?;
    Ok(Listening {
        client,
        notifications,
    })
}

async fn run(
    config: Database,
    channel: String,
    changes: broadcast::Sender<Change>,
    mut listening: Listening,
) {
    loop {
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            tokio::select! {
                notification = listening.notifications.recv() => {
                    let Some(notification) = notification else { break };
                    if let Some(change) = notify::parse(notification.payload()) {
                        // No receiver at the moment is fine: nobody is waiting for changes.
                        let _ = changes.send(change);
                    }
                }
                _ = ping.tick() => {
                    let answered = tokio::time::timeout(PING_TIMEOUT, listening.client.simple_query("")).await;
                    if !matches!(answered, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        tracing::warn!("store: lost the LISTEN connection; reconnecting");
        listening = loop {
            let again = reconnect(&config, &channel).await;
            match resync(&again.client, &changes).await {
                Ok(()) => break again,
                Err(e) => tracing::warn!(error = %e, "store: cannot resync after reconnecting"),
            }
        };
    }
}

async fn reconnect(config: &Database, channel: &str) -> Listening {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen(config, channel).await {
            Ok(listening) => return listening,
            Err(e) => {
                tracing::warn!(error = %e, "store: cannot LISTEN yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Announces a change of everything, after notifications may have been lost.
async fn resync(client: &Client, changes: &broadcast::Sender<Change>) -> Result<(), StoreError> {
    let ids = client
        .query(ALL_SUBSCRIPTIONS, &[])
        .await?
        .iter()
        .map(|row| unsigned(row, 0))
        .collect::<Result<_, _>>()?;
    let _ = changes.send(Change::Catalog);
    let _ = changes.send(Change::Pending(ids));
    Ok(())
}
