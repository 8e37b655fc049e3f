//! Test fixtures for the component endpoint: an in-memory chain, a raw
//! Sawtooth-protocol DEALER client, the example SDK TP as a child process.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::block::Block;
use sawtooth_sdk::messages::events::{Event, Event_Attribute};
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sawtooth_sdk::messages::transaction_receipt::{
    StateChange, StateChange_Type, TransactionReceipt,
};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType as Type};
use sawtooth_sdk::processor::handler::{ContextError, TransactionContext};
use sha2::{Digest, Sha512};
use tokio::sync::broadcast;

use crate::chain_feed::{ChainFeed, ChainFeedError, CommittedBlock};

pub const INTKEY_NS: &str = "1cf126";
pub const IN_PROCESS_MARK: &[u8] = b"in-process";

pub fn intkey_address(name: &str) -> String {
    let digest = hex::encode(Sha512::digest(name.as_bytes()));
    format!("{INTKEY_NS}{}", &digest[64..])
}

pub fn intkey_request(payload: &str) -> TpProcessRequest {
    let mut header = TransactionHeader::new();
    header.set_family_name("intkey".into());
    header.set_family_version("1.0".into());
    header.set_inputs(RepeatedField::from_vec(vec![INTKEY_NS.into()]));
    header.set_outputs(RepeatedField::from_vec(vec![INTKEY_NS.into()]));
    let mut request = TpProcessRequest::new();
    request.set_header(header);
    request.set_payload(payload.as_bytes().to_vec());
    request.set_signature("a1".repeat(64));
    request
}

/// A receipt with SET changes and one `intkey/changed` event for `name`.
pub fn receipt(changes: &[(String, Vec<u8>)], name: &str) -> TransactionReceipt {
    let mut receipt = TransactionReceipt::new();
    let changes = changes
        .iter()
        .map(|(address, value)| {
            let mut change = StateChange::new();
            change.set_address(address.clone());
            change.set_value(value.clone());
            change.set_field_type(StateChange_Type::SET);
            change
        })
        .collect();
    receipt.set_state_changes(RepeatedField::from_vec(changes));
    let mut attribute = Event_Attribute::new();
    attribute.set_key("name".into());
    attribute.set_value(name.into());
    let mut event = Event::new();
    event.set_event_type("intkey/changed".into());
    event.set_attributes(RepeatedField::from_vec(vec![attribute]));
    receipt.set_events(RepeatedField::from_vec(vec![event]));
    receipt
}

/// An in-memory chain that commits blocks on demand.
pub struct MemoryFeed {
    blocks: Mutex<Vec<Arc<CommittedBlock>>>,
    live: broadcast::Sender<Arc<CommittedBlock>>,
}

impl MemoryFeed {
    pub fn new() -> Arc<MemoryFeed> {
        Arc::new(MemoryFeed {
            blocks: Mutex::default(),
            live: broadcast::channel(16).0,
        })
    }

    pub fn commit(&self, receipts: Vec<TransactionReceipt>) -> Arc<CommittedBlock> {
        let mut blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        let block_num = blocks.len() as u64;
        let previous_block_id = blocks
            .last()
            .map_or(super::super::events::NULL_BLOCK_ID.to_string(), |b| {
                b.block_id.clone()
            });
        let block = Arc::new(CommittedBlock {
            block: Block::new(),
            block_id: hex::encode(Sha512::digest(format!("block {block_num}"))),
            block_num,
            previous_block_id,
            state_root_hash: hex::encode(&Sha512::digest(format!("root {block_num}"))[..32]),
            receipts,
        });
        blocks.push(block.clone());
        let _ = self.live.send(block.clone());
        block
    }
}

impl ChainFeed for MemoryFeed {
    fn chain_head(&self) -> Result<Option<Arc<CommittedBlock>>, ChainFeedError> {
        Ok(self
            .blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .cloned())
    }
    fn block_by_id(&self, block_id: &str) -> Result<Option<Arc<CommittedBlock>>, ChainFeedError> {
        let blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        Ok(blocks.iter().find(|b| b.block_id == block_id).cloned())
    }
    fn blocks_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Arc<CommittedBlock>>, ChainFeedError> {
        let blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        Ok(blocks
            .iter()
            .filter(|b| b.block_num > after)
            .take(limit)
            .cloned()
            .collect())
    }
    fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedBlock>> {
        self.live.subscribe()
    }
}

/// An event type with its attributes.
pub type EmittedEvent = (String, Vec<(String, String)>);

/// State, events and receipt data of one test transaction.
#[derive(Default)]
pub struct MemoryState {
    state: RefCell<BTreeMap<String, Vec<u8>>>,
    events: RefCell<Vec<EmittedEvent>>,
    receipts: RefCell<Vec<Vec<u8>>>,
}

impl MemoryState {
    pub fn get(&self, address: &str) -> Option<Vec<u8>> {
        self.state.borrow().get(address).cloned()
    }
    pub fn is_empty(&self) -> bool {
        self.state.borrow().is_empty()
    }
    pub fn take_events(&self) -> Vec<EmittedEvent> {
        self.events.take()
    }
    pub fn take_receipts(&self) -> Vec<Vec<u8>> {
        self.receipts.take()
    }
}

impl TransactionContext for MemoryState {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        let state = self.state.borrow();
        Ok(addresses
            .iter()
            .filter_map(|a| state.get(a).map(|v| (a.clone(), v.clone())))
            .collect())
    }
    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        self.state.borrow_mut().extend(entries);
        Ok(())
    }
    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError> {
        let mut state = self.state.borrow_mut();
        Ok(addresses
            .iter()
            .filter(|a| state.remove(*a).is_some())
            .cloned()
            .collect())
    }
    fn add_receipt_data(&self, data: &[u8]) -> Result<(), ContextError> {
        self.receipts.borrow_mut().push(data.to_vec());
        Ok(())
    }
    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        _: &[u8],
    ) -> Result<(), ContextError> {
        self.events.borrow_mut().push((event_type, attributes));
        Ok(())
    }
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `component_intkey_tp` example as a child process; killed on drop.
pub struct TpProcess(Child);

impl TpProcess {
    pub fn spawn(endpoint: &str, family: &str) -> TpProcess {
        // Test binaries live in target/<profile>/deps, examples beside it.
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target/<profile> directory");
        let tp = profile_dir.join("examples").join("component_intkey_tp");
        assert!(
            tp.exists(),
            "{} is missing; `cargo test` builds it with the crate's examples",
            tp.display()
        );
        let child = Command::new(tp)
            .args([endpoint, family])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the example TP");
        TpProcess(child)
    }
}

impl Drop for TpProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A DEALER client speaking the validator protocol, like an SDK would.
pub struct Client {
    socket: zmq::Socket,
    _context: zmq::Context,
}

impl Client {
    pub fn connect(endpoint: &str) -> Client {
        Client::connect_with_rcvhwm(endpoint, 1000)
    }

    pub fn connect_with_rcvhwm(endpoint: &str, rcvhwm: i32) -> Client {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::DEALER).expect("dealer socket");
        socket.set_rcvhwm(rcvhwm).expect("rcvhwm");
        socket.set_rcvbuf(4096).expect("rcvbuf");
        socket.set_linger(0).expect("linger");
        socket.connect(endpoint).expect("connect");
        Client {
            socket,
            _context: context,
        }
    }

    pub fn send(&self, message_type: Type, content: &dyn protobuf::Message) -> String {
        let correlation_id = super::super::wire::fresh_id();
        let bytes =
            super::super::wire::encode(message_type, &correlation_id, content).expect("encode");
        self.socket.send(bytes, 0).expect("send");
        correlation_id
    }

    pub fn recv(&self, timeout: Duration) -> Option<Message> {
        if self
            .socket
            .poll(zmq::POLLIN, timeout.as_millis() as i64)
            .ok()?
            == 0
        {
            return None;
        }
        let bytes = self.socket.recv_bytes(0).ok()?;
        Some(Message::parse_from_bytes(&bytes).expect("the endpoint sends Sawtooth Messages"))
    }

    /// The next message of `message_type`, skipping others (pings).
    pub fn recv_type(&self, message_type: Type, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let message = self.recv(left)?;
            if message.get_message_type() == message_type {
                return Some(message);
            }
        }
    }

    /// Sends a request and returns the content of its response.
    pub fn request(
        &self,
        message_type: Type,
        content: &dyn protobuf::Message,
        reply_type: Type,
    ) -> Vec<u8> {
        let correlation_id = self.send(message_type, content);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("reply in time");
            let message = self.recv(left).expect("reply in time");
            if message.get_message_type() == reply_type {
                assert_eq!(message.get_correlation_id(), correlation_id);
                return message.get_content().to_vec();
            }
        }
    }
}
