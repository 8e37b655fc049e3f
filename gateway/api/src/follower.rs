//! The chain follower: subscribes to `sawtooth/block-commit` and
//! `sawtooth/state-delta` (coldchain namespaces) on the node's component
//! endpoint over ZeroMQ, with `last_known_block_ids` catch-up, and feeds each
//! block (plus its transactions from `GET /blocks/{id}`) to [`crate::chain::ingest`].
//!
//! Runs on its own thread (ZeroMQ is blocking) and reconnects forever with
//! backoff. It never writes to the chain. What it sees (chain head, contact
//! with the node, blocks it keeps failing on) goes to [`FollowerStatus`],
//! from which [`crate::freshness`] decides whether verdicts may be given.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coldchain_processors::addressing::{namespace, CUSTODY_FAMILY, REGISTRY_FAMILY, SENSOR_FAMILY};
use protobuf::Message as _;
use sawtooth_sdk::messages::client_event::{
    ClientEventsSubscribeRequest, ClientEventsSubscribeResponse,
    ClientEventsSubscribeResponse_Status,
};
use sawtooth_sdk::messages::events::{
    EventFilter, EventFilter_FilterType, EventList, EventSubscription,
};
use sawtooth_sdk::messages::transaction_receipt::{StateChangeList, StateChange_Type};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};

use crate::chain::{
    ambiguous_writers, block_update, ingest, newest_block_on_chain, FollowError, Ingested, Receipts,
};
pub use crate::freshness::FollowerStatus;
use crate::index::{BlockRef, IndexStore};
use crate::node::NodeClient;

/// Sawtooth's id for "before genesis": catch-up from it replays every block.
pub const NULL_BLOCK_ID: &str = "0000000000000000";

/// How many of the newest indexed block ids a subscription sends as
/// `last_known_block_ids`, newest first (the node resumes after the newest
/// one on its chain, so a fork up to this deep costs no re-index). Beyond it
/// an `UNKNOWN_BLOCK` answer makes the follower bisect the index against the
/// node's REST API for the common ancestor before resubscribing.
pub const CATCH_UP_IDS: u32 = 256;

/// After this long without an event the follower asks the node for its chain
/// head (`GET /blocks?limit=1`), so a quiet chain is known to be quiet and a
/// dead subscription is noticed within the freshness limits.
pub const HEAD_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Everything the follower thread needs.
pub struct Follower {
    pub component: String,
    pub node: NodeClient,
    pub index: Arc<dyn IndexStore>,
    pub status: Arc<FollowerStatus>,
    pub stop: Arc<AtomicBool>,
    pub runtime: tokio::runtime::Handle,
}

fn zmq_error(e: impl std::fmt::Display) -> FollowError {
    FollowError::Zmq(e.to_string())
}

impl Follower {
    /// Runs until `stop` is set: connect, subscribe, follow; on any failure wait
    /// (100 ms doubling to 5 s) and start again from the index head.
    pub fn run(self) {
        let mut backoff = Duration::from_millis(100);
        while !self.stop.load(Ordering::Relaxed) {
            match self.session() {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    self.status.fail(&error);
                    let until = Instant::now() + backoff;
                    while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One subscription: returns Ok when a resubscription is needed (catch-up).
    fn session(&self) -> Result<(), FollowError> {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::DEALER).map_err(zmq_error)?;
        socket.set_linger(0).map_err(zmq_error)?;
        socket.set_rcvtimeo(500).map_err(zmq_error)?;
        socket.connect(&self.component).map_err(zmq_error)?;
        let mut known = self
            .runtime
            .block_on(self.index.recent_block_ids(CATCH_UP_IDS))?;
        if known.is_empty() {
            known.push(NULL_BLOCK_ID.to_string());
        }
        // The node's head now: catch-up replays older blocks, which must not
        // make the index look level with the chain. (Not yet contact: that
        // needs a working subscription.)
        if let Ok(Some(head)) = self.runtime.block_on(self.node.head_num()) {
            self.chain_head_served(head)?;
        }
        self.subscribe(&socket, known)?;
        self.status.connected.store(true, Ordering::Relaxed);
        self.status.contact(Instant::now());
        tracing::info!(endpoint = %self.component, "following the chain");
        let mut last_event = Instant::now();
        let mut last_poll = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let bytes = match socket.recv_bytes(0) {
                Ok(bytes) => bytes,
                Err(zmq::Error::EAGAIN) => {
                    if last_event.elapsed() >= HEAD_POLL_INTERVAL
                        && last_poll.elapsed() >= HEAD_POLL_INTERVAL
                    {
                        last_poll = Instant::now();
                        let lagging = self.poll_head()?;
                        if lagging && last_event.elapsed() > Duration::from_secs(15) {
                            return Err(FollowError::Zmq(
                                "no events for 15 s while the index lags the chain; resubscribing"
                                    .into(),
                            ));
                        }
                    }
                    continue;
                }
                Err(e) => return Err(zmq_error(e)),
            };
            let message = Message::parse_from_bytes(&bytes).map_err(zmq_error)?;
            match message.get_message_type() {
                Message_MessageType::PING_REQUEST => {
                    let mut pong = Message::new();
                    pong.set_message_type(Message_MessageType::PING_RESPONSE);
                    pong.set_correlation_id(message.get_correlation_id().to_string());
                    socket
                        .send(pong.write_to_bytes().map_err(zmq_error)?, 0)
                        .map_err(zmq_error)?;
                }
                Message_MessageType::CLIENT_EVENTS => {
                    last_event = Instant::now();
                    self.status.contact(last_event);
                    let events =
                        EventList::parse_from_bytes(message.get_content()).map_err(zmq_error)?;
                    if let Ingested::NeedsCatchUp { to } = self.on_events(events)? {
                        tracing::info!(
                            ancestor = to,
                            "blocks missing after a fork or gap; resubscribing with catch-up"
                        );
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn subscribe(&self, socket: &zmq::Socket, known: Vec<String>) -> Result<(), FollowError> {
        let regex = format!(
            "^({}|{}|{})",
            namespace(REGISTRY_FAMILY),
            namespace(CUSTODY_FAMILY),
            namespace(SENSOR_FAMILY)
        );
        let mut filter = EventFilter::new();
        filter.set_key("address".into());
        filter.set_match_string(regex);
        filter.set_filter_type(EventFilter_FilterType::REGEX_ANY);
        let mut commit = EventSubscription::new();
        commit.set_event_type("sawtooth/block-commit".into());
        let mut delta = EventSubscription::new();
        delta.set_event_type("sawtooth/state-delta".into());
        delta.set_filters(vec![filter].into());
        let mut request = ClientEventsSubscribeRequest::new();
        request.set_subscriptions(vec![commit, delta].into());
        request.set_last_known_block_ids(known.into());
        let mut message = Message::new();
        message.set_message_type(Message_MessageType::CLIENT_EVENTS_SUBSCRIBE_REQUEST);
        message.set_correlation_id(crate::access::new_token());
        message.set_content(request.write_to_bytes().map_err(zmq_error)?);
        socket
            .send(message.write_to_bytes().map_err(zmq_error)?, 0)
            .map_err(zmq_error)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !self.stop.load(Ordering::Relaxed) {
            let bytes = match socket.recv_bytes(0) {
                Ok(bytes) => bytes,
                Err(zmq::Error::EAGAIN) => continue,
                Err(e) => return Err(zmq_error(e)),
            };
            let reply = Message::parse_from_bytes(&bytes).map_err(zmq_error)?;
            if reply.get_message_type() != Message_MessageType::CLIENT_EVENTS_SUBSCRIBE_RESPONSE {
                continue;
            }
            let response = ClientEventsSubscribeResponse::parse_from_bytes(reply.get_content())
                .map_err(zmq_error)?;
            return match response.get_status() {
                ClientEventsSubscribeResponse_Status::OK => Ok(()),
                ClientEventsSubscribeResponse_Status::UNKNOWN_BLOCK => {
                    Err(self.roll_back_past_fork())
                }
                other => Err(FollowError::Zmq(format!(
                    "subscription refused ({other:?}): {}",
                    response.get_response_message()
                ))),
            };
        }
        Err(FollowError::Zmq(format!(
            "no subscription response from {} within 10 s",
            self.component
        )))
    }

    /// The node knows none of the ids we sent: a fork deeper than
    /// [`CATCH_UP_IDS`] blocks, or another network. Roll back to the newest
    /// indexed block the node still serves and resubscribe from there; only
    /// when it serves none, reset the chain tables (tokens and the audit log
    /// stay) and re-index from genesis rather than serve stale rows.
    fn roll_back_past_fork(&self) -> FollowError {
        let rolled = self.runtime.block_on(async {
            match newest_block_on_chain(self.index.as_ref(), &self.node).await? {
                Some(ancestor) => {
                    self.index.roll_back_to(ancestor.block_num).await?;
                    Ok::<_, FollowError>(Some(ancestor))
                }
                None => {
                    self.index.roll_back_to_nothing().await?;
                    Ok(None)
                }
            }
        });
        match rolled {
            Ok(Some(ancestor)) => FollowError::Zmq(format!(
                "the node knows none of the {CATCH_UP_IDS} newest indexed blocks (a deep fork); \
                 rolled the index back to the common ancestor, block {} ({}), resubscribing from it",
                ancestor.block_num,
                crate::identifiers::shorten(&ancestor.block_id)
            )),
            Ok(None) => FollowError::Zmq(
                "the node knows none of the indexed blocks (another network?); chain tables \
                 reset (API tokens and the audit log kept), re-indexing from genesis"
                    .into(),
            ),
            Err(error) => error,
        }
    }

    /// The newest indexed block number.
    fn index_head(&self) -> Result<Option<u64>, FollowError> {
        Ok(self
            .runtime
            .block_on(self.index.head())?
            .map(|b| b.block_num))
    }

    /// Records `head` as the node's chain head and feeds the lag clock.
    fn chain_head_served(&self, head: u64) -> Result<(), FollowError> {
        let indexed = self.index_head()?;
        self.status.chain_head_served(head, indexed, Instant::now());
        Ok(())
    }

    /// Asks the node for its chain head (a quiet spell: no events). Success
    /// is contact; a failure is logged and left to the freshness limits
    /// (after `max_lag` without contact verification refuses). Returns
    /// whether the index lags the head.
    fn poll_head(&self) -> Result<bool, FollowError> {
        match self.runtime.block_on(self.node.head_num()) {
            Ok(Some(head)) => {
                self.chain_head_served(head)?;
                self.status.contact(Instant::now());
                Ok(self.index_head()?.is_none_or(|i| i < head))
            }
            Ok(None) => Ok(false),
            Err(error) => {
                tracing::debug!(%error, "chain head poll failed");
                if let Ok(mut last) = self.status.last_error.lock() {
                    *last = error.to_string();
                }
                Ok(false)
            }
        }
    }

    fn on_events(&self, events: EventList) -> Result<Ingested, FollowError> {
        let mut block = None;
        let mut changes = Vec::new();
        for event in events.get_events() {
            match event.get_event_type() {
                "sawtooth/block-commit" => {
                    let attr = |key: &str| {
                        event
                            .get_attributes()
                            .iter()
                            .find(|a| a.get_key() == key)
                            .map(|a| a.get_value().to_string())
                            .unwrap_or_default()
                    };
                    let block_num = attr("block_num").parse().map_err(|_| {
                        FollowError::Zmq(format!(
                            "block-commit without a numeric block_num: {:?}",
                            attr("block_num")
                        ))
                    })?;
                    block = Some(BlockRef {
                        block_id: attr("block_id"),
                        block_num,
                        previous_block_id: attr("previous_block_id"),
                        state_root: attr("state_root_hash"),
                    });
                }
                "sawtooth/state-delta" => {
                    let list =
                        StateChangeList::parse_from_bytes(event.get_data()).map_err(zmq_error)?;
                    for change in list.get_state_changes() {
                        let value = (change.get_field_type() == StateChange_Type::SET)
                            .then(|| change.get_value().to_vec());
                        changes.push((change.get_address().to_string(), value));
                    }
                }
                _ => {}
            }
        }
        let Some(block) = block else {
            return Ok(Ingested::AlreadyIndexed);
        };
        self.status.block_announced(block.block_num);
        let (block_num, block_id) = (block.block_num, block.block_id.clone());
        match self.index_block(block, changes) {
            Ok(outcome) => {
                if !matches!(outcome, Ingested::NeedsCatchUp { .. }) {
                    self.status.block_indexed(block_num);
                }
                Ok(outcome)
            }
            Err(error) => {
                self.status
                    .block_failed(block_num, &block_id, &error.to_string());
                Err(error)
            }
        }
    }

    /// Fetches what the events do not carry (the block's transactions, the
    /// receipts of ambiguous writers) and hands the update to [`ingest`].
    fn index_block(
        &self,
        block: BlockRef,
        changes: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Ingested, FollowError> {
        let block_num = block.block_num;
        let rest_block = self
            .runtime
            .block_on(self.node.block(&block.block_id))?
            .ok_or_else(|| FollowError::Rest {
                url: self.node.base().to_string(),
                message: format!("block {} announced but not served", block.block_id),
            })?;
        let ambiguous = ambiguous_writers(&block.block_id, &changes, &rest_block)?;
        let receipts = if ambiguous.is_empty() {
            Receipts::new()
        } else {
            self.runtime.block_on(self.node.receipts(&ambiguous))?
        };
        let update = block_update(block, changes, &rest_block, &receipts)?;
        let outcome = self
            .runtime
            .block_on(ingest(self.index.as_ref(), &self.node, update))?;
        tracing::debug!(?outcome, "block indexed");
        let chain_head = self.status.chain_head().unwrap_or(block_num).max(block_num);
        let indexed = self.index_head()?;
        self.status.observe(chain_head, indexed, Instant::now());
        Ok(outcome)
    }
}
