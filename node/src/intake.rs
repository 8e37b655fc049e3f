//! The bounded queue of validated batches waiting for a block, and what the
//! node remembers about batches that are not (yet) on the chain: which are
//! pending and why others were invalid. Committed batches are looked up in
//! the block store, not here.
//!
//! The queue is bounded (back-pressure: a full queue is a 429 to the client,
//! never unbounded memory); so is the memory of invalid batches.
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::validation::ValidBatch;

/// How many invalid batch statuses are remembered (oldest forgotten first).
const INVALID_MEMORY: usize = 100_000;

/// A batch in the queue, with how often it was already tried.
#[derive(Debug)]
pub struct QueuedBatch {
    pub batch: ValidBatch,
    pub attempts: u32,
    pub queued_at: Instant,
}

/// Why a transaction made its batch invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTransaction {
    pub id: String,
    pub message: String,
    pub extended_data: Vec<u8>,
}

/// A batch's status as the REST API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    Committed,
    Invalid(Vec<InvalidTransaction>),
    Pending,
    Unknown,
}

/// The queue was full; nothing of the submission was queued.
#[derive(Debug, thiserror::Error)]
#[error("the batch queue is full ({capacity} batches)")]
pub struct QueueFull {
    pub capacity: usize,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<QueuedBatch>,
    pending_batches: HashSet<String>,
    pending_txns: HashSet<String>,
    invalid: HashMap<String, Vec<InvalidTransaction>>,
    invalid_order: VecDeque<String>,
    closed: bool,
}

/// Queue plus status memory, shared by the REST API and the publisher.
pub struct Intake {
    inner: Mutex<Inner>,
    arrived: Condvar,
    capacity: usize,
    /// Bumped whenever batches leave the pending state (for `wait=`).
    settled: tokio::sync::watch::Sender<u64>,
}

impl Intake {
    pub fn new(capacity: usize) -> Intake {
        Intake {
            inner: Mutex::new(Inner::default()),
            arrived: Condvar::new(),
            capacity: capacity.max(1),
            settled: tokio::sync::watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues validated batches, all or none. Batches already pending are
    /// skipped (resubmission is harmless).
    pub fn submit(&self, batches: Vec<ValidBatch>) -> Result<(), QueueFull> {
        let mut inner = self.lock();
        let fresh: Vec<ValidBatch> = batches
            .into_iter()
            .filter(|b| !inner.pending_batches.contains(&b.id))
            .collect();
        if inner.queue.len() + fresh.len() > self.capacity {
            return Err(QueueFull {
                capacity: self.capacity,
            });
        }
        let now = Instant::now();
        for batch in fresh {
            inner.invalid.remove(&batch.id);
            inner.pending_batches.insert(batch.id.clone());
            for txn in &batch.transactions {
                inner.pending_txns.insert(txn.id.clone());
            }
            inner.queue.push_back(QueuedBatch {
                batch,
                attempts: 0,
                queued_at: now,
            });
        }
        drop(inner);
        self.arrived.notify_one();
        Ok(())
    }

    /// True when the batch is queued or being executed.
    pub fn batch_pending(&self, id: &str) -> bool {
        self.lock().pending_batches.contains(id)
    }

    /// True when the transaction is queued or being executed.
    pub fn transaction_pending(&self, id: &str) -> bool {
        self.lock().pending_txns.contains(id)
    }

    /// Number of batches waiting.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Waits for batches, then up to `max_wait` more for the block to fill;
    /// returns at most `max` of them. Empty once the intake is closed.
    pub fn take(&self, max: usize, max_wait: Duration) -> Vec<QueuedBatch> {
        let mut inner = self.lock();
        while inner.queue.is_empty() && !inner.closed {
            inner = self
                .arrived
                .wait_timeout(inner, Duration::from_millis(200))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        if inner.closed {
            return Vec::new();
        }
        let deadline = Instant::now() + max_wait;
        while inner.queue.len() < max && !inner.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            inner = self
                .arrived
                .wait_timeout(inner, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let n = inner.queue.len().min(max);
        inner.queue.drain(..n).collect()
    }

    /// Puts batches back at the front of the queue, in their order.
    pub fn requeue(&self, batches: Vec<QueuedBatch>) {
        if batches.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for batch in batches.into_iter().rev() {
            inner.queue.push_front(batch);
        }
        drop(inner);
        self.arrived.notify_one();
    }

    /// Records the fate of batches that left the queue for good: committed
    /// ones (already durable in the store) and invalid ones.
    pub fn settle(
        &self,
        committed: &[&ValidBatch],
        invalid: Vec<(&ValidBatch, InvalidTransaction)>,
    ) {
        let mut inner = self.lock();
        for batch in committed {
            forget_pending(&mut inner, batch);
        }
        for (batch, reason) in invalid {
            forget_pending(&mut inner, batch);
            if inner
                .invalid
                .insert(batch.id.clone(), vec![reason])
                .is_none()
            {
                inner.invalid_order.push_back(batch.id.clone());
            }
            while inner.invalid_order.len() > INVALID_MEMORY {
                if let Some(old) = inner.invalid_order.pop_front() {
                    inner.invalid.remove(&old);
                }
            }
        }
        drop(inner);
        self.settled.send_modify(|n| *n += 1);
    }

    /// The status of a batch; `committed` asks the block store.
    pub fn status(&self, id: &str, committed: impl FnOnce() -> bool) -> BatchStatus {
        // Order matters: the publisher makes a batch durable before it stops
        // being pending, so "not pending" followed by a store lookup is exact.
        {
            let inner = self.lock();
            if inner.pending_batches.contains(id) {
                return BatchStatus::Pending;
            }
            if let Some(reasons) = inner.invalid.get(id) {
                return BatchStatus::Invalid(reasons.clone());
            }
        }
        if committed() {
            BatchStatus::Committed
        } else {
            BatchStatus::Unknown
        }
    }

    /// A receiver that changes whenever batches settle.
    pub fn watch_settled(&self) -> tokio::sync::watch::Receiver<u64> {
        self.settled.subscribe()
    }

    /// Wakes the publisher and makes `take` return empty from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_all();
        // Wakes `wait=` status requests so a shutdown is not held up by them.
        self.settled.send_modify(|n| *n += 1);
    }

    /// True once the node is shutting down.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

fn forget_pending(inner: &mut Inner, batch: &ValidBatch) {
    inner.pending_batches.remove(&batch.id);
    for txn in &batch.transactions {
        inner.pending_txns.remove(&txn.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::ValidBatch;

    fn batch(id: &str) -> ValidBatch {
        ValidBatch {
            id: id.to_string(),
            batch: Default::default(),
            transactions: Vec::new(),
        }
    }

    #[test]
    fn a_submission_that_does_not_fit_is_refused_whole() {
        let intake = Intake::new(2);
        intake.submit(vec![batch("a")]).unwrap();
        assert!(intake.submit(vec![batch("b"), batch("c")]).is_err());
        assert_eq!(intake.queued(), 1);
        assert!(!intake.batch_pending("b"));
    }

    #[test]
    fn statuses_follow_a_batch_from_pending_to_invalid() {
        let intake = Intake::new(10);
        intake.submit(vec![batch("a")]).unwrap();
        assert_eq!(intake.status("a", || false), BatchStatus::Pending);
        let taken = intake.take(10, Duration::ZERO);
        let reason = InvalidTransaction {
            id: "t".into(),
            message: "no".into(),
            extended_data: vec![],
        };
        intake.settle(&[], vec![(&taken[0].batch, reason.clone())]);
        assert_eq!(
            intake.status("a", || false),
            BatchStatus::Invalid(vec![reason])
        );
        assert_eq!(intake.status("zzz", || false), BatchStatus::Unknown);
        assert_eq!(intake.status("zzz", || true), BatchStatus::Committed);
    }

    #[test]
    fn take_returns_empty_once_closed() {
        let intake = Intake::new(10);
        intake.close();
        assert!(intake.take(10, Duration::from_millis(5)).is_empty());
    }
}
