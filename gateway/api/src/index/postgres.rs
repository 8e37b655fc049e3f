//! PostgreSQL index for larger deployments: the same tables as SQLite. One
//! connection applies blocks inside transactions; a second serves reads
//! (tokio-postgres pipelines concurrent queries on it). An optional
//! `?schema=name` in the URL keeps several indexes (or tests) apart.
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::*;

/// The schema version in `index_schema`. Indexes without that table had the
/// layout with one `readings` row per reading; version 3 added
/// `audit_log.status` (refused reads are audited too).
pub const SCHEMA_VERSION: i32 = 3;

/// The oldest schema version whose chain tables this version reads as they
/// are; an index below it has its chain tables dropped and rebuilt.
const CHAIN_LAYOUT_SINCE: i32 = 2;

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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS index_schema (
  singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton), version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
  block_num BIGINT PRIMARY KEY, block_id TEXT NOT NULL UNIQUE,
  previous_block_id TEXT NOT NULL, state_root TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
  address TEXT NOT NULL, block_num BIGINT NOT NULL, kind TEXT NOT NULL,
  data BYTEA, txn_id TEXT NOT NULL, PRIMARY KEY (address, block_num));
CREATE INDEX IF NOT EXISTS records_kind ON records (kind, address);
CREATE INDEX IF NOT EXISTS records_block ON records (block_num);
CREATE TABLE IF NOT EXISTS lot_shipments (
  lot_key TEXT NOT NULL, shipment_id TEXT NOT NULL, block_num BIGINT NOT NULL,
  PRIMARY KEY (lot_key, shipment_id));
CREATE TABLE IF NOT EXISTS readings_batches (
  shipment_id TEXT NOT NULL, block_num BIGINT NOT NULL, position INTEGER NOT NULL,
  txn_id TEXT NOT NULL, device_id TEXT NOT NULL, payload_sha512 TEXT NOT NULL,
  PRIMARY KEY (shipment_id, block_num, position));
CREATE TABLE IF NOT EXISTS reading_chunks (
  shipment_id TEXT NOT NULL, first_time_s BIGINT NOT NULL, device_id TEXT NOT NULL,
  first_sequence BIGINT NOT NULL, last_time_s BIGINT NOT NULL, block_num BIGINT NOT NULL,
  position INTEGER NOT NULL, txn_id TEXT NOT NULL, count INTEGER NOT NULL, readings BYTEA NOT NULL,
  PRIMARY KEY (shipment_id, first_time_s, device_id, first_sequence));
CREATE INDEX IF NOT EXISTS reading_chunks_span
  ON reading_chunks (shipment_id, (last_time_s - first_time_s));
CREATE INDEX IF NOT EXISTS reading_chunks_block ON reading_chunks (block_num);
CREATE TABLE IF NOT EXISTS api_tokens (
  token_sha256 TEXT PRIMARY KEY, public_key TEXT NOT NULL, label TEXT NOT NULL, created_at_s BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
  id BIGSERIAL PRIMARY KEY, at_s BIGINT NOT NULL, public_key TEXT NOT NULL,
  org_id TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, subject TEXT NOT NULL,
  status INTEGER NOT NULL DEFAULT 200);
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS status INTEGER NOT NULL DEFAULT 200;
";

/// Every table holding chain data (all versioned by `block_num`), children first.
const CHAIN_TABLES: [&str; 5] = [
    "records",
    "lot_shipments",
    "readings_batches",
    "reading_chunks",
    "blocks",
];

// The write path sends each table's rows of a block as arrays in one statement.
const INSERT_BLOCK: &str = "INSERT INTO blocks (block_num, block_id, previous_block_id, state_root) VALUES ($1, $2, $3, $4)";
const INSERT_RECORDS: &str = "
INSERT INTO records (address, block_num, kind, data, txn_id)
SELECT address, $2, kind, data, txn_id
FROM UNNEST($1::text[], $3::text[], $4::bytea[], $5::text[]) AS u (address, kind, data, txn_id)
ON CONFLICT (address, block_num) DO UPDATE SET data = EXCLUDED.data, txn_id = EXCLUDED.txn_id";
const INSERT_LOT_SHIPMENTS: &str = "
INSERT INTO lot_shipments (lot_key, shipment_id, block_num)
SELECT lot_key, shipment_id, $3 FROM UNNEST($1::text[], $2::text[]) AS u (lot_key, shipment_id)
ON CONFLICT DO NOTHING";
const INSERT_READINGS_BATCHES: &str = "
INSERT INTO readings_batches (shipment_id, block_num, position, txn_id, device_id, payload_sha512)
SELECT shipment_id, $2, position, txn_id, device_id, payload_sha512
FROM UNNEST($1::text[], $3::integer[], $4::text[], $5::text[], $6::text[])
  AS u (shipment_id, position, txn_id, device_id, payload_sha512)
ON CONFLICT DO NOTHING";
const INSERT_READING_CHUNKS: &str = "
INSERT INTO reading_chunks (shipment_id, first_time_s, device_id, first_sequence, last_time_s, block_num, position, txn_id, count, readings)
SELECT shipment_id, first_time_s, device_id, first_sequence, last_time_s, $6, position, txn_id, count, readings
FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $7::integer[], $8::text[], $9::integer[], $10::bytea[])
  AS u (shipment_id, first_time_s, device_id, first_sequence, last_time_s, position, txn_id, count, readings)
ON CONFLICT (shipment_id, first_time_s, device_id, first_sequence) DO UPDATE SET
  last_time_s = EXCLUDED.last_time_s, block_num = EXCLUDED.block_num, position = EXCLUDED.position,
  txn_id = EXCLUDED.txn_id, count = EXCLUDED.count, readings = EXCLUDED.readings";

/// Chunks overlapping `[$2, $3]` in order of their first time, at most `$4`
/// (NULL: all). The scan of the key index starts at `$2` minus the shipment's
/// longest chunk span (one lookup in `reading_chunks_span`).
const CHUNKS_IN_WINDOW: &str = "
SELECT device_id, first_time_s, last_time_s, block_num, txn_id, count, readings
FROM reading_chunks
WHERE shipment_id = $1 AND first_time_s <= $3 AND last_time_s >= $2
  AND first_time_s >= $2 - (SELECT COALESCE(MAX(last_time_s - first_time_s), 0)
                             FROM reading_chunks WHERE shipment_id = $1)
ORDER BY first_time_s
LIMIT $4";

/// Every chunk overlapping `[$2, $3]` (same bounds as [`CHUNKS_IN_WINDOW`]),
/// each row carrying the first and last time of all of them, so one statement
/// (one snapshot) gives both the bucket layout and the readings.
const CHUNKS_FOR_BUCKETS: &str = "
WITH overlapping AS (
  SELECT device_id, first_time_s, last_time_s, block_num, txn_id, count, readings
  FROM reading_chunks
  WHERE shipment_id = $1 AND first_time_s <= $3 AND last_time_s >= $2
    AND first_time_s >= $2 - (SELECT COALESCE(MAX(last_time_s - first_time_s), 0)
                               FROM reading_chunks WHERE shipment_id = $1)),
span AS (SELECT MIN(first_time_s) AS lo, MAX(last_time_s) AS hi FROM overlapping)
SELECT span.lo, span.hi, o.device_id, o.first_time_s, o.last_time_s, o.block_num, o.txn_id,
       o.count, o.readings
FROM span, overlapping o";

/// The PostgreSQL index store.
pub struct PostgresIndex {
    writer: Mutex<Writer>,
    reader: Client,
    rebuilt: Option<String>,
}

/// The write connection with its statements prepared once.
struct Writer {
    client: Client,
    head: Statement,
    block: Statement,
    records: Statement,
    lot_shipments: Statement,
    readings_batches: Statement,
    reading_chunks: Statement,
}

impl Writer {
    async fn new(client: Client) -> Result<Writer, IndexError> {
        Ok(Writer {
            head: client.prepare(HEAD).await?,
            block: client.prepare(INSERT_BLOCK).await?,
            records: client.prepare(INSERT_RECORDS).await?,
            lot_shipments: client.prepare(INSERT_LOT_SHIPMENTS).await?,
            readings_batches: client.prepare(INSERT_READINGS_BATCHES).await?,
            reading_chunks: client.prepare(INSERT_READING_CHUNKS).await?,
            client,
        })
    }
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Splits `?schema=name` off a PostgreSQL URL; the name must be a plain identifier.
fn split_schema(url: &str) -> Result<(String, Option<String>), IndexError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut schema = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("schema=") {
            Some(name) => {
                let plain = !name.is_empty()
                    && name.len() <= 63
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !plain {
                    return Err(IndexError::BadUrl(format!(
                        "{url} (schema must be lowercase letters, digits and _)"
                    )));
                }
                schema = Some(name.to_string());
            }
            None => rest.push(pair),
        }
    }
    let base = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((base, schema))
}

async fn connect_one(url: &str, schema: Option<&str>) -> Result<Client, IndexError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "PostgreSQL index connection closed");
        }
    });
    if let Some(schema) = schema {
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
            ))
            .await?;
    }
    Ok(client)
}

fn block_row(row: &Row) -> BlockRef {
    BlockRef {
        block_id: row.get(0),
        block_num: to_u64(row.get(1)),
        previous_block_id: row.get(2),
        state_root: row.get(3),
    }
}

fn stored_row(row: &Row) -> Option<StoredRecord> {
    let data: Option<Vec<u8>> = row.get(1);
    Some(StoredRecord {
        address: row.get(0),
        data: data?,
        block_num: to_u64(row.get(2)),
        block_id: row.get(3),
        txn_id: row.get(4),
    })
}

impl PostgresIndex {
    /// The chunk rows of a bucket query fed to a sink (blended or per logger).
    /// Streamed: tokio-postgres hands rows over a bounded channel, so only a
    /// few chunks are in memory however long the shipment is.
    async fn fill_buckets<S: chunk::BucketSink>(
        &self,
        query: &BucketQuery,
    ) -> Result<S::Output, IndexError> {
        use futures_util::TryStreamExt;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [
            &query.shipment_id,
            &to_i64(query.from_s),
            &to_i64(query.to_s),
        ];
        let rows = self.reader.query_raw(CHUNKS_FOR_BUCKETS, params).await?;
        let mut rows = std::pin::pin!(rows);
        let mut sink: Option<S> = None;
        while let Some(row) = rows.try_next().await? {
            let sink = match &mut sink {
                Some(sink) => sink,
                None => sink.insert(S::start(
                    query.from_s,
                    query.to_s,
                    Some((to_u64(row.try_get(0)?), to_u64(row.try_get(1)?))),
                    query.layout,
                )),
            };
            let txn_id: &str = row.try_get(6)?;
            let block_num = to_u64(row.try_get(5)?);
            let count: i32 = row.try_get(7)?;
            let chunk = chunk::ChunkRow {
                device_id: row.try_get(2)?,
                first_time_s: to_u64(row.try_get(3)?),
                last_time_s: to_u64(row.try_get(4)?),
                block_num,
                txn_id,
                count: u64::try_from(count).unwrap_or(u64::MAX),
                blob: row.try_get(8)?,
            };
            sink.add_chunk(&chunk)
                .map_err(|e| chunk::corrupt_chunk(&query.shipment_id, txn_id, block_num, e))?;
        }
        Ok(sink.map(S::finish).unwrap_or_default())
    }

    /// Connects and creates the tables when missing.
    pub async fn connect(url: &str) -> Result<PostgresIndex, IndexError> {
        let (base, schema) = split_schema(url)?;
        let writer = connect_one(&base, schema.as_deref()).await?;
        let rebuilt = prepare_schema(&writer, schema.as_deref()).await?;
        if let Some(notice) = &rebuilt {
            tracing::warn!("{notice}");
        }
        let reader = connect_one(&base, schema.as_deref()).await?;
        Ok(PostgresIndex {
            writer: Mutex::new(Writer::new(writer).await?),
            reader,
            rebuilt,
        })
    }
}

/// Creates the tables in a new index and accepts one of this version. An
/// index of an older layout has its chain tables dropped (the follower
/// re-indexes from genesis) while `api_tokens` and `audit_log` are kept and
/// brought up to date; the returned notice says what happened. An index of a
/// newer version is refused (this version cannot know what it must keep).
/// All of it runs in one transaction (PostgreSQL DDL is transactional).
async fn prepare_schema(
    client: &Client,
    schema: Option<&str>,
) -> Result<Option<String>, IndexError> {
    let place = match schema {
        Some(name) => format!("schema {name}"),
        None => "the default schema".to_string(),
    };
    client.batch_execute("BEGIN").await?;
    let result = migrate(client, &place).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    client.batch_execute(end).await?;
    result
}

async fn migrate(client: &Client, place: &str) -> Result<Option<String>, IndexError> {
    // Two APIs starting on one index at once: the second waits for the first.
    client
        .batch_execute("SELECT pg_advisory_xact_lock(7262620331)")
        .await?;
    let row = client
        .query_one(
            "SELECT to_regclass('index_schema') IS NOT NULL, to_regclass('blocks') IS NOT NULL",
            &[],
        )
        .await?;
    let (versioned, has_blocks): (bool, bool) = (row.try_get(0)?, row.try_get(1)?);
    let version: Option<i32> = if versioned {
        client
            .query_opt("SELECT version FROM index_schema", &[])
            .await?
            .map(|row| row.try_get(0))
            .transpose()?
    } else {
        None
    };
    if let Some(v) = version.filter(|v| *v > SCHEMA_VERSION) {
        return Err(IndexError::Schema(format!(
            "PostgreSQL index in {place} was written by a newer coldchain-api (schema version \
             {v}); this version reads schema version {SCHEMA_VERSION} and will not change an \
             index it does not understand: run the newer coldchain-api, or give this one another \
             schema (--index postgres://…?schema=other)"
        )));
    }
    let old = match version {
        Some(v) if v < CHAIN_LAYOUT_SINCE => Some(format!("schema version {v}")),
        None if has_blocks => Some("an older coldchain-api (one row per reading)".to_string()),
        _ => None,
    };
    let mut rebuilt = None;
    if let Some(found) = old {
        for table in DERIVED_TABLES {
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS {table} CASCADE"))
                .await?;
        }
        rebuilt = Some(format!(
            "PostgreSQL index in {place} was written by {found}; this version needs schema \
             version {SCHEMA_VERSION} (readings stored in chunks). Its chain tables were dropped \
             and are rebuilt from the chain: the follower re-indexes from genesis. API tokens and \
             the audit log were kept"
        ));
    }
    client.batch_execute(SCHEMA).await?;
    client
        .execute(
            "INSERT INTO index_schema (version) VALUES ($1) ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
            &[&SCHEMA_VERSION],
        )
        .await?;
    Ok(rebuilt)
}

const HEAD: &str = "SELECT block_id, block_num, previous_block_id, state_root FROM blocks ORDER BY block_num DESC LIMIT 1";

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// One block's rows as column arrays, one per table (duplicate keys within the
/// block resolved as the SQLite store does: the last one wins).
#[derive(Default)]
struct Columns {
    record_address: Vec<String>,
    record_kind: Vec<String>,
    record_data: Vec<Option<Vec<u8>>>,
    record_txn: Vec<String>,
    lot_key: Vec<String>,
    lot_shipment: Vec<String>,
    batch_shipment: Vec<String>,
    batch_position: Vec<i32>,
    batch_txn: Vec<String>,
    batch_device: Vec<String>,
    batch_sha512: Vec<String>,
    chunk_shipment: Vec<String>,
    chunk_first_time: Vec<i64>,
    chunk_device: Vec<String>,
    chunk_first_sequence: Vec<i64>,
    chunk_last_time: Vec<i64>,
    chunk_position: Vec<i32>,
    chunk_txn: Vec<String>,
    chunk_count: Vec<i32>,
    chunk_blob: Vec<Vec<u8>>,
}

fn columns(update: BlockUpdate) -> Columns {
    use std::collections::HashMap;
    let mut c = Columns::default();
    for (lot, shipment) in lot_links(&update.changes) {
        c.lot_key.push(lot);
        c.lot_shipment.push(shipment);
    }
    let mut latest: HashMap<String, usize> = HashMap::new();
    for change in update.changes {
        let kind = kind_of(&change.address).to_string();
        match latest.get(&change.address) {
            Some(&at) => {
                c.record_data[at] = change.value;
                c.record_txn[at] = change.txn_id;
            }
            None => {
                latest.insert(change.address.clone(), c.record_address.len());
                c.record_address.push(change.address);
                c.record_kind.push(kind);
                c.record_data.push(change.value);
                c.record_txn.push(change.txn_id);
            }
        }
    }
    let mut chunks: HashMap<(String, i64, String, i64), usize> = HashMap::new();
    for batch in update.readings {
        c.batch_shipment.push(batch.shipment_id.clone());
        c.batch_position.push(to_i32(batch.position));
        c.batch_txn.push(batch.txn_id.clone());
        c.batch_device.push(batch.device_id.clone());
        c.batch_sha512.push(batch.payload_sha512);
        let Some(encoded) = chunk::encode(&batch.readings) else {
            continue;
        };
        let key = (
            batch.shipment_id,
            to_i64(encoded.first_time_s),
            batch.device_id,
            to_i64(encoded.first_sequence),
        );
        let at = match chunks.get(&key) {
            Some(&at) => at,
            None => {
                chunks.insert(key.clone(), c.chunk_shipment.len());
                c.chunk_shipment.push(key.0);
                c.chunk_first_time.push(key.1);
                c.chunk_device.push(key.2);
                c.chunk_first_sequence.push(key.3);
                c.chunk_last_time.push(0);
                c.chunk_position.push(0);
                c.chunk_txn.push(String::new());
                c.chunk_count.push(0);
                c.chunk_blob.push(Vec::new());
                c.chunk_shipment.len() - 1
            }
        };
        c.chunk_last_time[at] = to_i64(encoded.last_time_s);
        c.chunk_position[at] = to_i32(batch.position);
        c.chunk_txn[at] = batch.txn_id;
        c.chunk_count[at] = to_i32(encoded.count);
        c.chunk_blob[at] = encoded.blob;
    }
    c
}

/// A statement's future, or nothing when its table gets no rows.
async fn maybe(
    rows: bool,
    run: impl Future<Output = Result<u64, tokio_postgres::Error>>,
) -> Result<u64, tokio_postgres::Error> {
    if rows {
        run.await
    } else {
        Ok(0)
    }
}

/// Applies a block in four round trips: BEGIN, the head check, every table's
/// rows (pipelined, one array statement per table), COMMIT.
async fn apply(writer: &mut Writer, update: BlockUpdate) -> Result<(), IndexError> {
    let tx = writer.client.transaction().await?;
    let head = tx
        .query_opt(&writer.head, &[])
        .await?
        .map(|row| block_row(&row));
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
    let b = update.block.clone();
    let c = columns(update);
    let block: [&(dyn ToSql + Sync); 4] = [&num, &b.block_id, &b.previous_block_id, &b.state_root];
    let records: [&(dyn ToSql + Sync); 5] = [
        &c.record_address,
        &num,
        &c.record_kind,
        &c.record_data,
        &c.record_txn,
    ];
    let lots: [&(dyn ToSql + Sync); 3] = [&c.lot_key, &c.lot_shipment, &num];
    let batches: [&(dyn ToSql + Sync); 6] = [
        &c.batch_shipment,
        &num,
        &c.batch_position,
        &c.batch_txn,
        &c.batch_device,
        &c.batch_sha512,
    ];
    let chunks: [&(dyn ToSql + Sync); 10] = [
        &c.chunk_shipment,
        &c.chunk_first_time,
        &c.chunk_device,
        &c.chunk_first_sequence,
        &c.chunk_last_time,
        &num,
        &c.chunk_position,
        &c.chunk_txn,
        &c.chunk_count,
        &c.chunk_blob,
    ];
    tokio::try_join!(
        tx.execute(&writer.block, &block),
        maybe(
            !c.record_address.is_empty(),
            tx.execute(&writer.records, &records)
        ),
        maybe(
            !c.lot_key.is_empty(),
            tx.execute(&writer.lot_shipments, &lots)
        ),
        maybe(
            !c.batch_shipment.is_empty(),
            tx.execute(&writer.readings_batches, &batches)
        ),
        maybe(
            !c.chunk_shipment.is_empty(),
            tx.execute(&writer.reading_chunks, &chunks)
        ),
    )?;
    tx.commit().await?;
    Ok(())
}

/// Chunks fetched by the first try of a readings query: enough for `limit`
/// readings at 32 readings per chunk; if they do not settle the answer the
/// query runs again with four times as many (each try is one statement, so
/// the answer always comes from one snapshot).
fn first_chunk_page(limit: u32) -> i64 {
    64 + i64::from(limit / 32)
}

/// Feeds chunk rows to the collector; true when later chunks cannot matter.
fn feed(
    collector: &mut chunk::Collector,
    rows: &[Row],
    shipment: &str,
) -> Result<bool, IndexError> {
    for row in rows {
        let first_time_s = to_u64(row.try_get(1)?);
        if collector.done_before(first_time_s) {
            return Ok(true);
        }
        let device_id: &str = row.try_get(0)?;
        let txn_id: &str = row.try_get(4)?;
        let block_num = to_u64(row.try_get(3)?);
        let count: i32 = row.try_get(5)?;
        collector
            .add(chunk::ChunkRow {
                device_id,
                first_time_s,
                last_time_s: to_u64(row.try_get(2)?),
                block_num,
                txn_id,
                count: u64::try_from(count).unwrap_or(u64::MAX),
                blob: row.try_get(6)?,
            })
            .map_err(|e| chunk::corrupt_chunk(shipment, txn_id, block_num, e))?;
    }
    Ok(false)
}

impl IndexStore for PostgresIndex {
    fn rebuild_notice(&self) -> Option<String> {
        self.rebuilt.clone()
    }

    fn head(&self) -> IndexFuture<'_, Option<BlockRef>> {
        Box::pin(async move {
            Ok(self
                .reader
                .query_opt(HEAD, &[])
                .await?
                .map(|row| block_row(&row)))
        })
    }

    fn block_at(&self, block_num: u64) -> IndexFuture<'_, Option<BlockRef>> {
        Box::pin(async move {
            let row = self
                .reader
                .query_opt(
                    "SELECT block_id, block_num, previous_block_id, state_root FROM blocks WHERE block_num = $1",
                    &[&to_i64(block_num)],
                )
                .await?;
            Ok(row.map(|row| block_row(&row)))
        })
    }

    fn recent_block_ids(&self, count: u32) -> IndexFuture<'_, Vec<String>> {
        Box::pin(async move {
            let rows = self
                .reader
                .query(
                    "SELECT block_id FROM blocks ORDER BY block_num DESC LIMIT $1",
                    &[&i64::from(count)],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn apply_block(&self, update: BlockUpdate) -> IndexFuture<'_, ()> {
        Box::pin(async move {
            let mut writer = self.writer.lock().await;
            apply(&mut writer, update).await
        })
    }

    fn roll_back_to(&self, block_num: u64) -> IndexFuture<'_, ()> {
        Box::pin(async move {
            let mut writer = self.writer.lock().await;
            let tx = writer.client.transaction().await?;
            let num = to_i64(block_num);
            for table in CHAIN_TABLES {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE block_num > $1"),
                    &[&num],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn roll_back_to_nothing(&self) -> IndexFuture<'_, ()> {
        Box::pin(async move {
            let mut writer = self.writer.lock().await;
            let tx = writer.client.transaction().await?;
            for table in CHAIN_TABLES {
                tx.execute(&format!("DELETE FROM {table}"), &[]).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn record(&self, address: &str) -> IndexFuture<'_, Option<StoredRecord>> {
        let address = address.to_string();
        Box::pin(async move {
            let row = self
                .reader
                .query_opt(
                    "SELECT r.address, r.data, r.block_num, b.block_id, r.txn_id FROM records r JOIN blocks b ON b.block_num = r.block_num
                     WHERE r.address = $1 ORDER BY r.block_num DESC LIMIT 1",
                    &[&address],
                )
                .await?;
            Ok(row.as_ref().and_then(stored_row))
        })
    }

    fn record_history(&self, address: &str) -> IndexFuture<'_, Vec<RecordVersion>> {
        let address = address.to_string();
        Box::pin(async move {
            let rows = self
                .reader
                .query(
                    "SELECT r.block_num, b.block_id, r.txn_id, r.data IS NULL FROM records r JOIN blocks b ON b.block_num = r.block_num WHERE r.address = $1 ORDER BY r.block_num",
                    &[&address],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| RecordVersion {
                    block_num: to_u64(row.get(0)),
                    block_id: row.get(1),
                    txn_id: row.get(2),
                    deleted: row.get(3),
                })
                .collect())
        })
    }

    fn records_with_prefix(&self, prefix: &str, limit: u32) -> IndexFuture<'_, Vec<StoredRecord>> {
        let kind = kind_of(prefix).to_string();
        Box::pin(async move {
            let rows = self
                .reader
                .query(
                    "SELECT r.address, r.data, r.block_num, b.block_id, r.txn_id FROM records r JOIN blocks b ON b.block_num = r.block_num
                     WHERE r.kind = $1 AND r.data IS NOT NULL
                       AND r.block_num = (SELECT MAX(block_num) FROM records r2 WHERE r2.address = r.address)
                     ORDER BY r.address LIMIT $2",
                    &[&kind, &i64::from(limit)],
                )
                .await?;
            Ok(rows.iter().filter_map(stored_row).collect())
        })
    }

    fn lot_shipments(&self, lot_key: &str) -> IndexFuture<'_, Vec<String>> {
        let lot_key = lot_key.to_string();
        Box::pin(async move {
            let rows = self
                .reader
                .query("SELECT shipment_id FROM lot_shipments WHERE lot_key = $1 ORDER BY block_num, shipment_id", &[&lot_key])
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn readings(&self, query: ReadingsQuery) -> IndexFuture<'_, Vec<ReadingRow>> {
        Box::pin(async move {
            if chunk::Collector::new(&query).hopeless() {
                return Ok(Vec::new());
            }
            let mut page = first_chunk_page(query.limit);
            loop {
                let mut collector = chunk::Collector::new(&query);
                let rows = self
                    .reader
                    .query(
                        CHUNKS_IN_WINDOW,
                        &[
                            &query.shipment_id,
                            &to_i64(collector.min_time_s()),
                            &to_i64(collector.max_time_s()),
                            &page,
                        ],
                    )
                    .await?;
                let settled = feed(&mut collector, &rows, &query.shipment_id)?;
                if settled || i64::try_from(rows.len()).unwrap_or(i64::MAX) < page {
                    return Ok(collector.finish());
                }
                page = page.saturating_mul(4);
            }
        })
    }

    fn reading_buckets(&self, query: BucketQuery) -> IndexFuture<'_, Vec<Bucket>> {
        Box::pin(async move { self.fill_buckets::<chunk::Buckets>(&query).await })
    }

    fn device_reading_buckets(
        &self,
        query: BucketQuery,
    ) -> IndexFuture<'_, Vec<chunk::DeviceSeries>> {
        Box::pin(async move { self.fill_buckets::<chunk::DeviceBuckets>(&query).await })
    }

    fn readings_batches(&self, shipment_id: &str) -> IndexFuture<'_, Vec<ReadingsBatchRow>> {
        let shipment_id = shipment_id.to_string();
        Box::pin(async move {
            let rows = self
                .reader
                .query(
                    "SELECT block_num, position, txn_id, payload_sha512 FROM readings_batches WHERE shipment_id = $1 ORDER BY block_num, position",
                    &[&shipment_id],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| {
                    let position: i32 = row.get(1);
                    ReadingsBatchRow {
                        block_num: to_u64(row.get(0)),
                        position: u32::try_from(position).unwrap_or(0),
                        txn_id: row.get(2),
                        payload_sha512: row.get(3),
                    }
                })
                .collect())
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
        Box::pin(async move {
            self.reader
                .execute(
                    "INSERT INTO api_tokens (token_sha256, public_key, label, created_at_s) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (token_sha256) DO UPDATE SET public_key = EXCLUDED.public_key",
                    &[&token, &key, &label, &to_i64(at_s)],
                )
                .await?;
            Ok(())
        })
    }

    fn token_owner(&self, token_sha256: &str) -> IndexFuture<'_, Option<String>> {
        let token = token_sha256.to_string();
        Box::pin(async move {
            let row = self
                .reader
                .query_opt(
                    "SELECT public_key FROM api_tokens WHERE token_sha256 = $1",
                    &[&token],
                )
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn audit(&self, entry: AuditEntry) -> IndexFuture<'_, ()> {
        Box::pin(async move {
            self.reader
                .execute(
                    "INSERT INTO audit_log (at_s, public_key, org_id, method, path, subject, status) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&to_i64(entry.at_s), &entry.public_key, &entry.org_id, &entry.method, &entry.path, &entry.subject, &i32::from(entry.status)],
                )
                .await?;
            Ok(())
        })
    }

    fn audit_entries(&self, public_key: &str, limit: u32) -> IndexFuture<'_, Vec<AuditEntry>> {
        let key = public_key.to_string();
        Box::pin(async move {
            let rows = self
                .reader
                .query(
                    "SELECT at_s, public_key, org_id, method, path, subject, status FROM audit_log WHERE ($1 = '' OR public_key = $1) ORDER BY id DESC LIMIT $2",
                    &[&key, &i64::from(limit)],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| AuditEntry {
                    at_s: to_u64(row.get(0)),
                    public_key: row.get(1),
                    org_id: row.get(2),
                    method: row.get(3),
                    path: row.get(4),
                    subject: row.get(5),
                    status: u16::try_from(row.get::<_, i32>(6)).unwrap_or(0),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::split_schema;

    #[test]
    fn schema_parameter_is_split_off_and_checked() {
        let (base, schema) =
            split_schema("postgres://postgres@127.0.0.1:5432/test?schema=t_1").unwrap();
        assert_eq!(base, "postgres://postgres@127.0.0.1:5432/test");
        assert_eq!(schema.as_deref(), Some("t_1"));
        assert!(split_schema("postgres://h/test?schema=x;drop").is_err());
    }
}
