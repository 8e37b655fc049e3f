//! Typed reads of ledger records from the index: decode the protobuf record at
//! a natural key and keep where it was written (block and transaction), which
//! is the evidence every answer carries.
use coldchain_processors::addressing::RecordKind;
use protobuf::Message;
use serde::Serialize;

use crate::error::ApiError;
use crate::index::{IndexStore, StoredRecord};

/// Where a record version was written: the evidence behind an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub record: &'static str,
    pub address: String,
    pub block_num: u64,
    pub block_id: String,
    pub transaction_id: String,
}

/// A decoded record with its evidence.
#[derive(Clone, Debug)]
pub struct Found<M> {
    pub record: M,
    pub evidence: Evidence,
}

fn record_name(kind: RecordKind) -> &'static str {
    use RecordKind::*;
    match kind {
        Organization => "organization",
        Site => "site",
        Agent => "agent",
        Device => "device",
        GatewayGrant => "gateway_grant",
        Lot => "lot",
        Pack => "pack",
        BloodUnit => "blood_unit",
        Shipment => "shipment",
        EmergencyRequest => "emergency_request",
        BloodOffer => "blood_offer",
        ShipmentThermal => "shipment_thermal",
        GoodsThermal => "goods_thermal",
    }
}

/// Decodes a stored record of `kind`; an undecodable record is an index fault (503).
pub fn decode<M: Message>(kind: RecordKind, stored: StoredRecord) -> Result<Found<M>, ApiError> {
    let record = M::parse_from_bytes(&stored.data).map_err(|e| ApiError {
        status: 503,
        code: "index_corrupt",
        message: format!(
            "the {} record at {} could not be decoded: {e}",
            record_name(kind),
            stored.address
        ),
    })?;
    Ok(Found {
        record,
        evidence: Evidence {
            record: record_name(kind),
            address: stored.address,
            block_num: stored.block_num,
            block_id: stored.block_id,
            transaction_id: stored.txn_id,
        },
    })
}

/// The current record of `kind` with natural key `key`, if any.
pub async fn load<M: Message>(
    index: &dyn IndexStore,
    kind: RecordKind,
    key: &str,
) -> Result<Option<Found<M>>, ApiError> {
    match index.record(&kind.address(key)).await? {
        Some(stored) => Ok(Some(decode(kind, stored)?)),
        None => Ok(None),
    }
}

/// All current records of `kind` (at most `limit`).
pub async fn load_all<M: Message>(
    index: &dyn IndexStore,
    kind: RecordKind,
    limit: u32,
) -> Result<Vec<Found<M>>, ApiError> {
    index
        .records_with_prefix(&kind.address_prefix(), limit)
        .await?
        .into_iter()
        .map(|stored| decode(kind, stored))
        .collect()
}
