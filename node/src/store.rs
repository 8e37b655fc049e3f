//! The block store: blocks, batches, transactions, receipts and the current
//! state leaves in one SQLite database (WAL, `synchronous=FULL`).
//!
//! A block and everything it changes are written in one SQLite transaction,
//! so after a crash the database holds either the whole block or none of it;
//! the commit is fsynced before any batch of the block is reported COMMITTED.
//! This module knows nothing about execution or HTTP; it stores what it is given.
use std::path::Path;

use protobuf::Message;
use rusqlite::{params, Connection, OptionalExtension};
use sawtooth_sdk::messages::batch::Batch;
use sawtooth_sdk::messages::block::{Block, BlockHeader};
use sawtooth_sdk::messages::transaction::Transaction;
use sawtooth_sdk::messages::transaction_receipt::TransactionReceipt;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("block store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("block store holds an undecodable record ({what}): {detail}")]
    Corrupt { what: String, detail: String },
}

/// One state write of a block: `Some(value)` sets, `None` deletes.
pub type LeafChange = (String, Option<Vec<u8>>);

/// A block ready to persist.
pub struct BlockRecord<'a> {
    pub block_num: u64,
    pub block_id: &'a str,
    pub header: &'a [u8],
    pub previous_block_id: &'a str,
    pub state_root_hash: &'a str,
    pub batches: &'a [Batch],
    pub receipts: &'a [TransactionReceipt],
    pub state_changes: &'a [LeafChange],
}

/// Summary of a stored block header (for heads and paging).
#[derive(Clone, Debug)]
pub struct BlockSummary {
    pub block_num: u64,
    pub block_id: String,
    pub previous_block_id: String,
    pub state_root_hash: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blocks (
    block_num INTEGER PRIMARY KEY,
    block_id TEXT NOT NULL UNIQUE,
    header BLOB NOT NULL,
    previous_block_id TEXT NOT NULL,
    state_root_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL UNIQUE,
    block_num INTEGER NOT NULL,
    batch BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_block ON batches(block_num);
CREATE TABLE IF NOT EXISTS transactions (
    seq INTEGER PRIMARY KEY,
    txn_id TEXT NOT NULL UNIQUE,
    batch_seq INTEGER NOT NULL,
    position INTEGER NOT NULL,
    receipt BLOB NOT NULL
);
-- Reading a block loads its batches' receipts by batch_seq; without this index
-- every block read scanned all transactions ever committed (docs/benchmarks/api.md).
CREATE INDEX IF NOT EXISTS transactions_by_batch ON transactions(batch_seq, position);
CREATE TABLE IF NOT EXISTS state (
    address TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
";

/// Opens (creating if needed) the database at `path` with durable settings.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

fn corrupt(what: impl Into<String>, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        detail: detail.to_string(),
    }
}

/// Persists a block, its batches, transactions, receipts and state changes
/// atomically and durably.
pub fn write_block(conn: &mut Connection, record: &BlockRecord<'_>) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        tx.execute(
            "INSERT INTO blocks (block_num, block_id, header, previous_block_id, state_root_hash)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                record.block_num as i64,
                record.block_id,
                record.header,
                record.previous_block_id,
                record.state_root_hash
            ],
        )?;
        let mut insert_batch = tx.prepare_cached(
            "INSERT INTO batches (batch_id, block_num, batch) VALUES (?1, ?2, ?3)",
        )?;
        let mut insert_txn = tx.prepare_cached(
            "INSERT INTO transactions (txn_id, batch_seq, position, receipt) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut receipts = record.receipts.iter();
        for batch in record.batches {
            let bytes = batch
                .write_to_bytes()
                .map_err(|e| corrupt("batch to store", e))?;
            insert_batch.execute(params![
                batch.get_header_signature(),
                record.block_num as i64,
                bytes
            ])?;
            let batch_seq = tx.last_insert_rowid();
            for (position, txn) in batch.get_transactions().iter().enumerate() {
                let receipt = receipts
                    .next()
                    .ok_or_else(|| corrupt("block record", "fewer receipts than transactions"))?;
                let receipt_bytes = receipt
                    .write_to_bytes()
                    .map_err(|e| corrupt("receipt to store", e))?;
                insert_txn.execute(params![
                    txn.get_header_signature(),
                    batch_seq,
                    position as i64,
                    receipt_bytes
                ])?;
            }
        }
        let mut set = tx.prepare_cached(
            "INSERT INTO state (address, value) VALUES (?1, ?2)
             ON CONFLICT(address) DO UPDATE SET value = excluded.value",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM state WHERE address = ?1")?;
        for (address, value) in record.state_changes {
            match value {
                Some(value) => set.execute(params![address, value])?,
                None => delete.execute(params![address])?,
            };
        }
    }
    tx.commit()?;
    Ok(())
}

fn summary_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BlockSummary> {
    Ok(BlockSummary {
        block_num: row.get::<_, i64>(0)? as u64,
        block_id: row.get(1)?,
        previous_block_id: row.get(2)?,
        state_root_hash: row.get(3)?,
    })
}

/// The newest block, if any.
pub fn head(conn: &Connection) -> Result<Option<BlockSummary>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT block_num, block_id, previous_block_id, state_root_hash
             FROM blocks ORDER BY block_num DESC LIMIT 1",
        )?
        .query_row([], summary_from_row)
        .optional()?)
}

/// A block's summary by id.
pub fn block_summary(
    conn: &Connection,
    block_id: &str,
) -> Result<Option<BlockSummary>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT block_num, block_id, previous_block_id, state_root_hash
             FROM blocks WHERE block_id = ?1",
        )?
        .query_row([block_id], summary_from_row)
        .optional()?)
}

/// Block numbers ≤ `from` (newest first), at most `limit`, for paging.
pub fn block_nums_down_from(
    conn: &Connection,
    from: u64,
    limit: usize,
) -> Result<Vec<u64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT block_num FROM blocks WHERE block_num <= ?1 ORDER BY block_num DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![from as i64, limit as i64], |r| r.get::<_, i64>(0))?;
    let mut nums = Vec::new();
    for row in rows {
        nums.push(row? as u64);
    }
    Ok(nums)
}

/// A full block by number, with its batches, and the receipts of its transactions.
pub fn block_by_num(
    conn: &Connection,
    block_num: u64,
) -> Result<Option<(Block, Vec<TransactionReceipt>)>, StoreError> {
    let row: Option<(String, Vec<u8>)> = conn
        .prepare_cached("SELECT block_id, header FROM blocks WHERE block_num = ?1")?
        .query_row([block_num as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((block_id, header)) = row else {
        return Ok(None);
    };
    let mut block = Block::new();
    block.set_header(header);
    block.set_header_signature(block_id);
    let mut batches = Vec::new();
    let mut receipts = Vec::new();
    let mut stmt =
        conn.prepare_cached("SELECT seq, batch FROM batches WHERE block_num = ?1 ORDER BY seq")?;
    let mut receipt_stmt = conn.prepare_cached(
        "SELECT receipt FROM transactions WHERE batch_seq = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([block_num as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    for row in rows {
        let (seq, bytes) = row?;
        batches.push(Batch::parse_from_bytes(&bytes).map_err(|e| corrupt("stored batch", e))?);
        let receipt_rows = receipt_stmt.query_map([seq], |r| r.get::<_, Vec<u8>>(0))?;
        for receipt in receipt_rows {
            receipts.push(
                TransactionReceipt::parse_from_bytes(&receipt?)
                    .map_err(|e| corrupt("stored receipt", e))?,
            );
        }
    }
    block.set_batches(batches.into());
    Ok(Some((block, receipts)))
}

/// Decodes a stored block header.
pub fn decode_header(block: &Block) -> Result<BlockHeader, StoreError> {
    BlockHeader::parse_from_bytes(block.get_header()).map_err(|e| corrupt("stored block header", e))
}

/// A committed batch by id, with the number of the block holding it.
pub fn batch_by_id(conn: &Connection, batch_id: &str) -> Result<Option<(Batch, u64)>, StoreError> {
    let row: Option<(Vec<u8>, i64)> = conn
        .prepare_cached("SELECT batch, block_num FROM batches WHERE batch_id = ?1")?
        .query_row([batch_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(bytes, num)| {
        Batch::parse_from_bytes(&bytes)
            .map(|b| (b, num as u64))
            .map_err(|e| corrupt("stored batch", e))
    })
    .transpose()
}

/// True when a batch with this id is committed.
pub fn has_batch(conn: &Connection, batch_id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM batches WHERE batch_id = ?1")?
        .exists([batch_id])?)
}

/// True when a transaction with this id is committed.
pub fn has_transaction(conn: &Connection, txn_id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM transactions WHERE txn_id = ?1")?
        .exists([txn_id])?)
}

/// Batches (newest first) with `seq <= from`, as (seq, batch).
pub fn batches_down_from(
    conn: &Connection,
    from: i64,
    limit: usize,
) -> Result<Vec<(i64, Batch)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, batch FROM batches WHERE seq <= ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![from, limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, bytes) = row?;
        out.push((
            seq,
            Batch::parse_from_bytes(&bytes).map_err(|e| corrupt("stored batch", e))?,
        ));
    }
    Ok(out)
}

/// The ordering key (seq) of a committed batch.
pub fn batch_seq(conn: &Connection, batch_id: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq FROM batches WHERE batch_id = ?1")?
        .query_row([batch_id], |r| r.get(0))
        .optional()?)
}

/// The ordering key (seq) of a committed transaction.
pub fn transaction_seq(conn: &Connection, txn_id: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq FROM transactions WHERE txn_id = ?1")?
        .query_row([txn_id], |r| r.get(0))
        .optional()?)
}

fn transaction_from_batch(bytes: &[u8], position: i64) -> Result<Transaction, StoreError> {
    let batch = Batch::parse_from_bytes(bytes).map_err(|e| corrupt("stored batch", e))?;
    batch
        .get_transactions()
        .get(position as usize)
        .cloned()
        .ok_or_else(|| corrupt("stored transaction", "position outside its batch"))
}

/// Transactions (newest first) with `seq <= from`, as (seq, transaction).
pub fn transactions_down_from(
    conn: &Connection,
    from: i64,
    limit: usize,
) -> Result<Vec<(i64, Transaction)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.seq, t.position, b.batch FROM transactions t JOIN batches b ON b.seq = t.batch_seq
         WHERE t.seq <= ?1 ORDER BY t.seq DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![from, limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, position, bytes) = row?;
        out.push((seq, transaction_from_batch(&bytes, position)?));
    }
    Ok(out)
}

/// A committed transaction by id.
pub fn transaction_by_id(
    conn: &Connection,
    txn_id: &str,
) -> Result<Option<Transaction>, StoreError> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT t.position, b.batch FROM transactions t JOIN batches b ON b.seq = t.batch_seq
             WHERE t.txn_id = ?1",
        )?
        .query_row([txn_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(position, bytes)| transaction_from_batch(&bytes, position))
        .transpose()
}

/// The receipt of a committed transaction.
pub fn receipt(conn: &Connection, txn_id: &str) -> Result<Option<TransactionReceipt>, StoreError> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT receipt FROM transactions WHERE txn_id = ?1")?
        .query_row([txn_id], |r| r.get(0))
        .optional()?;
    bytes
        .map(|b| TransactionReceipt::parse_from_bytes(&b).map_err(|e| corrupt("stored receipt", e)))
        .transpose()
}

/// The current value at an address.
pub fn state_value(conn: &Connection, address: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM state WHERE address = ?1")?
        .query_row([address], |r| r.get(0))
        .optional()?)
}

/// Current leaves whose address starts with `prefix` and is ≥ `start`, in
/// address order, at most `limit`.
pub fn state_page(
    conn: &Connection,
    prefix: &str,
    start: &str,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    // Addresses are lowercase hex, so every address with this prefix sorts
    // below prefix + "g".
    let upper = format!("{prefix}g");
    let lower = if start > prefix { start } else { prefix };
    let mut stmt = conn.prepare_cached(
        "SELECT address, value FROM state WHERE address >= ?1 AND address < ?2
         ORDER BY address LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![lower, upper, limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?);
    }
    Ok(out)
}

/// Every current leaf (to rebuild the Merkle tree at start).
pub fn all_leaves(conn: &Connection) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    state_page(conn, "", "", i64::MAX as usize)
}
