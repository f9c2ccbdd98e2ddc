//! The simulated latency, to the deadline. `tokio::time::sleep` rounds up
//! to its millisecond ticks and its worker's park: a 20 ms sleep lasted
//! about 21.8 ms here, so every link of a chain of pages took 9% longer
//! than the latency the benchmark's lower bound is made of. One thread
//! sleeps to the earliest deadline with the OS's fine timer and wakes each
//! request when its time is up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

/// Wakes requests at their deadlines; its thread ends when it is dropped.
pub struct Clock {
    shared: Arc<Shared>,
}

struct Shared {
    due: Mutex<Due>,
    changed: Condvar,
}

#[derive(Default)]
struct Due {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    waiting: std::collections::HashMap<u64, oneshot::Sender<()>>,
    next_id: u64,
    closed: bool,
}

impl Clock {
    pub fn start() -> Clock {
        let shared = Arc::new(Shared {
            due: Mutex::new(Due::default()),
            changed: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("fake-tenant-clock".into())
            .spawn(move || run(&worker));
        if spawned.is_err() {
            // No thread: every wait ends at once rather than never.
            if let Ok(mut d) = shared.due.lock() {
                d.closed = true;
            }
        }
        Clock { shared }
    }

    /// Waits until `deadline`.
    pub async fn until(&self, deadline: Instant) {
        let rx = {
            let Ok(mut d) = self.shared.due.lock() else {
                return;
            };
            if d.closed || deadline <= Instant::now() {
                return;
            }
            let (tx, rx) = oneshot::channel();
            let id = d.next_id;
            d.next_id += 1;
            d.heap.push(Reverse((deadline, id)));
            d.waiting.insert(id, tx);
            rx
        };
        self.shared.changed.notify_one();
        let _ = rx.await;
    }

    /// Ends the thread; waits still open end at once.
    pub fn stop(&self) {
        if let Ok(mut d) = self.shared.due.lock() {
            d.closed = true;
            // Dropping the senders ends every wait.
            d.waiting.clear();
        }
        self.shared.changed.notify_one();
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared) {
    let Ok(mut d) = shared.due.lock() else {
        return;
    };
    loop {
        if d.closed {
            return;
        }
        let now = Instant::now();
        while let Some(Reverse((at, id))) = d.heap.peek().copied() {
            if at > now {
                break;
            }
            d.heap.pop();
            if let Some(tx) = d.waiting.remove(&id) {
                let _ = tx.send(());
            }
        }
        let next = d.heap.peek().map(|Reverse((at, _))| *at);
        d = match next {
            Some(at) => match shared
                .changed
                .wait_timeout(d, at.saturating_duration_since(now))
            {
                Ok((g, _)) => g,
                Err(_) => return,
            },
            None => match shared.changed.wait(d) {
                Ok(g) => g,
                Err(_) => return,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_end_at_their_deadlines_in_order() {
        let clock = Clock::start();
        let start = Instant::now();
        let late = clock.until(start + Duration::from_millis(30));
        let early = clock.until(start + Duration::from_millis(10));
        let (a, b) = tokio::join!(
            async {
                late.await;
                Instant::now()
            },
            async {
                early.await;
                Instant::now()
            }
        );
        assert!(b < a, "the earlier deadline ends first");
        assert!(b - start >= Duration::from_millis(10));
        assert!(a - start >= Duration::from_millis(30));
        // A deadline already past does not wait.
        clock.until(start).await;
        clock.stop();
        // Stopped: no wait at all.
        clock.until(Instant::now() + Duration::from_secs(60)).await;
    }
}
