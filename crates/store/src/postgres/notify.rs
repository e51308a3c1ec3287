//! The messages nodes send each other through NOTIFY on the deployment's channel: how a
//! committed change is told ([`pending`], [`catalog`]) and read back ([`parse`]).
//!
//! Writers NOTIFY inside their transactions, so a message is delivered only for a committed
//! change: `p:<ids>` for new pending deliveries of those subscriptions (comma-separated),
//! `c` for a catalog change (a bus, subscription, archive or followed document put or deleted,
//! or leases released or handed over).
//!
//! Invariant: every payload stays below PostgreSQL's 8000-byte limit; a long list of
//! subscriptions goes as several messages. Must not: carry anything but ids (payloads are
//! visible to every session that listens on the channel).

use tokio_postgres::GenericClient;

use super::conn::Session;
use crate::{Change, StoreError};

const NOTIFY: &str = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload";

/// A payload stays below PostgreSQL's 8000-byte limit.
const MAX_PAYLOAD: usize = 7_900;
const PENDING_PREFIX: &str = "p:";
const CATALOG_PAYLOAD: &str = "c";

/// Tells listeners (at commit) which subscriptions got new pending deliveries.
pub(super) async fn pending<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    channel: &str,
    subscriptions: impl IntoIterator<Item = u64>,
) -> Result<(), StoreError> {
    let payloads = pending_payloads(subscriptions);
    if !payloads.is_empty() {
        db.execute(NOTIFY, &[&channel, &payloads]).await?;
    }
    Ok(())
}

/// Tells listeners (at commit) that the catalog changed.
pub(super) async fn catalog<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    channel: &str,
) -> Result<(), StoreError> {
    db.execute(NOTIFY, &[&channel, &vec![CATALOG_PAYLOAD]])
        .await?;
    Ok(())
}

/// The change a payload tells of; `None` for one this version does not know.
pub(super) fn parse(payload: &str) -> Option<Change> {
    if payload == CATALOG_PAYLOAD {
        return Some(Change::Catalog);
    }
    let ids = payload.strip_prefix(PENDING_PREFIX)?;
    Some(Change::Pending(
        ids.split(',').filter_map(|id| id.parse().ok()).collect(),
    ))
}

/// The subscriptions' ids, once each, split so that no payload is too long.
fn pending_payloads(subscriptions: impl IntoIterator<Item = u64>) -> Vec<String> {
    let mut subscriptions: Vec<u64> = subscriptions.into_iter().collect();
    subscriptions.sort_unstable();
    subscriptions.dedup();
    let mut payloads = Vec::new();
    let mut current = String::from(PENDING_PREFIX);
    for sub in subscriptions {
        let id = sub.to_string();
        if current.len() + id.len() + 1 > MAX_PAYLOAD {
            payloads.push(std::mem::replace(
                &mut current,
                String::from(PENDING_PREFIX),
            ));
        }
        if current.len() > PENDING_PREFIX.len() {
            current.push(',');
        }
        current.push_str(&id);
    }
    if current.len() > PENDING_PREFIX.len() {
        payloads.push(current);
    }
    payloads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        assert_eq!(parse("c"), Some(Change::Catalog));
        assert_eq!(parse("p:1,22,3"), Some(Change::Pending(vec![1, 22, 3])));
        assert_eq!(parse("x"), None);
    }

    #[test]
    fn pending_payloads_read_back_as_the_ids_they_tell() {
        let ids: Vec<u64> = (1..=3_000).rev().collect();
        let payloads = pending_payloads(ids.iter().copied().chain([7, 7]));
        assert!(payloads.len() > 1, "a long list is split");
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let mut heard = Vec::new();
        for payload in &payloads {
            match parse(payload) {
                Some(Change::Pending(part)) => heard.extend(part),
                other => panic!("{payload:?} read as {other:?}"),
            }
        }
        assert_eq!(heard, (1..=3_000).collect::<Vec<u64>>());
    }
}
