//! Store tests shared by SQLite and PostgreSQL: readings queries over chunks
//! (windows, cursors and limits that cross chunk boundaries) against a brute
//! force over the same readings, roll-back, corrupt blobs and old schemas.
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
async fn sqlite_corrupt_chunk_is_an_error_and_old_schema_is_refused() {
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
         CREATE TABLE readings (shipment_id TEXT NOT NULL);",
    )
    .expect("old layout");
    drop(conn);
    let error = match sqlite::SqliteIndex::open(&old).await {
        Ok(_) => panic!("an old index must be refused"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("older coldchain-api"), "{error}");
    assert!(
        error.contains("rebuilt") && error.contains("delete"),
        "{error}"
    );
    // A current index reopens fine.
    sqlite::SqliteIndex::open(&path).await.expect("reopened");
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
async fn postgres_old_schema_is_refused() {
    drop_schema("old").await;
    let schema = postgres_schema("old");
    postgres_admin()
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.blocks (block_num BIGINT PRIMARY KEY)"
        ))
        .await
        .expect("old layout");
    let base = postgres_base();
    let sep = if base.contains('?') { '&' } else { '?' };
    let error = match postgres::PostgresIndex::connect(&format!("{base}{sep}schema={schema}")).await
    {
        Ok(_) => panic!("an old index must be refused"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("older coldchain-api"), "{error}");
    assert!(error.contains("DROP SCHEMA"), "{error}");
    drop_schema("old").await;
}
