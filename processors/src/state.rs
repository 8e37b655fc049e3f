//! Typed access to Sawtooth state: load and store protobuf records by address,
//! and read on-chain settings the way the Sawtooth settings family stores them.
//!
//! Handlers use these helpers instead of raw bytes, so every "not found" or
//! "undecodable" case produces the same clear `InvalidTransaction` wording.
use protobuf::Message;
use sawtooth_sdk::messages::setting::Setting;
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext};

use crate::addressing::setting_address;

/// Loads and decodes the record at `address`; `Ok(None)` when absent.
pub fn load<M: Message>(
    context: &dyn TransactionContext,
    address: &str,
) -> Result<Option<M>, ApplyError> {
    let bytes = context
        .get_state_entry(address)
        .map_err(|e| ApplyError::InternalError(format!("state read of {address} failed: {e}")))?;
    match bytes {
        None => Ok(None),
        Some(bytes) if bytes.is_empty() => Ok(None),
        Some(bytes) => M::parse_from_bytes(&bytes).map(Some).map_err(|e| {
            ApplyError::InternalError(format!("state at {address} is not a valid record: {e}"))
        }),
    }
}

/// Loads a record that must exist; `missing` is the user-facing message otherwise.
pub fn load_required<M: Message>(
    context: &dyn TransactionContext,
    address: &str,
    missing: impl FnOnce() -> String,
) -> Result<M, ApplyError> {
    load(context, address)?.ok_or_else(|| ApplyError::InvalidTransaction(missing()))
}

/// Encodes and writes `record` at `address`.
pub fn store<M: Message>(
    context: &mut dyn TransactionContext,
    address: String,
    record: &M,
) -> Result<(), ApplyError> {
    let bytes = record
        .write_to_bytes()
        .map_err(|e| ApplyError::InternalError(format!("cannot encode record: {e}")))?;
    context
        .set_state_entry(address.clone(), bytes)
        .map_err(|e| ApplyError::InternalError(format!("state write of {address} failed: {e}")))
}

/// Writes several records in one call (fewer round trips for external TPs).
/// Entries are written in the order given; callers pass a deterministic order.
pub fn store_all(
    context: &mut dyn TransactionContext,
    entries: Vec<(String, Vec<u8>)>,
) -> Result<(), ApplyError> {
    context
        .set_state_entries(entries)
        .map_err(|e| ApplyError::InternalError(format!("state write failed: {e}")))
}

/// Encodes a record for [`store_all`].
pub fn encode<M: Message>(record: &M) -> Result<Vec<u8>, ApplyError> {
    record
        .write_to_bytes()
        .map_err(|e| ApplyError::InternalError(format!("cannot encode record: {e}")))
}

/// Reads a Sawtooth setting value (`None` when unset).
pub fn setting(context: &dyn TransactionContext, key: &str) -> Result<Option<String>, ApplyError> {
    let address = setting_address(key);
    let record: Option<Setting> = load(context, &address)?;
    Ok(record.and_then(|setting| {
        setting
            .get_entries()
            .iter()
            .find(|entry| entry.get_key() == key)
            .map(|entry| entry.get_value().to_string())
    }))
}

/// Splits a comma-separated list setting (such as `coldchain.admins`) into trimmed items.
pub fn setting_list(
    context: &dyn TransactionContext,
    key: &str,
) -> Result<Vec<String>, ApplyError> {
    Ok(setting(context, key)?
        .map(|value| {
            value
                .split(',')
                .map(|item| item.trim().to_string())
                .filter(|item| !item.is_empty())
                .collect()
        })
        .unwrap_or_default())
}

/// Encodes a Sawtooth `Setting` record, as the settings family stores `key = value`.
pub fn encode_setting(key: &str, value: &str) -> Result<Vec<u8>, ApplyError> {
    let mut entry = sawtooth_sdk::messages::setting::Setting_Entry::new();
    entry.set_key(key.to_string());
    entry.set_value(value.to_string());
    let mut setting = Setting::new();
    setting.set_entries(vec![entry].into());
    encode(&setting)
}
