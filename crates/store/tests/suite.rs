//! The store test suite: every `Store` implementation must pass it. The same functions run
//! against the embedded store and against PostgreSQL.
//!
//! PostgreSQL tests use the database at `SWITCHYARD_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`), each in a fresh schema of its own that it drops at
//! the end. If the variable is unset and no server answers, they are skipped (loudly); if it is
//! set, an unreachable server fails them. The TLS tests run where that server offers TLS
//! (`ssl = on`) and are skipped, saying so, where it does not; the one that verifies the server's
//! certificate needs the CA that signed it in `SWITCHYARD_TEST_POSTGRES_CA`.

#![allow(
    clippy::disallowed_methods,
    clippy::print_stderr,
    reason = "a test harness: its receivers are untracked tasks, its deadlines are real time against real processes, its clients talk to loopback, and it tells the person running it why a test skipped"
)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use switchyard_model::{
    AttemptClass, AttemptOutcome, Event, TraceContext, now_ms, parse_subscription_spec,
};
use switchyard_store::{
    ArchiveCursor, Change, ClusterStore, DeadReason, DeliveryState, DocumentKind, EmbeddedStore,
    Lease, NewEvent, OnceKey, Outcome, OutcomeKind, PendingDelivery, PendingOrder, PostgresStore,
    PullRequest, Store, StoreError, StoreOptions, SubscriptionStats,
};
use switchyard_test_support::{TestDatabase, temp_dir};

fn spec() -> switchyard_model::SubscriptionSpec {
    parse_subscription_spec(r#"{"destination":{"url":"http://127.0.0.1:9/"}}"#).unwrap()
}

fn event(id: &str, at: u64) -> Arc<Event> {
    Arc::new(Event {
        id: id.into(),
        envelope: format!("{{\"id\":\"{id}\"}}"),
        ingested_ms: at,
        hops: 2,
        trace: TraceContext::new_root(),
        ordering_key: None,
        explicit_id: false,
    })
}

fn check_accounting(stats: &SubscriptionStats) {
    assert_eq!(
        stats.accepted,
        stats.delivered + stats.dead + stats.pending + stats.purged,
        "{stats:?}"
    );
}

fn outcome(sub: u64, delivery: u64, attempts: u32, kind: OutcomeKind) -> Outcome {
    Outcome {
        subscription: sub,
        delivery,
        attempts,
        status: Some(503),
        error: Some("HTTP 503".into()),
        kind,
        started_ms: 1_000 + u64::from(attempts),
        duration_ms: 2,
        class: AttemptClass::Status5xx,
    }
}

async fn catalog(store: &dyn Store) {
    assert!(matches!(
        store.get_bus("b").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.put_subscription("b", "s", spec()).await,
        Err(StoreError::NotFound(_))
    ));
    let (_, created) = store.put_bus("b", Default::default()).await.unwrap();
    assert!(created);
    let (_, created) = store.put_bus("b", Default::default()).await.unwrap();
    assert!(!created);
    let (first, created) = store.put_subscription("b", "s", spec()).await.unwrap();
    assert!(created);
    let (again, created) = store.put_subscription("b", "s", spec()).await.unwrap();
    assert!(!created);
    assert_eq!(first.id, again.id, "an update keeps the subscription's id");
    store.put_bus("other", Default::default()).await.unwrap();
    store.put_subscription("other", "s", spec()).await.unwrap();
    assert_eq!(store.list_subscriptions(Some("b")).await.unwrap().len(), 1);
    assert_eq!(store.list_subscriptions(None).await.unwrap().len(), 2);
    assert!(matches!(
        store.delete_bus("b", false).await,
        Err(StoreError::Conflict(_))
    ));
    let removed = store.delete_bus("b", true).await.unwrap();
    assert_eq!(removed.len(), 1);
    let (recreated, _) = {
        store.put_bus("b", Default::default()).await.unwrap();
        store.put_subscription("b", "s", spec()).await.unwrap()
    };
    assert_ne!(recreated.id, first.id, "ids are never reused");
    assert_eq!(
        store.stats(recreated.id).await.unwrap(),
        SubscriptionStats::default()
    );
}

async fn delivery_lifecycle(store: &dyn Store) {
    store.put_bus("life", Default::default()).await.unwrap();
    let (a, _) = store.put_subscription("life", "a", spec()).await.unwrap();
    let (b, _) = store.put_subscription("life", "b", spec()).await.unwrap();
    let created = store
        .append(vec![
            NewEvent {
                bus: "b".into(),
                event: event("e1", 1_000),
                subscriptions: vec![a.id, b.id],
                archives: vec![],
                once: None,
            },
            NewEvent {
                bus: "b".into(),
                event: event("e2", 2_000),
                subscriptions: vec![a.id],
                archives: vec![],
                once: None,
            },
            NewEvent {
                bus: "b".into(),
                event: event("e3", 3_000),
                subscriptions: vec![],
                archives: vec![],
                once: None,
            },
            NewEvent {
                bus: "b".into(),
                event: event("e4", 4_000),
                subscriptions: vec![9_999_999],
                archives: vec![],
                once: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        created.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 1, 0, 0]
    );
    let pending_a = store
        .load_pending(a.id, 10, PendingOrder::Due)
        .await
        .unwrap();
    assert_eq!(
        pending_a
            .iter()
            .map(|d| d.event.id.as_str())
            .collect::<Vec<_>>(),
        ["e1", "e2"]
    );
    assert_eq!(pending_a[0].event.envelope, "{\"id\":\"e1\"}");
    let stats = store.stats(a.id).await.unwrap();
    assert_eq!(
        (stats.accepted, stats.pending, stats.oldest_pending_since_ms),
        (2, 2, Some(1_000))
    );

    // e1 fails and is rescheduled after e2: due order changes, oldest stays e1.
    let e1_a = pending_a[0].id;
    store
        .record_outcomes(vec![outcome(
            a.id,
            e1_a,
            1,
            OutcomeKind::Retry { due_ms: 50_000 },
        )])
        .await
        .unwrap();
    let order: Vec<_> = store
        .load_pending(a.id, 10, PendingOrder::Due)
        .await
        .unwrap()
        .iter()
        .map(|d| (d.event.id.clone(), d.attempts))
        .collect();
    assert_eq!(order, [("e2".to_string(), 0), ("e1".to_string(), 1)]);
    assert_eq!(store.stats(a.id).await.unwrap().failed_attempts, 1);

    // e2 delivered, e1 dead.
    let e2_a = pending_a[1].id;
    store
        .record_outcomes(vec![
            outcome(a.id, e2_a, 1, OutcomeKind::Delivered),
            outcome(
                a.id,
                e1_a,
                2,
                OutcomeKind::Dead {
                    reason: DeadReason::MaxAttempts,
                },
            ),
        ])
        .await
        .unwrap();
    let stats = store.stats(a.id).await.unwrap();
    assert_eq!(
        (
            stats.delivered,
            stats.dead,
            stats.pending,
            stats.failed_attempts
        ),
        (1, 1, 0, 2)
    );
    assert_eq!(stats.oldest_pending_since_ms, None);
    check_accounting(&stats);
    let dead = store.list_dead_letters(a.id, None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].event_id.as_str(), dead[0].attempts, dead[0].reason),
        ("e1", 2, DeadReason::MaxAttempts)
    );
    assert_eq!(dead[0].envelope, "{\"id\":\"e1\"}");
    assert_eq!(dead[0].last_status, Some(503));

    // Outcomes for deliveries that are gone change nothing.
    store
        .record_outcomes(vec![outcome(a.id, e2_a, 2, OutcomeKind::Delivered)])
        .await
        .unwrap();
    assert_eq!(store.stats(a.id).await.unwrap(), stats);

    // Event collection keeps what b still needs, and what dead letters refer to survives via copy.
    store.maintain().await.unwrap();
    let pending_b = store
        .load_pending(b.id, 10, PendingOrder::Due)
        .await
        .unwrap();
    assert_eq!(pending_b.len(), 1);
    assert_eq!(pending_b[0].event.id, "e1");

    // Redrive: back to pending with a fresh window, after event collection removed nothing it needs.
    assert_eq!(store.redrive(a.id, None).await.unwrap(), 1);
    let stats = store.stats(a.id).await.unwrap();
    assert_eq!((stats.dead, stats.pending), (0, 1));
    check_accounting(&stats);
    let redriven = store
        .load_pending(a.id, 10, PendingOrder::Due)
        .await
        .unwrap();
    assert_eq!(
        (redriven[0].event.id.as_str(), redriven[0].attempts),
        ("e1", 0)
    );
    assert!(
        redriven[0].id > e1_a,
        "a redriven delivery gets a fresh, later id"
    );

    // Purge.
    store
        .record_outcomes(vec![outcome(
            a.id,
            redriven[0].id,
            1,
            OutcomeKind::Dead {
                reason: DeadReason::NonRetryableStatus,
            },
        )])
        .await
        .unwrap();
    // By id: an unknown one purges nothing, a known one itself only; then all.
    assert_eq!(
        store
            .purge_dead_letters(a.id, Some(vec![u64::MAX]))
            .await
            .unwrap(),
        0
    );
    let purged = store
        .purge_dead_letters(a.id, Some(vec![redriven[0].id]))
        .await;
    assert_eq!(purged.unwrap(), 1);
    assert_eq!(store.purge_dead_letters(a.id, None).await.unwrap(), 0);
    let stats = store.stats(a.id).await.unwrap();
    assert_eq!((stats.dead, stats.purged), (0, 1));
    check_accounting(&stats);

    // Deleting a subscription removes its rows; b's delivery is untouched.
    store.delete_subscription("life", "a").await.unwrap();
    assert!(matches!(
        store.stats(a.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .load_pending(a.id, 10, PendingOrder::Due)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .load_pending(b.id, 10, PendingOrder::Due)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn concurrent_appends_share_commits_and_lose_nothing(store: Arc<dyn Store>) {
    store.put_bus("many", Default::default()).await.unwrap();
    let (s, _) = store.put_subscription("many", "s", spec()).await.unwrap();
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for batch in 0..25 {
                let events = (0..10)
                    .map(|i| NewEvent {
                        bus: "b".into(),
                        event: event(&format!("w{writer}-{batch}-{i}"), 10),
                        subscriptions: vec![s.id],
                        archives: vec![],
                        once: None,
                    })
                    .collect();
                store.append(events).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let pending = store
        .load_pending(s.id, 10_000, PendingOrder::Due)
        .await
        .unwrap();
    assert_eq!(pending.len(), 2_000);
    let mut ids: Vec<u64> = pending.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2_000, "delivery ids are unique");
    assert_eq!(store.stats(s.id).await.unwrap().pending, 2_000);
}

async fn redrive_of_many_dead_letters_misses_none(store: &dyn Store) {
    store.put_bus("dead", Default::default()).await.unwrap();
    let (s, _) = store.put_subscription("dead", "s", spec()).await.unwrap();
    let events = (0..12_000)
        .map(|i| NewEvent {
            bus: "b".into(),
            event: event(&format!("d{i}"), 1),
            subscriptions: vec![s.id],
            archives: vec![],
            once: None,
        })
        .collect();
    let created = store.append(events).await.unwrap();
    let outcomes = created
        .iter()
        .flatten()
        .map(|d| {
            outcome(
                s.id,
                d.id,
                1,
                OutcomeKind::Dead {
                    reason: DeadReason::MaxAge,
                },
            )
        })
        .collect();
    store.record_outcomes(outcomes).await.unwrap();
    assert_eq!(store.stats(s.id).await.unwrap().dead, 12_000);
    assert_eq!(store.redrive(s.id, None).await.unwrap(), 12_000);
    let stats = store.stats(s.id).await.unwrap();
    assert_eq!((stats.dead, stats.pending), (0, 12_000));
    check_accounting(&stats);
    assert_eq!(
        store
            .load_pending(s.id, 20_000, PendingOrder::Due)
            .await
            .unwrap()
            .len(),
        12_000
    );
}

async fn documents(store: &dyn Store) {
    let (first, created) = store
        .put_document(DocumentKind::Source, "gh", "{\"v\":1}".into())
        .await
        .unwrap();
    assert!(created);
    store
        .put_document(DocumentKind::Connection, "gh", "{\"c\":1}".into())
        .await
        .unwrap();
    let (second, created) = store
        .put_document(DocumentKind::Source, "gh", "{\"v\":2}".into())
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(
        second.created_ms, first.created_ms,
        "a replacement keeps its creation time"
    );
    let sources = store.list_documents(DocumentKind::Source).await.unwrap();
    assert_eq!(sources.len(), 1, "kinds do not mix");
    assert_eq!(sources[0].body, "{\"v\":2}");
    store
        .delete_document(DocumentKind::Source, "gh")
        .await
        .unwrap();
    assert!(matches!(
        store.delete_document(DocumentKind::Source, "gh").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .list_documents(DocumentKind::Connection)
            .await
            .unwrap()
            .len(),
        1
    );
    // Created once: racing creators all get the first one.
    let create = |body: &str| store.create_document(DocumentKind::Key, "k", body.to_string());
    let (a, b, c) = tokio::join!(create("a"), create("b"), create("c"));
    let bodies = [a.unwrap().body, b.unwrap().body, c.unwrap().body];
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    let keys = store.list_documents(DocumentKind::Key).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].body, bodies[0]);
}

async fn repeated_publisher_ids_are_not_appended_twice(store: &dyn Store) {
    store.put_bus("dedup", Default::default()).await.unwrap();
    let (s, _) = store.put_subscription("dedup", "s", spec()).await.unwrap();
    let explicit = |at| {
        let mut e = (*event("same-id", at)).clone();
        e.explicit_id = true;
        NewEvent {
            bus: "dedup".into(),
            event: Arc::new(e),
            subscriptions: vec![s.id],
            archives: vec![],
            once: None,
        }
    };
    let first = store.append(vec![explicit(now_ms())]).await.unwrap();
    let again = store
        .append(vec![explicit(now_ms()), explicit(now_ms())])
        .await
        .unwrap();
    assert_eq!(first[0].len(), 1);
    assert!(
        again.iter().all(Vec::is_empty),
        "within the window, the id is known"
    );
    assert_eq!(store.stats(s.id).await.unwrap().accepted, 1);
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// An event of a scheduled tick on bus `tick`, for subscription `sub`.
fn tick(sub: u64, id: &str, key: &str, tick_ms: u64) -> NewEvent {
    NewEvent {
        bus: "tick".into(),
        event: event(id, now_ms()),
        subscriptions: vec![sub],
        archives: vec![],
        once: Some(OnceKey {
            key: key.into(),
            tick_ms,
        }),
    }
}

/// How many deliveries each append of `events` made, one append each, all at once.
async fn append_at_once(stores: &[Arc<dyn Store>], events: Vec<NewEvent>) -> Vec<usize> {
    let tasks: Vec<_> = events
        .into_iter()
        .zip(stores.iter().cycle())
        .map(|(new, store)| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.append(vec![new]).await.unwrap()[0].len() })
        })
        .collect();
    let mut made = Vec::new();
    for task in tasks {
        made.push(task.await.unwrap());
    }
    made
}

async fn ticks_become_one_event_each(store: Arc<dyn Store>) {
    store.put_bus("tick", Default::default()).await.unwrap();
    let (s, _) = store.put_subscription("tick", "s", spec()).await.unwrap();
    let t = now_ms() / 60_000 * 60_000;
    let made = append_at_once(
        std::slice::from_ref(&store),
        vec![
            tick(s.id, "race-1", "tick/r", t),
            tick(s.id, "race-2", "tick/r", t),
        ],
    )
    .await;
    assert_eq!(
        made.iter().sum::<usize>(),
        1,
        "one tick, one event: {made:?}"
    );
    // In one batch too the first stands; another tick, or another key, is another event.
    let created = store
        .append(vec![
            tick(s.id, "again", "tick/r", t),
            tick(s.id, "next", "tick/r", t + 60_000),
            tick(s.id, "other", "tick/o", t),
            tick(s.id, "next-again", "tick/r", t + 60_000),
        ])
        .await
        .unwrap();
    let made: Vec<usize> = created.iter().map(Vec::len).collect();
    assert_eq!(made, [0, 1, 1, 0]);
    assert_eq!(store.stats(s.id).await.unwrap().accepted, 3);
    assert!(
        matches!(
            store.event_trail("tick", "again").await,
            Err(StoreError::NotFound(_))
        ),
        "a dropped tick leaves no event"
    );
    // Keys are forgotten 7 days after their tick, and not before.
    let old = t - 8 * DAY_MS;
    let first = store.append(vec![tick(s.id, "old", "tick/r", old)]).await;
    assert_eq!(first.unwrap()[0].len(), 1);
    let again = store.append(vec![tick(s.id, "old-2", "tick/r", old)]).await;
    assert!(again.unwrap()[0].is_empty());
    store.maintain().await.unwrap();
    let after = store.append(vec![tick(s.id, "old-3", "tick/r", old)]).await;
    assert_eq!(after.unwrap()[0].len(), 1, "collected after 7 days");
    let recent = store.append(vec![tick(s.id, "late", "tick/r", t)]).await;
    assert!(recent.unwrap()[0].is_empty(), "kept within 7 days");
}

fn keyed(id: &str, key: Option<&str>) -> Arc<Event> {
    let mut event = Arc::unwrap_or_clone(event(id, now_ms()));
    event.ordering_key = key.map(String::from);
    Arc::new(event)
}

fn ids(deliveries: &[PendingDelivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.event.id.clone()).collect()
}

/// Pull leases, on `stores` (one store, or several nodes of one database): each due delivery
/// is leased once while its lease lasts, comes back when it expires or is given back, and an
/// ordered subscription hands out a key's next delivery only once the one before is done.
async fn pull_leases(stores: &[Arc<dyn Store>]) {
    let store = &stores[0];
    store.put_bus("pull", Default::default()).await.unwrap();
    let (p, _) = store.put_subscription("pull", "p", spec()).await.unwrap();
    let new = |id: &str, key: Option<&str>, sub: u64| NewEvent {
        bus: "pull".into(),
        event: keyed(id, key),
        subscriptions: vec![sub],
        archives: vec![],
        once: None,
    };
    store
        .append((1..=5).map(|i| new(&format!("p{i}"), None, p.id)).collect())
        .await
        .unwrap();
    let now = now_ms();
    let request = |limit: usize, now_ms: u64, ordered: bool| PullRequest {
        limit,
        now_ms,
        until_ms: now_ms + 60_000,
        ordered,
    };
    let first = store.pull(p.id, request(3, now, false)).await.unwrap();
    assert_eq!(ids(&first), ["p1", "p2", "p3"]);
    assert!(
        first
            .iter()
            .all(|d| d.attempts == 1 && d.due_ms == now + 60_000)
    );
    let rest = store.pull(p.id, request(10, now, false)).await.unwrap();
    assert_eq!(ids(&rest), ["p4", "p5"]);
    assert!(
        store
            .pull(p.id, request(10, now, false))
            .await
            .unwrap()
            .is_empty(),
        "all leased"
    );
    // Expired leases are due again: nodes pulling at once share them, none twice.
    let later = now + 60_001;
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            tokio::spawn(async move { store.pull(p.id, request(2, later, false)).await.unwrap() })
        })
        .collect();
    let mut again = Vec::new();
    for task in tasks {
        again.extend(task.await.unwrap());
    }
    let mut seen = ids(&again);
    seen.sort();
    assert_eq!(seen, ["p1", "p2", "p3", "p4", "p5"], "each leased once");
    assert!(again.iter().all(|d| d.attempts == 2));
    // A stale lease moves nothing; a current one given back is due at once.
    let p1 = again.iter().find(|d| d.event.id == "p1").unwrap();
    let stale = Lease {
        delivery: p1.id,
        attempts: 1,
        until_ms: later,
    };
    assert_eq!(store.extend_leases(p.id, vec![stale]).await.unwrap(), 0);
    let current = Lease {
        delivery: p1.id,
        attempts: 2,
        until_ms: later,
    };
    assert_eq!(store.extend_leases(p.id, vec![current]).await.unwrap(), 1);
    let back = store.pull(p.id, request(10, later, false)).await.unwrap();
    assert_eq!(ids(&back), ["p1"]);
    assert_eq!(back[0].attempts, 3);
    // An acknowledgement is an outcome like a push attempt's.
    let acks = again
        .iter()
        .filter(|d| d.event.id != "p1")
        .map(|d| outcome(p.id, d.id, d.attempts, OutcomeKind::Delivered))
        .collect();
    store.record_outcomes(acks).await.unwrap();
    let stats = store.stats(p.id).await.unwrap();
    assert_eq!((stats.delivered, stats.pending), (4, 1));
    let all = again.iter().map(|d| d.id).collect();
    assert_eq!(store.pending_among(p.id, all).await.unwrap(), [p1.id]);
    check_accounting(&stats);

    let (q, _) = store.put_subscription("pull", "q", spec()).await.unwrap();
    store
        .append(vec![
            new("a", Some("k1"), q.id),
            new("b", Some("k1"), q.id),
            new("c", Some("k2"), q.id),
            new("d", None, q.id),
            new("e", Some("k2"), q.id),
        ])
        .await
        .unwrap();
    let now = now_ms();
    let heads = store.pull(q.id, request(10, now, true)).await.unwrap();
    assert_eq!(ids(&heads), ["a", "c", "d"], "one per key, oldest first");
    let unordered = store.pull(q.id, request(10, now, false)).await.unwrap();
    assert_eq!(
        ids(&unordered),
        ["b", "e"],
        "unordered, the others are due too"
    );
    let a = &heads[0];
    store
        .record_outcomes(vec![outcome(q.id, a.id, 1, OutcomeKind::Delivered)])
        .await
        .unwrap();
    let c = &heads[1];
    store
        .extend_leases(
            q.id,
            vec![Lease {
                delivery: c.id,
                attempts: 1,
                until_ms: now,
            }],
        )
        .await
        .unwrap();
    let next = store
        .pull(q.id, request(10, now + 60_001, true))
        .await
        .unwrap();
    assert_eq!(
        ids(&next),
        ["b", "c", "d"],
        "b once a is done; c again, before e"
    );
}

fn archive_spec(retention_days: f64) -> switchyard_model::ArchiveSpec {
    switchyard_model::ArchiveSpec {
        retention_days,
        ..Default::default()
    }
}

async fn archives(store: &dyn Store) {
    assert!(matches!(
        store.put_archive("nobus", "a", archive_spec(0.0)).await,
        Err(StoreError::NotFound(_))
    ));
    store.put_bus("arch", Default::default()).await.unwrap();
    let (s, _) = store.put_subscription("arch", "s", spec()).await.unwrap();
    let (forever, created) = store
        .put_archive("arch", "all", archive_spec(0.0))
        .await
        .unwrap();
    assert!(created);
    let (week, _) = store
        .put_archive("arch", "week", archive_spec(7.0))
        .await
        .unwrap();
    let (again, created) = store
        .put_archive("arch", "all", archive_spec(0.0))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, forever.id, "an update keeps the archive's id");
    assert!(matches!(
        store.delete_bus("arch", false).await,
        Err(StoreError::Conflict(_))
    ));

    let day = 86_400_000;
    let now = now_ms();
    // Ten events a day apart, the oldest ten days ago; only the even ones go to "week".
    let events: Vec<NewEvent> = (0..10u64)
        .map(|i| NewEvent {
            bus: "arch".into(),
            event: event(&format!("arch-{i}"), now - (10 - i) * day),
            subscriptions: if i == 9 { vec![s.id] } else { vec![] },
            archives: if i % 2 == 0 {
                vec![forever.id, week.id]
            } else {
                vec![forever.id]
            },
            once: None,
        })
        .collect();
    store.append(events).await.unwrap();
    assert_eq!(store.archive_stats(forever.id).await.unwrap().events, 10);
    assert_eq!(store.archive_stats(week.id).await.unwrap().events, 5);

    // Reading in pages keeps publish order and honours the range's ends.
    let (from, to) = (now - 8 * day, now - 3 * day);
    assert_eq!(store.count_archived(forever.id, from, to).await.unwrap(), 5);
    let mut seen = Vec::new();
    let mut after: Option<ArchiveCursor> = None;
    loop {
        let page = store
            .read_archive(forever.id, from, to, after, 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.cursor);
        seen.extend(page.iter().map(|a| a.event.id.clone()));
    }
    assert_eq!(seen, ["arch-2", "arch-3", "arch-4", "arch-5", "arch-6"]);

    // Upkeep drops what is past the retention: "week" keeps the events of the last 7 days.
    store.maintain().await.unwrap();
    let kept = store.archive_stats(week.id).await.unwrap();
    assert_eq!(kept.events, 3, "{kept:?}");
    assert!(kept.oldest_ms.unwrap() >= now - 7 * day);
    assert_eq!(store.archive_stats(forever.id).await.unwrap().events, 10);

    // A deleted archive is gone at once; its events are collected by upkeep.
    store.delete_archive("arch", "all").await.unwrap();
    assert!(matches!(
        store.get_archive("arch", "all").await,
        Err(StoreError::NotFound(_))
    ));
    store.maintain().await.unwrap();
    let left = store
        .read_archive(forever.id, 0, u64::MAX, None, 100)
        .await
        .unwrap();
    assert!(left.is_empty());
    assert_eq!(store.list_archives(Some("arch")).await.unwrap().len(), 1);
    store.delete_bus("arch", true).await.unwrap();
    assert!(store.list_archives(None).await.unwrap().is_empty());
    store.maintain().await.unwrap();
    assert!(
        store
            .read_archive(week.id, 0, u64::MAX, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// With no history retention, an event goes as soon as nothing pending needs it; its dead
/// letter's copy brings it back on redrive.
async fn history_without_retention(store: &dyn Store) {
    store.put_bus("h", Default::default()).await.unwrap();
    let (s, _) = store.put_subscription("h", "s", spec()).await.unwrap();
    let created = store
        .append(vec![
            NewEvent {
                bus: "h".into(),
                event: event("kept-while-pending", 10),
                subscriptions: vec![s.id],
                archives: vec![],
                once: None,
            },
            NewEvent {
                bus: "h".into(),
                event: event("unmatched", 10),
                subscriptions: vec![],
                archives: vec![],
                once: None,
            },
            NewEvent {
                bus: "h".into(),
                event: event("dies", 10),
                subscriptions: vec![s.id],
                archives: vec![],
                once: None,
            },
        ])
        .await
        .unwrap();
    assert!(matches!(
        store.event_trail("h", "unmatched").await,
        Err(StoreError::NotFound(_))
    ));
    let trail = store.event_trail("h", "kept-while-pending").await.unwrap();
    assert_eq!(trail.deliveries[0].state, DeliveryState::Pending);
    store.maintain().await.unwrap();
    let (first, dying) = (created[0][0].id, created[2][0].id);
    store
        .record_outcomes(vec![
            outcome(s.id, first, 1, OutcomeKind::Retry { due_ms: 20 }),
            outcome(s.id, first, 2, OutcomeKind::Delivered),
            outcome(
                s.id,
                dying,
                1,
                OutcomeKind::Dead {
                    reason: DeadReason::InvalidDestination,
                },
            ),
        ])
        .await
        .unwrap();
    let stats = store.stats(s.id).await.unwrap();
    assert_eq!(
        (stats.delivered, stats.dead, stats.failed_attempts),
        (1, 1, 2)
    );
    check_accounting(&stats);
    for id in ["kept-while-pending", "dies"] {
        assert!(
            matches!(
                store.event_trail("h", id).await,
                Err(StoreError::NotFound(_))
            ),
            "{id} is gone with its last delivery"
        );
    }
    let attempts = store.list_attempts(s.id, None, 10).await.unwrap();
    assert!(attempts.is_empty(), "the attempt log goes with its events");

    assert_eq!(store.redrive(s.id, None).await.unwrap(), 1);
    let trail = store.event_trail("h", "dies").await.unwrap();
    assert_eq!(trail.event.envelope, "{\"id\":\"dies\"}");
    assert_eq!(trail.deliveries[0].state, DeliveryState::Pending);
    let pending = store
        .load_pending(s.id, 10, PendingOrder::Publish)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].event.hops, 2);
}

/// The attempt log pages newest first, and the event trail shows each delivery's state.
async fn attempt_log_and_trail(store: &dyn Store) {
    store.put_bus("log", Default::default()).await.unwrap();
    let (s, _) = store.put_subscription("log", "s", spec()).await.unwrap();
    let (t, _) = store.put_subscription("log", "t", spec()).await.unwrap();
    let created = store
        .append(vec![NewEvent {
            bus: "log".into(),
            event: event("traced", now_ms()),
            subscriptions: vec![s.id, t.id],
            archives: vec![],
            once: None,
        }])
        .await
        .unwrap();
    let (ds, dt) = (created[0][0].id, created[0][1].id);
    let mut outcomes: Vec<Outcome> = (1..=4)
        .map(|n| outcome(s.id, ds, n, OutcomeKind::Retry { due_ms: 9 }))
        .collect();
    outcomes.push(outcome(s.id, ds, 5, OutcomeKind::Delivered));
    store.record_outcomes(outcomes).await.unwrap();
    let first = store.list_attempts(s.id, None, 3).await.unwrap();
    assert_eq!(
        first.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [5, 4, 3]
    );
    let last = &first[2];
    let rest = store
        .list_attempts(
            s.id,
            Some((last.started_ms, last.delivery, last.attempt)),
            10,
        )
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|a| a.attempt).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(first[0].outcome, AttemptOutcome::Delivered);
    assert_eq!(rest[0].event_id, "traced");

    let trail = store.event_trail("log", "traced").await.unwrap();
    let states: Vec<_> = trail
        .deliveries
        .iter()
        .map(|d| (d.subscription, d.state, d.attempts.len()))
        .collect();
    assert_eq!(
        states,
        [
            (s.id, DeliveryState::Delivered, 5),
            (t.id, DeliveryState::Pending, 0)
        ]
    );
    store
        .record_outcomes(vec![outcome(
            t.id,
            dt,
            1,
            OutcomeKind::Dead {
                reason: DeadReason::MaxAge,
            },
        )])
        .await
        .unwrap();
    let trail = store.event_trail("log", "traced").await.unwrap();
    assert_eq!(trail.deliveries[1].state, DeliveryState::Dead);
    assert_eq!(
        trail.deliveries[1].attempts[0].reason,
        Some(DeadReason::MaxAge)
    );
    store.purge_dead_letters(t.id, None).await.unwrap();
    let trail = store.event_trail("log", "traced").await.unwrap();
    assert_eq!(trail.deliveries[1].state, DeliveryState::Gone);
}

/// What `/metrics` shows of the store: a size that grows with what it keeps, and a pool only for
/// the store that has one.
async fn usage_grows_with_what_is_kept(store: &dyn Store) {
    let before = store.usage().await.unwrap();
    assert!(before.size_bytes > 0, "{before:?}");
    assert_eq!(
        before.pool.is_some(),
        store.cluster().is_some(),
        "{before:?}"
    );
    store.put_bus("sized", Default::default()).await.unwrap();
    let pad = "x".repeat(10_000);
    let events = (0..100)
        .map(|n| NewEvent {
            bus: "sized".into(),
            event: Arc::new(Event {
                envelope: format!("{{\"id\":\"sized-{n}\",\"pad\":\"{pad}\"}}"),
                ..(*event(&format!("sized-{n}"), now_ms())).clone()
            }),
            subscriptions: vec![],
            archives: vec![],
            once: None,
        })
        .collect();
    store.append(events).await.unwrap();
    let after = store.usage().await.unwrap();
    assert!(after.size_bytes > before.size_bytes, "{before:?} {after:?}");
    if let Some(pool) = after.pool {
        // The first call's connection went back to the pool before this one read it.
        assert!(
            pool.idle >= 1 && pool.idle + pool.in_use <= pool.max,
            "{after:?}"
        );
    }
    store.delete_bus("sized", true).await.unwrap();
}

async fn run_suite(store: Arc<dyn Store>) {
    store.check().await.unwrap();
    usage_grows_with_what_is_kept(store.as_ref()).await;
    archives(store.as_ref()).await;
    catalog(store.as_ref()).await;
    documents(store.as_ref()).await;
    repeated_publisher_ids_are_not_appended_twice(store.as_ref()).await;
    delivery_lifecycle(store.as_ref()).await;
    redrive_of_many_dead_letters_misses_none(store.as_ref()).await;
    attempt_log_and_trail(store.as_ref()).await;
    pull_leases(std::slice::from_ref(&store)).await;
    // Runs upkeep: after the tests whose history it could collect.
    ticks_become_one_event_each(Arc::clone(&store)).await;
    concurrent_appends_share_commits_and_lose_nothing(store).await;
}

/// Options without history, for [`history_without_retention`].
fn no_history() -> StoreOptions {
    StoreOptions {
        history_retention_ms: 0,
        ..StoreOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_suite() {
    let dir = temp_dir();
    let store =
        EmbeddedStore::open(&dir.path().join("store.redb"), StoreOptions::default()).unwrap();
    run_suite(Arc::new(store)).await;
}

#[tokio::test]
async fn embedded_store_keeps_everything_across_reopen() {
    let dir = temp_dir();
    let path = dir.path().join("store.redb");
    let id = {
        let store = EmbeddedStore::open(&path, StoreOptions::default()).unwrap();
        store.put_bus("b", Default::default()).await.unwrap();
        let (s, _) = store.put_subscription("b", "s", spec()).await.unwrap();
        store
            .append(vec![NewEvent {
                bus: "b".into(),
                event: event("kept", 5),
                subscriptions: vec![s.id],
                archives: vec![],
                once: None,
            }])
            .await
            .unwrap();
        store.put_bus("tick", Default::default()).await.unwrap();
        let made = store.append(vec![tick(s.id, "t", "tick/r", 60_000)]).await;
        assert_eq!(made.unwrap()[0].len(), 1);
        s.id
    };
    // The writer thread exits once the store is dropped; give it a moment to release the lock.
    let mut reopened = None;
    for _ in 0..100 {
        match EmbeddedStore::open(&path, StoreOptions::default()) {
            Ok(store) => {
                reopened = Some(store);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let store = reopened.expect("reopen");
    assert_eq!(store.get_subscription("b", "s").await.unwrap().id, id);
    let pending = store.load_pending(id, 10, PendingOrder::Due).await.unwrap();
    assert_eq!(pending[0].event.id, "kept");
    let again = store.append(vec![tick(id, "t-2", "tick/r", 60_000)]).await;
    assert!(
        again.unwrap()[0].is_empty(),
        "the tick's key survives a restart"
    );
}

#[tokio::test]
async fn embedded_store_collects_history_without_retention() {
    let dir = temp_dir();
    let store = EmbeddedStore::open(&dir.path().join("store.redb"), no_history()).unwrap();
    history_without_retention(&store).await;
}

#[tokio::test]
async fn embedded_store_has_no_cluster_side() {
    let dir = temp_dir();
    let store =
        EmbeddedStore::open(&dir.path().join("store.redb"), StoreOptions::default()).unwrap();
    assert!(store.cluster().is_none());
}

/// A store on this test's schema.
async fn store_in(db: &TestDatabase, options: StoreOptions) -> PostgresStore {
    PostgresStore::connect(&db.url(), options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_suite() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    run_suite(Arc::new(store_in(&db, StoreOptions::default()).await)).await;
}

/// The database's own tools back a PostgreSQL store up; the refusal says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_refuses_a_backup_naming_pg_dump() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = store_in(&db, StoreOptions::default()).await;
    match store.backup().await {
        Err(StoreError::Unsupported(message)) => assert!(message.contains("pg_dump"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_firing_one_tick_make_one_event() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    // Two nodes, so two writers and two transactions racing for each key.
    let nodes: Vec<Arc<dyn Store>> = vec![
        Arc::new(store_in(&db, StoreOptions::default()).await),
        Arc::new(store_in(&db, StoreOptions::default()).await),
    ];
    nodes[0].put_bus("tick", Default::default()).await.unwrap();
    let (s, _) = nodes[0]
        .put_subscription("tick", "s", spec())
        .await
        .unwrap();
    let t = now_ms() / 60_000 * 60_000;
    for round in 0..10u64 {
        let at = t + round * 60_000;
        let events = (0..4)
            .map(|i| tick(s.id, &format!("r{round}-{i}"), "tick/r", at))
            .collect();
        let made = append_at_once(&nodes, events).await;
        assert_eq!(made.iter().sum::<usize>(), 1, "round {round}: {made:?}");
    }
    assert_eq!(nodes[1].stats(s.id).await.unwrap().accepted, 10);
    // A node started later (or restarted) knows the keys too.
    let late = store_in(&db, StoreOptions::default()).await;
    let again = late.append(vec![tick(s.id, "late", "tick/r", t)]).await;
    assert!(again.unwrap()[0].is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_pulling_at_once_lease_each_delivery_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let nodes: Vec<Arc<dyn Store>> = vec![
        Arc::new(store_in(&db, StoreOptions::default()).await),
        Arc::new(store_in(&db, StoreOptions::default()).await),
    ];
    pull_leases(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_collects_history_without_retention() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    history_without_retention(&store_in(&db, no_history()).await).await;
}

/// Whether the server offers TLS; says why not when it does not.
async fn offers_tls(db: &TestDatabase) -> bool {
    let client = db.admin().await;
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        eprintln!(
            "skipped: the PostgreSQL at {} does not offer TLS (ssl = {ssl}); enable ssl to run the TLS tests",
            db.base
        );
    }
    ssl == "on"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_suite_over_tls() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    if !offers_tls(&db).await {
        return;
    }
    let application = db.schema.clone();
    let url = db.url_with(&format!("sslmode=require&application_name={application}"));
    let store = PostgresStore::connect(&url, StoreOptions::default())
        .await
        .unwrap();
    let client = db.admin().await;
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&application],
        )
        .await
        .unwrap();
    let (connections, encrypted): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        connections > 0,
        "the store's connections are not to be seen"
    );
    assert_eq!(
        encrypted, connections,
        "every connection of the store is encrypted"
    );
    run_suite(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_full_refuses_a_server_certificate_another_ca_signed() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    if !offers_tls(&db).await {
        return;
    }
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let stranger = params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let dir = temp_dir();
    let ca = dir.path().join("stranger.pem");
    std::fs::write(&ca, stranger.pem()).unwrap();
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = db.url_with(&format!("sslmode={mode}&sslrootcert={}", ca.display()));
        let refused = PostgresStore::connect(&url, StoreOptions::default()).await;
        let error = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("certificate"), "sslmode={mode}: {error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_ca_accepts_the_server_certificate_its_ca_signed() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let Ok(ca) = std::env::var("SWITCHYARD_TEST_POSTGRES_CA") else {
        eprintln!(
            "skipped: set SWITCHYARD_TEST_POSTGRES_CA to the CA file that signed the server's certificate"
        );
        return;
    };
    let url = db.url_with(&format!("sslmode=verify-ca&sslrootcert={ca}"));
    let store = PostgresStore::connect(&url, StoreOptions::default())
        .await
        .unwrap();
    documents(&store).await;
}

/// A bus with `count` subscriptions; returns their ids.
async fn subscriptions(store: &dyn Store, count: usize) -> HashSet<u64> {
    store.put_bus("nodes", Default::default()).await.unwrap();
    let mut ids = HashSet::new();
    for n in 0..count {
        let (s, _) = store
            .put_subscription("nodes", &format!("s{n}"), spec())
            .await
            .unwrap();
        ids.insert(s.id);
    }
    ids
}

fn set(ids: Vec<u64>) -> HashSet<u64> {
    ids.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_split_subscriptions_between_nodes() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let (a, b) = (
        store_in(&db, StoreOptions::default()).await,
        store_in(&db, StoreOptions::default()).await,
    );
    let all = subscriptions(&a, 7).await;
    let lease = 60_000;
    assert_eq!(set(a.claim_subscriptions("a", lease).await.unwrap()), all);
    // b joins: a holds everything, so b gets its share once a hands over what is above a's.
    assert!(b.claim_subscriptions("b", lease).await.unwrap().is_empty());
    let of_a = set(a.claim_subscriptions("a", lease).await.unwrap());
    assert_eq!(of_a.len(), 4);
    // Until a's lanes for the others drain and a hands them over, nobody takes them.
    assert!(b.claim_subscriptions("b", lease).await.unwrap().is_empty());
    for leaving in all.difference(&of_a) {
        a.hand_over_subscription("a", *leaving).await.unwrap();
    }
    assert_eq!(set(a.claim_subscriptions("a", lease).await.unwrap()), of_a);
    let of_b = set(b.claim_subscriptions("b", lease).await.unwrap());
    assert_eq!((of_a.len(), of_b.len()), (4, 3));
    assert!(of_a.is_disjoint(&of_b));
    assert_eq!(&of_a | &of_b, all);
    // Renewals are stable.
    assert_eq!(set(a.claim_subscriptions("a", lease).await.unwrap()), of_a);
    assert_eq!(set(b.claim_subscriptions("b", lease).await.unwrap()), of_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases_of_a_silent_node_move_when_they_expire() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let (a, b) = (
        store_in(&db, StoreOptions::default()).await,
        store_in(&db, StoreOptions::default()).await,
    );
    let all = subscriptions(&a, 4).await;
    let lease = 300;
    assert_eq!(set(a.claim_subscriptions("a", lease).await.unwrap()), all);
    // a stops renewing; b gets everything once a's leases (and heartbeat) are older than a lease.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let owned = set(b.claim_subscriptions("b", lease).await.unwrap());
        if owned == all {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b owns only {owned:?} of {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_release_hands_subscriptions_over_at_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let (a, b) = (
        store_in(&db, StoreOptions::default()).await,
        store_in(&db, StoreOptions::default()).await,
    );
    let all = subscriptions(&a, 3).await;
    let lease = 60_000;
    assert_eq!(set(a.claim_subscriptions("a", lease).await.unwrap()), all);
    assert!(b.claim_subscriptions("b", lease).await.unwrap().is_empty());
    let mut changes = b.changes();
    a.release_subscriptions("a").await.unwrap();
    assert_eq!(set(b.claim_subscriptions("b", lease).await.unwrap()), all);
    wait_for(&mut changes, |c| *c == Change::Catalog).await;
}

/// Waits (boundedly) for a change that `wanted` accepts, skipping others.
async fn wait_for(
    changes: &mut tokio::sync::broadcast::Receiver<Change>,
    wanted: impl Fn(&Change) -> bool,
) {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match changes.recv().await {
                Ok(change) if wanted(&change) => return,
                Ok(_) => {}
                Err(e) => panic!("changes ended: {e}"),
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the change did not arrive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_changes_reach_other_nodes() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let (a, b) = (
        store_in(&db, StoreOptions::default()).await,
        store_in(&db, StoreOptions::default()).await,
    );
    let mut changes = b.changes();
    a.put_bus("n", Default::default()).await.unwrap();
    wait_for(&mut changes, |c| *c == Change::Catalog).await;
    let (s, _) = a.put_subscription("n", "s", spec()).await.unwrap();
    wait_for(&mut changes, |c| *c == Change::Catalog).await;
    a.append(vec![NewEvent {
        bus: "n".into(),
        event: event("heard", now_ms()),
        subscriptions: vec![s.id],
        archives: vec![],
        once: None,
    }])
    .await
    .unwrap();
    wait_for(
        &mut changes,
        |c| matches!(c, Change::Pending(ids) if ids.contains(&s.id)),
    )
    .await;
    // Another deployment in another schema of the same database is not heard.
    let Some(other) = TestDatabase::create().await else {
        return;
    };
    let elsewhere = store_in(&other, StoreOptions::default()).await;
    elsewhere.put_bus("n", Default::default()).await.unwrap();
    // The sentinel: a change in this schema, committed after the other one. Notifications reach
    // a listener in commit order, so a heard change of the other schema would come first.
    a.append(vec![NewEvent {
        bus: "n".into(),
        event: event("sentinel", now_ms()),
        subscriptions: vec![s.id],
        archives: vec![],
        once: None,
    }])
    .await
    .unwrap();
    let quiet = tokio::time::timeout(Duration::from_secs(10), changes.recv()).await;
    assert!(
        matches!(&quiet, Ok(Ok(Change::Pending(ids))) if ids.contains(&s.id)),
        "heard another schema: {quiet:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_resyncs_everything_after_losing_its_connection() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = store_in(&db, StoreOptions::default()).await;
    let all = subscriptions(&store, 2).await;
    let mut changes = store.changes();
    // Notifications sent while the listener is away are lost, so it must announce everything.
    let killed: i64 = db
        .admin()
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE query = 'LISTEN \"switchyard_' || left(md5($1), 16) || '\"'",
            &[&db.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    wait_for(&mut changes, |c| *c == Change::Catalog).await;
    wait_for(
        &mut changes,
        |c| matches!(c, Change::Pending(ids) if set(ids.clone()) == all),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_starting_at_once_migrate_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let url = db.url();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url, StoreOptions::default()).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().expect("every node starts"));
    }
    let client = db.admin().await;
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), max(version)::int8 FROM {}.switchyard_schema_version",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap();
    let (count, latest): (i64, i64) = (row.get(0), row.get(1));
    assert!(latest >= 1);
    assert_eq!(count, latest, "each migration is applied once");
    stores[0].put_bus("b", Default::default()).await.unwrap();
    assert_eq!(stores[3].list_buses().await.unwrap().len(), 1);
}
