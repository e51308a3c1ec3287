//! A lane's queue of the deliveries it holds that are not under way: the two queueing schemes.
//!
//! *Unordered* (the default): a delivery becomes ready when it is due, soonest first. *Ordered*
//! (`ordered: true`): deliveries go in publish order, and of each ordering key only the first may
//! be ready or under way at a time, so a key's deliveries reach the destination one after the
//! other, retries included; deliveries without a key only wait for their due time.
//!
//! Owns: which deliveries are ready, which wait (and until when), and, when ordered, which keys
//! are busy. Must not: know of attempts, the store or time other than the `now_ms` it is given;
//! the lane decides when to start, commit and let go.
//!
//! Invariant (ordered): a key in `busy` names the one delivery of that key that is ready, in
//! flight or waiting for its outcome's commit; it leaves `busy` only through [`Queue::release`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use switchyard_store::{PendingDelivery, PendingOrder};

pub(crate) enum Queue {
    Unordered(Unordered),
    Ordered(Ordered),
}

#[derive(Default)]
pub(crate) struct Unordered {
    /// Due, in the order they became due; the lane starts them from the front.
    ready: VecDeque<PendingDelivery>,
    /// (retry time, id) of the deliveries in `parked`, soonest first: the first are promoted
    /// when due, the last are let go first when memory is needed for sooner ones.
    waiting: BTreeSet<(u64, u64)>,
    parked: HashMap<u64, PendingDelivery>,
}

#[derive(Default)]
pub(crate) struct Ordered {
    /// Every delivery not under way, by id, which is publish order. Of each ordering key, only
    /// the first may become ready, and only while no other is under way.
    queued: BTreeMap<u64, PendingDelivery>,
    /// Promoted and not yet started; each holds its key in `busy`.
    ready: VecDeque<PendingDelivery>,
    /// The ordering keys with a delivery under way (ready, in flight, or with its outcome not
    /// yet committed), and which delivery.
    busy: HashMap<String, u64>,
    /// When the first queued delivery that is not yet due becomes due, as of the last promotion.
    next_due_ms: Option<u64>,
}

impl Queue {
    pub(crate) fn new(ordered: bool) -> Queue {
        if ordered {
            Queue::Ordered(Ordered::default())
        } else {
            Queue::Unordered(Unordered::default())
        }
    }

    pub(crate) fn is_ordered(&self) -> bool {
        matches!(self, Queue::Ordered(_))
    }

    /// The order in which the lane reads pending deliveries from the store: an ordered lane
    /// must see a key's deliveries in publish order, an unordered one the soonest due first.
    pub(crate) fn load_order(&self) -> PendingOrder {
        match self {
            Queue::Unordered(_) => PendingOrder::Due,
            Queue::Ordered(_) => PendingOrder::Publish,
        }
    }

    /// Takes a delivery the lane has just begun to hold (handed off, or read from the store).
    pub(crate) fn admit(&mut self, delivery: PendingDelivery, now_ms: u64) {
        match self {
            Queue::Unordered(queue) if delivery.due_ms <= now_ms => queue.ready.push_back(delivery),
            Queue::Unordered(_) | Queue::Ordered(_) => self.park(delivery),
        }
    }

    /// Takes back a delivery that waits for its next attempt (its retry was committed).
    pub(crate) fn park(&mut self, delivery: PendingDelivery) {
        match self {
            Queue::Unordered(queue) => {
                queue.waiting.insert((delivery.due_ms, delivery.id));
                queue.parked.insert(delivery.id, delivery);
            }
            Queue::Ordered(queue) => {
                queue.queued.insert(delivery.id, delivery);
            }
        }
    }

    /// Makes ready what may go at `now_ms`: unordered, every due delivery; ordered, the first
    /// queued delivery of every key that has none under way, if due (and every due delivery
    /// without a key), in publish order.
    pub(crate) fn promote(&mut self, now_ms: u64) {
        match self {
            Queue::Unordered(queue) => queue.promote(now_ms),
            Queue::Ordered(queue) => queue.promote(now_ms),
        }
    }

    /// When the next waiting delivery becomes due, if one waits.
    pub(crate) fn next_due_ms(&self) -> Option<u64> {
        match self {
            Queue::Unordered(queue) => queue.waiting.first().map(|(due, _)| *due),
            Queue::Ordered(queue) => queue.next_due_ms,
        }
    }

    pub(crate) fn has_ready(&self) -> bool {
        match self {
            Queue::Unordered(queue) => !queue.ready.is_empty(),
            Queue::Ordered(queue) => !queue.ready.is_empty(),
        }
    }

    pub(crate) fn pop_ready(&mut self) -> Option<PendingDelivery> {
        match self {
            Queue::Unordered(queue) => queue.ready.pop_front(),
            Queue::Ordered(queue) => queue.ready.pop_front(),
        }
    }

    /// Deliveries held only for a later retry, which sooner ones may displace
    /// ([`Queue::evict_parked_after`]).
    pub(crate) fn displaceable(&self) -> usize {
        match self {
            Queue::Unordered(queue) => queue.parked.len(),
            Queue::Ordered(_) => 0,
        }
    }

    /// Lets go of the parked delivery due last, if it is due after `due_ms`, to make room for a
    /// sooner one, and returns its id; the store keeps it, and a later read brings it back when
    /// its turn comes. An ordered lane lets nothing go: publish order, not due time, is what
    /// decides which deliveries are worth holding.
    pub(crate) fn evict_parked_after(&mut self, due_ms: u64) -> Option<u64> {
        let Queue::Unordered(queue) = self else {
            return None;
        };
        match queue.waiting.last().copied() {
            Some((last_due, id)) if last_due > due_ms => {
                queue.waiting.pop_last();
                queue.parked.remove(&id);
                Some(id)
            }
            _ => None,
        }
    }

    /// The delivery's attempt is over (its outcome committed, or lost): its key may go on.
    pub(crate) fn release(&mut self, delivery: u64) {
        if let Queue::Ordered(queue) = self {
            queue.busy.retain(|_, id| *id != delivery);
        }
    }

    /// Switches to the other scheme when the subscription's `ordered` changed, moving the
    /// deliveries not under way. The deliveries under way keep going; only the busy keys are
    /// forgotten, as an unordered lane has none and an ordered one starts without.
    pub(crate) fn reshelve(&mut self, ordered: bool, now_ms: u64) {
        if ordered == self.is_ordered() {
            return;
        }
        let moved: Vec<PendingDelivery> = match std::mem::replace(self, Queue::new(ordered)) {
            // Ready deliveries of an ordered lane must hold their key; give them back to be
            // promoted in order.
            Queue::Unordered(old) => old.parked.into_values().chain(old.ready).collect(),
            Queue::Ordered(old) => {
                *self = Queue::Unordered(Unordered {
                    ready: old.ready,
                    ..Unordered::default()
                });
                old.queued.into_values().collect()
            }
        };
        for delivery in moved {
            self.admit(delivery, now_ms);
        }
    }
}

impl Unordered {
    fn promote(&mut self, now_ms: u64) {
        while let Some((due, id)) = self.waiting.first().copied() {
            if due > now_ms {
                break;
            }
            self.waiting.pop_first();
            if let Some(delivery) = self.parked.remove(&id) {
                self.ready.push_back(delivery);
            }
        }
    }
}

impl Ordered {
    fn promote(&mut self, now_ms: u64) {
        let mut blocked: HashSet<String> = self.busy.keys().cloned().collect();
        let mut eligible = Vec::new();
        self.next_due_ms = None;
        for (id, delivery) in &self.queued {
            let key = delivery.event.ordering_key.as_ref();
            if key.is_some_and(|k| blocked.contains(k)) {
                continue;
            }
            if delivery.due_ms > now_ms {
                self.next_due_ms = Some(
                    self.next_due_ms
                        .map_or(delivery.due_ms, |d| d.min(delivery.due_ms)),
                );
            } else {
                eligible.push(*id);
            }
            // The first delivery of a key holds back the later ones, due or not.
            if let Some(key) = key {
                blocked.insert(key.clone());
            }
        }
        for id in eligible {
            if let Some(delivery) = self.queued.remove(&id) {
                if let Some(key) = &delivery.event.ordering_key {
                    self.busy.insert(key.clone(), id);
                }
                self.ready.push_back(delivery);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchyard_model::{Event, TraceContext};

    use super::*;

    fn delivery(id: u64, key: Option<&str>, due_ms: u64) -> PendingDelivery {
        PendingDelivery {
            id,
            subscription: 1,
            event: Arc::new(Event {
                id: format!("e{id}"),
                envelope: "{}".into(),
                ingested_ms: 0,
                hops: 0,
                trace: TraceContext::new_root(),
                ordering_key: key.map(String::from),
                explicit_id: false,
            }),
            attempts: 0,
            due_ms,
            pending_since_ms: 0,
        }
    }

    fn drain_ready(queue: &mut Queue) -> Vec<u64> {
        std::iter::from_fn(|| queue.pop_ready().map(|d| d.id)).collect()
    }

    #[test]
    fn an_ordered_queue_lets_a_key_go_on_only_after_its_release() {
        let mut queue = Queue::new(true);
        for (id, key) in [(1, Some("k")), (2, Some("k")), (3, None), (4, Some("j"))] {
            queue.admit(delivery(id, key, 0), 0);
        }
        queue.promote(0);
        assert_eq!(drain_ready(&mut queue), [1, 3, 4]);
        queue.promote(0);
        assert_eq!(
            drain_ready(&mut queue),
            Vec::<u64>::new(),
            "k is busy with 1"
        );
        queue.release(1);
        queue.promote(0);
        assert_eq!(drain_ready(&mut queue), [2]);
    }

    #[test]
    fn a_key_waits_for_its_first_delivery_even_when_later_ones_are_due() {
        let mut queue = Queue::new(true);
        queue.admit(delivery(1, Some("k"), 50), 0);
        queue.admit(delivery(2, Some("k"), 0), 0);
        queue.promote(0);
        assert_eq!(drain_ready(&mut queue), Vec::<u64>::new());
        assert_eq!(queue.next_due_ms(), Some(50));
        queue.promote(50);
        assert_eq!(drain_ready(&mut queue), [1]);
    }

    #[test]
    fn switching_schemes_keeps_every_delivery_not_under_way() {
        let mut queue = Queue::new(false);
        queue.admit(delivery(1, Some("k"), 0), 0);
        queue.admit(delivery(2, Some("k"), 0), 0);
        queue.admit(delivery(3, None, 90), 0);
        queue.reshelve(true, 0);
        assert_eq!(queue.load_order(), PendingOrder::Publish);
        queue.promote(0);
        assert_eq!(
            drain_ready(&mut queue),
            [1],
            "ready ones are queued by key again"
        );
        queue.release(1);
        queue.reshelve(false, 100);
        assert_eq!(queue.load_order(), PendingOrder::Due);
        queue.promote(100);
        assert_eq!(drain_ready(&mut queue), [2, 3]);
        assert_eq!(queue.next_due_ms(), None);
    }

    #[test]
    fn only_a_parked_delivery_due_later_is_let_go_for_a_sooner_one() {
        let mut queue = Queue::new(false);
        queue.park(delivery(1, None, 100));
        queue.park(delivery(2, None, 300));
        assert_eq!(queue.displaceable(), 2);
        assert_eq!(queue.evict_parked_after(400), None);
        assert_eq!(queue.evict_parked_after(200), Some(2));
        assert_eq!(queue.displaceable(), 1);
        assert_eq!(Queue::new(true).evict_parked_after(0), None);
    }
}
