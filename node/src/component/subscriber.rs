//! Event delivery to subscribers: one worker thread per subscriber sends the
//! events of every committed block, strictly in block order and each block
//! once, first catching up from the store and then following the live feed.
//!
//! The chain is never slowed by a subscriber: the [`Pump`] forwards live
//! blocks into small bounded per-subscriber queues with `try_send`, and a
//! worker that finds a gap (queue overflow, broadcast lag) or was told by the
//! I/O thread that a delivery could not be sent (ZeroMQ high-water mark)
//! simply re-reads the missing blocks with `ChainFeed::blocks_after`.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use protobuf::RepeatedField;
use sawtooth_sdk::messages::events::EventList;
use sawtooth_sdk::messages::validator::Message_MessageType as Type;
use tokio::sync::broadcast::error::RecvError;

use super::events::{block_events, parse_subscriptions, Subscription, NULL_BLOCK_ID};
use super::wire::{encode, fresh_id, DeliveryTag, Outbox};
use crate::chain_feed::{ChainFeed, ChainFeedError, CommittedBlock};
use protobuf::Message as _;
use sawtooth_sdk::messages::client_event::{
    ClientEventsGetRequest, ClientEventsGetResponse_Status,
};
use sawtooth_sdk::messages::events::Event;

/// Blocks a worker reads from the store per step while catching up.
const CATCH_UP_PAGE: usize = 64;
/// Live blocks queued per subscriber before it falls back to catching up.
const LIVE_QUEUE: usize = 64;
/// How often an idle worker re-checks the chain head and its stop flag.
const IDLE_CHECK: Duration = Duration::from_millis(250);
/// Pause before reading the store again after it failed.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// Pause before re-sending after the socket refused a delivery.
const RESEND_PAUSE: Duration = Duration::from_millis(20);

type LiveQueues = Arc<Mutex<Vec<(u64, SyncSender<Arc<CommittedBlock>>)>>>;

/// Fans the live chain feed out to the subscribers' bounded queues.
#[derive(Clone)]
pub struct Pump {
    queues: LiveQueues,
    next_id: Arc<AtomicU64>,
}

impl Pump {
    /// Starts following the feed on its own thread. The thread ends when the
    /// feed closes or, after `stop` is set, with the next committed block.
    pub fn start(feed: &Arc<dyn ChainFeed>, stop: Arc<AtomicBool>) -> Result<Pump, std::io::Error> {
        let pump = Pump {
            queues: Arc::default(),
            next_id: Arc::default(),
        };
        let queues = pump.queues.clone();
        let mut rx = feed.subscribe();
        std::thread::Builder::new()
            .name("component-event-pump".into())
            .spawn(move || loop {
                let block = match rx.blocking_recv() {
                    Ok(block) => block,
                    // Subscribers notice the gap and read the missed blocks back.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let queues = queues.lock().unwrap_or_else(|p| p.into_inner());
                for (_, queue) in queues.iter() {
                    // A full queue means the subscriber lags; it catches up itself.
                    let _ = queue.try_send(block.clone());
                }
            })?;
        Ok(pump)
    }

    fn join(&self) -> (u64, Receiver<Arc<CommittedBlock>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = sync_channel(LIVE_QUEUE);
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, tx));
        (id, rx)
    }

    fn leave(&self, id: u64) {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(i, _)| *i != id);
    }
}

/// What the I/O thread and a worker share about one subscriber.
#[derive(Default)]
pub struct SubscriberSignals {
    stop: AtomicBool,
    /// Set by the I/O thread: the first delivery it could not send.
    refused: Mutex<Option<DeliveryTag>>,
}

impl SubscriberSignals {
    pub fn refuse(&self, tag: DeliveryTag) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.is_none() {
            *refused = Some(tag);
        }
    }

    fn has_refusal(&self) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn take_refused(&self) -> Option<DeliveryTag> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// A running subscriber worker.
pub struct SubscriberWorker {
    pub signals: Arc<SubscriberSignals>,
    thread: Option<JoinHandle<()>>,
}

impl SubscriberWorker {
    /// Starts delivering the events of blocks numbered `first_block` and up,
    /// tagging deliveries from `generation` on (unique per subscription, so
    /// the I/O thread can tell a replaced subscription's leftovers apart).
    pub fn start(
        identity: Vec<u8>,
        subscriptions: Vec<Subscription>,
        first_block: u64,
        generation: u64,
        feed: Arc<dyn ChainFeed>,
        pump: Pump,
        outbox: Outbox,
    ) -> Result<SubscriberWorker, std::io::Error> {
        let signals = Arc::new(SubscriberSignals::default());
        let (queue_id, live) = pump.join();
        let mut delivery = Delivery {
            identity,
            subscriptions,
            next: first_block,
            generation,
            feed,
            outbox,
            signals: signals.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("component-subscriber".into())
            .spawn(move || {
                delivery.run(&live);
                pump.leave(queue_id);
            })?;
        Ok(SubscriberWorker {
            signals,
            thread: Some(thread),
        })
    }

    /// Stops the worker (it notices within `IDLE_CHECK`) without waiting.
    pub fn stop(&self) {
        self.signals.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the worker and waits for it.
    pub fn stop_and_join(mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Delivery {
    identity: Vec<u8>,
    subscriptions: Vec<Subscription>,
    /// The next block number to deliver.
    next: u64,
    generation: u64,
    feed: Arc<dyn ChainFeed>,
    outbox: Outbox,
    signals: Arc<SubscriberSignals>,
}

impl Delivery {
    fn run(&mut self, live: &Receiver<Arc<CommittedBlock>>) {
        while !self.signals.stop.load(Ordering::Relaxed) {
            if let Some(refused) = self.signals.take_refused() {
                if refused.generation == self.generation {
                    // Start a new generation at the refused block; the I/O
                    // thread drops everything of the old one after it.
                    self.generation += 1;
                    self.next = self.next.min(refused.block_num);
                    std::thread::sleep(RESEND_PAUSE);
                }
            }
            let missed = match blocks_from(self.feed.as_ref(), self.next, CATCH_UP_PAGE) {
                Ok(missed) => missed,
                Err(e) => {
                    // A store hiccup must not end the subscription silently:
                    // keep the position and try again.
                    tracing::warn!(error = %e, next = self.next, "cannot read blocks for a subscriber; retrying");
                    std::thread::sleep(STORE_RETRY);
                    continue;
                }
            };
            if !missed.is_empty() {
                for block in missed {
                    // After a refusal the rest of the page would be dropped.
                    if self.signals.stop.load(Ordering::Relaxed) || self.signals.has_refusal() {
                        break;
                    }
                    self.deliver(&block);
                }
                continue;
            }
            match live.recv_timeout(IDLE_CHECK) {
                Ok(block) if block.block_num == self.next => self.deliver(&block),
                // Older blocks were already delivered; a newer one means a
                // gap, filled from the store on the next turn.
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(IDLE_CHECK),
            }
        }
    }

    fn deliver(&mut self, block: &CommittedBlock) {
        let events = block_events(block, &self.subscriptions);
        self.next = block.block_num + 1;
        if events.is_empty() {
            return;
        }
        let mut list = EventList::new();
        list.set_events(RepeatedField::from_vec(events));
        let tag = DeliveryTag {
            generation: self.generation,
            block_num: block.block_num,
        };
        let sent = encode(Type::CLIENT_EVENTS, &fresh_id(), &list)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                self.outbox
                    .send_tagged(&self.identity, bytes, tag)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = sent {
            tracing::warn!(error = %e, block_num = block.block_num, "cannot queue events; retrying from this block");
            self.signals.refuse(tag);
        }
    }
}

/// Committed blocks numbered `first` and up, oldest first, at most `limit`.
pub fn blocks_from(
    feed: &dyn ChainFeed,
    first: u64,
    limit: usize,
) -> Result<Vec<Arc<CommittedBlock>>, ChainFeedError> {
    if first > 0 {
        return feed.blocks_after(first - 1, limit);
    }
    // `blocks_after` cannot express "from genesis": find block 0 by walking
    // back from block 1 (or the head, when genesis is all there is).
    let Some(head) = feed.chain_head()? else {
        return Ok(Vec::new());
    };
    let genesis = if head.block_num == 0 {
        head
    } else {
        let first_after = feed.blocks_after(0, 1)?;
        let Some(block_one) = first_after.first() else {
            return Ok(Vec::new());
        };
        match feed.block_by_id(&block_one.previous_block_id)? {
            Some(genesis) => genesis,
            None => {
                return Err(ChainFeedError(format!(
                    "genesis block {} is missing",
                    block_one.previous_block_id
                )))
            }
        }
    };
    let mut blocks = vec![genesis];
    blocks.extend(feed.blocks_after(0, limit.saturating_sub(1))?);
    Ok(blocks)
}

/// The first block to deliver: after the newest of `last_known` in the
/// chain (all blocks for the null id), or after the head when none given.
pub fn first_block_for(feed: &dyn ChainFeed, last_known: &[String]) -> Result<u64, String> {
    if last_known.is_empty() {
        let head = feed.chain_head().map_err(|e| e.to_string())?;
        return Ok(head.map_or(0, |h| h.block_num + 1));
    }
    let mut newest: Option<u64> = None;
    for id in last_known {
        let first = if id == NULL_BLOCK_ID {
            Some(0)
        } else {
            feed.block_by_id(id)
                .map_err(|e| e.to_string())?
                .map(|b| b.block_num + 1)
        };
        newest = newest.max(first);
    }
    newest.ok_or_else(|| {
        format!(
            "none of the last known block ids {last_known:?} is in the chain; subscribe without \
             last_known_block_ids, or with {NULL_BLOCK_ID} to receive every block"
        )
    })
}

/// The events of the requested blocks, in the order the ids were given.
pub fn events_of_blocks(
    feed: &dyn ChainFeed,
    content: &[u8],
) -> Result<Vec<Event>, (ClientEventsGetResponse_Status, String)> {
    use ClientEventsGetResponse_Status as Status;
    let request = ClientEventsGetRequest::parse_from_bytes(content).map_err(|e| {
        (
            Status::INTERNAL_ERROR,
            format!("undecodable ClientEventsGetRequest: {e}"),
        )
    })?;
    let subscriptions = parse_subscriptions(request.get_subscriptions())
        .map_err(|why| (Status::INVALID_FILTER, why))?;
    let mut events = Vec::new();
    for id in request.get_block_ids() {
        let block = feed
            .block_by_id(id)
            .map_err(|e| (Status::INTERNAL_ERROR, e.to_string()))?;
        let block = block.ok_or_else(|| (Status::UNKNOWN_BLOCK, format!("unknown block {id}")))?;
        events.extend(block_events(&block, &subscriptions));
    }
    Ok(events)
}
