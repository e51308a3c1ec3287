//! `google.pubsub.v1.Subscriber`, but StreamingPull (`streaming`): a Pub/Sub subscription is a
//! subscription on its topic's bus, pull (`"delivery": "pull"`) or push (a destination in the
//! `pubsub-push` format, with an identity token for `oidc_token`), with a dead-letter topic as
//! its `dead_letter_bus`, and pulled messages are the leases of the operations layer.
//!
//! The spec is built as the REST API's JSON and parsed by the model, so that both doors check a
//! subscription by the same rules and give the same messages.

use std::sync::Arc;
use std::time::Duration;

use googleapis_tonic_google_pubsub_v1::google::pubsub::v1::push_config::{
    AuthenticationMethod, NoWrapper, OidcToken, Wrapper,
};
use googleapis_tonic_google_pubsub_v1::google::pubsub::v1::{
    AcknowledgeRequest, DeadLetterPolicy, DeleteSubscriptionRequest, GetSubscriptionRequest,
    ListSubscriptionsRequest, ListSubscriptionsResponse, ModifyAckDeadlineRequest,
    ModifyPushConfigRequest, PubsubMessage, PullRequest, PullResponse, PushConfig, ReceivedMessage,
    RetryPolicy, SeekRequest, SeekResponse, Subscription, UpdateSubscriptionRequest, seek_request,
};
use serde_json::{Value, json};
use switchyard_destination::{Format, pubsub_message};
use switchyard_dispatcher::AckId;
use switchyard_model::{
    DeliveryMode, ReplaySpec, SubscriptionSpec, now_ms, parse_subscription_spec,
};
use switchyard_store::{PendingDelivery, SubscriptionRecord};
use tonic::Status;

use super::grpc::status;
use super::{Call, names, page};
use crate::auth::Need;

/// Pub/Sub's ack deadlines, in seconds.
const MIN_ACK_DEADLINE_S: i32 = 10;
const MAX_ACK_DEADLINE_S: i32 = 600;
/// A Pull that is not told to return at once waits this long for messages.
const PULL_WAIT: Duration = Duration::from_secs(2);
/// Pub/Sub keeps unacknowledged messages 7 days by default (and at most), and redelivers them
/// until then: without a dead-letter policy, attempts are not what ends a delivery.
const RETENTION_S: u64 = 7 * 86_400;
const UNLIMITED_ATTEMPTS: u32 = 10_000;
/// Pub/Sub's default `max_delivery_attempts` of a dead-letter policy.
const DEFAULT_DELIVERY_ATTEMPTS: i32 = 5;

/// Protobuf's seconds and nanos (of a `Duration` or a `Timestamp`) in ms; `None` before 0.
fn to_ms(seconds: i64, nanos: i32) -> Option<u64> {
    let ms = seconds.saturating_mul(1_000) + i64::from(nanos / 1_000_000);
    u64::try_from(ms).ok()
}

/// Ms as protobuf's seconds and nanos.
fn seconds_nanos(ms: u64) -> (i64, i32) {
    (
        i64::try_from(ms / 1_000).unwrap_or(i64::MAX),
        i32::try_from(ms % 1_000).unwrap_or(0) * 1_000_000,
    )
}

fn ms(duration: &prost_types::Duration) -> u64 {
    to_ms(duration.seconds, duration.nanos).unwrap_or(0)
}

fn duration(ms: u64) -> prost_types::Duration {
    let (seconds, nanos) = seconds_nanos(ms);
    prost_types::Duration { seconds, nanos }
}

/// The REST body of a push destination for `config`, or `None` for a pull subscription.
fn destination(config: Option<&PushConfig>) -> Option<Value> {
    let config = config.filter(|c| !c.push_endpoint.is_empty())?;
    let format = match &config.wrapper {
        Some(Wrapper::NoWrapper(_)) => "pubsub-push-unwrapped",
        _ => "pubsub-push",
    };
    let mut destination = json!({"url": config.push_endpoint, "format": format});
    if let Some(AuthenticationMethod::OidcToken(token)) = &config.authentication_method {
        let mut identity = json!({});
        if !token.audience.is_empty() {
            identity["audience"] = json!(token.audience);
        }
        if !token.service_account_email.is_empty() {
            identity["email"] = json!(token.service_account_email);
        }
        destination["identity_token"] = identity;
    }
    Some(destination)
}

/// The subscription's spec from a Pub/Sub `Subscription`; what it refuses, it says why.
fn spec_of(subscription: &Subscription) -> Result<SubscriptionSpec, Status> {
    if subscription.bigquery_config.is_some()
        || subscription.cloud_storage_config.is_some()
        || subscription.bigtable_config.is_some()
    {
        return Err(Status::invalid_argument(
            "BigQuery, Cloud Storage and Bigtable subscriptions are Google services switchyard cannot write to",
        ));
    }
    let deadline = match subscription.ack_deadline_seconds {
        0 => MIN_ACK_DEADLINE_S,
        s if (MIN_ACK_DEADLINE_S..=MAX_ACK_DEADLINE_S).contains(&s) => s,
        s => {
            return Err(Status::invalid_argument(format!(
                "ack_deadline_seconds must be {MIN_ACK_DEADLINE_S} to {MAX_ACK_DEADLINE_S}, not {s}"
            )));
        }
    };
    let retention_s = subscription
        .message_retention_duration
        .as_ref()
        .map_or(RETENTION_S, |d| ms(d) / 1_000);
    let mut retry = json!({"max_attempts": UNLIMITED_ATTEMPTS, "max_age_s": retention_s});
    let mut dead_letter_bus = None;
    if let Some(policy) = &subscription.dead_letter_policy {
        let attempts = match policy.max_delivery_attempts {
            0 => DEFAULT_DELIVERY_ATTEMPTS,
            n if (5..=100).contains(&n) => n,
            n => {
                return Err(Status::invalid_argument(format!(
                    "max_delivery_attempts must be 5 to 100, not {n}"
                )));
            }
        };
        retry["max_attempts"] = json!(attempts);
        dead_letter_bus = Some(names::topic(&policy.dead_letter_topic)?.id);
    }
    if let Some(policy) = &subscription.retry_policy {
        // Pub/Sub's defaults when a retry policy is set: 10 s and 600 s.
        let min = policy.minimum_backoff.as_ref().map_or(10_000, ms);
        let max = policy.maximum_backoff.as_ref().map_or(600_000, ms);
        retry["min_backoff_ms"] = json!(min.max(1));
        retry["max_backoff_ms"] = json!(max.max(min.max(1)));
    }
    let mut spec = json!({"retry": retry, "ordered": subscription.enable_message_ordering});
    if !subscription.filter.is_empty() {
        spec["filter"] = json!(subscription.filter);
    }
    if let Some(bus) = dead_letter_bus {
        spec["dead_letter_bus"] = json!(bus);
    }
    match destination(subscription.push_config.as_ref()) {
        Some(destination) => spec["destination"] = destination,
        None => {
            spec["delivery"] = json!("pull");
            spec["ack_deadline_s"] = json!(deadline);
        }
    }
    parse_subscription_spec(&spec.to_string()).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn push_config_of(spec: &SubscriptionSpec) -> Option<PushConfig> {
    let destination = spec.destination.as_ref()?;
    let wrapper = match destination.format {
        Format::PubsubPushUnwrapped => Some(Wrapper::NoWrapper(NoWrapper {
            write_metadata: true,
        })),
        _ => None,
    };
    let authentication_method = destination.identity_token.as_ref().map(|token| {
        AuthenticationMethod::OidcToken(OidcToken {
            service_account_email: token.email().unwrap_or_default().to_string(),
            audience: token.audience().unwrap_or_default().to_string(),
        })
    });
    Some(PushConfig {
        push_endpoint: destination.url.as_str().to_string(),
        attributes: Default::default(),
        authentication_method,
        wrapper,
    })
}

/// A subscription as Pub/Sub shows it, named in `project`.
fn subscription_of(project: &str, record: &SubscriptionRecord) -> Subscription {
    let spec = &record.spec;
    let ack_deadline_seconds = match spec.delivery {
        DeliveryMode::Pull => i32::try_from(spec.ack_deadline_ms() / 1_000).unwrap_or(10),
        DeliveryMode::Push => MIN_ACK_DEADLINE_S,
    };
    Subscription {
        name: names::subscription_name(project, &record.name),
        topic: names::topic_name(project, &record.bus),
        push_config: push_config_of(spec),
        ack_deadline_seconds,
        message_retention_duration: Some(duration(spec.retry.max_age_s * 1_000)),
        enable_message_ordering: spec.ordered,
        filter: spec.filter.clone().unwrap_or_default(),
        dead_letter_policy: spec.dead_letter_bus.as_ref().map(|bus| DeadLetterPolicy {
            dead_letter_topic: names::topic_name(project, bus),
            max_delivery_attempts: i32::try_from(spec.retry.max_attempts).unwrap_or(i32::MAX),
        }),
        retry_policy: Some(RetryPolicy {
            minimum_backoff: Some(duration(spec.retry.min_backoff_ms)),
            maximum_backoff: Some(duration(spec.retry.max_backoff_ms)),
        }),
        // ACTIVE.
        state: 1,
        ..Subscription::default()
    }
}

pub(super) async fn create_subscription(
    call: Call,
    subscription: Subscription,
) -> Result<Subscription, Status> {
    let name = names::subscription(&subscription.name)?;
    let topic = names::topic(&subscription.topic)?;
    call.require(Need::Admin)?;
    names::topic_bus(&call.app, &topic)?;
    match names::find_subscription(&call.app, &name.id) {
        Err(e) if e.code() == tonic::Code::NotFound => {}
        _ => return Err(Status::already_exists("Subscription already exists")),
    }
    let spec = spec_of(&subscription)?;
    let (record, _) = call
        .app
        .put_subscription(&topic.id, &name.id, spec)
        .await
        .map_err(status)?;
    Ok(subscription_of(&name.project, &record))
}

pub(super) async fn get_subscription(
    call: Call,
    request: GetSubscriptionRequest,
) -> Result<Subscription, Status> {
    let name = names::subscription(&request.subscription)?;
    call.require(Need::Read)?;
    let record = names::find_subscription(&call.app, &name.id)?;
    Ok(subscription_of(&name.project, &record))
}

/// Applies the fields the mask names; a field switchyard keeps nothing of is accepted as is.
pub(super) async fn update_subscription(
    call: Call,
    request: UpdateSubscriptionRequest,
) -> Result<Subscription, Status> {
    let update = request
        .subscription
        .ok_or_else(|| Status::invalid_argument("UpdateSubscription needs a subscription"))?;
    let name = names::subscription(&update.name)?;
    call.require(Need::Admin)?;
    let record = names::find_subscription(&call.app, &name.id)?;
    let mut merged = subscription_of(&name.project, &record);
    let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(Status::invalid_argument("update_mask names no field"));
    }
    for path in &paths {
        match path.as_str() {
            "ack_deadline_seconds" => merged.ack_deadline_seconds = update.ack_deadline_seconds,
            "push_config" => merged.push_config = update.push_config.clone(),
            "retry_policy" => merged.retry_policy = update.retry_policy,
            "message_retention_duration" => {
                merged.message_retention_duration = update.message_retention_duration;
            }
            "filter" | "enable_message_ordering" => {
                return Err(Status::invalid_argument(format!(
                    "{path} cannot be changed after creation (as in Pub/Sub)"
                )));
            }
            "dead_letter_policy" => merged.dead_letter_policy = update.dead_letter_policy.clone(),
            "labels"
            | "expiration_policy"
            | "retain_acked_messages"
            | "enable_exactly_once_delivery" => {}
            other => {
                return Err(Status::invalid_argument(format!(
                    "update_mask names {other:?}, which switchyard does not know"
                )));
            }
        }
    }
    let mut spec = spec_of(&merged)?;
    spec.eventbridge.clone_from(&record.spec.eventbridge);
    let (record, _) = call
        .app
        .put_subscription(&record.bus, &record.name, spec)
        .await
        .map_err(status)?;
    Ok(subscription_of(&name.project, &record))
}

pub(super) async fn list_subscriptions(
    call: Call,
    request: ListSubscriptionsRequest,
) -> Result<ListSubscriptionsResponse, Status> {
    let project = names::project(&request.project)?;
    call.require(Need::Read)?;
    let mut all: Vec<Arc<SubscriptionRecord>> = call.app.catalog().all_subscriptions();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let (page, next_page_token) = page(all, |s| &s.name, request.page_size, &request.page_token);
    Ok(ListSubscriptionsResponse {
        next_page_token,
        subscriptions: page.iter().map(|s| subscription_of(&project, s)).collect(),
    })
}

pub(super) async fn delete_subscription(
    call: Call,
    request: DeleteSubscriptionRequest,
) -> Result<(), Status> {
    let name = names::subscription(&request.subscription)?;
    call.require(Need::Admin)?;
    let record = names::find_subscription(&call.app, &name.id)?;
    call.app
        .delete_subscription(&record.bus, &record.name)
        .await
        .map_err(status)
}

/// A push config with an endpoint makes the subscription push; an empty one makes it pull.
pub(super) async fn modify_push_config(
    call: Call,
    request: ModifyPushConfigRequest,
) -> Result<(), Status> {
    let name = names::subscription(&request.subscription)?;
    call.require(Need::Admin)?;
    let record = names::find_subscription(&call.app, &name.id)?;
    let mut merged = subscription_of(&name.project, &record);
    merged.push_config = request.push_config;
    let spec = spec_of(&merged)?;
    call.app
        .put_subscription(&record.bus, &record.name, spec)
        .await
        .map_err(status)
        .map(drop)
}

/// The message a Pub/Sub subscriber gets for a leased delivery.
pub(super) fn received(delivery: &PendingDelivery) -> Result<ReceivedMessage, Status> {
    let message = pubsub_message(&delivery.event.envelope)
        .map_err(|e| Status::internal(format!("a stored event cannot be read: {e}")))?;
    let ms = delivery.event.ingested_ms;
    Ok(ReceivedMessage {
        ack_id: AckId::of(delivery).to_string(),
        message: Some(PubsubMessage {
            data: message.data,
            attributes: message.attributes.into_iter().collect(),
            message_id: delivery.event.id.clone(),
            publish_time: Some({
                let (seconds, nanos) = seconds_nanos(ms);
                prost_types::Timestamp { seconds, nanos }
            }),
            ordering_key: delivery.event.ordering_key.clone().unwrap_or_default(),
        }),
        delivery_attempt: i32::try_from(delivery.attempts).unwrap_or(i32::MAX),
    })
}

/// The pull subscription a consumer names, and the scope it needs.
pub(super) fn consumed(call: &Call, subscription: &str) -> Result<Arc<SubscriptionRecord>, Status> {
    let name = names::subscription(subscription)?;
    let record = names::find_subscription(&call.app, &name.id)?;
    call.require(Need::Pull(record.bus.clone()))?;
    Ok(record)
}

pub(super) async fn pull(call: Call, request: PullRequest) -> Result<PullResponse, Status> {
    let record = consumed(&call, &request.subscription)?;
    // A negative count is as out of range as 0.
    let max = usize::try_from(request.max_messages).unwrap_or(0);
    #[expect(
        deprecated,
        reason = "clients still send return_immediately, and Pub/Sub still honours it"
    )]
    let wait = if request.return_immediately {
        Duration::ZERO
    } else {
        PULL_WAIT
    };
    let leased = call
        .app
        .pull(&record, max, wait, None)
        .await
        .map_err(status)?;
    Ok(PullResponse {
        received_messages: leased.iter().map(received).collect::<Result<_, _>>()?,
    })
}

pub(super) async fn acknowledge(call: Call, request: AcknowledgeRequest) -> Result<(), Status> {
    let record = consumed(&call, &request.subscription)?;
    call.app
        .acknowledge(&record, &request.ack_ids)
        .await
        .map_err(status)
        .map(drop)
}

pub(super) async fn modify_ack_deadline(
    call: Call,
    request: ModifyAckDeadlineRequest,
) -> Result<(), Status> {
    let record = consumed(&call, &request.subscription)?;
    let seconds = u32::try_from(request.ack_deadline_seconds)
        .map_err(|_| Status::invalid_argument("ack_deadline_seconds must be 0 to 600"))?;
    call.app
        .modify_ack_deadline(&record, &request.ack_ids, seconds)
        .await
        .map_err(status)
        .map(drop)
}

/// Seek to a time is a replay of the bus's archive from that time to now, to this subscription
/// alone: what was published since is delivered again, acknowledged or not. Messages from
/// before the time that are still unacknowledged stay so (Pub/Sub would acknowledge them).
/// Without an archive there is nothing to seek in.
pub(super) async fn seek(call: Call, request: SeekRequest) -> Result<SeekResponse, Status> {
    let name = names::subscription(&request.subscription)?;
    call.require(Need::Admin)?;
    let record = names::find_subscription(&call.app, &name.id)?;
    let time = match request.target {
        Some(seek_request::Target::Time(time)) => time,
        Some(seek_request::Target::Snapshot(_)) => {
            return Err(Status::unimplemented(
                "snapshots are not supported; Seek to a time replays the bus's archive",
            ));
        }
        None => return Err(Status::invalid_argument("Seek needs a time")),
    };
    let from_ms = to_ms(time.seconds, time.nanos)
        .ok_or_else(|| Status::invalid_argument("the time is before 1970"))?;
    let index = call
        .app
        .catalog()
        .bus(&record.bus)
        .ok_or_else(|| Status::not_found(format!("bus {:?} is gone", record.bus)))?;
    // An archive of everything if there is one: it surely has the subscription's messages.
    let archive = index
        .archives()
        .min_by_key(|a| (a.spec.pattern.is_some(), a.name.clone()))
        .map(|a| a.name.clone())
        .ok_or_else(|| {
            Status::failed_precondition(format!(
                "Seek replays the archive of bus {:?}, which has none: create one (PUT /v1/buses/{}/archives/NAME) before the messages to seek back to are published",
                record.bus, record.bus
            ))
        })?;
    let now = now_ms();
    if from_ms >= now {
        // Seeking to now or later acknowledges nothing here and replays nothing.
        return Ok(SeekResponse {});
    }
    let spec = ReplaySpec {
        name: format!("seek-{}-{now}", record.name),
        bus: record.bus.clone(),
        archive,
        from_ms,
        to_ms: now,
        subscriptions: Some(vec![record.name.clone()]),
    };
    call.app.start_replay(spec).await.map_err(status)?;
    Ok(SeekResponse {})
}
