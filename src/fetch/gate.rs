//! `Gate`: a limit of requests in flight that lets the next page of a chain
//! in first.
//!
//! A fetch lasts at least as long as its longest chain of next links (the
//! managed-device pages), while per-item `$batch` requests are many and can
//! go in any order. With a first-come queue, each page of a chain waited
//! behind every batch request queued while the page before was in flight:
//! at 20,000 users the 24 device pages took 1.1 s instead of 0.5. A few
//! slots are also kept for chains alone: served first, a next page still
//! waited for a slot to come back whenever every slot was taken by the
//! hundreds of per-item requests, a few milliseconds on every link.
//!
//! Chains wait for each other too: a tenant has a hundred per-item listings
//! (an app's devices, a policy's device states) of a few pages each, and
//! served first come first served, the device pages waited behind all of
//! them, 0.6 s of a fetch's first second at 100,000 users. Which chain is
//! the longest is not known in advance, but the one that has read the most
//! pages is the best guess: the chain furthest along goes first.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Which queue a request waits in when every slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Continues work under way — the next page of a chain that has read
    /// this many pages, or a request sent again with a renewed token
    /// (`Priority::RENEWED`): served before `Normal`, the highest number
    /// first, then first come first served.
    First(u32),
    /// Anything else, first come first served.
    Normal,
}

impl Priority {
    /// A request sent again with a renewed token goes before any chain:
    /// at the back of the queue, the new token could die waiting too.
    pub const RENEWED: Priority = Priority::First(u32::MAX);
}

#[derive(Debug)]
pub struct Gate {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// How many `Normal` requests may be in flight: the rest of the slots
    /// are kept for `First`.
    normal_cap: usize,
    normal_in_flight: usize,
    /// `First` waiters by (rank, highest first; arrival): the first entry
    /// is served next.
    first: BTreeMap<(Reverse<u32>, u64), oneshot::Sender<()>>,
    /// Numbers `First` waiters in arrival order.
    arrivals: u64,
    normal: VecDeque<oneshot::Sender<()>>,
}

/// A slot in flight; the next waiter gets it when this is dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    gate: &'a Gate,
    priority: Priority,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.gate.release(self.priority);
    }
}

/// A request waiting for a slot. Given up (its future dropped) after it was
/// handed one, it passes the slot on instead of losing it.
struct Waiting<'a> {
    gate: &'a Gate,
    priority: Priority,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.release(self.priority);
            }
        }
    }
}

impl Gate {
    /// A gate of `slots`, a sixth of them kept for `First`.
    pub fn new(slots: usize) -> Gate {
        Gate::with_reserve(slots, slots / 6)
    }

    /// A gate of `slots`, `reserve` of which only `First` may take (at
    /// least one slot is left for `Normal`).
    pub fn with_reserve(slots: usize, reserve: usize) -> Gate {
        let slots = slots.max(1);
        Gate {
            state: Mutex::new(State {
                free: slots,
                normal_cap: slots - reserve.min(slots - 1),
                normal_in_flight: 0,
                first: BTreeMap::new(),
                arrivals: 0,
                normal: VecDeque::new(),
            }),
        }
    }

    /// Waits for a slot.
    pub async fn enter(&self, priority: Priority) -> Slot<'_> {
        let rx = {
            let mut s = self.lock();
            let may = match priority {
                Priority::First(_) => s.free > 0,
                Priority::Normal => s.free > 0 && s.normal_in_flight < s.normal_cap,
            };
            if may {
                s.free -= 1;
                if priority == Priority::Normal {
                    s.normal_in_flight += 1;
                }
                return Slot {
                    gate: self,
                    priority,
                };
            }
            let (tx, rx) = oneshot::channel();
            match priority {
                Priority::First(rank) => {
                    s.arrivals += 1;
                    let arrival = s.arrivals;
                    s.first.insert((Reverse(rank), arrival), tx);
                }
                Priority::Normal => s.normal.push_back(tx),
            }
            rx
        };
        let mut waiting = Waiting {
            gate: self,
            priority,
            rx: Some(rx),
        };
        if let Some(rx) = waiting.rx.as_mut() {
            // The sender is dropped only by handing over a slot, so an error
            // cannot happen while the gate lives; either way, go on.
            let _ = rx.await;
        }
        waiting.rx = None;
        Slot {
            gate: self,
            priority,
        }
    }

    /// Takes back a slot of a request of `priority` and hands it to the
    /// first waiter still waiting (`First` by rank, before `Normal`, which
    /// gets it only below its cap), or frees it.
    fn release(&self, priority: Priority) {
        let mut s = self.lock();
        if priority == Priority::Normal {
            s.normal_in_flight = s.normal_in_flight.saturating_sub(1);
        }
        loop {
            if let Some((_, tx)) = s.first.pop_first() {
                if tx.send(()).is_ok() {
                    return;
                }
                continue;
            }
            if s.normal_in_flight < s.normal_cap {
                if let Some(tx) = s.normal.pop_front() {
                    if tx.send(()).is_ok() {
                        s.normal_in_flight += 1;
                        return;
                    }
                    continue;
                }
            }
            s.free += 1;
            return;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a counter and two queues, consistent after every
        // step; a panic elsewhere while it was held leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn free(&self) -> usize {
        self.lock().free
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// The order in which a gate of one slot, held while these queue in
    /// the order given, serves them; checks every slot came back.
    async fn served(requests: &[(&'static str, Priority)]) -> Vec<&'static str> {
        let gate = Arc::new(Gate::new(1));
        let held = gate.enter(Priority::Normal).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for &(name, p) in requests {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = gate.enter(p).await;
                order.lock().unwrap().push(name);
            }));
            // Queued in this order.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(gate.free(), 1, "every slot came back");
        Arc::try_unwrap(order).unwrap().into_inner().unwrap()
    }

    #[tokio::test]
    async fn a_chain_request_is_served_before_earlier_normal_ones() {
        let order = served(&[
            ("batch 1", Priority::Normal),
            ("batch 2", Priority::Normal),
            ("next page", Priority::First(1)),
        ])
        .await;
        assert_eq!(order, ["next page", "batch 1", "batch 2"]);
    }

    #[tokio::test]
    async fn the_chain_furthest_along_goes_first_and_a_renewed_token_before_it() {
        let order = served(&[
            ("batch", Priority::Normal),
            ("app devices page 2", Priority::First(1)),
            ("device page 40", Priority::First(39)),
            ("policy states page 2", Priority::First(1)),
            ("user page 30", Priority::First(29)),
            ("renewed", Priority::RENEWED),
        ])
        .await;
        assert_eq!(
            order,
            [
                "renewed",
                "device page 40",
                "user page 30",
                "app devices page 2",
                "policy states page 2",
                "batch"
            ]
        );
    }

    #[tokio::test]
    async fn slots_in_reserve_go_to_chains_only() {
        let gate = Arc::new(Gate::with_reserve(3, 1));
        let a = gate.enter(Priority::Normal).await;
        let _b = gate.enter(Priority::Normal).await;
        // The last slot is the reserve: a normal request waits for it ...
        let mut normal = Box::pin(gate.enter(Priority::Normal));
        assert!(futures::poll!(&mut normal).is_pending());
        // ... a chain's next page takes it at once.
        let first = gate.enter(Priority::First(1)).await;
        assert_eq!(gate.free(), 0);
        // A normal slot coming back goes to the normal request; the
        // reserve comes back to the gate, kept for chains.
        drop(a);
        let _n = normal.await;
        drop(first);
        assert_eq!(gate.free(), 1);
        let mut again = Box::pin(gate.enter(Priority::Normal));
        assert!(futures::poll!(&mut again).is_pending(), "the reserve stays");
        let _chain = gate.enter(Priority::First(1)).await;
    }

    #[tokio::test]
    async fn a_waiter_given_up_loses_no_slot() {
        let gate = Gate::new(2);
        let a = gate.enter(Priority::Normal).await;
        let b = gate.enter(Priority::Normal).await;
        // Given up while waiting.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(10), gate.enter(Priority::First(1))).await;
        assert!(gave_up.is_err());
        // Given up after it was handed a slot but before it ran.
        {
            let mut w = Box::pin(gate.enter(Priority::Normal));
            assert!(futures::poll!(&mut w).is_pending());
            drop(a);
            drop(w);
        }
        drop(b);
        assert_eq!(gate.free(), 2);
        let _x = gate.enter(Priority::Normal).await;
        let _y = gate.enter(Priority::First(1)).await;
        assert_eq!(gate.free(), 0);
    }
}
