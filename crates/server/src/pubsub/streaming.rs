//! StreamingPull: the bidirectional stream Google's subscriber clients consume with. The
//! client's requests carry acks and deadline changes; the answers carry leased messages, as many
//! as the client's flow control allows.
//!
//! The first request names the subscription, the stream's ack deadline and the flow control
//! (`max_outstanding_messages`, `max_outstanding_bytes`; 0 is no limit). A message is
//! outstanding from when it is sent until the client acks it or gives it back (a deadline of
//! 0), on the stream or by any other call, or until its lease ends; no more is pulled while the
//! limits are reached (one batch may overshoot the byte limit,
//! as in Pub/Sub). Leases are the operations layer's, so a stream that breaks loses nothing:
//! its leases expire. Must not: outlive its client's stream, or shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use googleapis_tonic_google_pubsub_v1::google::pubsub::v1::streaming_pull_response::SubscriptionProperties;
use googleapis_tonic_google_pubsub_v1::google::pubsub::v1::{
    StreamingPullRequest, StreamingPullResponse,
};
use switchyard_dispatcher::LeaseChange;
use switchyard_model::now_ms;
use switchyard_store::SubscriptionRecord;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::Call;
use super::grpc::{Answers, status};
use super::subscriber::{consumed, received};

/// One pull of the stream waits this long for messages before looking at its limits again.
const PULL_WAIT: Duration = Duration::from_secs(1);
/// The most messages one answer carries.
const BATCH: usize = 1_000;

/// Messages sent and still held by the client, by ack id: until acknowledged or given back
/// (through the stream or any other call: [`LeaseChange`]), or until their lease ends.
#[derive(Default)]
struct Outstanding(HashMap<String, Held>);

struct Held {
    size: usize,
    until_ms: u64,
}

impl Outstanding {
    /// Messages and bytes held now; leases that ended are forgotten.
    fn counts(&mut self, now_ms: u64) -> (usize, usize) {
        self.0.retain(|_, held| held.until_ms > now_ms);
        (self.0.len(), self.0.values().map(|h| h.size).sum())
    }

    fn apply(&mut self, change: LeaseChange) {
        match change {
            LeaseChange::Done(ack) => {
                self.0.remove(&ack.to_string());
            }
            LeaseChange::Extended(ack, until_ms) => {
                if let Some(held) = self.0.get_mut(&ack.to_string()) {
                    held.until_ms = until_ms;
                }
            }
        }
    }
}

/// The flow control the client asked for; 0 is no limit.
#[derive(Clone, Copy)]
struct Limits {
    messages: usize,
    bytes: usize,
}

pub(super) async fn streaming_pull(
    call: Call,
    mut requests: Streaming<StreamingPullRequest>,
) -> Result<Answers<StreamingPullResponse>, Status> {
    let first = requests
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("the stream ended before its first request"))?;
    let record = consumed(&call, &first.subscription)?;
    if record.spec.delivery != switchyard_model::DeliveryMode::Pull {
        return Err(Status::failed_precondition(format!(
            "{} is a push subscription: its messages go to its endpoint",
            first.subscription
        )));
    }
    let deadline_s = match first.stream_ack_deadline_seconds {
        s if (10..=600).contains(&s) => s,
        s => {
            return Err(Status::invalid_argument(format!(
                "stream_ack_deadline_seconds must be 10 to 600, not {s}"
            )));
        }
    };
    let limits = Limits {
        messages: usize::try_from(first.max_outstanding_messages).unwrap_or(0),
        bytes: usize::try_from(first.max_outstanding_bytes).unwrap_or(0),
    };
    let mut outstanding = Outstanding::default();
    // Subscribed before anything is sent, so that no ack of a sent message is missed.
    let mut changes = call.app.lease_changes(&record);
    // Cancelled when either side ends the stream, and at shutdown, so that a stream whose
    // client holds everything it may hold still lets the server stop.
    let ended = call.app.shutdown().child_token();
    let (answers, stream) = mpsc::channel::<Result<StreamingPullResponse, Status>>(2);
    // The first request may carry acks too.
    handle(&call, &record, first).await;
    let reader = {
        let (call, record, ended) = (call.clone(), Arc::clone(&record), ended.clone());
        async move {
            loop {
                let next = tokio::select! {
                    next = requests.message() => next,
                    () = ended.cancelled() => break,
                };
                match next {
                    Ok(Some(request)) => handle(&call, &record, request).await,
                    Ok(None) | Err(_) => break,
                }
            }
            ended.cancel();
        }
    };
    let ordered = record.spec.ordered;
    let tasks = call.app.tasks().clone();
    let sender = async move {
        let properties = Some(SubscriptionProperties {
            exactly_once_delivery_enabled: false,
            message_ordering_enabled: ordered,
        });
        let deadline_ms = u64::try_from(deadline_s).unwrap_or(10) * 1_000;
        loop {
            while let Ok(change) = changes.try_recv() {
                outstanding.apply(change);
            }
            let (count, bytes) = outstanding.counts(now_ms());
            let full = (limits.messages > 0 && count >= limits.messages)
                || (limits.bytes > 0 && bytes >= limits.bytes);
            if full {
                tokio::select! {
                    change = changes.recv() => {
                        if let Ok(change) = change {
                            outstanding.apply(change);
                        }
                        continue;
                    }
                    // Leases end by themselves too.
                    () = tokio::time::sleep(PULL_WAIT) => continue,
                    () = ended.cancelled() => break,
                }
            }
            let room = if limits.messages > 0 {
                (limits.messages - count).min(BATCH)
            } else {
                BATCH
            };
            let leased = tokio::select! {
                leased = call.app.pull(&record, room, PULL_WAIT, Some(deadline_ms)) => leased,
                () = ended.cancelled() => break,
            };
            let leased = match leased {
                Ok(leased) => leased,
                Err(error) => {
                    let _ = answers.send(Err(status(error))).await;
                    break;
                }
            };
            if leased.is_empty() {
                continue;
            }
            let mut messages = Vec::with_capacity(leased.len());
            for delivery in &leased {
                match received(delivery) {
                    Ok(message) => {
                        let size = message.message.as_ref().map_or(0, |m| m.data.len());
                        let until_ms = now_ms().saturating_add(deadline_ms);
                        outstanding
                            .0
                            .insert(message.ack_id.clone(), Held { size, until_ms });
                        messages.push(message);
                    }
                    Err(error) => tracing::error!(%error, "pubsub: a message cannot be sent"),
                }
            }
            let answer = StreamingPullResponse {
                received_messages: messages,
                subscription_properties: properties,
                ..StreamingPullResponse::default()
            };
            if answers.send(Ok(answer)).await.is_err() {
                break;
            }
        }
        ended.cancel();
    };
    tasks.spawn(reader);
    tasks.spawn(sender);
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
        stream,
    )))
}

/// Applies one request's acks and deadline changes (which come back to the stream's flow
/// control as lease changes).
async fn handle(call: &Call, record: &SubscriptionRecord, request: StreamingPullRequest) {
    if !request.ack_ids.is_empty()
        && let Err(error) = call.app.acknowledge(record, &request.ack_ids).await
    {
        tracing::warn!(%error, subscription = %record.name, "pubsub: acks not recorded; the messages will come again");
    }
    let mut by_deadline: HashMap<i32, Vec<String>> = HashMap::new();
    for (ack_id, seconds) in request
        .modify_deadline_ack_ids
        .into_iter()
        .zip(request.modify_deadline_seconds)
    {
        by_deadline.entry(seconds).or_default().push(ack_id);
    }
    for (seconds, ack_ids) in by_deadline {
        let Ok(seconds) = u32::try_from(seconds) else {
            continue;
        };
        if let Err(error) = call
            .app
            .modify_ack_deadline(record, &ack_ids, seconds)
            .await
        {
            tracing::warn!(%error, subscription = %record.name, "pubsub: deadline change not recorded");
        }
    }
}
