//! Scheduled rules and subscriptions: each tick of a `schedule` becomes one EventBridge
//! "Scheduled Event", delivered to the subscriptions that tick together, once per tick however
//! many nodes share the store.
//!
//! Owns the loop that finds due ticks (one task per node, woken at the next tick and at least
//! every second, so that new and changed schedules are seen) and the grouping: the enabled
//! targets of one EventBridge rule tick together, with one event and one delivery per target;
//! any other scheduled subscription ticks alone. A rate counts from the creation of the group's
//! oldest subscription.
//!
//! Must not: fire a tick twice, or fire one missed while switchyard was stopped or stalled. The
//! first is the store's once-per-tick key, committed in the same transaction as the event, so
//! every node tries every tick and exactly one commit wins; the second is the window: a tick fires
//! only while `tick <= now < tick + window` (a minute), and one found later is skipped and counted.
//!
//! Invariant: a group's cursor moves past a tick only once the tick fired, had fired on another
//! node, or was skipped; a commit that fails is tried again at the next wake while the tick is
//! still in its window.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use switchyard_model::{Schedule, now_ms, scheduled_event};
use switchyard_store::{NewEvent, OnceKey, SubscriptionRecord};

use crate::publish::{Origin, commit};
use crate::{App, ServerError};

/// The shortest `serve --schedule-minute-ms`: below it a rate would tick faster than the loop
/// can be relied on to wake.
pub const MIN_SCHEDULE_MINUTE_MS: u64 = 100;

/// The longest the loop sleeps, so that a schedule created or changed is seen within it.
const LONGEST_SLEEP_MS: u64 = 1_000;

/// How late a cron tick may still fire: one real minute, its own granularity.
const CRON_WINDOW_MS: u64 = 60_000;

/// Subscriptions that tick together.
struct Group {
    bus: String,
    /// The store's once-per-tick key: `"{bus}/{rule}"` for a rule's targets, `"sub:{id}"` for a
    /// subscription of its own, so that every node names a tick alike.
    key: String,
    /// What the event's `resources` name: the rule's ARN, or the subscription's as if it were
    /// a rule.
    rule_arn: String,
    schedule: Schedule,
    /// When the group's oldest subscription was created: where a rate counts from.
    anchor_ms: u64,
    members: Vec<Arc<SubscriptionRecord>>,
}

impl Group {
    fn window_ms(&self, minute_ms: u64) -> u64 {
        // A rate's minute is `--schedule-minute-ms`; a cron's is always real.
        if self.schedule.is_rate() {
            minute_ms
        } else {
            CRON_WINDOW_MS
        }
    }
}

/// Starts the loop on the app's tasks; it ends at shutdown.
pub(crate) fn start(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    let shutdown = app.shutdown().clone();
    app.tasks().spawn(async move {
        // Per group key, the last tick dealt with.
        let mut cursors: HashMap<String, u64> = HashMap::new();
        loop {
            let Some(app) = weak.upgrade() else { break };
            let wait = fire_due(&app, &mut cursors).await;
            drop(app);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => break,
            }
        }
    });
}

/// Fires every due tick; answers how long to sleep until the next one.
async fn fire_due(app: &App, cursors: &mut HashMap<String, u64>) -> Duration {
    let minute_ms = app.config().schedule_minute_ms;
    let groups = groups(app);
    cursors.retain(|key, _| groups.iter().any(|g| &g.key == key));
    let now = now_ms();
    let mut wake = now + LONGEST_SLEEP_MS;
    for group in &groups {
        let window = group.window_ms(minute_ms);
        // Seen for the first time (a new schedule, or this node just started): only a tick
        // still inside its window is due, none from before.
        let cursor = cursors
            .entry(group.key.clone())
            .or_insert_with(|| now.saturating_sub(window));
        while let Some(tick) = group
            .schedule
            .next_after(*cursor, group.anchor_ms, minute_ms)
        {
            if tick > now {
                wake = wake.min(tick);
                break;
            }
            if now >= tick.saturating_add(window) {
                for member in &group.members {
                    metrics(app, member)
                        .schedule_ticks_skipped
                        .fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(schedule = %group.key, tick_ms = tick, "a scheduled tick was missed (the node was stalled) and is skipped");
                *cursor = tick;
                continue;
            }
            match fire(app, group, tick).await {
                Ok(()) => *cursor = tick,
                Err(error) => {
                    tracing::warn!(schedule = %group.key, tick_ms = tick, %error, "a scheduled tick could not be committed; trying again");
                    break;
                }
            }
        }
    }
    Duration::from_millis(wake.saturating_sub(now_ms()).max(1))
}

/// Commits the tick's event with one delivery per member. A tick another node committed first
/// makes nothing here, and is no error.
async fn fire(app: &App, group: &Group, tick_ms: u64) -> Result<(), ServerError> {
    let context = app.origin_context();
    let event = scheduled_event(tick_ms, &group.rule_arn, &context)
        .map_err(|e| ServerError::Invalid(e.to_string()))?;
    let new = NewEvent {
        bus: group.bus.clone(),
        event: Arc::new(event),
        subscriptions: group.members.iter().map(|m| m.id).collect(),
        // Scheduled events are not on the bus in EventBridge: no archive keeps them.
        archives: Vec::new(),
        once: Some(OnceKey {
            key: group.key.clone(),
            tick_ms,
        }),
    };
    if commit(app, &group.bus, vec![new], Origin::Schedule).await? > 0 {
        for member in &group.members {
            metrics(app, member)
                .schedule_ticks
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn metrics(app: &App, member: &SubscriptionRecord) -> Arc<switchyard_metrics::SubscriptionMetrics> {
    app.metrics()
        .subscription(member.id, &member.bus, &member.name)
}

/// The enabled scheduled subscriptions of every bus, grouped. A rule's targets tick together
/// when they carry the rule's schedule; one edited (through the REST API) to a schedule of its
/// own ticks alone.
fn groups(app: &App) -> Vec<Group> {
    let aws = &app.config().aws;
    let mut groups: Vec<Group> = Vec::new();
    // Group index by (bus, rule).
    let mut rules: HashMap<(String, String), usize> = HashMap::new();
    for index in app.catalog().buses() {
        let mut scheduled: Vec<&Arc<SubscriptionRecord>> = index
            .subscriptions()
            .filter(|s| s.spec.enabled && s.spec.schedule.is_some())
            .collect();
        // By id, so that a rule's schedule is its oldest target's on every node.
        scheduled.sort_by_key(|s| s.id);
        for subscription in scheduled {
            let Some(text) = subscription.spec.schedule.as_deref() else {
                continue;
            };
            let rule = subscription
                .spec
                .eventbridge
                .as_ref()
                .map(|l| l.rule.clone());
            if let Some(rule) = &rule
                && let Some(&at) = rules.get(&(subscription.bus.clone(), rule.clone()))
                && groups[at].members[0].spec.schedule.as_deref() == Some(text)
            {
                let group = &mut groups[at];
                group.anchor_ms = group.anchor_ms.min(subscription.created_ms);
                group.members.push(Arc::clone(subscription));
                continue;
            }
            let schedule = match Schedule::parse(text) {
                Ok(schedule) => schedule,
                Err(error) => {
                    tracing::warn!(bus = %subscription.bus, subscription = %subscription.name, %error, "a stored schedule does not parse; it does not tick");
                    continue;
                }
            };
            let (key, rule_arn) = match &rule {
                Some(rule) if !rules.contains_key(&(subscription.bus.clone(), rule.clone())) => {
                    rules.insert((subscription.bus.clone(), rule.clone()), groups.len());
                    (
                        format!("{}/{rule}", subscription.bus),
                        aws.rule_arn(&subscription.bus, rule),
                    )
                }
                _ => (
                    format!("sub:{}", subscription.id),
                    aws.rule_arn(&subscription.bus, &subscription.name),
                ),
            };
            groups.push(Group {
                bus: subscription.bus.clone(),
                key,
                rule_arn,
                schedule,
                anchor_ms: subscription.created_ms,
                members: vec![Arc::clone(subscription)],
            });
        }
    }
    groups
}
