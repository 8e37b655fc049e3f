//! Recorded blocks for API tests: the real coldchain family handlers applied
//! to a `MemoryContext`, one block at a time, turned into the same
//! `BlockUpdate`s the chain follower builds from the node's events.
#![allow(dead_code)]
use std::collections::BTreeMap;

use coldchain_api::chain::{readings_batch, ChainLookup, LookupFuture};
use coldchain_api::index::{BlockRef, BlockUpdate, StateChange};
use coldchain_processors::addressing::{
    ADMINS_SETTING, CUSTODY_FAMILY, REGISTRY_FAMILY, SENSOR_FAMILY,
};
use coldchain_processors::custody::CustodyHandler;
use coldchain_processors::memory_context::MemoryContext;
use coldchain_processors::messages::coldchain::*;
use coldchain_processors::registry::RegistryHandler;
use coldchain_processors::sensor::SensorHandler;
use coldchain_processors::signing::{sign_transaction, Signer, TransactionSpec};
use protobuf::Message;
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sawtooth_sdk::processor::handler::TransactionHandler;
use sha2::{Digest, Sha512};

pub mod http;
pub mod recorded_node;
pub mod scenario;

pub const NULL_BLOCK_ID: &str = "0000000000000000";

/// Where the test story commits its transactions: recorded blocks or a live node.
pub trait Chain {
    /// The key listed in `coldchain.admins` at genesis.
    fn admin(&self) -> Signer;
    /// Commits the transactions as one all-or-nothing batch.
    fn submit(&mut self, txns: Vec<Tx<'_>>) -> Result<(), String>;
}

impl Chain for Ledger {
    fn admin(&self) -> Signer {
        self.admin.clone()
    }
    fn submit(&mut self, txns: Vec<Tx<'_>>) -> Result<(), String> {
        self.commit(txns).map(|_| ())
    }
}

/// A chain of recorded blocks over in-memory state.
pub struct Ledger {
    context: MemoryContext,
    pub blocks: Vec<BlockUpdate>,
    /// The transactions of each block, as the REST API would serve them.
    pub transactions: Vec<Vec<RecordedTxn>>,
    snapshots: Vec<BTreeMap<String, Vec<u8>>>,
    pub admin: Signer,
    fork_salt: u64,
}

/// A committed transaction: id, family, declared outputs and payload.
#[derive(Clone, Debug)]
pub struct RecordedTxn {
    pub id: String,
    pub family: String,
    pub outputs: Vec<String>,
    pub payload: Vec<u8>,
    /// The addresses it set or deleted (its receipt's state changes).
    pub writes: Vec<String>,
}

/// One transaction to put in a block.
pub struct Tx<'a> {
    pub spec: TransactionSpec,
    pub signer: &'a Signer,
}

pub fn registry(signer: &Signer, at_s: u64, action: RegistryPayload_oneof_action) -> Tx<'_> {
    let mut payload = RegistryPayload::new();
    payload.set_timestamp_s(at_s);
    payload.action = Some(action);
    let spec = coldchain_processors::registry::transaction_spec(&payload).expect("registry spec");
    Tx { spec, signer }
}

pub fn custody(signer: &Signer, at_s: u64, action: CustodyPayload_oneof_action) -> Tx<'_> {
    let mut payload = CustodyPayload::new();
    payload.set_timestamp_s(at_s);
    payload.action = Some(action);
    let spec = coldchain_processors::custody::transaction_spec(&payload).expect("custody spec");
    Tx { spec, signer }
}

pub fn readings<'a>(
    gateway: &'a Signer,
    device_org: &str,
    device: &str,
    shipment: &str,
    points: &[(u64, u64, i32)],
) -> Tx<'a> {
    let mut batch = RecordReadings::new();
    batch.set_device_id(device.into());
    batch.set_shipment_id(shipment.into());
    for (sequence, time_s, cdeg) in points {
        let mut reading = Reading::new();
        reading.set_sequence(*sequence);
        reading.set_time_s(*time_s);
        reading.set_temperature_cdeg(*cdeg);
        batch.mut_readings().push(reading);
    }
    let spec = coldchain_processors::sensor::spec::record_readings_spec(
        &batch,
        device_org,
        gateway.public_key(),
    );
    Tx {
        spec,
        signer: gateway,
    }
}

fn block_id(previous: &str, txn_ids: &[String], salt: u64) -> String {
    let mut hasher = Sha512::new();
    hasher.update(previous.as_bytes());
    for id in txn_ids {
        hasher.update(id.as_bytes());
    }
    hasher.update(salt.to_be_bytes());
    hex::encode(hasher.finalize())
}

impl Ledger {
    /// Genesis: the admin key in the `coldchain.admins` setting.
    pub fn new() -> Ledger {
        let admin = Signer::generate();
        let context = MemoryContext::new();
        let setting =
            coldchain_processors::state::encode_setting(ADMINS_SETTING, admin.public_key())
                .expect("setting");
        let address = coldchain_processors::addressing::setting_address(ADMINS_SETTING);
        context.put(&address, setting.clone());
        let block = BlockRef {
            block_id: block_id(NULL_BLOCK_ID, &[], 0),
            block_num: 0,
            previous_block_id: NULL_BLOCK_ID.into(),
            state_root: "genesis".into(),
        };
        let genesis = BlockUpdate {
            block,
            changes: vec![StateChange {
                address,
                value: Some(setting),
                txn_id: String::new(),
            }],
            readings: vec![],
        };
        Ledger {
            snapshots: vec![context.snapshot()],
            context,
            blocks: vec![genesis],
            transactions: vec![vec![]],
            admin,
            fork_salt: 0,
        }
    }

    pub fn head(&self) -> &BlockRef {
        &self.blocks.last().expect("genesis exists").block
    }

    /// Applies the transactions (all or nothing, like a Sawtooth batch) and records a block.
    pub fn commit(&mut self, txns: Vec<Tx<'_>>) -> Result<BlockUpdate, String> {
        let before = self.context.snapshot();
        let mut ids = Vec::new();
        let mut changes: BTreeMap<String, (Option<Vec<u8>>, String)> = BTreeMap::new();
        let mut readings = Vec::new();
        let mut recorded = Vec::new();
        for tx in txns {
            let family = tx.spec.family_name.clone();
            let payload = tx.spec.payload.clone();
            let outputs = tx.spec.outputs.clone();
            let transaction = sign_transaction(tx.spec, tx.signer, tx.signer.public_key())
                .map_err(|e| e.to_string())?;
            let id = transaction.get_header_signature().to_string();
            let header = TransactionHeader::parse_from_bytes(transaction.get_header())
                .map_err(|e| e.to_string())?;
            let mut request = TpProcessRequest::new();
            request.set_header(header);
            request.set_payload(payload.clone());
            request.set_signature(id.clone());
            let step_before = self.context.snapshot();
            let handler: Box<dyn TransactionHandler> = match family.as_str() {
                REGISTRY_FAMILY => Box::new(RegistryHandler::new()),
                CUSTODY_FAMILY => Box::new(CustodyHandler::new()),
                SENSOR_FAMILY => Box::new(SensorHandler::new()),
                other => return Err(format!("unknown family {other}")),
            };
            if let Err(error) = handler.apply(&request, &mut self.context) {
                self.context.restore(before);
                return Err(format!("{family}: {error:?}"));
            }
            let step_after = self.context.snapshot();
            let mut writes = Vec::new();
            for (address, value) in &step_after {
                if step_before.get(address) != Some(value) {
                    changes.insert(address.clone(), (Some(value.clone()), id.clone()));
                    writes.push(address.clone());
                }
            }
            for address in step_before.keys().filter(|a| !step_after.contains_key(*a)) {
                changes.insert(address.clone(), (None, id.clone()));
                writes.push(address.clone());
            }
            if family == SENSOR_FAMILY {
                let position = u32::try_from(readings.len()).unwrap_or(0);
                readings.extend(readings_batch(&id, position, &payload));
            }
            recorded.push(RecordedTxn {
                id: id.clone(),
                family: family.clone(),
                outputs,
                payload,
                writes,
            });
            ids.push(id);
        }
        let _ = self.context.take_events();
        let previous = self.head().clone();
        let block = BlockRef {
            block_id: block_id(&previous.block_id, &ids, self.fork_salt),
            block_num: previous.block_num + 1,
            previous_block_id: previous.block_id.clone(),
            state_root: format!("root-{}", previous.block_num + 1),
        };
        let update = BlockUpdate {
            block,
            changes: changes
                .into_iter()
                .map(|(address, (value, txn_id))| StateChange {
                    address,
                    value,
                    txn_id,
                })
                .collect(),
            readings,
        };
        self.blocks.push(update.clone());
        self.transactions.push(recorded);
        self.snapshots.push(self.context.snapshot());
        Ok(update)
    }

    /// Abandons every block above `block_num` (the start of a fork).
    pub fn fork_at(&mut self, block_num: u64) {
        let keep = usize::try_from(block_num).expect("small") + 1;
        self.blocks.truncate(keep);
        self.transactions.truncate(keep);
        self.snapshots.truncate(keep);
        self.context.restore(self.snapshots[keep - 1].clone());
        self.fork_salt += 1;
    }

    /// The current chain's block ids, as a [`ChainLookup`].
    pub fn lookup(&self) -> RecordedChain {
        RecordedChain(
            self.blocks
                .iter()
                .map(|b| b.block.block_id.clone())
                .collect(),
        )
    }
}

/// Block ids on the recorded chain.
pub struct RecordedChain(pub Vec<String>);

impl ChainLookup for RecordedChain {
    fn is_on_chain<'a>(&'a self, block_id: &'a str) -> LookupFuture<'a> {
        Box::pin(async move { Ok(self.0.iter().any(|id| id == block_id)) })
    }
}

/// A GLN (13 digits) with its check digit, from a 12-digit body.
pub fn gln(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// The test database: `COLDCHAIN_TEST_POSTGRES`, by default
/// `postgres://postgres@127.0.0.1:5432/test`.
pub fn postgres_base() -> String {
    std::env::var("COLDCHAIN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A PostgreSQL index URL in a schema of its own for `test`.
pub fn postgres_url(test: &str) -> String {
    let base = postgres_base();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={}", postgres_schema(test))
}

/// A connection to the test database (for tests that look inside an index).
pub async fn postgres_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres_base(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL (COLDCHAIN_TEST_POSTGRES)");
    tokio::spawn(connection);
    client
}

/// The schema of `test`'s PostgreSQL index.
pub fn postgres_schema_of(test: &str) -> String {
    postgres_schema(test)
}

fn postgres_schema(test: &str) -> String {
    format!("api_{test}_{}", std::process::id())
}

/// Drops the schema a test's PostgreSQL index used.
pub async fn drop_postgres_schema(test: &str) {
    postgres_client()
        .await
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            postgres_schema(test)
        ))
        .await
        .expect("schema dropped");
}

/// A provenance API on `index_url` that follows no node (its node endpoints
/// point at a closed port): tests feed its index themselves.
pub async fn start_offline_api(index_url: &str) -> coldchain_api::ApiHandle {
    coldchain_api::Api::start(coldchain_api::ApiConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        rest_url: "http://127.0.0.1:9".into(),
        component: "tcp://127.0.0.1:9".into(),
        index_url: index_url.into(),
        follow: false,
    })
    .await
    .expect("API starts")
}

/// [`start_offline_api`] with every block of `ledger` ingested in order.
pub async fn serve_ledger(index_url: &str, ledger: &Ledger) -> coldchain_api::ApiHandle {
    let api = start_offline_api(index_url).await;
    let lookup = ledger.lookup();
    for update in &ledger.blocks {
        let outcome = coldchain_api::chain::ingest(api.index().as_ref(), &lookup, update.clone())
            .await
            .expect("ingested");
        assert_eq!(outcome, coldchain_api::chain::Ingested::Applied);
    }
    api
}
