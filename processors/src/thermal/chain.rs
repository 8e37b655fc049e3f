//! The running hash chain over accepted readings batches.
//!
//! `head₀` is 64 zero bytes (a record that has accepted no batch stores an empty
//! `readings_chain_head`). For each accepted batch, in chain order:
//! `headₙ = sha512(headₙ₋₁ (64 raw bytes) || sha512(payload) (64 raw bytes))`,
//! where `payload` is the transaction payload exactly as signed (the encoded
//! `SensorPayload`; its SHA-512 is the header's `payload_sha512`). The record
//! stores `headₙ` as 128 lowercase hex characters. Anyone holding the committed
//! readings transactions of a record recomputes the head and so proves that the
//! copy is complete and unaltered.
use sha2::{Digest, Sha512};

use crate::messages::coldchain::ThermalRecord;

/// The head after appending a batch whose payload has SHA-512 `payload_sha512`.
/// `None` when `previous_head` is neither empty nor 128 hex characters.
pub fn next_chain_head(previous_head: &str, payload_sha512: &[u8; 64]) -> Option<String> {
    let mut previous = [0u8; 64];
    if !previous_head.is_empty() {
        hex::decode_to_slice(previous_head, &mut previous).ok()?;
    }
    let mut hasher = Sha512::new();
    hasher.update(previous);
    hasher.update(payload_sha512);
    // encode_to_slice is table-driven; hex::encode goes char by char (a hot path).
    let mut text = [0u8; 128];
    hex::encode_to_slice(hasher.finalize(), &mut text).ok()?;
    String::from_utf8(text.to_vec()).ok()
}

/// Appends one accepted batch to `record`'s chain: its head and its batch count.
/// `None` (and `record` unchanged) when the stored head is malformed.
pub fn append_batch(record: &mut ThermalRecord, payload_sha512: &[u8; 64]) -> Option<()> {
    record.readings_chain_head = next_chain_head(&record.readings_chain_head, payload_sha512)?;
    record.readings_batches = record.readings_batches.saturating_add(1);
    Some(())
}

/// SHA-512 of a transaction payload, as raw bytes.
pub fn payload_digest(payload: &[u8]) -> [u8; 64] {
    Sha512::digest(payload).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_head_hashes_zero_bytes_then_the_payload_digest() {
        let digest = payload_digest(b"batch one");
        let mut expected = Sha512::new();
        expected.update([0u8; 64]);
        expected.update(digest);
        assert_eq!(
            next_chain_head("", &digest),
            Some(hex::encode(expected.finalize()))
        );
    }

    #[test]
    fn chain_depends_on_order_of_batches() {
        let a = payload_digest(b"a");
        let b = payload_digest(b"b");
        let ab = next_chain_head(&next_chain_head("", &a).unwrap(), &b);
        let ba = next_chain_head(&next_chain_head("", &b).unwrap(), &a);
        assert_ne!(ab, ba);
    }

    #[test]
    fn malformed_previous_head_is_reported() {
        assert_eq!(next_chain_head("xyz", &payload_digest(b"a")), None);
        assert_eq!(
            next_chain_head(&"ab".repeat(63), &payload_digest(b"a")),
            None
        );
    }
}
