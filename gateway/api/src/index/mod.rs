//! The index: a query-friendly copy of the coldchain state records and the raw
//! readings, kept in step with the chain by the follower.
//!
//! Every row is versioned by the block number that wrote it, so a fork rolls
//! back by deleting the rows above the common ancestor. The index is never the
//! source of truth: every answer built from it names the block it is true at.
//! Two implementations behind [`IndexStore`], chosen by URL: SQLite (embedded
//! default) and PostgreSQL. This module must not decide verdicts or access.
//!
//! Readings are stored one row per `RecordReadings` transaction (a "chunk",
//! see [`chunk`] for the blob format), not one row per reading; queries decode
//! the chunks overlapping their window. Both stores carry a schema version. An
//! index written by an older layout has its chain tables dropped and rebuilt
//! (the follower re-indexes from genesis: the index is derived from the chain);
//! `api_tokens` and `audit_log` are not chain data (user data and a compliance
//! record) and survive every rebuild and roll-back. An index written by a newer
//! version is refused.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;

pub mod chunk;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod tests;

/// Why the index could not answer or store something.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index URL {0:?} is not understood; use sqlite:///path/to/index.db or postgres://user@host:port/db[?schema=name]")]
    BadUrl(String),
    #[error("SQLite index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL index: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Schema(String),
    #[error("index data is corrupt: {0}; the index is derived from the chain and can be rebuilt: restart the API with `coldchain api --rebuild-index` (it re-indexes from genesis and keeps API tokens and the audit log)")]
    Corrupt(String),
    #[error("index worker stopped: {0}")]
    Worker(String),
    #[error("block {block_num} ({block_id}) does not follow the index head {head_num} ({head_id}); roll back first")]
    NotNext {
        block_num: u64,
        block_id: String,
        head_num: u64,
        head_id: String,
    },
}

/// A boxed future, so the trait stays object-safe.
pub type IndexFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, IndexError>> + Send + 'a>>;

/// A committed block as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockRef {
    pub block_id: String,
    pub block_num: u64,
    pub previous_block_id: String,
    pub state_root: String,
}

/// One state change of a block; `value` None means the address was deleted.
#[derive(Clone, Debug)]
pub struct StateChange {
    pub address: String,
    pub value: Option<Vec<u8>>,
    /// The transaction of the block that wrote it (empty when unknown).
    pub txn_id: String,
}

/// One reading of a `RecordReadings` transaction, as the write path takes it
/// (shipment, device and transaction are the batch's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Reading {
    pub sequence: u64,
    pub time_s: u64,
    pub temperature_cdeg: i32,
    pub humidity_permille: Option<u32>,
    pub door: i32,
}

/// One reading as the index answers it (from a `RecordReadings` transaction payload).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadingRow {
    pub shipment_id: String,
    pub device_id: String,
    pub sequence: u64,
    pub time_s: u64,
    pub temperature_cdeg: i32,
    pub humidity_permille: Option<u32>,
    pub door: i32,
    pub block_num: u64,
    pub txn_id: String,
}

/// One `RecordReadings` transaction of a block: the unit of the readings hash chain.
#[derive(Clone, Debug)]
pub struct ReadingsBatch {
    pub shipment_id: String,
    pub device_id: String,
    pub txn_id: String,
    /// Position of the transaction within its block (chain order).
    pub position: u32,
    /// Hex SHA-512 of the `RecordReadings` message bytes.
    pub payload_sha512: String,
    /// The transaction's readings (any order; stored as one chunk).
    pub readings: Vec<Reading>,
}

/// A stored readings batch digest, in chain order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadingsBatchRow {
    pub block_num: u64,
    pub position: u32,
    pub txn_id: String,
    pub payload_sha512: String,
}

/// Everything the index stores for one block, applied atomically.
#[derive(Clone, Debug)]
pub struct BlockUpdate {
    pub block: BlockRef,
    pub changes: Vec<StateChange>,
    pub readings: Vec<ReadingsBatch>,
}

/// The latest version of a record, with where it was written.
#[derive(Clone, Debug)]
pub struct StoredRecord {
    pub address: String,
    pub data: Vec<u8>,
    pub block_num: u64,
    pub block_id: String,
    pub txn_id: String,
}

/// One version of a record (for evidence trails).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordVersion {
    pub block_num: u64,
    pub block_id: String,
    pub txn_id: String,
    pub deleted: bool,
}

/// A filter on readings of one shipment.
#[derive(Clone, Debug)]
pub struct ReadingsQuery {
    pub shipment_id: String,
    pub from_s: u64,
    pub to_s: u64,
    /// Resume after this (time_s, device_id, sequence), exclusive.
    pub after: Option<(u64, String, u64)>,
    pub limit: u32,
}

/// Window aggregates of one shipment's readings in `[from_s, to_s]`, for
/// charts and EPCIS sensor reports.
#[derive(Clone, Debug)]
pub struct BucketQuery {
    pub shipment_id: String,
    pub from_s: u64,
    pub to_s: u64,
    pub layout: BucketLayout,
}

/// How a [`BucketQuery`] splits its readings' span (the window clipped to the
/// first and last indexed reading time in it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketLayout {
    /// This many equal buckets over the span.
    Points(u32),
    /// Buckets of this many seconds from the span's start (at most [`chunk::MAX_BUCKETS`]).
    Width(u64),
}

/// The readings of one time bucket: count, min, max and mean temperature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub from_s: u64,
    pub to_s: u64,
    pub count: u64,
    pub min_cdeg: i32,
    pub max_cdeg: i32,
    pub mean_cdeg: i32,
    /// Times of the first and last reading in the bucket.
    pub first_reading_s: u64,
    pub last_reading_s: u64,
}

/// A read of restricted data, for the audit log: served (`status` 200) or
/// refused to an authenticated key (403).
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub at_s: u64,
    pub public_key: String,
    pub org_id: String,
    pub method: String,
    pub path: String,
    pub subject: String,
    /// The HTTP status the read was answered with.
    pub status: u16,
}

/// The index store. Implementations promise: `apply_block` is atomic and only
/// accepts the block following the head; `roll_back_to(n)` removes every row
/// written by blocks above `n`; reads see only committed applies; nothing but
/// `store_token` and `audit` ever changes `api_tokens` and `audit_log` (no
/// roll-back, reset or schema rebuild touches them).
pub trait IndexStore: Send + Sync {
    /// What opening the index did to an index of an older layout (its chain
    /// tables dropped for a re-index from genesis), or None.
    fn rebuild_notice(&self) -> Option<String>;
    /// The newest indexed block.
    fn head(&self) -> IndexFuture<'_, Option<BlockRef>>;
    /// Indexed block number `block_num`.
    fn block_at(&self, block_num: u64) -> IndexFuture<'_, Option<BlockRef>>;
    /// Up to `count` newest indexed block ids, newest first (for catch-up).
    fn recent_block_ids(&self, count: u32) -> IndexFuture<'_, Vec<String>>;
    /// Stores a block; fails with [`IndexError::NotNext`] unless it follows the head.
    fn apply_block(&self, update: BlockUpdate) -> IndexFuture<'_, ()>;
    /// Removes everything written by blocks numbered above `block_num`.
    fn roll_back_to(&self, block_num: u64) -> IndexFuture<'_, ()>;
    /// Removes every block and every row derived from the chain (a fork below
    /// the oldest indexed block, or `--rebuild-index`); keeps tokens and audit.
    fn roll_back_to_nothing(&self) -> IndexFuture<'_, ()>;
    /// The latest version of the record at `address` (None when absent or deleted).
    fn record(&self, address: &str) -> IndexFuture<'_, Option<StoredRecord>>;
    /// Every version of the record at `address`, oldest first.
    fn record_history(&self, address: &str) -> IndexFuture<'_, Vec<RecordVersion>>;
    /// Latest versions of all live records whose address starts with `prefix` (8 hex).
    fn records_with_prefix(&self, prefix: &str, limit: u32) -> IndexFuture<'_, Vec<StoredRecord>>;
    /// Shipments that have ever carried lot `gtin14/lot`, in first-seen order.
    fn lot_shipments(&self, lot_key: &str) -> IndexFuture<'_, Vec<String>>;
    /// Readings of one shipment ordered by (time, device, sequence).
    fn readings(&self, query: ReadingsQuery) -> IndexFuture<'_, Vec<ReadingRow>>;
    /// Aggregates of every reading in the query's window (non-empty buckets in
    /// time order), from one statement (one snapshot) that streams the
    /// overlapping chunks: memory is the buckets plus a chunk, time is linear in
    /// the readings of the window; nothing is cut off at a row limit.
    fn reading_buckets(&self, query: BucketQuery) -> IndexFuture<'_, Vec<Bucket>>;
    /// As [`IndexStore::reading_buckets`], one series per logger (device id
    /// order), all on the grid `reading_buckets` would use for the same query.
    fn device_reading_buckets(
        &self,
        query: BucketQuery,
    ) -> IndexFuture<'_, Vec<chunk::DeviceSeries>>;
    /// The shipment's readings batches in chain order.
    fn readings_batches(&self, shipment_id: &str) -> IndexFuture<'_, Vec<ReadingsBatchRow>>;
    /// Binds an API token (stored as its SHA-256) to a participant key.
    fn store_token(
        &self,
        token_sha256: &str,
        public_key: &str,
        label: &str,
        at_s: u64,
    ) -> IndexFuture<'_, ()>;
    /// The participant key a token (by SHA-256) is bound to.
    fn token_owner(&self, token_sha256: &str) -> IndexFuture<'_, Option<String>>;
    /// Records a read of restricted data.
    fn audit(&self, entry: AuditEntry) -> IndexFuture<'_, ()>;
    /// The newest audit entries of `public_key` (all keys when empty).
    fn audit_entries(&self, public_key: &str, limit: u32) -> IndexFuture<'_, Vec<AuditEntry>>;
}

/// Opens the index named by `url`: `sqlite:///path`, `sqlite::memory:` is not
/// supported (readers need a shared file), or `postgres://…[?schema=name]`.
pub async fn open(url: &str) -> Result<Arc<dyn IndexStore>, IndexError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(IndexError::BadUrl(url.to_string()));
        }
        let store = sqlite::SqliteIndex::open(std::path::Path::new(path)).await?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresIndex::connect(url).await?))
    } else {
        Err(IndexError::BadUrl(url.to_string()))
    }
}

/// The 8-hex kind prefix of an address (namespace + record type).
pub fn kind_of(address: &str) -> &str {
    address.get(..8).unwrap_or("")
}

/// Natural key of a lot for [`IndexStore::lot_shipments`].
pub fn lot_key(gtin14: &str, lot: &str) -> String {
    format!("{gtin14}/{lot}")
}

/// Lot → shipment links implied by the Shipment records of a block.
pub(crate) fn lot_links(changes: &[StateChange]) -> Vec<(String, String)> {
    use coldchain_processors::addressing::RecordKind;
    use coldchain_processors::messages::coldchain::Shipment;
    use protobuf::Message;
    let prefix = RecordKind::Shipment.address_prefix();
    let mut links = Vec::new();
    for change in changes {
        let Some(value) = change.value.as_deref() else {
            continue;
        };
        if !change.address.starts_with(&prefix) {
            continue;
        }
        // An undecodable record is skipped here; the record itself is still indexed.
        if let Ok(shipment) = Shipment::parse_from_bytes(value) {
            for lot in shipment.get_lots() {
                links.push((
                    lot_key(lot.get_gtin(), lot.get_lot()),
                    shipment.get_shipment_id().to_string(),
                ));
            }
        }
    }
    links
}
