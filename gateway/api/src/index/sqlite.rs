//! SQLite index: the embedded default. One writer connection and a small pool
//! of reader connections over a WAL-mode file; all calls run on tokio's
//! blocking threads so the HTTP workers never wait on disk.
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::*;

const PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
";

/// The schema version kept in `PRAGMA user_version`. Version 0 (no version)
/// was the layout with one `readings` row per reading; version 3 added
/// `audit_log.status` (refused reads are audited too).
pub const SCHEMA_VERSION: i64 = 3;

/// The oldest schema version whose chain tables this version reads as they
/// are; an index below it has its chain tables dropped and rebuilt.
const CHAIN_LAYOUT_SINCE: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blocks (
  block_num INTEGER PRIMARY KEY, block_id TEXT NOT NULL UNIQUE,
  previous_block_id TEXT NOT NULL, state_root TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
  address TEXT NOT NULL, block_num INTEGER NOT NULL, kind TEXT NOT NULL,
  data BLOB, txn_id TEXT NOT NULL, PRIMARY KEY (address, block_num)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_kind ON records (kind, address);
CREATE INDEX IF NOT EXISTS records_block ON records (block_num);
CREATE TABLE IF NOT EXISTS lot_shipments (
  lot_key TEXT NOT NULL, shipment_id TEXT NOT NULL, block_num INTEGER NOT NULL,
  PRIMARY KEY (lot_key, shipment_id));
CREATE TABLE IF NOT EXISTS readings_batches (
  shipment_id TEXT NOT NULL, block_num INTEGER NOT NULL, position INTEGER NOT NULL,
  txn_id TEXT NOT NULL, device_id TEXT NOT NULL, payload_sha512 TEXT NOT NULL,
  PRIMARY KEY (shipment_id, block_num, position));
CREATE TABLE IF NOT EXISTS reading_chunks (
  shipment_id TEXT NOT NULL, first_time_s INTEGER NOT NULL, device_id TEXT NOT NULL,
  first_sequence INTEGER NOT NULL, last_time_s INTEGER NOT NULL, block_num INTEGER NOT NULL,
  position INTEGER NOT NULL, txn_id TEXT NOT NULL, count INTEGER NOT NULL, readings BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS reading_chunks_key
  ON reading_chunks (shipment_id, first_time_s, device_id, first_sequence);
CREATE INDEX IF NOT EXISTS reading_chunks_span
  ON reading_chunks (shipment_id, (last_time_s - first_time_s));
CREATE INDEX IF NOT EXISTS reading_chunks_block ON reading_chunks (block_num);
CREATE TABLE IF NOT EXISTS api_tokens (
  token_sha256 TEXT PRIMARY KEY, public_key TEXT NOT NULL, label TEXT NOT NULL, created_at_s INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at_s INTEGER NOT NULL, public_key TEXT NOT NULL,
  org_id TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, subject TEXT NOT NULL,
  status INTEGER NOT NULL DEFAULT 200);
";

/// Tables derived from the chain, in any layout this crate ever wrote
/// (`readings` was the one-row-per-reading table before schema version 2).
/// `api_tokens` and `audit_log` are not among them: they are user data and a
/// compliance record, kept across every rebuild.
const DERIVED_TABLES: [&str; 6] = [
    "records",
    "lot_shipments",
    "readings_batches",
    "readings",
    "reading_chunks",
    "blocks",
];

/// Chunks overlapping `[?2, ?3]` in order of their first time. A chunk starting
/// before `?2` overlaps only if it spans at least the gap, so the scan of the
/// key index starts at `?2` minus the shipment's longest chunk span (one lookup
/// in `reading_chunks_span`), not at the shipment's first chunk.
const CHUNKS_IN_WINDOW: &str = "
SELECT device_id, first_time_s, last_time_s, block_num, txn_id, count, readings
FROM reading_chunks
WHERE shipment_id = ?1 AND first_time_s <= ?3 AND last_time_s >= ?2
  AND first_time_s >= ?2 - (SELECT COALESCE(MAX(last_time_s - first_time_s), 0)
                             FROM reading_chunks WHERE shipment_id = ?1)
ORDER BY first_time_s";

/// Every chunk overlapping `[?2, ?3]` (same bounds as [`CHUNKS_IN_WINDOW`]),
/// each row carrying the first and last time of all of them, so one statement
/// (one snapshot) gives both the bucket layout and the readings.
const CHUNKS_FOR_BUCKETS: &str = "
WITH overlapping AS (
  SELECT device_id, first_time_s, last_time_s, block_num, txn_id, count, readings
  FROM reading_chunks
  WHERE shipment_id = ?1 AND first_time_s <= ?3 AND last_time_s >= ?2
    AND first_time_s >= ?2 - (SELECT COALESCE(MAX(last_time_s - first_time_s), 0)
                               FROM reading_chunks WHERE shipment_id = ?1)),
span AS (SELECT MIN(first_time_s) AS lo, MAX(last_time_s) AS hi FROM overlapping)
SELECT span.lo, span.hi, o.device_id, o.first_time_s, o.last_time_s, o.block_num, o.txn_id,
       o.count, o.readings
FROM span, overlapping o";

/// Every table holding chain data (all versioned by `block_num`), children first.
const CHAIN_TABLES: [&str; 5] = [
    "records",
    "lot_shipments",
    "readings_batches",
    "reading_chunks",
    "blocks",
];

const READERS: usize = 4;

/// The SQLite index store.
pub struct SqliteIndex {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    rebuilt: Option<String>,
}

fn lock(conn: &Mutex<Connection>) -> Result<std::sync::MutexGuard<'_, Connection>, IndexError> {
    conn.lock()
        .map_err(|_| IndexError::Worker("a previous SQLite call panicked".into()))
}

async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, IndexError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| IndexError::Worker(e.to_string()))?
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl SqliteIndex {
    /// Opens (creating when missing) the index file at `path`.
    pub async fn open(path: &Path) -> Result<SqliteIndex, IndexError> {
        let path = path.to_path_buf();
        blocking(move || {
            let mut writer = Connection::open(&path)?;
            writer.busy_timeout(std::time::Duration::from_secs(10))?;
            writer.execute_batch(PRAGMAS)?;
            let rebuilt = prepare_schema(&mut writer, &path)?;
            if let Some(notice) = &rebuilt {
                tracing::warn!("{notice}");
            }
            let mut readers = Vec::with_capacity(READERS);
            for _ in 0..READERS {
                let reader = Connection::open(&path)?;
                reader.busy_timeout(std::time::Duration::from_secs(10))?;
                readers.push(Mutex::new(reader));
            }
            Ok(SqliteIndex {
                writer: Arc::new(Mutex::new(writer)),
                readers: Arc::new(readers),
                next_reader: AtomicUsize::new(0),
                rebuilt,
            })
        })
        .await
    }

    fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T, IndexError> + Send + 'static,
    ) -> IndexFuture<'_, T> {
        let readers = Arc::clone(&self.readers);
        let slot = self.next_reader.fetch_add(1, Ordering::Relaxed) % READERS;
        Box::pin(blocking(move || {
            let conn = lock(&readers[slot])?;
            job(&conn)
        }))
    }

    fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, IndexError> + Send + 'static,
    ) -> IndexFuture<'_, T> {
        let writer = Arc::clone(&self.writer);
        Box::pin(blocking(move || {
            let mut conn = lock(&writer)?;
            job(&mut conn)
        }))
    }
}

/// Creates the tables in a new index and accepts one of this version. An
/// index of an older layout has its chain tables dropped (the follower
/// re-indexes from genesis) while `api_tokens` and `audit_log` are kept and
/// brought up to date; the returned notice says what happened. An index of a
/// newer version is refused (this version cannot know what it must keep).
fn prepare_schema(conn: &mut Connection, path: &Path) -> Result<Option<String>, IndexError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let tables: i64 = tx.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        [],
        |row| row.get(0),
    )?;
    if version > SCHEMA_VERSION {
        return Err(IndexError::Schema(format!(
            "SQLite index {} was written by a newer coldchain-api (schema version {version});              this version reads schema version {SCHEMA_VERSION} and will not change an index it              does not understand: run the newer coldchain-api, or give this one another index              (--index sqlite:///other.db)",
            path.display()
        )));
    }
    let mut rebuilt = None;
    if version < CHAIN_LAYOUT_SINCE && tables > 0 {
        let layout = if version == 0 {
            "an older coldchain-api (one row per reading)".to_string()
        } else {
            format!("schema version {version}")
        };
        for table in DERIVED_TABLES {
            tx.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
        }
        rebuilt = Some(format!(
            "SQLite index {} was written by {layout}; this version needs schema version \
             {SCHEMA_VERSION} (readings stored in chunks). Its chain tables were dropped and are \
             rebuilt from the chain: the follower re-indexes from genesis. API tokens and the \
             audit log were kept",
            path.display()
        ));
    }
    tx.execute_batch(SCHEMA)?;
    let has_status: i64 = tx.query_row(
        "SELECT count(*) FROM pragma_table_info('audit_log') WHERE name = 'status'",
        [],
        |row| row.get(0),
    )?;
    if has_status == 0 {
        tx.execute_batch("ALTER TABLE audit_log ADD COLUMN status INTEGER NOT NULL DEFAULT 200")?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(rebuilt)
}

fn head_of(conn: &Connection) -> Result<Option<BlockRef>, IndexError> {
    Ok(conn
        .query_row(
            "SELECT block_id, block_num, previous_block_id, state_root FROM blocks ORDER BY block_num DESC LIMIT 1",
            [],
            block_row,
        )
        .optional()?)
}

fn block_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BlockRef> {
    Ok(BlockRef {
        block_id: row.get(0)?,
        block_num: to_u64(row.get(1)?),
        previous_block_id: row.get(2)?,
        state_root: row.get(3)?,
    })
}

fn stored_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        address: row.get(0)?,
        data: row.get(1)?,
        block_num: to_u64(row.get(2)?),
        block_id: row.get(3)?,
        txn_id: row.get(4)?,
    })
}

fn apply(conn: &mut Connection, update: &BlockUpdate) -> Result<(), IndexError> {
    let tx = conn.transaction()?;
    let head = head_of(&tx)?;
    let follows = match &head {
        None => true,
        Some(head) => {
            head.block_id == update.block.previous_block_id
                && head.block_num + 1 == update.block.block_num
        }
    };
    if !follows {
        let (head_num, head_id) = head.map(|h| (h.block_num, h.block_id)).unwrap_or_default();
        return Err(IndexError::NotNext {
            block_num: update.block.block_num,
            block_id: update.block.block_id.clone(),
            head_num,
            head_id,
        });
    }
    let num = to_i64(update.block.block_num);
    tx.execute(
        "INSERT INTO blocks (block_num, block_id, previous_block_id, state_root) VALUES (?1, ?2, ?3, ?4)",
        params![num, update.block.block_id, update.block.previous_block_id, update.block.state_root],
    )?;
    {
        let mut record = tx.prepare_cached(
            "INSERT OR REPLACE INTO records (address, block_num, kind, data, txn_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for change in &update.changes {
            record.execute(params![
                change.address,
                num,
                kind_of(&change.address),
                change.value,
                change.txn_id
            ])?;
        }
        let mut link = tx.prepare_cached(
            "INSERT OR IGNORE INTO lot_shipments (lot_key, shipment_id, block_num) VALUES (?1, ?2, ?3)",
        )?;
        for (lot, shipment) in lot_links(&update.changes) {
            link.execute(params![lot, shipment, num])?;
        }
        let mut batch = tx.prepare_cached(
            "INSERT OR REPLACE INTO readings_batches (shipment_id, block_num, position, txn_id, device_id, payload_sha512) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut insert_chunk = tx.prepare_cached(
            "INSERT OR REPLACE INTO reading_chunks (shipment_id, first_time_s, device_id, first_sequence, last_time_s, block_num, position, txn_id, count, readings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for readings in &update.readings {
            batch.execute(params![
                readings.shipment_id,
                num,
                readings.position,
                readings.txn_id,
                readings.device_id,
                readings.payload_sha512
            ])?;
            if let Some(encoded) = chunk::encode(&readings.readings) {
                insert_chunk.execute(params![
                    readings.shipment_id,
                    to_i64(encoded.first_time_s),
                    readings.device_id,
                    to_i64(encoded.first_sequence),
                    to_i64(encoded.last_time_s),
                    num,
                    readings.position,
                    readings.txn_id,
                    encoded.count,
                    encoded.blob
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

impl IndexStore for SqliteIndex {
    fn head(&self) -> IndexFuture<'_, Option<BlockRef>> {
        self.read(head_of)
    }

    fn rebuild_notice(&self) -> Option<String> {
        self.rebuilt.clone()
    }

    fn block_at(&self, block_num: u64) -> IndexFuture<'_, Option<BlockRef>> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT block_id, block_num, previous_block_id, state_root FROM blocks WHERE block_num = ?1",
                    [to_i64(block_num)],
                    block_row,
                )
                .optional()?)
        })
    }

    fn recent_block_ids(&self, count: u32) -> IndexFuture<'_, Vec<String>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT block_id FROM blocks ORDER BY block_num DESC LIMIT ?1")?;
            let ids = stmt
                .query_map([count], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
    }

    fn apply_block(&self, update: BlockUpdate) -> IndexFuture<'_, ()> {
        self.write(move |conn| apply(conn, &update))
    }

    fn roll_back_to(&self, block_num: u64) -> IndexFuture<'_, ()> {
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let num = to_i64(block_num);
            for table in CHAIN_TABLES {
                tx.execute(&format!("DELETE FROM {table} WHERE block_num > ?1"), [num])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn roll_back_to_nothing(&self) -> IndexFuture<'_, ()> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            for table in CHAIN_TABLES {
                tx.execute(&format!("DELETE FROM {table}"), [])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn record(&self, address: &str) -> IndexFuture<'_, Option<StoredRecord>> {
        let address = address.to_string();
        self.read(move |conn| {
            let found = conn
                .prepare_cached(
                    "SELECT r.address, r.data, r.block_num, b.block_id, r.txn_id FROM records r JOIN blocks b ON b.block_num = r.block_num WHERE r.address = ?1 ORDER BY r.block_num DESC LIMIT 1",
                )?
                .query_row([&address], |row| {
                    let data: Option<Vec<u8>> = row.get(1)?;
                    Ok(data.map(|_| stored_row(row)))
                })
                .optional()?;
            Ok(match found.flatten() {
                Some(record) => Some(record?),
                None => None,
            })
        })
    }

    fn record_history(&self, address: &str) -> IndexFuture<'_, Vec<RecordVersion>> {
        let address = address.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT r.block_num, b.block_id, r.txn_id, r.data IS NULL FROM records r JOIN blocks b ON b.block_num = r.block_num WHERE r.address = ?1 ORDER BY r.block_num",
            )?;
            let rows = stmt
                .query_map([&address], |row| {
                    Ok(RecordVersion {
                        block_num: to_u64(row.get(0)?),
                        block_id: row.get(1)?,
                        txn_id: row.get(2)?,
                        deleted: row.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn records_with_prefix(&self, prefix: &str, limit: u32) -> IndexFuture<'_, Vec<StoredRecord>> {
        let kind = kind_of(prefix).to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT r.address, r.data, r.block_num, b.block_id, r.txn_id FROM records r JOIN blocks b ON b.block_num = r.block_num
                 WHERE r.kind = ?1 AND r.data IS NOT NULL
                   AND r.block_num = (SELECT MAX(block_num) FROM records r2 WHERE r2.address = r.address)
                 ORDER BY r.address LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![kind, limit], stored_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn lot_shipments(&self, lot_key: &str) -> IndexFuture<'_, Vec<String>> {
        let lot_key = lot_key.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT shipment_id FROM lot_shipments WHERE lot_key = ?1 ORDER BY block_num, shipment_id",
            )?;
            let ids = stmt.query_map([&lot_key], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
    }

    fn readings(&self, query: ReadingsQuery) -> IndexFuture<'_, Vec<ReadingRow>> {
        self.read(move |conn| {
            let mut collector = chunk::Collector::new(&query);
            if collector.hopeless() {
                return Ok(Vec::new());
            }
            let mut stmt = conn.prepare_cached(CHUNKS_IN_WINDOW)?;
            let mut rows = stmt.query(params![
                query.shipment_id,
                to_i64(collector.min_time_s()),
                to_i64(collector.max_time_s())
            ])?;
            // One statement, stepped lazily: a consistent snapshot, and it stops
            // reading chunks as soon as later ones cannot change the answer.
            while let Some(row) = rows.next()? {
                let first_time_s = to_u64(row.get(1)?);
                if collector.done_before(first_time_s) {
                    break;
                }
                let device_id: String = row.get(0)?;
                let txn_id: String = row.get(4)?;
                let block_num = to_u64(row.get(3)?);
                let blob = row.get_ref(6)?.as_blob().map_err(|e| {
                    IndexError::Corrupt(format!("readings chunk column is not a blob: {e}"))
                })?;
                collector
                    .add(chunk::ChunkRow {
                        device_id: &device_id,
                        first_time_s,
                        last_time_s: to_u64(row.get(2)?),
                        block_num,
                        txn_id: &txn_id,
                        count: to_u64(row.get(5)?),
                        blob,
                    })
                    .map_err(|e| chunk::corrupt_chunk(&query.shipment_id, &txn_id, block_num, e))?;
            }
            Ok(collector.finish())
        })
    }

    fn reading_buckets(&self, query: BucketQuery) -> IndexFuture<'_, Vec<Bucket>> {
        self.read(move |conn| fill_buckets::<chunk::Buckets>(conn, &query))
    }

    fn device_reading_buckets(
        &self,
        query: BucketQuery,
    ) -> IndexFuture<'_, Vec<chunk::DeviceSeries>> {
        self.read(move |conn| fill_buckets::<chunk::DeviceBuckets>(conn, &query))
    }

    fn readings_batches(&self, shipment_id: &str) -> IndexFuture<'_, Vec<ReadingsBatchRow>> {
        let shipment_id = shipment_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT block_num, position, txn_id, payload_sha512 FROM readings_batches WHERE shipment_id = ?1 ORDER BY block_num, position",
            )?;
            let rows = stmt
                .query_map([&shipment_id], |row| {
                    Ok(ReadingsBatchRow {
                        block_num: to_u64(row.get(0)?),
                        position: row.get(1)?,
                        txn_id: row.get(2)?,
                        payload_sha512: row.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn store_token(
        &self,
        token_sha256: &str,
        public_key: &str,
        label: &str,
        at_s: u64,
    ) -> IndexFuture<'_, ()> {
        let (token, key, label) = (
            token_sha256.to_string(),
            public_key.to_string(),
            label.to_string(),
        );
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO api_tokens (token_sha256, public_key, label, created_at_s) VALUES (?1, ?2, ?3, ?4)",
                params![token, key, label, to_i64(at_s)],
            )?;
            Ok(())
        })
    }

    fn token_owner(&self, token_sha256: &str) -> IndexFuture<'_, Option<String>> {
        let token = token_sha256.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT public_key FROM api_tokens WHERE token_sha256 = ?1",
                    [&token],
                    |row| row.get(0),
                )
                .optional()?)
        })
    }

    fn audit(&self, entry: AuditEntry) -> IndexFuture<'_, ()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO audit_log (at_s, public_key, org_id, method, path, subject, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![to_i64(entry.at_s), entry.public_key, entry.org_id, entry.method, entry.path, entry.subject, entry.status],
            )?;
            Ok(())
        })
    }

    fn audit_entries(&self, public_key: &str, limit: u32) -> IndexFuture<'_, Vec<AuditEntry>> {
        let key = public_key.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT at_s, public_key, org_id, method, path, subject, status FROM audit_log WHERE (?1 = '' OR public_key = ?1) ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![key, limit], |row| {
                    Ok(AuditEntry {
                        at_s: to_u64(row.get(0)?),
                        public_key: row.get(1)?,
                        org_id: row.get(2)?,
                        method: row.get(3)?,
                        path: row.get(4)?,
                        subject: row.get(5)?,
                        status: row.get(6)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }
}

/// The chunk rows of a bucket query fed to a sink (blended or per logger).
fn fill_buckets<S: chunk::BucketSink>(
    conn: &Connection,
    query: &BucketQuery,
) -> Result<S::Output, IndexError> {
    let mut stmt = conn.prepare_cached(CHUNKS_FOR_BUCKETS)?;
    let mut rows = stmt.query(params![
        query.shipment_id,
        to_i64(query.from_s),
        to_i64(query.to_s)
    ])?;
    let mut sink: Option<S> = None;
    while let Some(row) = rows.next()? {
        let sink = match &mut sink {
            Some(sink) => sink,
            None => sink.insert(S::start(
                query.from_s,
                query.to_s,
                Some((to_u64(row.get(0)?), to_u64(row.get(1)?))),
                query.layout,
            )),
        };
        let device_id: String = row.get(2)?;
        let txn_id: String = row.get(6)?;
        let block_num = to_u64(row.get(5)?);
        let blob = row.get_ref(8)?.as_blob().map_err(|e| {
            IndexError::Corrupt(format!("readings chunk column is not a blob: {e}"))
        })?;
        let chunk = chunk::ChunkRow {
            device_id: &device_id,
            first_time_s: to_u64(row.get(3)?),
            last_time_s: to_u64(row.get(4)?),
            block_num,
            txn_id: &txn_id,
            count: to_u64(row.get(7)?),
            blob,
        };
        sink.add_chunk(&chunk)
            .map_err(|e| chunk::corrupt_chunk(&query.shipment_id, &txn_id, block_num, e))?;
    }
    Ok(sink.map(S::finish).unwrap_or_default())
}
