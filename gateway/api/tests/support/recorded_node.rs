//! Serves recorded blocks over the node's real protocols until the embedded
//! node is usable in tests: a ZeroMQ ROUTER speaking Sawtooth's
//! `CLIENT_EVENTS_SUBSCRIBE` (block-commit + state-delta events, catch-up from
//! `last_known_block_ids`) and the REST routes the follower reads
//! (`GET /blocks/{id}`, `GET /blocks?limit=1`).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use coldchain_api::index::BlockUpdate;
use protobuf::Message as _;
use sawtooth_sdk::messages::client_event::{
    ClientEventsSubscribeRequest, ClientEventsSubscribeResponse,
    ClientEventsSubscribeResponse_Status,
};
use sawtooth_sdk::messages::events::{Event, EventList, Event_Attribute};
use sawtooth_sdk::messages::transaction_receipt::{StateChange, StateChangeList, StateChange_Type};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};
use serde_json::json;
use warp::Filter;

use super::{RecordedTxn, NULL_BLOCK_ID};

/// The published chain: blocks with their transactions.
#[derive(Default)]
pub struct Published {
    pub blocks: Vec<(BlockUpdate, Vec<RecordedTxn>)>,
    /// The `last_known_block_ids` of every subscription received.
    pub subscriptions: Vec<Vec<String>>,
    /// Set by [`RecordedNode::fork`]: the live subscriber gets the blocks
    /// from this position again (the new fork's), as a validator announces
    /// the blocks of the chain it switched to.
    rewind_to: Option<usize>,
    /// Set by [`RecordedNode::withhold_events`]: blocks from this position on
    /// are served over REST (the chain head moves) but not announced.
    withhold_from: Option<usize>,
}

pub struct RecordedNode {
    pub published: Arc<Mutex<Published>>,
    pub component: String,
    pub rest_url: String,
    stop: Arc<AtomicBool>,
}

impl Drop for RecordedNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn block_json(update: &BlockUpdate, txns: &[RecordedTxn]) -> serde_json::Value {
    let transactions: Vec<_> = txns
        .iter()
        .map(|t| {
            json!({
                "header": {"family_name": t.family, "outputs": t.outputs},
                "header_signature": t.id,
                "payload": base64::engine::general_purpose::STANDARD.encode(&t.payload),
            })
        })
        .collect();
    json!({
        "header": {"block_num": update.block.block_num.to_string(), "previous_block_id": update.block.previous_block_id, "state_root_hash": update.block.state_root},
        "header_signature": update.block.block_id,
        "batches": [{"transactions": transactions}],
    })
}

fn events(update: &BlockUpdate) -> Vec<u8> {
    let attribute = |key: &str, value: String| {
        let mut a = Event_Attribute::new();
        a.set_key(key.into());
        a.set_value(value);
        a
    };
    let b = &update.block;
    let mut commit = Event::new();
    commit.set_event_type("sawtooth/block-commit".into());
    commit.set_attributes(
        vec![
            attribute("block_id", b.block_id.clone()),
            attribute("block_num", b.block_num.to_string()),
            attribute("state_root_hash", b.state_root.clone()),
            attribute("previous_block_id", b.previous_block_id.clone()),
        ]
        .into(),
    );
    let mut changes = StateChangeList::new();
    for change in &update.changes {
        let mut c = StateChange::new();
        c.set_address(change.address.clone());
        match &change.value {
            Some(value) => {
                c.set_value(value.clone());
                c.set_field_type(StateChange_Type::SET);
            }
            None => c.set_field_type(StateChange_Type::DELETE),
        }
        changes.mut_state_changes().push(c);
    }
    let mut delta = Event::new();
    delta.set_event_type("sawtooth/state-delta".into());
    delta.set_data(changes.write_to_bytes().expect("encode"));
    let mut list = EventList::new();
    list.set_events(vec![commit, delta].into());
    let mut message = Message::new();
    message.set_message_type(Message_MessageType::CLIENT_EVENTS);
    message.set_content(list.write_to_bytes().expect("encode"));
    message.write_to_bytes().expect("encode")
}

impl RecordedNode {
    pub async fn start() -> RecordedNode {
        let published = Arc::new(Mutex::new(Published::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let for_block = Arc::clone(&published);
        let block = warp::path!("blocks" / String).map(move |id: String| {
            let published = for_block.lock().expect("lock");
            match published
                .blocks
                .iter()
                .find(|(u, _)| u.block.block_id == id)
            {
                Some((u, t)) => warp::reply::with_status(
                    warp::reply::json(&json!({"data": block_json(u, t)})),
                    warp::http::StatusCode::OK,
                ),
                None => warp::reply::with_status(
                    warp::reply::json(&json!({"error": "not found"})),
                    warp::http::StatusCode::NOT_FOUND,
                ),
            }
        });
        let for_head = Arc::clone(&published);
        let head = warp::path!("blocks").map(move || {
            let published = for_head.lock().expect("lock");
            let data: Vec<_> = published
                .blocks
                .last()
                .map(|(u, _)| json!({"header": {"block_num": u.block.block_num.to_string()}}))
                .into_iter()
                .collect();
            warp::reply::json(&json!({"data": data}))
        });
        let for_receipts = Arc::clone(&published);
        let receipts = warp::post()
            .and(warp::path!("receipts"))
            .and(warp::body::json())
            .map(move |ids: Vec<String>| {
                let published = for_receipts.lock().expect("lock");
                let data: Vec<_> = ids
                    .iter()
                    .filter_map(|id| {
                        published
                            .blocks
                            .iter()
                            .flat_map(|(_, txns)| txns)
                            .find(|t| &t.id == id)
                    })
                    // As a Sawtooth 1.2 REST API answers: `transaction_id`
                    // renamed to `id`, empty values dropped.
                    .map(|t| {
                        json!({
                            "data": [],
                            "events": [],
                            "id": t.id,
                            "state_changes": t.writes.iter().map(|a| json!({"address": a, "type": "SET", "value": "AQ=="})).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                warp::reply::json(&json!({"data": data}))
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let rest_url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(
            warp::serve(receipts.or(block).or(head))
                .incoming(listener)
                .run(),
        );

        let context = zmq::Context::new();
        let socket = context.socket(zmq::ROUTER).expect("router");
        socket.bind("tcp://127.0.0.1:*").expect("bind zmq");
        let component = socket.get_last_endpoint().expect("endpoint").expect("utf8");
        let (for_zmq, stop_zmq) = (Arc::clone(&published), Arc::clone(&stop));
        std::thread::spawn(move || serve_events(socket, for_zmq, stop_zmq));
        RecordedNode {
            published,
            component,
            rest_url,
            stop,
        }
    }

    /// Switches to a fork: every published block above `block_num` is
    /// abandoned (no longer served by `GET /blocks/{id}`, unknown to new
    /// subscriptions) and `blocks` follow it; a live subscriber gets them.
    pub fn fork(&self, block_num: u64, blocks: Vec<(BlockUpdate, Vec<RecordedTxn>)>) {
        let keep = usize::try_from(block_num).expect("small") + 1;
        let mut published = self.published.lock().expect("lock");
        published.blocks.truncate(keep);
        published.blocks.extend(blocks);
        published.rewind_to = Some(keep);
    }

    /// Blocks published from now on move the chain head (`GET /blocks`)
    /// but are not announced to the subscriber until [`RecordedNode::release_events`].
    pub fn withhold_events(&self) {
        let mut published = self.published.lock().expect("lock");
        published.withhold_from = Some(published.blocks.len());
    }

    /// Announces the withheld blocks.
    pub fn release_events(&self) {
        self.published.lock().expect("lock").withhold_from = None;
    }

    pub fn publish(&self, update: BlockUpdate, txns: Vec<RecordedTxn>) {
        self.published
            .lock()
            .expect("lock")
            .blocks
            .push((update, txns));
    }
}

/// One subscriber at a time: catch-up from its last known block, then live blocks.
fn serve_events(socket: zmq::Socket, published: Arc<Mutex<Published>>, stop: Arc<AtomicBool>) {
    socket.set_rcvtimeo(50).expect("timeout");
    let mut subscriber: Option<(Vec<u8>, usize)> = None;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(frames) = socket.recv_multipart(0) {
            let [identity, body] = frames.as_slice() else {
                continue;
            };
            let Ok(message) = Message::parse_from_bytes(body) else {
                continue;
            };
            if message.get_message_type() == Message_MessageType::CLIENT_EVENTS_SUBSCRIBE_REQUEST {
                let request = ClientEventsSubscribeRequest::parse_from_bytes(message.get_content())
                    .expect("request");
                let known = request.get_last_known_block_ids().to_vec();
                let mut state = published.lock().expect("lock");
                state.subscriptions.push(known.clone());
                state.rewind_to = None;
                let start = if known.iter().any(|k| k == NULL_BLOCK_ID) {
                    Some(0)
                } else {
                    known.iter().find_map(|k| {
                        state
                            .blocks
                            .iter()
                            .position(|(u, _)| &u.block.block_id == k)
                            .map(|p| p + 1)
                    })
                };
                let mut response = ClientEventsSubscribeResponse::new();
                response.set_status(if start.is_some() {
                    ClientEventsSubscribeResponse_Status::OK
                } else {
                    ClientEventsSubscribeResponse_Status::UNKNOWN_BLOCK
                });
                let mut reply = Message::new();
                reply.set_message_type(Message_MessageType::CLIENT_EVENTS_SUBSCRIBE_RESPONSE);
                reply.set_correlation_id(message.get_correlation_id().into());
                reply.set_content(response.write_to_bytes().expect("encode"));
                let _ = socket.send_multipart(
                    [identity.clone(), reply.write_to_bytes().expect("encode")],
                    0,
                );
                subscriber = start.map(|s| (identity.clone(), s));
            }
        }
        if let Some((identity, next)) = subscriber.as_mut() {
            let mut state = published.lock().expect("lock");
            if let Some(rewind) = state.rewind_to.take() {
                *next = (*next).min(rewind);
            }
            let announced = state.withhold_from.unwrap_or(usize::MAX);
            while *next < state.blocks.len().min(announced) {
                let _ =
                    socket.send_multipart([identity.clone(), events(&state.blocks[*next].0)], 0);
                *next += 1;
            }
        }
    }
}
