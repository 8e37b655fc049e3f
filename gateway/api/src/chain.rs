//! Turning what the node publishes into [`BlockUpdate`]s and keeping the index
//! on the chain the node considers canonical (forks roll back).
//!
//! The decision logic ([`ingest`]) is independent of transport: the ZeroMQ
//! follower feeds it live blocks, tests feed it recorded blocks.
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use base64::Engine;
use coldchain_processors::addressing::SENSOR_FAMILY;
use coldchain_processors::messages::coldchain::SensorPayload;
use protobuf::Message;
use serde_json::Value;
use sha2::{Digest, Sha512};

use crate::index::{
    BlockRef, BlockUpdate, IndexError, IndexStore, Reading, ReadingsBatch, StateChange,
};

/// Why a block could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("node REST API at {url}: {message}")]
    Rest { url: String, message: String },
    #[error("block {block_id} from the node is malformed: {message}")]
    BadBlock { block_id: String, message: String },
    #[error("component endpoint: {0}")]
    Zmq(String),
}

/// A boxed future for [`ChainLookup`].
pub type LookupFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, FollowError>> + Send + 'a>>;

/// Asks the node whether a block is on its current chain.
pub trait ChainLookup: Send + Sync {
    fn is_on_chain<'a>(&'a self, block_id: &'a str) -> LookupFuture<'a>;
}

/// What [`ingest`] did with a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ingested {
    Applied,
    AlreadyIndexed,
    /// A fork: rows above `to` were removed, then the block was applied.
    RolledBackAndApplied {
        to: u64,
    },
    /// Blocks are missing between the index and this one (after a possible
    /// roll-back to `to`): resubscribe with catch-up from the index head.
    NeedsCatchUp {
        to: u64,
    },
}

/// Applies `update` when it extends the index head; on a fork rolls back to the
/// newest indexed block still on the node's chain first.
pub async fn ingest(
    index: &dyn IndexStore,
    chain: &dyn ChainLookup,
    update: BlockUpdate,
) -> Result<Ingested, FollowError> {
    let Some(head) = index.head().await? else {
        index.apply_block(update).await?;
        return Ok(Ingested::Applied);
    };
    let block = &update.block;
    if index
        .block_at(block.block_num)
        .await?
        .is_some_and(|b| b.block_id == block.block_id)
    {
        return Ok(Ingested::AlreadyIndexed);
    }
    if block.previous_block_id == head.block_id && block.block_num == head.block_num + 1 {
        index.apply_block(update).await?;
        return Ok(Ingested::Applied);
    }
    let ancestor = common_ancestor(index, chain, &head, block).await?;
    let rolled = ancestor.as_ref().map(|a| a.block_num);
    match &ancestor {
        Some(a) if a.block_num < head.block_num => index.roll_back_to(a.block_num).await?,
        None => index.roll_back_to_nothing().await?,
        _ => {}
    }
    let to = rolled.unwrap_or(0);
    let extends = match &ancestor {
        Some(a) => a.block_id == block.previous_block_id && a.block_num + 1 == block.block_num,
        None => block.block_num == 0,
    };
    if extends {
        index.apply_block(update).await?;
        Ok(Ingested::RolledBackAndApplied { to })
    } else {
        Ok(Ingested::NeedsCatchUp { to })
    }
}

/// The newest indexed block that the new block descends from (its parent) or
/// that the node still has on its chain.
async fn common_ancestor(
    index: &dyn IndexStore,
    chain: &dyn ChainLookup,
    head: &BlockRef,
    block: &BlockRef,
) -> Result<Option<BlockRef>, FollowError> {
    let mut num = head.block_num.min(block.block_num.saturating_sub(1));
    loop {
        if let Some(candidate) = index.block_at(num).await? {
            if candidate.block_id == block.previous_block_id
                || chain.is_on_chain(&candidate.block_id).await?
            {
                return Ok(Some(candidate));
            }
        }
        if num == 0 {
            return Ok(None);
        }
        num -= 1;
    }
}

/// The newest indexed block the node still has on its chain, found by
/// bisection over the indexed block numbers (the indexed blocks form one
/// chain, so if block n is on the node's chain all below it are): about
/// log2(head) lookups. For a fork deeper than the ids the follower sends with
/// its subscription; None when the node knows none of them (another network).
pub async fn newest_block_on_chain(
    index: &dyn IndexStore,
    chain: &dyn ChainLookup,
) -> Result<Option<BlockRef>, FollowError> {
    let Some(head) = index.head().await? else {
        return Ok(None);
    };
    let on_chain = |num: u64| async move {
        match index.block_at(num).await? {
            Some(block) => {
                Ok::<_, FollowError>(chain.is_on_chain(&block.block_id).await?.then_some(block))
            }
            None => Ok(None),
        }
    };
    if let Some(block) = on_chain(head.block_num).await? {
        return Ok(Some(block));
    }
    // Invariant: `found` is on the chain (or None), every number ≥ `above` is not.
    let (mut found, mut low, mut above) = (None, 0u64, head.block_num);
    while low < above {
        let mid = low + (above - low) / 2;
        match on_chain(mid).await? {
            Some(block) => {
                found = Some(block);
                low = mid + 1;
            }
            None => above = mid,
        }
    }
    Ok(found)
}

/// The addresses each transaction of a block changed, from the node's
/// receipts (`/receipts`); only fetched for the transactions
/// [`ambiguous_writers`] names.
pub type Receipts = BTreeMap<String, BTreeSet<String>>;

/// A transaction of a block as the REST API serves it: id and declared outputs.
struct BlockTxn<'a> {
    id: String,
    outputs: Vec<String>,
    txn: &'a Value,
}

fn block_transactions<'a>(
    block_id: &str,
    rest_block: &'a Value,
) -> Result<Vec<BlockTxn<'a>>, FollowError> {
    let bad = |message: String| FollowError::BadBlock {
        block_id: block_id.to_string(),
        message,
    };
    let batches = rest_block
        .get("batches")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no batches list".into()))?;
    let mut transactions = Vec::new();
    for txn in batches
        .iter()
        .filter_map(|b| b.get("transactions").and_then(Value::as_array))
        .flatten()
    {
        let id = txn
            .get("header_signature")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("transaction without header_signature".into()))?
            .to_string();
        let header = txn
            .get("header")
            .ok_or_else(|| bad(format!("transaction {id} has no header")))?;
        let outputs = header
            .get("outputs")
            .and_then(Value::as_array)
            .map(|o| {
                o.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        transactions.push(BlockTxn { id, outputs, txn });
    }
    Ok(transactions)
}

/// The transactions of the block whose declared outputs cover `address`, in block order.
fn candidates<'t>(transactions: &'t [BlockTxn<'_>], address: &str) -> Vec<&'t str> {
    transactions
        .iter()
        .filter(|t| t.outputs.iter().any(|o| address.starts_with(o.as_str())))
        .map(|t| t.id.as_str())
        .collect()
}

/// Transactions whose receipts are needed to tell which of them wrote a
/// changed address: those that share a changed address with another
/// transaction's declared outputs. Declared outputs are often broad prefixes
/// (a readings transaction may write any lot), so "the last one covering the
/// address" can name the wrong transaction; receipts say what each one wrote.
/// Most blocks need none, which keeps the follower at one REST call per block.
pub fn ambiguous_writers(
    block_id: &str,
    changes: &[(String, Option<Vec<u8>>)],
    rest_block: &Value,
) -> Result<Vec<String>, FollowError> {
    let transactions = block_transactions(block_id, rest_block)?;
    let mut ids = BTreeSet::new();
    for (address, _) in changes {
        let found = candidates(&transactions, address);
        if found.len() > 1 {
            ids.extend(found.into_iter().map(str::to_string));
        }
    }
    // Block order, for a stable request.
    Ok(transactions
        .iter()
        .filter(|t| ids.contains(&t.id))
        .map(|t| t.id.clone())
        .collect())
}

/// Reads `/receipts` data: `[{id, state_changes: [{address, type, value}]}]`.
///
/// A Sawtooth REST API renames every key ending in `id` to `id`
/// (`_drop_id_prefixes`) and drops keys whose value is `""`
/// (`_drop_empty_props`, so a DELETE has no `value`); `transaction_id` is
/// still read for nodes that answer the protobuf field name. Only the
/// addresses matter here.
pub fn parse_receipts(data: &Value) -> Receipts {
    let mut receipts = Receipts::new();
    for receipt in data.as_array().into_iter().flatten() {
        let Some(id) = ["id", "transaction_id"]
            .iter()
            .find_map(|key| receipt.get(*key).and_then(Value::as_str))
        else {
            continue;
        };
        let addresses = receipt
            .get("state_changes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("address").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        receipts.insert(id.to_string(), addresses);
    }
    receipts
}

/// Builds the index update of a block from its `sawtooth/state-delta` changes
/// and the block as the REST API serves it (`GET /blocks/{id}` → `data`).
/// Each change is credited to the one transaction whose outputs cover its
/// address, or, when several do, to the last of them whose receipt (in
/// `receipts`, see [`ambiguous_writers`]) lists the address.
pub fn block_update(
    block: BlockRef,
    changes: Vec<(String, Option<Vec<u8>>)>,
    rest_block: &Value,
    receipts: &Receipts,
) -> Result<BlockUpdate, FollowError> {
    let bad = |message: String| FollowError::BadBlock {
        block_id: block.block_id.clone(),
        message,
    };
    let transactions = block_transactions(&block.block_id, rest_block)?;
    let mut readings = Vec::new();
    for txn in &transactions {
        let header = txn.txn.get("header");
        if header
            .and_then(|h| h.get("family_name"))
            .and_then(Value::as_str)
            != Some(SENSOR_FAMILY)
        {
            continue;
        }
        let id = &txn.id;
        let payload_b64 = txn
            .txn
            .get("payload")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let payload = base64::engine::general_purpose::STANDARD
            .decode(payload_b64)
            .map_err(|e| bad(format!("transaction {id} payload is not base64: {e}")))?;
        let position = u32::try_from(readings.len()).unwrap_or(u32::MAX);
        if let Some(batch) = readings_batch(id, position, &payload) {
            readings.push(batch);
        }
    }
    let mut credited = Vec::with_capacity(changes.len());
    for (address, value) in changes {
        let found = candidates(&transactions, &address);
        let txn_id = match found.as_slice() {
            [] => String::new(),
            [only] => only.to_string(),
            several => {
                let mut writer = None;
                for id in several.iter().rev() {
                    let receipt = receipts.get(*id).ok_or_else(|| {
                        bad(format!(
                            "no receipt for transaction {id}, one of {} that may have written {address}",
                            several.len()
                        ))
                    })?;
                    if receipt.contains(&address) {
                        writer = Some(id.to_string());
                        break;
                    }
                }
                // No receipt lists it: say "unknown" rather than guess.
                writer.unwrap_or_default()
            }
        };
        credited.push(StateChange {
            address,
            value,
            txn_id,
        });
    }
    Ok(BlockUpdate {
        block,
        changes: credited,
        readings,
    })
}

/// Decodes a sensor-family transaction payload into an indexed readings batch
/// (None when it is not a `RecordReadings`; such a payload cannot be in a
/// committed block, since the processor would have refused it).
pub fn readings_batch(txn_id: &str, position: u32, payload: &[u8]) -> Option<ReadingsBatch> {
    let sensor = SensorPayload::parse_from_bytes(payload).ok()?;
    if !sensor.has_record_readings() {
        return None;
    }
    let record = sensor.get_record_readings();
    let shipment_id = record.get_shipment_id().to_string();
    let device_id = record.get_device_id().to_string();
    let rows = record
        .get_readings()
        .iter()
        .map(|r| Reading {
            sequence: r.get_sequence(),
            time_s: r.get_time_s(),
            temperature_cdeg: r.get_temperature_cdeg(),
            humidity_permille: r.get_has_humidity().then(|| r.get_humidity_permille()),
            door: r.get_door() as i32,
        })
        .collect();
    Some(ReadingsBatch {
        shipment_id,
        device_id,
        txn_id: txn_id.to_string(),
        position,
        payload_sha512: hex::encode(Sha512::digest(payload)),
        readings: rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn block() -> BlockRef {
        BlockRef {
            block_id: "b1".into(),
            block_num: 1,
            previous_block_id: "b0".into(),
            state_root: "r".into(),
        }
    }

    /// A recall (exact lot address) and a readings transaction (the whole lot
    /// prefix) in one block; only the recall wrote the lot.
    fn recall_and_readings() -> Value {
        json!({"batches": [{"transactions": [
            {"header_signature": "recall", "header": {"family_name": "coldchain-registry", "outputs": ["aaaaaa01lot"]}, "payload": ""},
            {"header_signature": "readings", "header": {"family_name": "other", "outputs": ["aaaaaa01", "aaaaaa02"]}, "payload": ""},
        ]}]})
    }

    #[test]
    fn a_change_two_transactions_could_have_written_is_credited_by_receipt() {
        let changes = vec![
            ("aaaaaa01lot".to_string(), Some(vec![1])),
            ("aaaaaa02thermal".to_string(), Some(vec![2])),
        ];
        let rest = recall_and_readings();
        let ambiguous = ambiguous_writers("b1", &changes, &rest).expect("block");
        assert_eq!(ambiguous, vec!["recall".to_string(), "readings".into()]);
        let receipts = parse_receipts(&json!([
            {"data": [], "events": [], "id": "recall", "state_changes": [{"address": "aaaaaa01lot", "type": "SET", "value": "AQ=="}]},
            {"data": [], "events": [], "id": "readings", "state_changes": [{"address": "aaaaaa02thermal", "type": "SET", "value": "Ag=="}]},
        ]));
        let update = block_update(block(), changes.clone(), &rest, &receipts).expect("update");
        let credited: Vec<&str> = update.changes.iter().map(|c| c.txn_id.as_str()).collect();
        assert_eq!(credited, vec!["recall", "readings"]);
        // Without the receipts the block cannot be credited: an error, not a guess.
        assert!(block_update(block(), changes, &rest, &Receipts::new()).is_err());
    }

    #[test]
    fn unambiguous_blocks_need_no_receipts() {
        let changes = vec![("aaaaaa02thermal".to_string(), Some(vec![2]))];
        let rest = recall_and_readings();
        assert!(ambiguous_writers("b1", &changes, &rest)
            .expect("block")
            .is_empty());
        let update = block_update(block(), changes, &rest, &Receipts::new()).expect("update");
        assert_eq!(update.changes[0].txn_id, "readings");
    }

    /// `POST /receipts` as a Sawtooth 1.2.6 REST API answers it: ids renamed
    /// to `id`, empty values dropped, no `link` key.
    #[test]
    fn receipts_are_read_in_the_shape_real_sawtooth_answers() {
        let txn_a = "7043".repeat(32);
        let txn_b = "ab".repeat(64);
        let lot = format!("5a7526{}", "01".repeat(32));
        let thermal = format!("5a7526{}", "0b".repeat(32));
        let body: Value = serde_json::from_str(&format!(
            r#"{{"data":[{{"data":[],"events":[],"id":"{txn_a}","state_changes":[{{"address":"{lot}","type":"SET","value":"CgNMLTE="}}]}},{{"data":[],"events":[],"id":"{txn_b}","state_changes":[{{"address":"{thermal}","type":"DELETE"}},{{"address":"{lot}","type":"SET","value":"CgNMLTI="}}]}}]}}"#
        ))
        .expect("JSON");
        let receipts = parse_receipts(&body["data"]);
        assert_eq!(receipts.len(), 2, "{receipts:?}");
        assert_eq!(receipts[&txn_a], BTreeSet::from([lot.clone()]));
        // A DELETE has no `value` key (dropped as empty) and still counts.
        assert_eq!(receipts[&txn_b], BTreeSet::from([thermal, lot]));
    }

    #[test]
    fn receipts_with_the_protobuf_field_name_are_still_read() {
        let receipts = parse_receipts(&json!([
            {"transaction_id": "t1", "state_changes": [{"address": "aa", "type": "SET", "value": "AQ=="}]},
        ]));
        assert_eq!(receipts["t1"], BTreeSet::from(["aa".to_string()]));
    }

    #[test]
    fn receipts_without_an_id_or_changes_are_skipped_or_empty() {
        let receipts = parse_receipts(&json!([
            {"state_changes": [{"address": "aa"}]},
            {"id": "t2", "data": [], "events": []},
            "not an object",
        ]));
        assert_eq!(receipts.len(), 1, "{receipts:?}");
        assert!(receipts["t2"].is_empty());
        assert!(parse_receipts(&json!({"id": "x"})).is_empty());
    }
}
