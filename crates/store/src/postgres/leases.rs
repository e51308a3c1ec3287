//! Which node runs which subscription: leases with an expiry, in the database's clock.
//!
//! A claim, in one transaction: the node records a heartbeat, renews its leases, counts the live
//! nodes (those that claimed within the lease) and the subscriptions, and moves towards its fair
//! share, ceil(subscriptions / live nodes): it marks leases above the share as leaving (so that a
//! node that joins gets work) and takes unowned or expired ones up to it. A leaving lease is still
//! renewed but no longer reported as owned; the node drains its lane and then hands it over
//! ([`hand_over`]), so that two nodes never deliver for one subscription while both are alive. Taking is race-free: a
//! lease row is only overwritten while expired (`ON CONFLICT ... WHERE`), and candidates are
//! picked with `SKIP LOCKED`, so nodes claiming at once take different subscriptions.
//!
//! Must not: read the node's own clock (nodes' clocks may disagree), or decide anything about
//! deliveries: the dispatcher runs what the claim returns.

use tokio_postgres::Transaction;

use super::conn::{Pool, Session, col, int, unsigned};
use super::notify;
use crate::StoreError;

/// A node not seen for this many leases is forgotten (it no longer counts, and its row goes).
const FORGET_AFTER_LEASES: i64 = 10;

const HEARTBEAT: &str = "INSERT INTO switchyard_nodes (node, seen_at) VALUES ($1, now())
    ON CONFLICT (node) DO UPDATE SET seen_at = excluded.seen_at";
const FORGET_NODES: &str =
    "DELETE FROM switchyard_nodes WHERE seen_at < now() - $1::int8 * interval '1 millisecond'";
const RENEW: &str = "UPDATE switchyard_leases
    SET expires_at = now() + $2::int8 * interval '1 millisecond' WHERE node = $1";
const SHARE: &str = "SELECT
    (SELECT count(*) FROM switchyard_subscriptions),
    (SELECT count(*) FROM switchyard_nodes
        WHERE seen_at > now() - $2::int8 * interval '1 millisecond'),
    (SELECT count(*) FROM switchyard_leases WHERE node = $1 AND NOT leaving)";
const SHED: &str = "UPDATE switchyard_leases SET leaving = true WHERE subscription_id IN (
    SELECT subscription_id FROM switchyard_leases WHERE node = $1 AND NOT leaving
    ORDER BY subscription_id DESC LIMIT $2)";
const TAKE: &str = "WITH free AS (
        SELECT s.id FROM switchyard_subscriptions s
        LEFT JOIN switchyard_leases l ON l.subscription_id = s.id
        WHERE l.subscription_id IS NULL OR l.expires_at <= now()
        ORDER BY s.id LIMIT $3
        FOR NO KEY UPDATE OF s SKIP LOCKED
    )
    INSERT INTO switchyard_leases (subscription_id, node, expires_at)
    SELECT id, $1, now() + $2::int8 * interval '1 millisecond' FROM free
    ON CONFLICT (subscription_id) DO UPDATE
        SET node = excluded.node, expires_at = excluded.expires_at, leaving = false
        WHERE switchyard_leases.expires_at <= now()";
const OWNED: &str = "SELECT subscription_id FROM switchyard_leases
    WHERE node = $1 AND NOT leaving ORDER BY subscription_id";
const RELEASE: &str = "DELETE FROM switchyard_leases WHERE node = $1";
const HAND_OVER: &str = "DELETE FROM switchyard_leases WHERE node = $1 AND subscription_id = $2";
const LEAVE: &str = "DELETE FROM switchyard_nodes WHERE node = $1";

pub(super) async fn claim(pool: &Pool, node: &str, lease_ms: u64) -> Result<Vec<u64>, StoreError> {
    let lease = int(lease_ms);
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    db.execute(HEARTBEAT, &[&node]).await?;
    db.execute(FORGET_NODES, &[&lease.saturating_mul(FORGET_AFTER_LEASES)])
        .await?;
    db.execute(RENEW, &[&node, &lease]).await?;
    let row = db.query_one(SHARE, &[&node, &lease]).await?;
    let (subscriptions, live, owned): (i64, i64, i64) =
        (col(&row, 0)?, col(&row, 1)?, col(&row, 2)?);
    // This node's heartbeat is in the count, so `live` is at least 1.
    let share = int(subscriptions
        .unsigned_abs()
        .div_ceil(live.unsigned_abs().max(1)));
    if owned > share {
        db.execute(SHED, &[&node, &(owned - share)]).await?;
    } else if owned < share {
        db.execute(TAKE, &[&node, &lease, &(share - owned)]).await?;
    }
    let owned = owned_by(&mut db, node).await?;
    tx.commit().await?;
    Ok(owned)
}

async fn owned_by(
    db: &mut Session<'_, Transaction<'_>>,
    node: &str,
) -> Result<Vec<u64>, StoreError> {
    db.query(OWNED, &[&node])
        .await?
        .iter()
        .map(|row| unsigned(row, 0))
        .collect()
}

/// Drops one lease of the node (its lane has drained), and tells the other nodes so that one of
/// them claims it at once.
pub(super) async fn hand_over(
    pool: &Pool,
    channel: &str,
    node: &str,
    subscription: u64,
) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    db.execute(HAND_OVER, &[&node, &int(subscription)]).await?;
    notify::catalog(&mut db, channel).await?;
    tx.commit().await?;
    Ok(())
}

/// Drops the node's leases and heartbeat, and tells the other nodes (as a catalog change) so
/// that they claim at once instead of at their next renewal.
pub(super) async fn release(pool: &Pool, channel: &str, node: &str) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    db.execute(RELEASE, &[&node]).await?;
    db.execute(LEAVE, &[&node]).await?;
    notify::catalog(&mut db, channel).await?;
    tx.commit().await?;
    Ok(())
}
