//! PostgreSQL index for larger deployments: the same tables as SQLite. One
//! connection applies blocks inside transactions; a second serves reads
//! (tokio-postgres pipelines concurrent queries on it). An optional
//! `?schema=name` in the URL keeps several indexes (or tests) apart.
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Row};

use super::*;

const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS readings (
  shipment_id TEXT NOT NULL, time_s BIGINT NOT NULL, device_id TEXT NOT NULL,
  sequence BIGINT NOT NULL, temperature_cdeg INTEGER NOT NULL, humidity_permille BIGINT,
  door INTEGER NOT NULL, block_num BIGINT NOT NULL, txn_id TEXT NOT NULL,
  PRIMARY KEY (shipment_id, time_s, device_id, sequence));
CREATE INDEX IF NOT EXISTS readings_block ON readings (block_num);
CREATE TABLE IF NOT EXISTS api_tokens (
  token_sha256 TEXT PRIMARY KEY, public_key TEXT NOT NULL, label TEXT NOT NULL, created_at_s BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
  id BIGSERIAL PRIMARY KEY, at_s BIGINT NOT NULL, public_key TEXT NOT NULL,
  org_id TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, subject TEXT NOT NULL);
";

/// The PostgreSQL index store.
pub struct PostgresIndex {
    writer: Mutex<Client>,
    reader: Client,
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
    /// Connects and creates the tables when missing.
    pub async fn connect(url: &str) -> Result<PostgresIndex, IndexError> {
        let (base, schema) = split_schema(url)?;
        let writer = connect_one(&base, schema.as_deref()).await?;
        writer.batch_execute(SCHEMA).await?;
        let reader = connect_one(&base, schema.as_deref()).await?;
        Ok(PostgresIndex {
            writer: Mutex::new(writer),
            reader,
        })
    }
}

const HEAD: &str = "SELECT block_id, block_num, previous_block_id, state_root FROM blocks ORDER BY block_num DESC LIMIT 1";

async fn apply(client: &mut Client, update: BlockUpdate) -> Result<(), IndexError> {
    let tx = client.transaction().await?;
    let head = tx.query_opt(HEAD, &[]).await?.map(|row| block_row(&row));
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
    let b = &update.block;
    tx.execute(
        "INSERT INTO blocks (block_num, block_id, previous_block_id, state_root) VALUES ($1, $2, $3, $4)",
        &[&num, &b.block_id, &b.previous_block_id, &b.state_root],
    )
    .await?;
    let record = tx
        .prepare(
            "INSERT INTO records (address, block_num, kind, data, txn_id) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (address, block_num) DO UPDATE SET data = EXCLUDED.data, txn_id = EXCLUDED.txn_id",
        )
        .await?;
    for change in &update.changes {
        let kind = kind_of(&change.address);
        tx.execute(
            &record,
            &[&change.address, &num, &kind, &change.value, &change.txn_id],
        )
        .await?;
    }
    for (lot, shipment) in lot_links(&update.changes) {
        tx.execute(
            "INSERT INTO lot_shipments (lot_key, shipment_id, block_num) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&lot, &shipment, &num],
        )
        .await?;
    }
    let batch = tx
        .prepare("INSERT INTO readings_batches (shipment_id, block_num, position, txn_id, device_id, payload_sha512) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
        .await?;
    let reading = tx
        .prepare(
            "INSERT INTO readings (shipment_id, time_s, device_id, sequence, temperature_cdeg, humidity_permille, door, block_num, txn_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .await?;
    for readings in &update.readings {
        let position = i32::try_from(readings.position).unwrap_or(i32::MAX);
        tx.execute(
            &batch,
            &[
                &readings.shipment_id,
                &num,
                &position,
                &readings.txn_id,
                &readings.device_id,
                &readings.payload_sha512,
            ],
        )
        .await?;
        for r in &readings.readings {
            let humidity = r.humidity_permille.map(i64::from);
            tx.execute(
                &reading,
                &[
                    &r.shipment_id,
                    &to_i64(r.time_s),
                    &r.device_id,
                    &to_i64(r.sequence),
                    &r.temperature_cdeg,
                    &humidity,
                    &r.door,
                    &num,
                    &r.txn_id,
                ],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

impl IndexStore for PostgresIndex {
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
            let tx = writer.transaction().await?;
            let num = to_i64(block_num);
            for table in [
                "records",
                "lot_shipments",
                "readings_batches",
                "readings",
                "blocks",
            ] {
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
            let tx = writer.transaction().await?;
            for table in [
                "records",
                "lot_shipments",
                "readings_batches",
                "readings",
                "blocks",
            ] {
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
            let (after_time, after_device, after_seq) = query
                .after
                .clone()
                .map(|(t, d, s)| (to_i64(t), d, to_i64(s)))
                .unwrap_or((-1, String::new(), -1));
            let rows = self
                .reader
                .query(
                    "SELECT shipment_id, time_s, device_id, sequence, temperature_cdeg, humidity_permille, door, block_num, txn_id
                     FROM readings WHERE shipment_id = $1 AND time_s >= $2 AND time_s <= $3
                       AND (time_s, device_id, sequence) > ($4, $5, $6)
                     ORDER BY time_s, device_id, sequence LIMIT $7",
                    &[&query.shipment_id, &to_i64(query.from_s), &to_i64(query.to_s), &after_time, &after_device, &after_seq, &i64::from(query.limit)],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| {
                    let humidity: Option<i64> = row.get(5);
                    ReadingRow {
                        shipment_id: row.get(0),
                        time_s: to_u64(row.get(1)),
                        device_id: row.get(2),
                        sequence: to_u64(row.get(3)),
                        temperature_cdeg: row.get(4),
                        humidity_permille: humidity.and_then(|h| u32::try_from(h).ok()),
                        door: row.get(6),
                        block_num: to_u64(row.get(7)),
                        txn_id: row.get(8),
                    }
                })
                .collect())
        })
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
                    "INSERT INTO audit_log (at_s, public_key, org_id, method, path, subject) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&to_i64(entry.at_s), &entry.public_key, &entry.org_id, &entry.method, &entry.path, &entry.subject],
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
                    "SELECT at_s, public_key, org_id, method, path, subject FROM audit_log WHERE ($1 = '' OR public_key = $1) ORDER BY id DESC LIMIT $2",
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
