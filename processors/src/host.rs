//! Hosts one transaction family as an external transaction processor: connects
//! to a validator's component endpoint over ZeroMQ, registers, answers
//! `TP_PROCESS_REQUEST`s with the family's handler, and re-registers whenever
//! the validator comes back after a restart.
//!
//! Why not `sawtooth_sdk::processor::TransactionProcessor`? Its messaging
//! thread panics (`unwrap`) on send and parse failures; a cold-chain processor
//! must survive a validator restart or a malformed frame. This host speaks the
//! same protocol with the same SDK messages and never panics on I/O errors.
//!
//! This module is the only place in the crate that does I/O; handlers stay pure.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::events::{Event, Event_Attribute};
use sawtooth_sdk::messages::network::PingResponse;
use sawtooth_sdk::messages::processor::{
    TpProcessRequest, TpProcessResponse, TpProcessResponse_Status, TpRegisterRequest,
    TpRegisterResponse, TpRegisterResponse_Status, TpUnregisterRequest,
};
use sawtooth_sdk::messages::state_context::{
    TpEventAddRequest, TpEventAddResponse, TpEventAddResponse_Status, TpReceiptAddDataRequest,
    TpReceiptAddDataResponse, TpReceiptAddDataResponse_Status, TpStateDeleteRequest,
    TpStateDeleteResponse, TpStateDeleteResponse_Status, TpStateEntry, TpStateGetRequest,
    TpStateGetResponse, TpStateGetResponse_Status, TpStateSetRequest, TpStateSetResponse,
    TpStateSetResponse_Status,
};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};
use sawtooth_sdk::processor::handler::{
    ApplyError, ContextError, TransactionContext, TransactionHandler,
};

/// How long to wait for the validator to answer a state request before the
/// transaction is reported as an internal error (the validator will retry it).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait between reconnection attempts (doubles up to the cap).
const RECONNECT_START: Duration = Duration::from_millis(200);
const RECONNECT_CAP: Duration = Duration::from_secs(5);
const POLL_MS: i64 = 200;

/// Why the host stopped.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot create a ZeroMQ socket: {0}")]
    Socket(zmq::Error),
    #[error(
        "endpoint {endpoint} is not a valid ZeroMQ address such as tcp://127.0.0.1:4004: {source}"
    )]
    Endpoint {
        endpoint: String,
        source: zmq::Error,
    },
}

/// Why one connection ended (the host then reconnects).
#[derive(Debug)]
enum ConnectionEnd {
    Stopped,
    Lost(String),
}

static CORRELATION: AtomicU64 = AtomicU64::new(1);

fn correlation_id() -> String {
    format!(
        "{:x}-{:x}",
        std::process::id(),
        CORRELATION.fetch_add(1, Ordering::Relaxed)
    )
}

/// One live DEALER connection to the validator.
struct Connection {
    socket: zmq::Socket,
    monitor: zmq::Socket,
    /// Requests received while a handler was waiting for a state reply.
    backlog: VecDeque<Message>,
    disconnected: bool,
}

impl Connection {
    fn open(context: &zmq::Context, endpoint: &str, id: u64) -> Result<Connection, HostError> {
        let socket = context.socket(zmq::DEALER).map_err(HostError::Socket)?;
        socket.set_linger(0).map_err(HostError::Socket)?;
        let monitor_address = format!("inproc://coldchain-tp-monitor-{}-{id}", std::process::id());
        socket
            .monitor(&monitor_address, zmq::SocketEvent::DISCONNECTED as i32)
            .map_err(HostError::Socket)?;
        let monitor = context.socket(zmq::PAIR).map_err(HostError::Socket)?;
        monitor
            .connect(&monitor_address)
            .map_err(HostError::Socket)?;
        socket
            .connect(endpoint)
            .map_err(|source| HostError::Endpoint {
                endpoint: endpoint.to_string(),
                source,
            })?;
        Ok(Connection {
            socket,
            monitor,
            backlog: VecDeque::new(),
            disconnected: false,
        })
    }

    fn send(
        &self,
        kind: Message_MessageType,
        correlation: &str,
        content: Vec<u8>,
    ) -> Result<(), String> {
        let mut message = Message::new();
        message.set_message_type(kind);
        message.set_correlation_id(correlation.to_string());
        message.set_content(content);
        let bytes = message
            .write_to_bytes()
            .map_err(|e| format!("cannot encode message: {e}"))?;
        self.socket
            .send(bytes, 0)
            .map_err(|e| format!("cannot send to validator: {e}"))
    }

    /// Waits up to `timeout_ms` for one message; `Ok(None)` on timeout.
    fn receive(&mut self, timeout_ms: i64) -> Result<Option<Message>, String> {
        let mut items = [
            self.socket.as_poll_item(zmq::POLLIN),
            self.monitor.as_poll_item(zmq::POLLIN),
        ];
        zmq::poll(&mut items, timeout_ms).map_err(|e| format!("poll failed: {e}"))?;
        let socket_ready = items[0].is_readable();
        let monitor_ready = items[1].is_readable();
        if monitor_ready {
            // Any DISCONNECTED event: the validator went away; drain and reconnect.
            while self.monitor.recv_multipart(zmq::DONTWAIT).is_ok() {}
            self.disconnected = true;
        }
        if !socket_ready {
            return Ok(None);
        }
        let frames = self
            .socket
            .recv_multipart(0)
            .map_err(|e| format!("receive failed: {e}"))?;
        let Some(last) = frames.last() else {
            return Ok(None);
        };
        match Message::parse_from_bytes(last) {
            Ok(message) => Ok(Some(message)),
            Err(e) => {
                log::warn!("ignoring an undecodable frame from the validator: {e}");
                Ok(None)
            }
        }
    }

    /// Sends a request and waits for the reply with the same correlation id,
    /// answering pings and queueing other requests meanwhile.
    fn request(
        &mut self,
        kind: Message_MessageType,
        content: Vec<u8>,
        expected: Message_MessageType,
    ) -> Result<Vec<u8>, String> {
        let correlation = correlation_id();
        self.send(kind, &correlation, content)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if self.disconnected {
                return Err("validator connection lost".into());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(format!(
                    "no reply from the validator within {REPLY_TIMEOUT:?}"
                ));
            }
            let Some(message) = self.receive(POLL_MS.min(remaining.as_millis() as i64).max(1))?
            else {
                continue;
            };
            if message.get_correlation_id() == correlation && message.get_message_type() == expected
            {
                return Ok(message.get_content().to_vec());
            }
            match message.get_message_type() {
                Message_MessageType::PING_REQUEST => self.answer_ping(&message),
                _ => self.backlog.push_back(message),
            }
        }
    }

    fn answer_ping(&self, message: &Message) {
        let reply = PingResponse::new().write_to_bytes().unwrap_or_default();
        if let Err(e) = self.send(
            Message_MessageType::PING_RESPONSE,
            message.get_correlation_id(),
            reply,
        ) {
            log::warn!("{e}");
        }
    }
}

/// The `TransactionContext` a handler sees inside an external TP: every call is
/// a request to the validator on the same connection.
struct ValidatorContext<'a> {
    connection: std::cell::RefCell<&'a mut Connection>,
    context_id: String,
}

impl ValidatorContext<'_> {
    fn call(
        &self,
        kind: Message_MessageType,
        content: Vec<u8>,
        expected: Message_MessageType,
    ) -> Result<Vec<u8>, ContextError> {
        self.connection
            .borrow_mut()
            .request(kind, content, expected)
            .map_err(|e| ContextError::ReceiveError(e.into()))
    }
}

fn encode<M: protobuf::Message>(message: &M) -> Result<Vec<u8>, ContextError> {
    message
        .write_to_bytes()
        .map_err(|e| ContextError::SerializationError(Box::new(e)))
}

fn decode<M: protobuf::Message>(bytes: &[u8]) -> Result<M, ContextError> {
    M::parse_from_bytes(bytes).map_err(|e| ContextError::SerializationError(Box::new(e)))
}

impl TransactionContext for ValidatorContext<'_> {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        let mut request = TpStateGetRequest::new();
        request.set_context_id(self.context_id.clone());
        request.set_addresses(RepeatedField::from_vec(addresses.to_vec()));
        let reply: TpStateGetResponse = decode(&self.call(
            Message_MessageType::TP_STATE_GET_REQUEST,
            encode(&request)?,
            Message_MessageType::TP_STATE_GET_RESPONSE,
        )?)?;
        match reply.get_status() {
            TpStateGetResponse_Status::OK => Ok(reply
                .get_entries()
                .iter()
                .filter(|entry| !entry.get_data().is_empty())
                .map(|entry| (entry.get_address().to_string(), entry.get_data().to_vec()))
                .collect()),
            TpStateGetResponse_Status::AUTHORIZATION_ERROR => {
                Err(ContextError::AuthorizationError(format!(
                    "reading {addresses:?} is outside the transaction's declared inputs"
                )))
            }
            status => Err(ContextError::ReceiveError(
                format!("state get failed: {status:?}").into(),
            )),
        }
    }

    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        let addresses: Vec<String> = entries.iter().map(|(a, _)| a.clone()).collect();
        let mut request = TpStateSetRequest::new();
        request.set_context_id(self.context_id.clone());
        request.set_entries(RepeatedField::from_vec(
            entries
                .into_iter()
                .map(|(address, data)| {
                    let mut entry = TpStateEntry::new();
                    entry.set_address(address);
                    entry.set_data(data);
                    entry
                })
                .collect(),
        ));
        let reply: TpStateSetResponse = decode(&self.call(
            Message_MessageType::TP_STATE_SET_REQUEST,
            encode(&request)?,
            Message_MessageType::TP_STATE_SET_RESPONSE,
        )?)?;
        match reply.get_status() {
            TpStateSetResponse_Status::OK => Ok(()),
            TpStateSetResponse_Status::AUTHORIZATION_ERROR => {
                Err(ContextError::AuthorizationError(format!(
                    "writing {addresses:?} is outside the transaction's declared outputs"
                )))
            }
            status => Err(ContextError::ReceiveError(
                format!("state set failed: {status:?}").into(),
            )),
        }
    }

    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError> {
        let mut request = TpStateDeleteRequest::new();
        request.set_context_id(self.context_id.clone());
        request.set_addresses(RepeatedField::from_vec(addresses.to_vec()));
        let reply: TpStateDeleteResponse = decode(&self.call(
            Message_MessageType::TP_STATE_DELETE_REQUEST,
            encode(&request)?,
            Message_MessageType::TP_STATE_DELETE_RESPONSE,
        )?)?;
        match reply.get_status() {
            TpStateDeleteResponse_Status::OK => Ok(reply.get_addresses().to_vec()),
            TpStateDeleteResponse_Status::AUTHORIZATION_ERROR => {
                Err(ContextError::AuthorizationError(format!(
                    "deleting {addresses:?} is outside the transaction's declared outputs"
                )))
            }
            status => Err(ContextError::ReceiveError(
                format!("state delete failed: {status:?}").into(),
            )),
        }
    }

    fn add_receipt_data(&self, data: &[u8]) -> Result<(), ContextError> {
        let mut request = TpReceiptAddDataRequest::new();
        request.set_context_id(self.context_id.clone());
        request.set_data(data.to_vec());
        let reply: TpReceiptAddDataResponse = decode(&self.call(
            Message_MessageType::TP_RECEIPT_ADD_DATA_REQUEST,
            encode(&request)?,
            Message_MessageType::TP_RECEIPT_ADD_DATA_RESPONSE,
        )?)?;
        match reply.get_status() {
            TpReceiptAddDataResponse_Status::OK => Ok(()),
            status => Err(ContextError::TransactionReceiptError(format!(
                "adding receipt data failed: {status:?}"
            ))),
        }
    }

    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        data: &[u8],
    ) -> Result<(), ContextError> {
        let mut event = Event::new();
        event.set_event_type(event_type);
        event.set_attributes(RepeatedField::from_vec(
            attributes
                .into_iter()
                .map(|(key, value)| {
                    let mut attribute = Event_Attribute::new();
                    attribute.set_key(key);
                    attribute.set_value(value);
                    attribute
                })
                .collect(),
        ));
        event.set_data(data.to_vec());
        let mut request = TpEventAddRequest::new();
        request.set_context_id(self.context_id.clone());
        request.set_event(event);
        let reply: TpEventAddResponse = decode(&self.call(
            Message_MessageType::TP_EVENT_ADD_REQUEST,
            encode(&request)?,
            Message_MessageType::TP_EVENT_ADD_RESPONSE,
        )?)?;
        match reply.get_status() {
            TpEventAddResponse_Status::OK => Ok(()),
            status => Err(ContextError::ResponseAttributeError(format!(
                "adding an event failed: {status:?}"
            ))),
        }
    }
}

/// Runs `handler` as an external TP against `endpoint` until `stop` is set.
/// Connection failures are logged and retried forever; only a malformed
/// endpoint or a failure to create sockets ends the host with an error.
pub fn run(
    handler: &dyn TransactionHandler,
    endpoint: &str,
    stop: Arc<AtomicBool>,
) -> Result<(), HostError> {
    let context = zmq::Context::new();
    let mut backoff = RECONNECT_START;
    let mut attempt = 0u64;
    while !stop.load(Ordering::SeqCst) {
        attempt += 1;
        let mut connection = Connection::open(&context, endpoint, attempt)?;
        log::info!(
            "connecting {} {:?} to {endpoint}",
            handler.family_name(),
            handler.family_versions()
        );
        match serve(handler, &mut connection, &stop) {
            ConnectionEnd::Stopped => {
                unregister(&mut connection);
                break;
            }
            ConnectionEnd::Lost(reason) => {
                log::warn!("validator connection lost ({reason}); reconnecting in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(RECONNECT_CAP);
            }
        }
    }
    Ok(())
}

fn register(
    handler: &dyn TransactionHandler,
    connection: &mut Connection,
    stop: &AtomicBool,
) -> Result<(), ConnectionEnd> {
    for version in handler.family_versions() {
        let mut request = TpRegisterRequest::new();
        request.set_family(handler.family_name());
        request.set_version(version.clone());
        request.set_namespaces(RepeatedField::from_vec(handler.namespaces()));
        request.set_max_occupancy(1);
        let content = request
            .write_to_bytes()
            .map_err(|e| ConnectionEnd::Lost(e.to_string()))?;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(ConnectionEnd::Stopped);
            }
            match connection.request(
                Message_MessageType::TP_REGISTER_REQUEST,
                content.clone(),
                Message_MessageType::TP_REGISTER_RESPONSE,
            ) {
                Ok(bytes) => {
                    let reply = TpRegisterResponse::parse_from_bytes(&bytes)
                        .map_err(|e| ConnectionEnd::Lost(e.to_string()))?;
                    if reply.get_status() != TpRegisterResponse_Status::OK {
                        return Err(ConnectionEnd::Lost(format!(
                            "the validator refused registration of {} {version}: {:?}",
                            handler.family_name(),
                            reply.get_status()
                        )));
                    }
                    log::info!("registered {} {version}", handler.family_name());
                    break;
                }
                // Validator not up yet: ZeroMQ keeps retrying the connect; ask again.
                Err(e) if !connection.disconnected => log::info!("waiting for validator: {e}"),
                Err(e) => return Err(ConnectionEnd::Lost(e)),
            }
        }
    }
    Ok(())
}

fn unregister(connection: &mut Connection) {
    let content = TpUnregisterRequest::new()
        .write_to_bytes()
        .unwrap_or_default();
    let _ = connection.send(
        Message_MessageType::TP_UNREGISTER_REQUEST,
        &correlation_id(),
        content,
    );
    // Give the message a moment to leave; linger is 0.
    let _ = connection.receive(500);
}

fn serve(
    handler: &dyn TransactionHandler,
    connection: &mut Connection,
    stop: &AtomicBool,
) -> ConnectionEnd {
    if let Err(end) = register(handler, connection, stop) {
        return end;
    }
    loop {
        if stop.load(Ordering::SeqCst) {
            return ConnectionEnd::Stopped;
        }
        if connection.disconnected {
            return ConnectionEnd::Lost("validator disconnected".into());
        }
        let message = match connection.backlog.pop_front() {
            Some(message) => message,
            None => match connection.receive(POLL_MS) {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(e) => return ConnectionEnd::Lost(e),
            },
        };
        match message.get_message_type() {
            Message_MessageType::TP_PROCESS_REQUEST => {
                if let Err(e) = process(handler, connection, &message) {
                    return ConnectionEnd::Lost(e);
                }
            }
            Message_MessageType::PING_REQUEST => connection.answer_ping(&message),
            other => log::debug!("ignoring unexpected {other:?} from the validator"),
        }
    }
}

fn process(
    handler: &dyn TransactionHandler,
    connection: &mut Connection,
    message: &Message,
) -> Result<(), String> {
    let mut response = TpProcessResponse::new();
    match TpProcessRequest::parse_from_bytes(message.get_content()) {
        Err(e) => {
            response.set_status(TpProcessResponse_Status::INTERNAL_ERROR);
            response.set_message(format!("cannot decode TpProcessRequest: {e}"));
        }
        Ok(request) => {
            let outcome = {
                let mut context = ValidatorContext {
                    connection: std::cell::RefCell::new(&mut *connection),
                    context_id: request.get_context_id().to_string(),
                };
                handler.apply(&request, &mut context)
            };
            match outcome {
                Ok(()) => response.set_status(TpProcessResponse_Status::OK),
                Err(ApplyError::InvalidTransaction(text)) => {
                    log::info!(
                        "invalid transaction {}: {text}",
                        short(request.get_signature())
                    );
                    response.set_status(TpProcessResponse_Status::INVALID_TRANSACTION);
                    response.set_message(text);
                }
                Err(ApplyError::InternalError(text)) => {
                    log::warn!(
                        "internal error on {}: {text}",
                        short(request.get_signature())
                    );
                    response.set_status(TpProcessResponse_Status::INTERNAL_ERROR);
                    response.set_message(text);
                }
            }
        }
    }
    if connection.disconnected {
        return Err("validator disconnected while processing".into());
    }
    let content = response
        .write_to_bytes()
        .map_err(|e| format!("cannot encode TpProcessResponse: {e}"))?;
    connection.send(
        Message_MessageType::TP_PROCESS_RESPONSE,
        message.get_correlation_id(),
        content,
    )
}

fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}
