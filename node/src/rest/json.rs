//! Blocks, batches, transactions and receipts as the Sawtooth REST API shows
//! them: headers decoded, field names as in the protobufs, bytes in base64,
//! 64-bit integers as strings (protobuf's JSON mapping, which Sawtooth uses).
use base64::Engine;
use protobuf::Message;
use sawtooth_sdk::messages::batch::{Batch, BatchHeader};
use sawtooth_sdk::messages::block::{Block, BlockHeader};
use sawtooth_sdk::messages::events::Event;
use sawtooth_sdk::messages::transaction::{Transaction, TransactionHeader};
use sawtooth_sdk::messages::transaction_receipt::{StateChange_Type, TransactionReceipt};
use serde_json::{json, Value};

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn strings(items: &[String]) -> Value {
    Value::from(items.to_vec())
}

pub fn transaction(txn: &Transaction) -> Value {
    let header = TransactionHeader::parse_from_bytes(txn.get_header()).unwrap_or_default();
    json!({
        "header": {
            "batcher_public_key": header.get_batcher_public_key(),
            "dependencies": strings(header.get_dependencies()),
            "family_name": header.get_family_name(),
            "family_version": header.get_family_version(),
            "inputs": strings(header.get_inputs()),
            "nonce": header.get_nonce(),
            "outputs": strings(header.get_outputs()),
            "payload_sha512": header.get_payload_sha512(),
            "signer_public_key": header.get_signer_public_key(),
        },
        "header_signature": txn.get_header_signature(),
        "payload": b64(txn.get_payload()),
    })
}

pub fn batch(batch: &Batch) -> Value {
    let header = BatchHeader::parse_from_bytes(batch.get_header()).unwrap_or_default();
    json!({
        "header": {
            "signer_public_key": header.get_signer_public_key(),
            "transaction_ids": strings(header.get_transaction_ids()),
        },
        "header_signature": batch.get_header_signature(),
        "trace": batch.get_trace(),
        "transactions": batch.get_transactions().iter().map(transaction).collect::<Vec<_>>(),
    })
}

pub fn block(block: &Block) -> Value {
    let header = BlockHeader::parse_from_bytes(block.get_header()).unwrap_or_default();
    json!({
        "header": {
            "batch_ids": strings(header.get_batch_ids()),
            "block_num": header.get_block_num().to_string(),
            "consensus": b64(header.get_consensus()),
            "previous_block_id": header.get_previous_block_id(),
            "signer_public_key": header.get_signer_public_key(),
            "state_root_hash": header.get_state_root_hash(),
        },
        "header_signature": block.get_header_signature(),
        "batches": block.get_batches().iter().map(batch).collect::<Vec<_>>(),
    })
}

/// Drops object keys whose value is the empty string, at every depth, as
/// the Sawtooth REST API does to receipts and batch statuses
/// (`_drop_empty_props`: an empty `bytes` or `string` field is left out).
pub fn drop_empty_strings(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| v.as_str() != Some(""))
                .map(|(k, v)| (k, drop_empty_strings(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(drop_empty_strings).collect()),
        other => other,
    }
}

pub fn event(event: &Event) -> Value {
    json!({
        "event_type": event.get_event_type(),
        "attributes": event.get_attributes().iter()
            .map(|a| json!({"key": a.get_key(), "value": a.get_value()}))
            .collect::<Vec<_>>(),
        "data": b64(event.get_data()),
    })
}

/// A receipt as `/receipts` shows it: Sawtooth 1.2's REST API renames every
/// key ending in `id` to `id` (`_drop_id_prefixes`), so the transaction's id
/// is `id`, and leaves out empty strings (a DELETE's `value`, an event
/// without `data`).
pub fn receipt(receipt: &TransactionReceipt) -> Value {
    drop_empty_strings(json!({
        "id": receipt.get_transaction_id(),
        "state_changes": receipt.get_state_changes().iter().map(|c| json!({
            "address": c.get_address(),
            "value": b64(c.get_value()),
            "type": match c.get_field_type() {
                StateChange_Type::SET => "SET",
                StateChange_Type::DELETE => "DELETE",
                StateChange_Type::TYPE_UNSET => "TYPE_UNSET",
            },
        })).collect::<Vec<_>>(),
        "events": receipt.get_events().iter().map(event).collect::<Vec<_>>(),
        "data": receipt.get_data().iter().map(|d| b64(d)).collect::<Vec<_>>(),
    }))
}
