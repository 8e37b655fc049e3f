//! Charts and EPCIS windows of a long shipment cover all of it: a shipment with
//! more readings than one readings page could ever hold (250 000, beyond the
//! former 200 000-row cap of chart mode) is summarised to its last reading.
mod support;

use coldchain_api::chain::ingest;
use coldchain_api::index::{BlockRef, BlockUpdate, Reading, ReadingsBatch};
use support::http::signed_get;
use support::scenario::{self, GTIN, T0};
use support::{drop_postgres_schema, postgres_url, Ledger};

const CHUNKS: u64 = 2_500;
const PER_CHUNK: u64 = 100;
const STEP_S: u64 = 10;
const START: u64 = T0 + 1_000;

/// A block of `CHUNKS` readings transactions for SH-COLD: 5.00 °C throughout,
/// except one 15.00 °C reading at the very end.
fn long_readings(head: &BlockRef) -> BlockUpdate {
    let total = CHUNKS * PER_CHUNK;
    let readings = (0..CHUNKS)
        .map(|c| ReadingsBatch {
            shipment_id: "SH-COLD".into(),
            device_id: "D1".into(),
            txn_id: format!("{c:0128x}"),
            position: u32::try_from(c).expect("small"),
            payload_sha512: "00".repeat(64),
            readings: (0..PER_CHUNK)
                .map(|i| {
                    let n = c * PER_CHUNK + i;
                    Reading {
                        sequence: n + 1,
                        time_s: START + n * STEP_S,
                        temperature_cdeg: if n == total - 1 { 1_500 } else { 500 },
                        humidity_permille: None,
                        door: 0,
                    }
                })
                .collect(),
        })
        .collect();
    BlockUpdate {
        block: BlockRef {
            block_id: "ab".repeat(64),
            block_num: head.block_num + 1,
            previous_block_id: head.block_id.clone(),
            state_root: "long".into(),
        },
        changes: vec![],
        readings,
    }
}

async fn chart_covers_the_whole_shipment(index_url: &str) {
    let mut ledger = Ledger::new();
    let parties = scenario::register(&mut ledger);
    scenario::ship_to_carrier(&mut ledger, &parties, "SH-COLD", "L-OK", "D1", T0 + 100);
    let api = support::start_offline_api(index_url).await;
    let index = api.index();
    for update in &ledger.blocks {
        ingest(index.as_ref(), &ledger.lookup(), update.clone())
            .await
            .expect("ingested");
    }
    index
        .apply_block(long_readings(ledger.head()))
        .await
        .expect("long shipment indexed");
    let total = CHUNKS * PER_CHUNK;
    let last_time = START + (total - 1) * STEP_S;
    let base = api.url();

    // What the web page asks for: 300 points, no window.
    let (status, chart) = signed_get(
        &base,
        "/api/v1/shipments/SH-COLD/readings?points=300",
        &parties.carrier,
    )
    .await;
    assert_eq!(status, 200, "{chart}");
    let buckets = chart["buckets"].as_array().expect("buckets");
    assert!(
        buckets.len() <= 300 && buckets.len() >= 299,
        "{}",
        buckets.len()
    );
    let counted: u64 = buckets.iter().filter_map(|b| b["count"].as_u64()).sum();
    assert_eq!(counted, total);
    let last = buckets.last().expect("a bucket");
    assert_eq!(last["last_reading_s"], last_time);
    assert_eq!(last["max_cdeg"], 1_500);
    assert_eq!(buckets[0]["from_s"], START);
    assert_eq!(buckets[0]["min_cdeg"], 500);

    // A window in the second half is summarised from its own readings.
    let from = START + total / 2 * STEP_S;
    let (_, window) = signed_get(
        &base,
        &format!("/api/v1/shipments/SH-COLD/readings?points=10&from={from}"),
        &parties.carrier,
    )
    .await;
    let counted: u64 = window["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .filter_map(|b| b["count"].as_u64())
        .sum();
    assert_eq!(counted, total / 2);

    // EPCIS: hourly windows up to the last reading, the hot one raising an alarm.
    let (status, epcis) = signed_get(
        &base,
        &format!("/api/v1/lots/{GTIN}/L-OK/epcis"),
        &parties.maker,
    )
    .await;
    assert_eq!(status, 200);
    let sensor = epcis["epcisBody"]["eventList"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "ObjectEvent")
        .expect("sensor event")
        .clone();
    let elements = sensor["sensorElementList"].as_array().expect("elements");
    assert_eq!(elements.len() as u64, (last_time - START) / 3_600 + 1);
    let final_window = elements.last().expect("window");
    assert_eq!(
        final_window["sensorReport"][1]["exception"], "ALARM_CONDITION",
        "{final_window}"
    );
    assert_eq!(
        sensor["eventTime"],
        coldchain_api::epcis::iso_time(last_time)
    );
    api.stop().await;
}

#[tokio::test]
async fn sqlite_chart_of_a_long_shipment_covers_all_its_readings() {
    let dir = tempfile::tempdir().expect("tempdir");
    chart_covers_the_whole_shipment(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_chart_of_a_long_shipment_covers_all_its_readings() {
    drop_postgres_schema("long_chart").await;
    chart_covers_the_whole_shipment(&postgres_url("long_chart")).await;
    drop_postgres_schema("long_chart").await;
}
