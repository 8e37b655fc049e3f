//! An external transaction processor seen from the executor: a
//! [`TransactionHandler`] whose `apply` sends TP_PROCESS_REQUEST to the TP over
//! ZeroMQ and, until the TP answers, serves the TP's state, receipt and event
//! requests against the context the executor passed in (so the executor's
//! input/output enforcement applies to remote TPs exactly as to in-process
//! ones).
//!
//! `apply` runs on the executor's thread and never touches the socket: it
//! talks to the I/O thread through the [`Outbox`] and a per-call channel in the
//! [`PendingTable`], keyed by the fresh context id it gave the request.
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::processor::{
    TpProcessRequest, TpProcessResponse, TpProcessResponse_Status,
};
use sawtooth_sdk::messages::state_context::*;
use sawtooth_sdk::messages::validator::Message_MessageType as Type;
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext, TransactionHandler};

use super::registration::{for_header_style, HeaderStyle};
use super::wire::{encode, fresh_id, Outbox};

/// What the I/O thread hands to a waiting `apply`.
pub enum TpInbound {
    /// A TP_STATE_*, TP_RECEIPT_ADD_DATA or TP_EVENT_ADD request for this context.
    ContextRequest {
        message_type: Type,
        correlation_id: String,
        content: Vec<u8>,
    },
    /// The TP's TP_PROCESS_RESPONSE.
    ProcessResponse(Vec<u8>),
    /// The TP's connection is gone.
    Disconnected,
}

struct Waiting {
    identity: Vec<u8>,
    tx: Sender<TpInbound>,
}

#[derive(Default)]
struct Table {
    /// TP connections currently registered (identity bytes).
    live: HashSet<Vec<u8>>,
    /// In-flight requests by context id.
    by_context: HashMap<String, Waiting>,
    /// TP_PROCESS_REQUEST correlation id → context id.
    by_correlation: HashMap<String, String>,
}

/// In-flight TP_PROCESS requests, shared by the I/O thread and the `apply`
/// calls. Liveness is checked under the same lock the I/O thread uses to fail
/// a dropped connection's requests, so no request can wait on a dead TP.
#[derive(Default, Clone)]
pub struct PendingTable {
    inner: Arc<Mutex<Table>>,
}

impl PendingTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mark_live(&self, identity: &[u8]) {
        self.lock().live.insert(identity.to_vec());
    }

    /// Forgets a connection and tells each of its in-flight requests.
    pub fn drop_connection(&self, identity: &[u8]) {
        let mut table = self.lock();
        table.live.remove(identity);
        let gone: Vec<String> = table
            .by_context
            .iter()
            .filter(|(_, w)| w.identity == identity)
            .map(|(c, _)| c.clone())
            .collect();
        for context_id in gone {
            if let Some(w) = table.by_context.remove(&context_id) {
                let _ = w.tx.send(TpInbound::Disconnected);
            }
        }
        let Table {
            by_context,
            by_correlation,
            ..
        } = &mut *table;
        by_correlation.retain(|_, c| by_context.contains_key(c));
    }

    /// True when the connection has a request in flight (it may be busy and
    /// silent, so it is not timed out for idleness).
    pub fn is_busy(&self, identity: &[u8]) -> bool {
        self.lock()
            .by_context
            .values()
            .any(|w| w.identity == identity)
    }

    /// Routes a TP's context request; false when no request has that context.
    pub fn route_context_request(&self, context_id: &str, inbound: TpInbound) -> bool {
        match self.lock().by_context.get(context_id) {
            Some(w) => w.tx.send(inbound).is_ok(),
            None => false,
        }
    }

    /// Routes a TP_PROCESS_RESPONSE by its correlation id.
    pub fn route_process_response(&self, correlation_id: &str, content: Vec<u8>) -> bool {
        let table = self.lock();
        match table
            .by_correlation
            .get(correlation_id)
            .and_then(|c| table.by_context.get(c))
        {
            Some(w) => w.tx.send(TpInbound::ProcessResponse(content)).is_ok(),
            None => false,
        }
    }

    fn begin(
        &self,
        identity: &[u8],
        context_id: &str,
        correlation_id: &str,
    ) -> Option<Receiver<TpInbound>> {
        let mut table = self.lock();
        if !table.live.contains(identity) {
            return None;
        }
        let (tx, rx) = channel();
        table.by_context.insert(
            context_id.to_string(),
            Waiting {
                identity: identity.to_vec(),
                tx,
            },
        );
        table
            .by_correlation
            .insert(correlation_id.to_string(), context_id.to_string());
        Some(rx)
    }

    fn finish(&self, context_id: &str, correlation_id: &str) {
        let mut table = self.lock();
        table.by_context.remove(context_id);
        table.by_correlation.remove(correlation_id);
    }
}

/// One family/version registration of one TP connection.
pub struct RemoteProcessor {
    pub family: String,
    pub version: String,
    pub namespaces: Vec<String>,
    /// How the TP asked for transaction headers when it registered.
    pub header_style: HeaderStyle,
    pub identity: Vec<u8>,
    pub outbox: Outbox,
    pub pending: PendingTable,
    /// How long `apply` waits for a silent TP before giving up.
    pub process_timeout: Duration,
}

impl TransactionHandler for RemoteProcessor {
    fn family_name(&self) -> String {
        self.family.clone()
    }

    fn family_versions(&self) -> Vec<String> {
        vec![self.version.clone()]
    }

    fn namespaces(&self) -> Vec<String> {
        self.namespaces.clone()
    }

    fn apply(
        &self,
        request: &TpProcessRequest,
        context: &mut dyn TransactionContext,
    ) -> Result<(), ApplyError> {
        let context_id = fresh_id();
        let correlation_id = fresh_id();
        let rx = self
            .pending
            .begin(&self.identity, &context_id, &correlation_id)
            .ok_or_else(|| self.gone())?;
        let result = self.drive(request, context, &context_id, &correlation_id, &rx);
        self.pending.finish(&context_id, &correlation_id);
        result
    }
}

impl RemoteProcessor {
    fn gone(&self) -> ApplyError {
        ApplyError::InternalError(format!(
            "external transaction processor for {} {} disconnected; the transaction is retried on the next handler",
            self.family, self.version
        ))
    }

    fn drive(
        &self,
        request: &TpProcessRequest,
        context: &mut dyn TransactionContext,
        context_id: &str,
        correlation_id: &str,
        rx: &Receiver<TpInbound>,
    ) -> Result<(), ApplyError> {
        let mut outgoing = for_header_style(request, self.header_style);
        outgoing.set_context_id(context_id.to_string());
        let bytes = encode(Type::TP_PROCESS_REQUEST, correlation_id, &outgoing).map_err(|e| {
            ApplyError::InternalError(format!("cannot encode TpProcessRequest: {e}"))
        })?;
        self.outbox
            .send(&self.identity, bytes)
            .map_err(|e| ApplyError::InternalError(e.to_string()))?;
        loop {
            match rx.recv_timeout(self.process_timeout) {
                Ok(TpInbound::ContextRequest {
                    message_type,
                    correlation_id,
                    content,
                }) => {
                    let reply = serve_context_request(message_type, &content, context);
                    if let Some((reply_type, reply_bytes)) = reply {
                        let bytes = wrap(reply_type, &correlation_id, reply_bytes)?;
                        self.outbox
                            .send(&self.identity, bytes)
                            .map_err(|e| ApplyError::InternalError(e.to_string()))?;
                    }
                }
                Ok(TpInbound::ProcessResponse(content)) => return self.verdict(&content),
                Ok(TpInbound::Disconnected) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.gone())
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ApplyError::InternalError(format!(
                        "external transaction processor for {} {} did not answer within {:?}",
                        self.family, self.version, self.process_timeout
                    )))
                }
            }
        }
    }

    fn verdict(&self, content: &[u8]) -> Result<(), ApplyError> {
        let response = TpProcessResponse::parse_from_bytes(content).map_err(|e| {
            ApplyError::InternalError(format!(
                "{} TP sent an undecodable TpProcessResponse: {e}",
                self.family
            ))
        })?;
        match response.get_status() {
            TpProcessResponse_Status::OK => Ok(()),
            TpProcessResponse_Status::INVALID_TRANSACTION => {
                crate::execution::set_invalid_extended_data(response.get_extended_data().to_vec());
                Err(ApplyError::InvalidTransaction(
                    response.get_message().to_string(),
                ))
            }
            TpProcessResponse_Status::INTERNAL_ERROR | TpProcessResponse_Status::STATUS_UNSET => {
                Err(ApplyError::InternalError(
                    response.get_message().to_string(),
                ))
            }
        }
    }
}

fn wrap(message_type: Type, correlation_id: &str, content: Vec<u8>) -> Result<Vec<u8>, ApplyError> {
    let mut message = sawtooth_sdk::messages::validator::Message::new();
    message.set_message_type(message_type);
    message.set_correlation_id(correlation_id.to_string());
    message.set_content(content);
    message
        .write_to_bytes()
        .map_err(|e| ApplyError::InternalError(format!("cannot encode reply: {e}")))
}

/// Performs one TP context request against the executor's context and builds
/// the response (type and content). Undecodable requests get no answer, as
/// the TP cannot have produced them with a Sawtooth SDK.
pub fn serve_context_request(
    message_type: Type,
    content: &[u8],
    context: &mut dyn TransactionContext,
) -> Option<(Type, Vec<u8>)> {
    let reply: Result<(Type, Vec<u8>), protobuf::ProtobufError> = match message_type {
        Type::TP_STATE_GET_REQUEST => {
            let request = TpStateGetRequest::parse_from_bytes(content).ok()?;
            let mut response = TpStateGetResponse::new();
            match context.get_state_entries(request.get_addresses()) {
                Ok(found) => {
                    let found: HashMap<String, Vec<u8>> = found.into_iter().collect();
                    // Every requested address is answered; empty data means unset.
                    let entries = request
                        .get_addresses()
                        .iter()
                        .map(|address| {
                            let mut entry = TpStateEntry::new();
                            entry.set_address(address.clone());
                            entry.set_data(found.get(address).cloned().unwrap_or_default());
                            entry
                        })
                        .collect();
                    response.set_entries(RepeatedField::from_vec(entries));
                    response.set_status(TpStateGetResponse_Status::OK);
                }
                Err(_) => response.set_status(TpStateGetResponse_Status::AUTHORIZATION_ERROR),
            }
            response
                .write_to_bytes()
                .map(|b| (Type::TP_STATE_GET_RESPONSE, b))
        }
        Type::TP_STATE_SET_REQUEST => {
            let request = TpStateSetRequest::parse_from_bytes(content).ok()?;
            let entries = request
                .get_entries()
                .iter()
                .map(|e| (e.get_address().to_string(), e.get_data().to_vec()))
                .collect();
            let mut response = TpStateSetResponse::new();
            match context.set_state_entries(entries) {
                Ok(()) => {
                    let addresses = request
                        .get_entries()
                        .iter()
                        .map(|e| e.get_address().to_string())
                        .collect();
                    response.set_addresses(RepeatedField::from_vec(addresses));
                    response.set_status(TpStateSetResponse_Status::OK);
                }
                Err(_) => response.set_status(TpStateSetResponse_Status::AUTHORIZATION_ERROR),
            }
            response
                .write_to_bytes()
                .map(|b| (Type::TP_STATE_SET_RESPONSE, b))
        }
        Type::TP_STATE_DELETE_REQUEST => {
            let request = TpStateDeleteRequest::parse_from_bytes(content).ok()?;
            let mut response = TpStateDeleteResponse::new();
            match context.delete_state_entries(request.get_addresses()) {
                Ok(deleted) => {
                    response.set_addresses(RepeatedField::from_vec(deleted));
                    response.set_status(TpStateDeleteResponse_Status::OK);
                }
                Err(_) => response.set_status(TpStateDeleteResponse_Status::AUTHORIZATION_ERROR),
            }
            response
                .write_to_bytes()
                .map(|b| (Type::TP_STATE_DELETE_RESPONSE, b))
        }
        Type::TP_RECEIPT_ADD_DATA_REQUEST => {
            let request = TpReceiptAddDataRequest::parse_from_bytes(content).ok()?;
            let mut response = TpReceiptAddDataResponse::new();
            response.set_status(match context.add_receipt_data(request.get_data()) {
                Ok(()) => TpReceiptAddDataResponse_Status::OK,
                Err(_) => TpReceiptAddDataResponse_Status::ERROR,
            });
            response
                .write_to_bytes()
                .map(|b| (Type::TP_RECEIPT_ADD_DATA_RESPONSE, b))
        }
        Type::TP_EVENT_ADD_REQUEST => {
            let request = TpEventAddRequest::parse_from_bytes(content).ok()?;
            let event = request.get_event();
            let attributes = event
                .get_attributes()
                .iter()
                .map(|a| (a.get_key().to_string(), a.get_value().to_string()))
                .collect();
            let mut response = TpEventAddResponse::new();
            response.set_status(
                match context.add_event(
                    event.get_event_type().to_string(),
                    attributes,
                    event.get_data(),
                ) {
                    Ok(()) => TpEventAddResponse_Status::OK,
                    Err(_) => TpEventAddResponse_Status::ERROR,
                },
            );
            response
                .write_to_bytes()
                .map(|b| (Type::TP_EVENT_ADD_RESPONSE, b))
        }
        _ => return None,
    };
    reply.ok()
}

/// The answer to a context request whose context id is not (or no longer)
/// in flight: the TP is told it is not authorized, as Sawtooth does for an
/// unknown context.
pub fn refuse_unknown_context(message_type: Type) -> Option<(Type, Vec<u8>)> {
    let reply = match message_type {
        Type::TP_STATE_GET_REQUEST => {
            let mut r = TpStateGetResponse::new();
            r.set_status(TpStateGetResponse_Status::AUTHORIZATION_ERROR);
            r.write_to_bytes().map(|b| (Type::TP_STATE_GET_RESPONSE, b))
        }
        Type::TP_STATE_SET_REQUEST => {
            let mut r = TpStateSetResponse::new();
            r.set_status(TpStateSetResponse_Status::AUTHORIZATION_ERROR);
            r.write_to_bytes().map(|b| (Type::TP_STATE_SET_RESPONSE, b))
        }
        Type::TP_STATE_DELETE_REQUEST => {
            let mut r = TpStateDeleteResponse::new();
            r.set_status(TpStateDeleteResponse_Status::AUTHORIZATION_ERROR);
            r.write_to_bytes()
                .map(|b| (Type::TP_STATE_DELETE_RESPONSE, b))
        }
        Type::TP_RECEIPT_ADD_DATA_REQUEST => {
            let mut r = TpReceiptAddDataResponse::new();
            r.set_status(TpReceiptAddDataResponse_Status::ERROR);
            r.write_to_bytes()
                .map(|b| (Type::TP_RECEIPT_ADD_DATA_RESPONSE, b))
        }
        Type::TP_EVENT_ADD_REQUEST => {
            let mut r = TpEventAddResponse::new();
            r.set_status(TpEventAddResponse_Status::ERROR);
            r.write_to_bytes().map(|b| (Type::TP_EVENT_ADD_RESPONSE, b))
        }
        _ => return None,
    };
    reply.ok()
}

/// The context id inside a TP context request, if it decodes.
pub fn context_id_of(message_type: Type, content: &[u8]) -> Option<String> {
    let id = match message_type {
        Type::TP_STATE_GET_REQUEST => TpStateGetRequest::parse_from_bytes(content)
            .ok()?
            .take_context_id(),
        Type::TP_STATE_SET_REQUEST => TpStateSetRequest::parse_from_bytes(content)
            .ok()?
            .take_context_id(),
        Type::TP_STATE_DELETE_REQUEST => TpStateDeleteRequest::parse_from_bytes(content)
            .ok()?
            .take_context_id(),
        Type::TP_RECEIPT_ADD_DATA_REQUEST => TpReceiptAddDataRequest::parse_from_bytes(content)
            .ok()?
            .take_context_id(),
        Type::TP_EVENT_ADD_REQUEST => TpEventAddRequest::parse_from_bytes(content)
            .ok()?
            .take_context_id(),
        _ => return None,
    };
    Some(id)
}
