//! Store tests shared by SQLite and PostgreSQL: readings queries over chunks
//! (windows, cursors and limits that cross chunk boundaries) against a brute
//! force over the same readings, roll-back, corrupt blobs, old schemas rebuilt
//! (API tokens and the audit log kept) and newer schemas refused.
use super::*;

const T0: u64 = 1_700_000_000;

/// A tiny deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn block_id(num: u64) -> String {
    format!("{:0128x}", num + 1)
}

fn block(num: u64, changes: Vec<StateChange>, readings: Vec<ReadingsBatch>) -> BlockUpdate {
    BlockUpdate {
        block: BlockRef {
            block_id: block_id(num),
            block_num: num,
            previous_block_id: if num == 0 {
                "0000000000000000".into()
            } else {
                block_id(num - 1)
            },
            state_root: format!("root-{num}"),
        },
        changes,
        readings,
    }
}

/// Readings transactions of several devices and shipments over several blocks:
/// devices A and B of shipment S report at the same instants (ties broken by
/// device), chunks of varying size, one device C with sparse chunks spanning
/// hours (overlapping many others), and a shipment T that must never leak in.
fn chain() -> Vec<BlockUpdate> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut state: Vec<(String, String, u64, u64)> = vec![
        ("S".into(), "A".into(), 1, T0),
        ("S".into(), "B".into(), 1, T0),
        ("S".into(), "C".into(), 1, T0 + 5),
        ("T".into(), "A".into(), 1, T0),
    ];
    let mut blocks = Vec::new();
    for num in 0..12u64 {
        let mut batches = Vec::new();
        for (i, (shipment, device, sequence, time)) in state.iter_mut().enumerate() {
            let transactions = 1 + rng.below(2);
            for _ in 0..transactions {
                let count = 1 + rng.below(if device == "C" { 4 } else { 13 });
                let step = if device == "C" { 3_000 } else { 10 };
                let readings: Vec<Reading> = (0..count)
                    .map(|_| {
                        let r = Reading {
                            sequence: *sequence,
                            time_s: *time,
                            temperature_cdeg: 400 + rng.below(300) as i32 - 150,
                            humidity_permille: (rng.below(3) == 0).then(|| rng.below(1000) as u32),
                            door: rng.below(2) as i32,
                        };
                        *sequence += 1 + rng.below(2);
                        // Sometimes two readings in the same second.
                        *time += if rng.below(5) == 0 { 0 } else { step };
                        r
                    })
                    .collect();
                let position = u32::try_from(batches.len()).unwrap_or(0);
                batches.push(ReadingsBatch {
                    shipment_id: shipment.clone(),
                    device_id: device.clone(),
                    txn_id: format!("{num:04}-{i}-{position:04}"),
                    position,
                    payload_sha512: format!("{:0128x}", num * 100 + u64::from(position)),
                    readings,
                });
            }
        }
        blocks.push(block(num, Vec::new(), batches));
    }
    blocks
}

fn rows_of(blocks: &[BlockUpdate]) -> Vec<ReadingRow> {
    let mut rows = Vec::new();
    for update in blocks {
        for batch in &update.readings {
            for r in &batch.readings {
                rows.push(ReadingRow {
                    shipment_id: batch.shipment_id.clone(),
                    device_id: batch.device_id.clone(),
                    sequence: r.sequence,
                    time_s: r.time_s,
                    temperature_cdeg: r.temperature_cdeg,
                    humidity_permille: r.humidity_permille,
                    door: r.door,
                    block_num: update.block.block_num,
                    txn_id: batch.txn_id.clone(),
                });
            }
        }
    }
    rows.sort_by(|a, b| {
        (a.time_s, &a.device_id, a.sequence).cmp(&(b.time_s, &b.device_id, b.sequence))
    });
    rows
}

/// What a [`ReadingsQuery`] promises, by brute force.
fn expected(all: &[ReadingRow], query: &ReadingsQuery) -> Vec<ReadingRow> {
    all.iter()
        .filter(|r| r.shipment_id == query.shipment_id)
        .filter(|r| r.time_s >= query.from_s && r.time_s <= query.to_s)
        .filter(|r| match &query.after {
            Some((t, d, s)) => (r.time_s, r.device_id.as_str(), r.sequence) > (*t, d.as_str(), *s),
            None => true,
        })
        .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
        .cloned()
        .collect()
}

fn query(shipment: &str, from_s: u64, to_s: u64, limit: u32) -> ReadingsQuery {
    ReadingsQuery {
        shipment_id: shipment.into(),
        from_s,
        to_s,
        after: None,
        limit,
    }
}

/// Pages through `query` with the cursor and checks every page and the whole.
async fn check_paging(index: &dyn IndexStore, all: &[ReadingRow], mut query: ReadingsQuery) {
    let whole = expected(
        all,
        &ReadingsQuery {
            limit: u32::MAX,
            ..query.clone()
        },
    );
    let mut seen = Vec::new();
    for _ in 0..=whole.len() {
        let page = index.readings(query.clone()).await.expect("readings");
        assert_eq!(page, expected(all, &query), "page of {query:?}");
        let Some(last) = page.last() else {
            break;
        };
        query.after = Some((last.time_s, last.device_id.clone(), last.sequence));
        seen.extend(page);
    }
    assert_eq!(seen, whole, "pages of {query:?}");
}

async fn readings_over_chunks(index: &dyn IndexStore) {
    let blocks = chain();
    for update in blocks.iter().cloned() {
        index.apply_block(update).await.expect("applied");
    }
    let all = rows_of(&blocks);
    let s_rows: Vec<&ReadingRow> = all.iter().filter(|r| r.shipment_id == "S").collect();
    let end = s_rows.last().map(|r| r.time_s).unwrap_or(T0);
    assert!(s_rows.len() > 300, "{} readings", s_rows.len());

    // Everything, then pages of several sizes (1 crosses every boundary).
    let everything = index
        .readings(query("S", 0, u64::MAX >> 1, u32::MAX))
        .await
        .expect("readings");
    assert_eq!(
        everything,
        expected(&all, &query("S", 0, u64::MAX >> 1, u32::MAX))
    );
    for limit in [1, 7, 13, 100] {
        check_paging(index, &all, query("S", 0, u64::MAX >> 1, limit)).await;
    }
    // Windows starting and ending inside chunks, including inside C's long ones.
    let mut rng = Rng(7);
    for _ in 0..40 {
        let from = T0 + rng.below(end - T0);
        let to = from + rng.below(2_000);
        let limit = 1 + rng.below(40) as u32;
        check_paging(index, &all, query("S", from, to, limit)).await;
        check_paging(index, &all, query("T", from, to, limit)).await;
    }
    // A cursor at a reading that shares its second with another device's reading.
    let tie = s_rows
        .windows(2)
        .find(|w| w[0].time_s == w[1].time_s && w[0].device_id != w[1].device_id)
        .map(|w| w[0].clone())
        .expect("two devices at the same second");
    let mut after_tie = query("S", tie.time_s, tie.time_s + 100, 5);
    after_tie.after = Some((tie.time_s, tie.device_id.clone(), tie.sequence));
    let page = index.readings(after_tie.clone()).await.expect("readings");
    assert_eq!(page, expected(&all, &after_tie));
    assert!(page.first().is_some_and(|r| r.time_s == tie.time_s));
    // Empty answers: window before everything, cursor past the window, no shipment, limit 0.
    for q in [
        query("S", 0, T0 - 1, 10),
        query("nobody", 0, u64::MAX >> 1, 10),
        query("S", 0, u64::MAX >> 1, 0),
        ReadingsQuery {
            after: Some((end + 1, String::new(), 0)),
            ..query("S", 0, end, 10)
        },
    ] {
        assert_eq!(
            index.readings(q.clone()).await.expect("readings"),
            vec![],
            "{q:?}"
        );
    }

    // One series per logger on the shipment's grid, each equal to its own
    // readings bucketed alone, and together the shipment's buckets.
    let span = (
        s_rows.first().map(|r| r.time_s).unwrap_or(T0),
        s_rows.last().map(|r| r.time_s).unwrap_or(T0),
    );
    let bucket_query = BucketQuery {
        shipment_id: "S".into(),
        from_s: 0,
        to_s: u64::MAX >> 1,
        layout: BucketLayout::Points(37),
    };
    let series = index
        .device_reading_buckets(bucket_query.clone())
        .await
        .expect("series");
    let devices: Vec<&str> = series.iter().map(|s| s.device_id.as_str()).collect();
    assert_eq!(devices, ["A", "B", "C"]);
    for one in &series {
        let mut alone = chunk::Buckets::new(0, u64::MAX >> 1, Some(span), BucketLayout::Points(37));
        for r in s_rows.iter().filter(|r| r.device_id == one.device_id) {
            alone.add(r.time_s, r.temperature_cdeg);
        }
        assert_eq!(one.buckets, alone.finish(), "device {}", one.device_id);
    }
    let merged = index.reading_buckets(bucket_query).await.expect("buckets");
    for bucket in &merged {
        let count: u64 = series
            .iter()
            .flat_map(|s| &s.buckets)
            .filter(|b| b.from_s == bucket.from_s)
            .map(|b| b.count)
            .sum();
        assert_eq!(count, bucket.count, "bucket at {}", bucket.from_s);
    }
    let none = BucketQuery {
        shipment_id: "nobody".into(),
        from_s: 0,
        to_s: 10,
        layout: BucketLayout::Points(5),
    };
    assert!(index
        .device_reading_buckets(none)
        .await
        .expect("series")
        .is_empty());

    // Roll back: the readings of the removed blocks are gone, the rest unchanged.
    index.roll_back_to(5).await.expect("rolled back");
    let kept = rows_of(&blocks[..6]);
    check_paging(index, &kept, query("S", 0, u64::MAX >> 1, 17)).await;
    assert!(kept.len() < all.len());
    // And the same blocks apply again on top.
    for update in blocks[6..].iter().cloned() {
        index.apply_block(update).await.expect("re-applied");
    }
    check_paging(index, &all, query("S", T0 + 500, end, 50)).await;
    index.roll_back_to_nothing().await.expect("reset");
    assert_eq!(
        index
            .readings(query("S", 0, u64::MAX >> 1, 10))
            .await
            .expect("readings"),
        vec![]
    );
}

/// Several changes of one address and repeated lot links in one block (the
/// PostgreSQL store sends them as arrays): the last value wins, links once.
async fn repeated_keys_in_one_block(index: &dyn IndexStore) {
    use coldchain_processors::addressing::RecordKind;
    use coldchain_processors::messages::coldchain::{LotRef, Shipment};
    use protobuf::Message;
    let mut shipment = Shipment::new();
    shipment.set_shipment_id("SH".into());
    let mut lot = LotRef::new();
    lot.set_gtin("09501101530003".into());
    lot.set_lot("L1".into());
    shipment.set_lots(vec![lot.clone(), lot].into());
    let bytes = shipment.write_to_bytes().expect("encoded");
    let address = RecordKind::Shipment.address("SH");
    let change = |value: Option<Vec<u8>>, txn: &str| StateChange {
        address: address.clone(),
        value,
        txn_id: txn.into(),
    };
    let readings = vec![Reading {
        sequence: 1,
        time_s: T0,
        temperature_cdeg: 500,
        humidity_permille: None,
        door: 0,
    }];
    let batch = |txn: &str, position: u32, readings: Vec<Reading>| ReadingsBatch {
        shipment_id: "SH".into(),
        device_id: "D".into(),
        txn_id: txn.into(),
        position,
        payload_sha512: format!("{position:0128x}"),
        readings,
    };
    index
        .apply_block(block(
            0,
            vec![
                change(Some(vec![1]), "t1"),
                change(Some(bytes.clone()), "t2"),
            ],
            vec![
                batch("t1", 0, readings.clone()),
                batch("t2", 1, Vec::new()),
                batch("t3", 2, readings),
            ],
        ))
        .await
        .expect("applied");
    let record = index.record(&address).await.expect("record").expect("live");
    assert_eq!((record.data, record.txn_id.as_str()), (bytes, "t2"));
    assert_eq!(
        index
            .lot_shipments("09501101530003/L1")
            .await
            .expect("lots"),
        vec!["SH".to_string()]
    );
    assert_eq!(
        index.readings_batches("SH").await.expect("batches").len(),
        3
    );
    let rows = index
        .readings(query("SH", 0, u64::MAX >> 1, 10))
        .await
        .expect("readings");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].txn_id, "t3");
}

#[tokio::test]
async fn sqlite_readings_over_chunks_match_the_row_semantics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = sqlite::SqliteIndex::open(&dir.path().join("index.db"))
        .await
        .expect("opened");
    readings_over_chunks(&index).await;
}

#[tokio::test]
async fn sqlite_repeated_keys_in_one_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = sqlite::SqliteIndex::open(&dir.path().join("index.db"))
        .await
        .expect("opened");
    repeated_keys_in_one_block(&index).await;
}

#[tokio::test]
async fn sqlite_corrupt_chunk_is_an_error_and_old_schema_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.db");
    let index = sqlite::SqliteIndex::open(&path).await.expect("opened");
    index.apply_block(chain().remove(0)).await.expect("applied");
    let conn = rusqlite::Connection::open(&path).expect("opened");
    conn.execute(
        "UPDATE reading_chunks SET readings = substr(readings, 1, length(readings) - 1) WHERE shipment_id = 'S'",
        [],
    )
    .expect("corrupted");
    let error = index
        .readings(query("S", 0, u64::MAX >> 1, 10))
        .await
        .expect_err("corrupt");
    assert!(matches!(error, IndexError::Corrupt(_)), "{error}");
    assert!(error.to_string().contains("rebuilt"), "{error}");
    drop(index);

    let old = dir.path().join("old.db");
    let conn = rusqlite::Connection::open(&old).expect("opened");
    conn.execute_batch(
        "CREATE TABLE blocks (block_num INTEGER PRIMARY KEY, block_id TEXT NOT NULL UNIQUE,
           previous_block_id TEXT NOT NULL, state_root TEXT NOT NULL);
         CREATE TABLE readings (shipment_id TEXT NOT NULL);
         INSERT INTO blocks VALUES (0, 'b0', '0000000000000000', 'r0');
         INSERT INTO readings VALUES ('S');
         CREATE TABLE api_tokens (
           token_sha256 TEXT PRIMARY KEY, public_key TEXT NOT NULL, label TEXT NOT NULL, created_at_s INTEGER NOT NULL);
         CREATE TABLE audit_log (
           id INTEGER PRIMARY KEY AUTOINCREMENT, at_s INTEGER NOT NULL, public_key TEXT NOT NULL,
           org_id TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, subject TEXT NOT NULL);
         INSERT INTO api_tokens VALUES ('t-sha', 'key-1', 'laptop', 5);
         INSERT INTO audit_log (at_s, public_key, org_id, method, path, subject)
           VALUES (7, 'key-1', 'org-1', 'GET', '/api/v1/lots/x/y', 'lot x/y');",
    )
    .expect("old layout");
    drop(conn);
    // An old layout is no longer refused: its chain tables are rebuilt, and
    // the notice says so (it was the refusal's message before).
    let rebuilt = sqlite::SqliteIndex::open(&old)
        .await
        .expect("old index opens");
    let error = rebuilt.rebuild_notice().expect("rebuild notice");
    assert!(error.contains("older coldchain-api"), "{error}");
    assert!(
        error.contains("rebuilt") && error.contains("genesis"),
        "{error}"
    );
    assert!(
        error.contains("tokens and the audit log were kept"),
        "{error}"
    );
    assert_tokens_and_audit_kept(&rebuilt).await;
    assert!(
        rebuilt.head().await.expect("head").is_none(),
        "chain tables emptied"
    );
    let conn = rusqlite::Connection::open(&old).expect("opened");
    let readings: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'readings'",
            [],
            |row| row.get(0),
        )
        .expect("schema");
    assert_eq!(readings, 0, "the old readings table is dropped");
    drop(conn);
    drop(rebuilt);
    let again = sqlite::SqliteIndex::open(&old).await.expect("reopened");
    assert!(
        again.rebuild_notice().is_none(),
        "rebuilt once, not at every start"
    );
    drop(again);

    // A current index reopens fine.
    let current = sqlite::SqliteIndex::open(&path).await.expect("reopened");
    assert!(current.rebuild_notice().is_none());
    assert!(current.head().await.expect("head").is_some());
}

/// The rows [`seed_tokens_and_audit`] (or an old index) holds.
async fn assert_tokens_and_audit_kept(index: &dyn IndexStore) {
    assert_eq!(
        index.token_owner("t-sha").await.expect("token").as_deref(),
        Some("key-1"),
        "API token kept"
    );
    let audit = index.audit_entries("key-1", 10).await.expect("audit");
    assert_eq!(audit.len(), 1, "audit log kept: {audit:?}");
    assert_eq!(
        (audit[0].at_s, audit[0].subject.as_str(), audit[0].status),
        (7, "lot x/y", 200)
    );
}

async fn seed_tokens_and_audit(index: &dyn IndexStore) {
    index
        .store_token("t-sha", "key-1", "laptop", 5)
        .await
        .expect("token");
    index
        .audit(AuditEntry {
            at_s: 7,
            public_key: "key-1".into(),
            org_id: "org-1".into(),
            method: "GET".into(),
            path: "/api/v1/lots/x/y".into(),
            subject: "lot x/y".into(),
            status: 200,
        })
        .await
        .expect("audit");
}

/// A reset (UNKNOWN_BLOCK, `--rebuild-index`) and roll-backs empty the chain
/// tables and nothing else; refused reads are audited with their status.
async fn reset_keeps_tokens_and_audit(index: &dyn IndexStore) {
    for update in chain().into_iter().take(3) {
        index.apply_block(update).await.expect("applied");
    }
    seed_tokens_and_audit(index).await;
    index.roll_back_to(0).await.expect("rolled back");
    assert_tokens_and_audit_kept(index).await;
    index.roll_back_to_nothing().await.expect("reset");
    assert!(index.head().await.expect("head").is_none());
    assert!(index
        .readings(query("S", 0, u64::MAX >> 1, 10))
        .await
        .expect("readings")
        .is_empty());
    assert!(index
        .readings_batches("S")
        .await
        .expect("batches")
        .is_empty());
    assert_tokens_and_audit_kept(index).await;
    index
        .audit(AuditEntry {
            at_s: 8,
            public_key: "key-1".into(),
            org_id: "org-1".into(),
            method: "GET".into(),
            path: "/api/v1/lots/x/z".into(),
            subject: "refused: lot x/z".into(),
            status: 403,
        })
        .await
        .expect("audit");
    let audit = index.audit_entries("", 10).await.expect("audit");
    assert_eq!(audit[0].status, 403);
    // The chain is indexed again from genesis.
    index
        .apply_block(chain().remove(0))
        .await
        .expect("re-indexed");
}

#[tokio::test]
async fn sqlite_reset_keeps_tokens_and_audit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = sqlite::SqliteIndex::open(&dir.path().join("index.db"))
        .await
        .expect("opened");
    reset_keeps_tokens_and_audit(&index).await;
}

#[tokio::test]
async fn sqlite_version_2_is_upgraded_in_place_and_newer_versions_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.db");
    let index = sqlite::SqliteIndex::open(&path).await.expect("opened");
    index.apply_block(chain().remove(0)).await.expect("applied");
    seed_tokens_and_audit(&index).await;
    drop(index);
    let conn = rusqlite::Connection::open(&path).expect("opened");
    conn.execute_batch("ALTER TABLE audit_log DROP COLUMN status; PRAGMA user_version = 2;")
        .expect("version 2 layout");
    drop(conn);
    // Version 2 chain tables are current: kept, only audit_log gains `status`.
    let index = sqlite::SqliteIndex::open(&path).await.expect("upgraded");
    assert!(index.rebuild_notice().is_none());
    assert_eq!(
        index.head().await.expect("head").map(|h| h.block_num),
        Some(0)
    );
    assert_tokens_and_audit_kept(&index).await;
    drop(index);

    let conn = rusqlite::Connection::open(&path).expect("opened");
    conn.pragma_update(None, "user_version", 99).expect("newer");
    drop(conn);
    let error = match sqlite::SqliteIndex::open(&path).await {
        Ok(_) => panic!("an index of a newer version must be refused"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("newer coldchain-api"), "{error}");
    let conn = rusqlite::Connection::open(&path).expect("opened");
    let blocks: i64 = conn
        .query_row("SELECT count(*) FROM blocks", [], |row| row.get(0))
        .expect("untouched");
    assert_eq!(blocks, 1, "a refused index is left as it was");
}

/// The test database (env `COLDCHAIN_TEST_POSTGRES`, as the integration tests use).
fn postgres_base() -> String {
    std::env::var("COLDCHAIN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn postgres_schema(test: &str) -> String {
    format!("api_unit_{test}_{}", std::process::id())
}

async fn postgres_admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres_base(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL (COLDCHAIN_TEST_POSTGRES)");
    tokio::spawn(connection);
    client
}

async fn drop_schema(test: &str) {
    postgres_admin()
        .await
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            postgres_schema(test)
        ))
        .await
        .expect("schema dropped");
}

async fn postgres_index(test: &str) -> postgres::PostgresIndex {
    drop_schema(test).await;
    let base = postgres_base();
    let sep = if base.contains('?') { '&' } else { '?' };
    postgres::PostgresIndex::connect(&format!("{base}{sep}schema={}", postgres_schema(test)))
        .await
        .expect("connected")
}

#[tokio::test]
async fn postgres_readings_over_chunks_match_the_row_semantics() {
    let index = postgres_index("chunks").await;
    readings_over_chunks(&index).await;
    drop(index);
    drop_schema("chunks").await;
}

#[tokio::test]
async fn postgres_repeated_keys_in_one_block() {
    let index = postgres_index("repeats").await;
    repeated_keys_in_one_block(&index).await;
    drop(index);
    drop_schema("repeats").await;
}

#[tokio::test]
async fn postgres_large_pages_refetch_and_corrupt_chunks_are_errors() {
    // Chunks of one reading: a 2 000-reading page needs more chunks than the first fetch.
    let index = postgres_index("pages").await;
    let mut batches = Vec::new();
    for i in 0..400u32 {
        batches.push(ReadingsBatch {
            shipment_id: "P".into(),
            device_id: "D".into(),
            txn_id: format!("t{i}"),
            position: i,
            payload_sha512: format!("{i:0128x}"),
            readings: vec![Reading {
                sequence: u64::from(i) + 1,
                time_s: T0 + u64::from(i),
                temperature_cdeg: 500,
                humidity_permille: Some(i),
                door: 0,
            }],
        });
    }
    let update = block(0, Vec::new(), batches);
    let all = rows_of(std::slice::from_ref(&update));
    index.apply_block(update).await.expect("applied");
    let q = query("P", 0, u64::MAX >> 1, 300);
    assert_eq!(
        index.readings(q.clone()).await.expect("readings"),
        expected(&all, &q)
    );
    check_paging(&index, &all, query("P", T0 + 10, T0 + 390, 150)).await;

    let admin = postgres_admin().await;
    admin
        .batch_execute(&format!(
            "UPDATE {}.reading_chunks SET readings = '\\x0105'::bytea WHERE txn_id = 't3'",
            postgres_schema("pages")
        ))
        .await
        .expect("corrupted");
    let error = index.readings(q).await.expect_err("corrupt");
    assert!(matches!(error, IndexError::Corrupt(_)), "{error}");
    drop(index);
    drop_schema("pages").await;
}

#[tokio::test]
async fn postgres_old_schema_is_rebuilt_keeping_tokens_and_audit() {
    drop_schema("old").await;
    let schema = postgres_schema("old");
    postgres_admin()
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.blocks (block_num BIGINT PRIMARY KEY);
             INSERT INTO {schema}.blocks VALUES (0);
             CREATE TABLE {schema}.readings (shipment_id TEXT NOT NULL);
             CREATE TABLE {schema}.api_tokens (
               token_sha256 TEXT PRIMARY KEY, public_key TEXT NOT NULL, label TEXT NOT NULL, created_at_s BIGINT NOT NULL);
             CREATE TABLE {schema}.audit_log (
               id BIGSERIAL PRIMARY KEY, at_s BIGINT NOT NULL, public_key TEXT NOT NULL,
               org_id TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, subject TEXT NOT NULL);
             INSERT INTO {schema}.api_tokens VALUES ('t-sha', 'key-1', 'laptop', 5);
             INSERT INTO {schema}.audit_log (at_s, public_key, org_id, method, path, subject)
               VALUES (7, 'key-1', 'org-1', 'GET', '/api/v1/lots/x/y', 'lot x/y');"
        ))
        .await
        .expect("old layout");
    let base = postgres_base();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema={schema}");
    // An old layout is no longer refused: its chain tables are rebuilt, and
    // the notice says so (it was the refusal's message before).
    let index = postgres::PostgresIndex::connect(&url)
        .await
        .expect("old index opens");
    let error = index.rebuild_notice().expect("rebuild notice");
    assert!(error.contains("older coldchain-api"), "{error}");
    assert!(
        error.contains("rebuilt") && error.contains("genesis"),
        "{error}"
    );
    assert_tokens_and_audit_kept(&index).await;
    assert!(index.head().await.expect("head").is_none());
    index
        .apply_block(chain().remove(0))
        .await
        .expect("re-indexed into the new layout");
    drop(index);
    let admin = postgres_admin().await;
    let readings = admin
        .query_one(
            &format!("SELECT to_regclass('{schema}.readings') IS NULL"),
            &[],
        )
        .await
        .expect("catalog");
    assert!(
        readings.get::<_, bool>(0),
        "the old readings table is dropped"
    );

    // Reopened: current, nothing dropped again.
    let index = postgres::PostgresIndex::connect(&url)
        .await
        .expect("reopened");
    assert!(index.rebuild_notice().is_none());
    assert!(index.head().await.expect("head").is_some());
    drop(index);

    // A newer version is refused and left alone.
    admin
        .batch_execute(&format!("UPDATE {schema}.index_schema SET version = 99"))
        .await
        .expect("newer");
    let error = match postgres::PostgresIndex::connect(&url).await {
        Ok(_) => panic!("an index of a newer version must be refused"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("newer coldchain-api"), "{error}");
    let blocks = admin
        .query_one(&format!("SELECT count(*) FROM {schema}.blocks"), &[])
        .await
        .expect("untouched");
    assert_eq!(blocks.get::<_, i64>(0), 1);
    drop_schema("old").await;
}

#[tokio::test]
async fn postgres_reset_keeps_tokens_and_audit() {
    let index = postgres_index("reset").await;
    reset_keeps_tokens_and_audit(&index).await;
    drop(index);
    drop_schema("reset").await;
}

#[tokio::test]
async fn postgres_version_2_is_upgraded_in_place() {
    let index = postgres_index("v2").await;
    index.apply_block(chain().remove(0)).await.expect("applied");
    seed_tokens_and_audit(&index).await;
    drop(index);
    let schema = postgres_schema("v2");
    postgres_admin()
        .await
        .batch_execute(&format!(
            "ALTER TABLE {schema}.audit_log DROP COLUMN status; UPDATE {schema}.index_schema SET version = 2"
        ))
        .await
        .expect("version 2 layout");
    let base = postgres_base();
    let sep = if base.contains('?') { '&' } else { '?' };
    let index = postgres::PostgresIndex::connect(&format!("{base}{sep}schema={schema}"))
        .await
        .expect("upgraded");
    assert!(index.rebuild_notice().is_none());
    assert_eq!(
        index.head().await.expect("head").map(|h| h.block_num),
        Some(0)
    );
    assert_tokens_and_audit_kept(&index).await;
    drop(index);
    drop_schema("v2").await;
}
