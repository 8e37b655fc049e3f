//! The component endpoint's I/O thread: the only owner of the ROUTER socket.
//! It answers registrations, pings and subscriptions itself, routes TP
//! replies to the waiting `apply` calls, forwards what other threads queued
//! in the outbox, and notices lost peers.
//!
//! Peer loss: the socket is `ROUTER_MANDATORY`, so a send to a peer whose
//! connection is gone fails with `EHOSTUNREACH`. Every peer is pinged when
//! idle for the heartbeat interval and, whenever the socket monitor reports
//! a disconnect, every peer is probed at once (and again shortly after, as
//! libzmq removes the route asynchronously). A registered TP that stays
//! silent past the idle timeout while it has no request in flight is dropped
//! too (half-open TCP).
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::client_event::*;
use sawtooth_sdk::messages::network::{PingRequest, PingResponse};
use sawtooth_sdk::messages::processor::*;
use sawtooth_sdk::messages::validator::{Message, Message_MessageType as Type};

use super::events::parse_subscriptions;
use super::registration::{
    registration_terms, set_response_protocol_version, MAX_PROTOCOL_VERSION,
};
use super::remote::{
    context_id_of, refuse_unknown_context, PendingTable, RemoteProcessor, TpInbound,
};
use super::subscriber::{events_of_blocks, first_block_for, Pump, SubscriberWorker};
use super::wire::{encode, fresh_id, DeliveryTag, Outbox};
use super::ComponentSettings;
use crate::chain_feed::ChainFeed;
use crate::handlers::HandlerRegistry;

/// Messages taken from one socket per loop turn, so neither side starves.
const BURST: usize = 512;
/// How often idle peers and silent TPs are looked for.
const HEARTBEAT_SCAN: Duration = Duration::from_millis(50);
/// Re-probes after a disconnect event (libzmq drops the route asynchronously).
const PROBE_DELAYS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(100),
    Duration::from_millis(1000),
];

struct Subscribed {
    worker: SubscriberWorker,
    generation: u64,
    refused: bool,
}

struct Peer {
    last_seen: Instant,
    last_ping: Option<Instant>,
    registered: bool,
    subscriber: Option<Subscribed>,
}

pub struct Router {
    pub router: zmq::Socket,
    pub inbox: zmq::Socket,
    pub monitor: zmq::Socket,
    pub registry: HandlerRegistry,
    pub feed: Arc<dyn ChainFeed>,
    pub pump: Pump,
    pub outbox: Outbox,
    pub pending: PendingTable,
    pub settings: ComponentSettings,
    pub stop: Arc<AtomicBool>,
    peers: HashMap<Vec<u8>, Peer>,
    probes: Vec<Instant>,
    next_generation: u64,
    last_heartbeat: Instant,
}

fn connection_id(identity: &[u8]) -> String {
    hex::encode(identity)
}

impl Router {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        router: zmq::Socket,
        inbox: zmq::Socket,
        monitor: zmq::Socket,
        registry: HandlerRegistry,
        feed: Arc<dyn ChainFeed>,
        pump: Pump,
        outbox: Outbox,
        settings: ComponentSettings,
        stop: Arc<AtomicBool>,
    ) -> Router {
        Router {
            router,
            inbox,
            monitor,
            registry,
            feed,
            pump,
            outbox,
            pending: PendingTable::default(),
            settings,
            stop,
            peers: HashMap::new(),
            probes: Vec::new(),
            next_generation: 1,
            last_heartbeat: Instant::now(),
        }
    }

    /// Serves until `stop` is set, then unregisters every external TP and
    /// stops every subscriber.
    pub fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            let mut items = [
                self.router.as_poll_item(zmq::POLLIN),
                self.inbox.as_poll_item(zmq::POLLIN),
                self.monitor.as_poll_item(zmq::POLLIN),
            ];
            if let Err(e) = zmq::poll(&mut items, 100) {
                tracing::error!(error = %e, "component endpoint poll failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let (inbound, outbound, monitor) = (
                items[0].is_readable(),
                items[1].is_readable(),
                items[2].is_readable(),
            );
            if inbound {
                self.drain_inbound();
            }
            if outbound {
                self.drain_outbox();
            }
            if monitor {
                self.note_disconnects();
            }
            self.heartbeat();
        }
        let identities: Vec<Vec<u8>> = self.peers.keys().cloned().collect();
        let workers: Vec<SubscriberWorker> = identities
            .iter()
            .filter_map(|id| self.drop_peer(id, "the node is shutting down"))
            .collect();
        workers
            .into_iter()
            .for_each(SubscriberWorker::stop_and_join);
    }

    fn drain_inbound(&mut self) {
        for _ in 0..BURST {
            match self.router.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => {
                    if let [identity, payload] = frames.as_slice() {
                        self.handle(identity, payload);
                    }
                }
                Err(zmq::Error::EAGAIN) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "component endpoint receive failed");
                    return;
                }
            }
        }
    }

    fn drain_outbox(&mut self) {
        for _ in 0..BURST {
            match self.inbox.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => match frames.as_slice() {
                    [identity, message] => {
                        self.send_raw(identity, message);
                    }
                    [identity, message, tag] => {
                        if let Some(tag) = DeliveryTag::from_bytes(tag) {
                            self.send_event(identity, message, tag);
                        }
                    }
                    _ => {}
                },
                Err(zmq::Error::EAGAIN) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "component outbox receive failed");
                    return;
                }
            }
        }
    }

    fn note_disconnects(&mut self) {
        while self.monitor.recv_multipart(zmq::DONTWAIT).is_ok() {}
        let now = Instant::now();
        self.probes.extend(PROBE_DELAYS.iter().map(|d| now + *d));
    }

    /// Sends to a peer; a peer whose route is gone is dropped.
    fn send_raw(&mut self, identity: &[u8], message: &[u8]) -> bool {
        match self
            .router
            .send_multipart([identity, message], zmq::DONTWAIT)
        {
            Ok(()) => true,
            Err(zmq::Error::EHOSTUNREACH) => {
                if let Some(worker) = self.drop_peer(identity, "its connection is gone") {
                    worker.stop();
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, peer = %connection_id(identity), "cannot send to component peer");
                false
            }
        }
    }

    /// Sends one event delivery unless an earlier one of the same generation
    /// was refused (order must hold; the worker re-sends from the refusal).
    fn send_event(&mut self, identity: &[u8], message: &[u8], tag: DeliveryTag) {
        let Some(sub) = self
            .peers
            .get_mut(identity)
            .and_then(|p| p.subscriber.as_mut())
        else {
            return;
        };
        if tag.generation < sub.generation {
            return;
        }
        if tag.generation > sub.generation {
            sub.generation = tag.generation;
            sub.refused = false;
        }
        if sub.refused {
            return;
        }
        match self
            .router
            .send_multipart([identity, message], zmq::DONTWAIT)
        {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => {
                sub.refused = true;
                sub.worker.signals.refuse(tag);
            }
            Err(zmq::Error::EHOSTUNREACH) => {
                if let Some(worker) = self.drop_peer(identity, "its connection is gone") {
                    worker.stop();
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot send events to subscriber"),
        }
    }

    fn reply(
        &mut self,
        identity: &[u8],
        message_type: Type,
        correlation_id: &str,
        content: &dyn protobuf::Message,
    ) {
        match encode(message_type, correlation_id, content) {
            Ok(bytes) => {
                self.send_raw(identity, &bytes);
            }
            Err(e) => tracing::error!(error = %e, ?message_type, "cannot encode reply"),
        }
    }

    fn handle(&mut self, identity: &[u8], payload: &[u8]) {
        let now = Instant::now();
        let peer = self.peers.entry(identity.to_vec()).or_insert(Peer {
            last_seen: now,
            last_ping: None,
            registered: false,
            subscriber: None,
        });
        peer.last_seen = now;
        let Ok(mut message) = Message::parse_from_bytes(payload) else {
            tracing::debug!(peer = %connection_id(identity), "ignoring a frame that is not a Sawtooth Message");
            return;
        };
        let correlation_id = message.take_correlation_id();
        let content = message.take_content();
        match message.get_message_type() {
            Type::TP_REGISTER_REQUEST => self.register(identity, &correlation_id, &content),
            Type::TP_UNREGISTER_REQUEST => {
                self.unregister_tp(identity);
                let mut response = TpUnregisterResponse::new();
                response.set_status(TpUnregisterResponse_Status::OK);
                self.reply(
                    identity,
                    Type::TP_UNREGISTER_RESPONSE,
                    &correlation_id,
                    &response,
                );
            }
            Type::TP_PROCESS_RESPONSE => {
                if !self
                    .pending
                    .route_process_response(&correlation_id, content)
                {
                    tracing::debug!(%correlation_id, "TP_PROCESS_RESPONSE for no request in flight");
                }
            }
            t @ (Type::TP_STATE_GET_REQUEST
            | Type::TP_STATE_SET_REQUEST
            | Type::TP_STATE_DELETE_REQUEST
            | Type::TP_RECEIPT_ADD_DATA_REQUEST
            | Type::TP_EVENT_ADD_REQUEST) => {
                self.route_context_request(identity, t, correlation_id, content)
            }
            Type::PING_REQUEST => self.reply(
                identity,
                Type::PING_RESPONSE,
                &correlation_id,
                &PingResponse::new(),
            ),
            Type::PING_RESPONSE => {}
            Type::CLIENT_EVENTS_SUBSCRIBE_REQUEST => {
                self.subscribe(identity, &correlation_id, &content)
            }
            Type::CLIENT_EVENTS_UNSUBSCRIBE_REQUEST => {
                if let Some(sub) = self
                    .peers
                    .get_mut(identity)
                    .and_then(|p| p.subscriber.take())
                {
                    sub.worker.stop();
                }
                let mut response = ClientEventsUnsubscribeResponse::new();
                response.set_status(ClientEventsUnsubscribeResponse_Status::OK);
                self.reply(
                    identity,
                    Type::CLIENT_EVENTS_UNSUBSCRIBE_RESPONSE,
                    &correlation_id,
                    &response,
                );
            }
            Type::CLIENT_EVENTS_GET_REQUEST => self.get_events(identity, &correlation_id, &content),
            other => tracing::debug!(?other, "component endpoint ignores this message type"),
        }
    }

    /// Answers a TP_REGISTER_REQUEST with ERROR (and the highest protocol
    /// version known, when that is why).
    fn refuse_registration(
        &mut self,
        identity: &[u8],
        correlation_id: &str,
        protocol_version: u32,
    ) {
        let mut response = TpRegisterResponse::new();
        response.set_status(TpRegisterResponse_Status::ERROR);
        set_response_protocol_version(&mut response, protocol_version);
        self.reply(
            identity,
            Type::TP_REGISTER_RESPONSE,
            correlation_id,
            &response,
        );
    }

    fn register(&mut self, identity: &[u8], correlation_id: &str, content: &[u8]) {
        let request = TpRegisterRequest::parse_from_bytes(content)
            .ok()
            .filter(|r| !r.get_family().is_empty());
        let Some(request) = request else {
            return self.refuse_registration(identity, correlation_id, 0);
        };
        let terms = match registration_terms(&request) {
            Ok(terms) => terms,
            Err(refusal) => {
                tracing::warn!(
                    family = request.get_family(),
                    peer = %connection_id(identity),
                    ?refusal,
                    "transaction processor registration refused: it asks for a protocol this node does not speak"
                );
                return self.refuse_registration(identity, correlation_id, MAX_PROTOCOL_VERSION);
            }
        };
        let mut response = TpRegisterResponse::new();
        let processor = RemoteProcessor {
            family: request.get_family().to_string(),
            version: request.get_version().to_string(),
            namespaces: request.get_namespaces().to_vec(),
            header_style: terms.header_style,
            identity: identity.to_vec(),
            outbox: self.outbox.clone(),
            pending: self.pending.clone(),
            process_timeout: self.settings.process_timeout,
        };
        self.pending.mark_live(identity);
        self.registry.register_external(
            request.get_family(),
            request.get_version(),
            &connection_id(identity),
            Arc::new(processor),
        );
        if let Some(peer) = self.peers.get_mut(identity) {
            peer.registered = true;
        }
        tracing::info!(
            family = request.get_family(),
            version = request.get_version(),
            peer = %connection_id(identity),
            "external transaction processor registered"
        );
        response.set_status(TpRegisterResponse_Status::OK);
        // The SDKs check that the validator echoes the version they asked for.
        set_response_protocol_version(&mut response, terms.protocol_version);
        self.reply(
            identity,
            Type::TP_REGISTER_RESPONSE,
            correlation_id,
            &response,
        );
    }

    fn unregister_tp(&mut self, identity: &[u8]) {
        self.registry.unregister_external(&connection_id(identity));
        self.pending.drop_connection(identity);
        if let Some(peer) = self.peers.get_mut(identity) {
            if peer.registered {
                tracing::info!(peer = %connection_id(identity), "external transaction processor unregistered");
            }
            peer.registered = false;
        }
    }

    fn route_context_request(
        &mut self,
        identity: &[u8],
        message_type: Type,
        correlation_id: String,
        content: Vec<u8>,
    ) {
        let Some(context_id) = context_id_of(message_type, &content) else {
            return;
        };
        let refusal = refuse_unknown_context(message_type);
        let inbound = TpInbound::ContextRequest {
            message_type,
            correlation_id: correlation_id.clone(),
            content,
        };
        if !self.pending.route_context_request(&context_id, inbound) {
            if let Some((reply_type, bytes)) = refusal {
                let mut message = Message::new();
                message.set_message_type(reply_type);
                message.set_correlation_id(correlation_id);
                message.set_content(bytes);
                if let Ok(bytes) = message.write_to_bytes() {
                    self.send_raw(identity, &bytes);
                }
            }
        }
    }

    /// Removes a peer: its TP registrations, its in-flight requests and its
    /// subscription. Returns the subscriber worker for the caller to stop.
    fn drop_peer(&mut self, identity: &[u8], why: &str) -> Option<SubscriberWorker> {
        self.unregister_tp(identity);
        let peer = self.peers.remove(identity)?;
        tracing::debug!(peer = %connection_id(identity), why, "component peer dropped");
        peer.subscriber.map(|s| s.worker)
    }

    fn heartbeat(&mut self) {
        let now = Instant::now();
        let probing = self.probes.iter().any(|t| *t <= now);
        // Scanning every peer on every message burst would cost O(peers) per
        // message under load; a few times a second is plenty.
        if !probing && now.duration_since(self.last_heartbeat) < HEARTBEAT_SCAN {
            return;
        }
        self.last_heartbeat = now;
        self.probes.retain(|t| *t > now);
        let interval = self.settings.heartbeat_interval;
        let mut to_ping = Vec::new();
        let mut silent = Vec::new();
        for (identity, peer) in &self.peers {
            let idle = now.duration_since(peer.last_seen);
            if peer.registered
                && idle > self.settings.tp_idle_timeout
                && !self.pending.is_busy(identity)
            {
                silent.push(identity.clone());
            } else if probing
                || (idle >= interval
                    && peer
                        .last_ping
                        .is_none_or(|t| now.duration_since(t) >= interval))
            {
                to_ping.push(identity.clone());
            }
        }
        for identity in silent {
            if let Some(worker) = self.drop_peer(&identity, "it stopped answering pings") {
                worker.stop();
            }
        }
        for identity in to_ping {
            if let Some(peer) = self.peers.get_mut(&identity) {
                peer.last_ping = Some(now);
            }
            match encode(Type::PING_REQUEST, &fresh_id(), &PingRequest::new()) {
                Ok(bytes) => {
                    self.send_raw(&identity, &bytes);
                }
                Err(e) => tracing::error!(error = %e, "cannot encode PingRequest"),
            }
        }
    }

    fn subscribe(&mut self, identity: &[u8], correlation_id: &str, content: &[u8]) {
        let mut response = ClientEventsSubscribeResponse::new();
        let request = match ClientEventsSubscribeRequest::parse_from_bytes(content) {
            Ok(request) => request,
            Err(e) => {
                response.set_status(ClientEventsSubscribeResponse_Status::INVALID_FILTER);
                response
                    .set_response_message(format!("undecodable ClientEventsSubscribeRequest: {e}"));
                return self.reply(
                    identity,
                    Type::CLIENT_EVENTS_SUBSCRIBE_RESPONSE,
                    correlation_id,
                    &response,
                );
            }
        };
        let subscriptions = match parse_subscriptions(request.get_subscriptions()) {
            Ok(subscriptions) => subscriptions,
            Err(why) => {
                response.set_status(ClientEventsSubscribeResponse_Status::INVALID_FILTER);
                response.set_response_message(why);
                return self.reply(
                    identity,
                    Type::CLIENT_EVENTS_SUBSCRIBE_RESPONSE,
                    correlation_id,
                    &response,
                );
            }
        };
        let first_block =
            match first_block_for(self.feed.as_ref(), request.get_last_known_block_ids()) {
                Ok(first) => first,
                Err(why) => {
                    response.set_status(ClientEventsSubscribeResponse_Status::UNKNOWN_BLOCK);
                    response.set_response_message(why);
                    return self.reply(
                        identity,
                        Type::CLIENT_EVENTS_SUBSCRIBE_RESPONSE,
                        correlation_id,
                        &response,
                    );
                }
            };
        if let Some(old) = self
            .peers
            .get_mut(identity)
            .and_then(|p| p.subscriber.take())
        {
            old.worker.stop();
        }
        // The response goes out before the worker exists, so it precedes
        // every event of this subscription on the wire.
        response.set_status(ClientEventsSubscribeResponse_Status::OK);
        self.reply(
            identity,
            Type::CLIENT_EVENTS_SUBSCRIBE_RESPONSE,
            correlation_id,
            &response,
        );
        let generation = self.next_generation;
        self.next_generation += 1 << 32;
        let started = SubscriberWorker::start(
            identity.to_vec(),
            subscriptions,
            first_block,
            generation,
            self.feed.clone(),
            self.pump.clone(),
            self.outbox.clone(),
        );
        match (started, self.peers.get_mut(identity)) {
            (Ok(worker), Some(peer)) => {
                peer.subscriber = Some(Subscribed {
                    worker,
                    generation,
                    refused: false,
                })
            }
            (Ok(worker), None) => worker.stop(),
            (Err(e), _) => tracing::error!(error = %e, "cannot start an event subscriber thread"),
        }
    }

    fn get_events(&mut self, identity: &[u8], correlation_id: &str, content: &[u8]) {
        let mut response = ClientEventsGetResponse::new();
        match events_of_blocks(self.feed.as_ref(), content) {
            Ok(events) => {
                response.set_status(ClientEventsGetResponse_Status::OK);
                response.set_events(RepeatedField::from_vec(events));
            }
            Err((status, why)) => {
                tracing::debug!(why, "CLIENT_EVENTS_GET refused");
                response.set_status(status);
            }
        }
        self.reply(
            identity,
            Type::CLIENT_EVENTS_GET_RESPONSE,
            correlation_id,
            &response,
        );
    }
}
