//! What every coldchain handler does with a request before its rules run: the
//! payload size limit, the signer's key, the payload timestamp, and the one
//! wording of errors and events.
//!
//! Shared by the registry, custody and sensor handlers. Nothing here reads or
//! writes records; see [`super::authority`] for who the signer is.
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext};

use crate::identifiers::IdentifierError;

/// Largest payload any coldchain family accepts: 1 MiB. A lot with 10 000
/// serials or a readings batch of a few thousand readings fits well below it;
/// anything larger is refused before decoding.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// An `InvalidTransaction` with `message`.
pub fn invalid(message: impl Into<String>) -> ApplyError {
    ApplyError::InvalidTransaction(message.into())
}

/// An identifier error as an `InvalidTransaction`.
pub fn bad_identifier(error: IdentifierError) -> ApplyError {
    ApplyError::InvalidTransaction(error.to_string())
}

/// The payload bytes, refused when empty or larger than [`MAX_PAYLOAD_BYTES`].
pub fn payload_bytes(request: &TpProcessRequest) -> Result<&[u8], ApplyError> {
    let payload = request.get_payload();
    if payload.is_empty() {
        return Err(invalid(
            "payload is empty: send an encoded payload message with one action",
        ));
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(invalid(format!(
            "payload is {} bytes, over the limit of {MAX_PAYLOAD_BYTES}: split it into several transactions",
            payload.len()
        )));
    }
    Ok(payload)
}

/// Decodes a protobuf payload after the size check; `kind` names the message.
pub fn decode_payload<M: protobuf::Message>(
    request: &TpProcessRequest,
    kind: &str,
) -> Result<M, ApplyError> {
    let bytes = payload_bytes(request)?;
    M::parse_from_bytes(bytes).map_err(|e| {
        invalid(format!(
            "payload is not a valid {kind} message ({e}); encode it from proto/coldchain.proto"
        ))
    })
}

/// The signer's public key from the transaction header.
pub fn signer_of(request: &TpProcessRequest) -> Result<&str, ApplyError> {
    let key = request.get_header().get_signer_public_key();
    if key.is_empty() {
        return Err(invalid("transaction header has no signer_public_key"));
    }
    Ok(key)
}

/// The payload time, refused when zero or past the year 9999 (see
/// [`crate::identifiers::check_time`]).
pub fn payload_time(timestamp_s: u64) -> Result<u64, ApplyError> {
    if timestamp_s == 0 {
        return Err(invalid(
            "timestamp_s is 0: set it to the unix time (seconds, UTC) of the action",
        ));
    }
    crate::identifiers::check_time(timestamp_s)
        .map_err(|e| invalid(format!("timestamp_s: {e}")))?;
    Ok(timestamp_s)
}

/// Refuses a payload time earlier than something the chain already recorded
/// (`what` says what, e.g. "shipment S-1 was created").
pub fn not_before(now: u64, earlier: u64, what: &str) -> Result<(), ApplyError> {
    if now < earlier {
        return Err(invalid(format!(
            "timestamp_s {now} ({}) is before {what} at {earlier} ({}); time cannot go backwards, use the real time of the action",
            crate::identifiers::utc_time_text(now),
            crate::identifiers::utc_time_text(earlier)
        )));
    }
    Ok(())
}

/// Emits a Sawtooth event `coldchain/<name>` with `attributes` and `data`.
pub fn emit(
    context: &mut dyn TransactionContext,
    name: &str,
    attributes: &[(&str, &str)],
    data: &[u8],
) -> Result<(), ApplyError> {
    let attributes = attributes
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    context
        .add_event(format!("coldchain/{name}"), attributes, data)
        .map_err(|e| ApplyError::InternalError(format!("could not emit event {name}: {e}")))
}
