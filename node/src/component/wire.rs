//! Framing shared by the component endpoint's threads: Sawtooth `Message`
//! encoding, fresh correlation/context ids, and the [`Outbox`] through which
//! threads other than the I/O thread hand messages to the ROUTER socket
//! (ZeroMQ sockets must stay on one thread, so they never touch it).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use protobuf::Message as _;
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};

use super::ComponentError;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A process-unique id for correlation and context ids. Ids only need to be
/// unique among in-flight requests of this node, not unguessable.
pub fn fresh_id() -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{:08x}{:016x}",
        (start >> 16) as u32 ^ std::process::id(),
        n
    )
}

/// A Sawtooth validator `Message` with the given type, correlation id and content.
pub fn encode(
    message_type: Message_MessageType,
    correlation_id: &str,
    content: &dyn protobuf::Message,
) -> Result<Vec<u8>, protobuf::ProtobufError> {
    let mut message = Message::new();
    message.set_message_type(message_type);
    message.set_correlation_id(correlation_id.to_string());
    message.set_content(content.write_to_bytes()?);
    message.write_to_bytes()
}

/// Where an event delivery belongs in its subscriber's stream, so the I/O
/// thread can drop deliveries after one it could not send (see `subscriber`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryTag {
    pub generation: u64,
    pub block_num: u64,
}

impl DeliveryTag {
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.generation.to_le_bytes());
        b[8..].copy_from_slice(&self.block_num.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<DeliveryTag> {
        let generation = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let block_num = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
        Some(DeliveryTag {
            generation,
            block_num,
        })
    }
}

/// A PUSH socket into the I/O thread's PULL socket; frames are
/// `[identity, message]` or `[identity, message, tag]`.
#[derive(Clone)]
pub struct Outbox {
    socket: Arc<Mutex<zmq::Socket>>,
}

impl Outbox {
    pub fn connect(context: &zmq::Context, endpoint: &str) -> Result<Outbox, ComponentError> {
        let socket = context.socket(zmq::PUSH).map_err(ComponentError::Zmq)?;
        // Never block a caller forever if the I/O thread is gone.
        socket.set_sndtimeo(5_000).map_err(ComponentError::Zmq)?;
        socket.connect(endpoint).map_err(ComponentError::Zmq)?;
        Ok(Outbox {
            socket: Arc::new(Mutex::new(socket)),
        })
    }

    /// Queues a message for a connection.
    pub fn send(&self, identity: &[u8], message: Vec<u8>) -> Result<(), ComponentError> {
        let socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        socket
            .send_multipart([identity.to_vec(), message], 0)
            .map_err(ComponentError::Zmq)
    }

    /// Queues an event delivery for a subscriber.
    pub fn send_tagged(
        &self,
        identity: &[u8],
        message: Vec<u8>,
        tag: DeliveryTag,
    ) -> Result<(), ComponentError> {
        let socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        socket
            .send_multipart([identity.to_vec(), message, tag.to_bytes().to_vec()], 0)
            .map_err(ComponentError::Zmq)
    }
}
