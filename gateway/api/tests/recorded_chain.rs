//! The API over recorded blocks (real family handlers, in-memory state), with
//! both index implementations: verdicts for each status, provenance after
//! transfers, readings with the hash chain, access control, fork roll-back
//! and catch-up after downtime.
mod support;

use std::sync::Arc;

use coldchain_api::chain::{ingest, Ingested};
use coldchain_api::index::IndexStore;
use support::http::{get, signed_get, token_for};
use support::scenario::{self, GTIN};
use support::{drop_postgres_schema, postgres_url, Ledger};

async fn feed(index: &Arc<dyn IndexStore>, ledger: &Ledger, from: usize) {
    let lookup = ledger.lookup();
    for update in &ledger.blocks[from..] {
        let outcome = ingest(index.as_ref(), &lookup, update.clone())
            .await
            .expect("block ingested");
        assert_eq!(outcome, Ingested::Applied);
    }
}

async fn verdict(base: &str, path: &str) -> String {
    let (status, body) = get(base, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body["verdict"].as_str().expect("verdict").to_string()
}

async fn story(index_url: &str) {
    let mut ledger = Ledger::new();
    // The API is down while the first blocks commit; it catches up from the index head.
    let parties = scenario::register(&mut ledger);
    let api = support::start_offline_api(index_url).await;
    let index = api.index();
    feed(&index, &ledger, 0).await;
    let before = ledger.blocks.len();
    scenario::ship_to_carrier(
        &mut ledger,
        &parties,
        "SH-COLD",
        "L-OK",
        "D1",
        scenario::T0 + 100,
    );
    scenario::ship_to_carrier(
        &mut ledger,
        &parties,
        "SH-HOT",
        "L-HOT",
        "D2",
        scenario::T0 + 100,
    );
    scenario::record(
        &mut ledger,
        &parties,
        "D1",
        "SH-COLD",
        1,
        scenario::T0 + 200,
        &[500, 520, 480, 510, 530, 490, 505],
    );
    scenario::record(
        &mut ledger,
        &parties,
        "D2",
        "SH-HOT",
        1,
        scenario::T0 + 200,
        &[500, 1200, 1200, 1200, 1200, 1200, 1200, 1200, 500],
    );
    scenario::record(
        &mut ledger,
        &parties,
        "D1",
        "SH-COLD",
        8,
        scenario::T0 + 200 + 7 * 600,
        &[500, 510, 495],
    );
    scenario::deliver(
        &mut ledger,
        &parties,
        "SH-COLD",
        scenario::T0 + 10_000,
        false,
    );
    scenario::dispense(&mut ledger, &parties, "L-OK-S2", scenario::T0 + 11_000);
    scenario::change_status(
        &mut ledger,
        &parties.maker,
        "L-RECALL",
        coldchain_processors::messages::coldchain::LotStatus::RECALLED,
        "contamination found",
        scenario::T0 + 12_000,
    );
    scenario::change_status(
        &mut ledger,
        &parties.regulator,
        "L-QUAR",
        coldchain_processors::messages::coldchain::LotStatus::QUARANTINED,
        "inspection pending",
        scenario::T0 + 12_000,
    );
    feed(&index, &ledger, before).await;
    let base = api.url();

    // Verdicts, by query and by Digital Link.
    assert_eq!(
        verdict(&base, &format!("/api/v1/verify?gtin={GTIN}&serial=L-OK-S1")).await,
        "authentic_in_spec"
    );
    assert_eq!(
        verdict(&base, &format!("/01/{GTIN}/10/L-OK/21/L-OK-S1?17=301231")).await,
        "authentic_in_spec"
    );
    assert_eq!(
        verdict(&base, &format!("/01/{GTIN}/10/L-OK/21/L-OK-S2")).await,
        "already_dispensed"
    );
    assert_eq!(
        verdict(&base, &format!("/01/{GTIN}/10/L-HOT")).await,
        "compromised"
    );
    assert_eq!(
        verdict(&base, &format!("/01/{GTIN}/10/L-RECALL")).await,
        "recalled"
    );
    assert_eq!(
        verdict(&base, &format!("/01/{GTIN}/10/L-QUAR")).await,
        "quarantined"
    );
    assert_eq!(
        verdict(&base, &format!("/01/{GTIN}/10/L-EXP")).await,
        "expired"
    );
    assert_eq!(
        verdict(&base, &format!("/01/{GTIN}/10/L-NOPE")).await,
        "unknown"
    );
    assert_eq!(
        verdict(&base, &format!("/01/{GTIN}/10/L-OK/21/L-OK-S1?17=291231")).await,
        "unknown"
    );
    let (_, body) = get(&base, &format!("/api/v1/verify?gtin={GTIN}&lot=L-RECALL")).await;
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap_or_default()
            .contains("contamination"),
        "{body}"
    );
    assert_eq!(
        body["as_of_block"]["block_id"],
        ledger.head().block_id.as_str()
    );
    assert!(
        body["evidence"][0]["transaction_id"]
            .as_str()
            .is_some_and(|t| t.len() == 128),
        "{body}"
    );

    // Provenance after transfers, for the receiving pharmacy (with a token).
    let token = token_for(&base, &parties.pharmacy).await;
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/lots/{GTIN}/L-OK"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 200);
    let provenance: serde_json::Value = response.json().await.expect("json");
    let custody = provenance["custody"].as_array().expect("custody");
    let hands: Vec<(&str, &str)> = custody
        .iter()
        .map(|h| {
            (
                h["from_org_id"].as_str().unwrap_or(""),
                h["to_org_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(hands, vec![("maker", "carrier"), ("carrier", "pharmacy")]);
    assert_eq!(custody[1]["thermal_status"], "in_spec");
    assert_eq!(provenance["product"]["custodian_org_id"], "pharmacy");
    assert_eq!(provenance["thermal"]["reading_count"], 10);
    assert_eq!(provenance["thermal"]["max_cdeg"], 530);

    // Readings with a verified hash chain, paged.
    let (status, readings) = signed_get(
        &base,
        "/api/v1/shipments/SH-COLD/readings?limit=4",
        &parties.carrier,
    )
    .await;
    assert_eq!(status, 200, "{readings}");
    assert_eq!(readings["chain"]["intact"], true, "{readings}");
    assert_eq!(readings["chain"]["batches"], 2);
    assert_eq!(readings["readings"].as_array().map(Vec::len), Some(4));
    let cursor = readings["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    let (_, page2) = signed_get(
        &base,
        &format!("/api/v1/shipments/SH-COLD/readings?limit=100&after={cursor}"),
        &parties.carrier,
    )
    .await;
    assert_eq!(page2["readings"].as_array().map(Vec::len), Some(6));

    // Chart buckets keep the extremes; CSV export; EPCIS export of the lot.
    let (_, chart) = signed_get(
        &base,
        "/api/v1/shipments/SH-HOT/readings?points=4",
        &parties.carrier,
    )
    .await;
    let peak = chart["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .filter_map(|b| b["max_cdeg"].as_i64())
        .max();
    assert_eq!(peak, Some(1200), "{chart}");
    let csv = reqwest::Client::new()
        .get(format!(
            "{base}/api/v1/shipments/SH-COLD/readings?format=csv"
        ))
        .bearer_auth(token_for(&base, &parties.carrier).await)
        .send()
        .await
        .expect("answer");
    let header = |name: &str| {
        csv.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        header("x-coldchain-as-of-block").as_deref(),
        Some(ledger.head().block_id.as_str())
    );
    assert_eq!(
        header("x-coldchain-as-of-block-num"),
        Some(ledger.head().block_num.to_string())
    );
    let csv = csv.text().await.expect("text");
    assert_eq!(csv.lines().count(), 11, "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .is_some_and(|l| l.contains(",D1,1,5.00,")),
        "{csv}"
    );
    let (status, epcis) = signed_get(
        &base,
        &format!("/api/v1/lots/{GTIN}/L-HOT/epcis"),
        &parties.carrier,
    )
    .await;
    assert_eq!(status, 200, "{epcis}");
    assert_eq!(
        epcis["as_of_block"]["block_id"],
        ledger.head().block_id.as_str(),
        "{epcis}"
    );
    let events = epcis["epcisBody"]["eventList"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["type"] == "TransactionEvent"),
        "{epcis}"
    );
    let sensor = events
        .iter()
        .find(|e| e["type"] == "ObjectEvent")
        .expect("sensor event");
    assert_eq!(sensor["bizStep"], "sensor_reporting");
    let alarms = sensor["sensorElementList"]
        .as_array()
        .expect("elements")
        .iter()
        .filter(|e| {
            e["sensorReport"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["exception"] == "ALARM_CONDITION"))
        })
        .count();
    assert!(alarms >= 1, "{epcis}");
    let (status, board) = signed_get(
        &base,
        "/api/v1/blood/units?component=red_cells&abo=O&rh=-",
        &parties.pharmacy,
    )
    .await;
    assert_eq!(status, 200, "{board}");
    assert_eq!(board["units"], serde_json::json!([]));

    // Access: strangers and anonymous callers are refused; the read was audited.
    let (status, _) = signed_get(
        &base,
        &format!("/api/v1/lots/{GTIN}/L-OK"),
        &parties.stranger,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = get(&base, &format!("/api/v1/lots/{GTIN}/L-OK")).await;
    assert_eq!(status, 401);
    let (status, _) = signed_get(
        &base,
        "/api/v1/shipments/SH-COLD/readings",
        &parties.stranger,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = signed_get(
        &base,
        &format!("/api/v1/lots/{GTIN}/L-OK"),
        &parties.regulator,
    )
    .await;
    assert_eq!(status, 200);
    let audit = index
        .audit_entries(parties.pharmacy.public_key(), 10)
        .await
        .expect("audit");
    assert!(audit
        .iter()
        .any(|e| e.subject == format!("lot {GTIN}/L-OK")));

    api.stop().await;
}

#[tokio::test]
async fn sqlite_index_serves_verdicts_provenance_and_refuses_strangers() {
    let dir = tempfile::tempdir().expect("tempdir");
    story(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_index_serves_verdicts_provenance_and_refuses_strangers() {
    drop_postgres_schema("story").await;
    story(&postgres_url("story")).await;
    drop_postgres_schema("story").await;
}

async fn fork(index_url: &str) {
    let mut ledger = Ledger::new();
    let parties = scenario::register(&mut ledger);
    scenario::ship_to_carrier(
        &mut ledger,
        &parties,
        "SH-COLD",
        "L-OK",
        "D1",
        scenario::T0 + 100,
    );
    let fork_point = ledger.head().block_num;
    scenario::change_status(
        &mut ledger,
        &parties.maker,
        "L-OK",
        coldchain_processors::messages::coldchain::LotStatus::RECALLED,
        "recall on the losing fork",
        scenario::T0 + 500,
    );
    scenario::record(
        &mut ledger,
        &parties,
        "D1",
        "SH-COLD",
        1,
        scenario::T0 + 200,
        &[500, 510],
    );
    let api = support::start_offline_api(index_url).await;
    let index = api.index();
    feed(&index, &ledger, 0).await;
    let base = api.url();
    assert_eq!(
        verdict(&base, &format!("/01/{GTIN}/10/L-OK")).await,
        "recalled"
    );

    // The network switches to a fork that left the lot alone and recorded other readings.
    ledger.fork_at(fork_point);
    scenario::record(
        &mut ledger,
        &parties,
        "D1",
        "SH-COLD",
        1,
        scenario::T0 + 300,
        &[600],
    );
    let winning = ledger.blocks.last().expect("block").clone();
    let outcome = ingest(index.as_ref(), &ledger.lookup(), winning.clone())
        .await
        .expect("fork ingested");
    assert_eq!(outcome, Ingested::RolledBackAndApplied { to: fork_point });
    assert_eq!(
        index.head().await.expect("head").expect("some"),
        winning.block
    );
    assert_eq!(
        verdict(&base, &format!("/01/{GTIN}/10/L-OK")).await,
        "authentic_in_spec"
    );
    let (_, readings) =
        signed_get(&base, "/api/v1/shipments/SH-COLD/readings", &parties.maker).await;
    let temps: Vec<i64> = readings["readings"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["temperature_cdeg"].as_i64())
        .collect();
    assert_eq!(temps, vec![600]);
    assert_eq!(readings["chain"]["intact"], true, "{readings}");

    // A block two ahead of the index cannot be applied: it asks for catch-up.
    scenario::record(
        &mut ledger,
        &parties,
        "D1",
        "SH-COLD",
        2,
        scenario::T0 + 900,
        &[610],
    );
    scenario::record(
        &mut ledger,
        &parties,
        "D1",
        "SH-COLD",
        3,
        scenario::T0 + 1500,
        &[620],
    );
    let ahead = ledger.blocks.last().expect("block").clone();
    let outcome = ingest(index.as_ref(), &ledger.lookup(), ahead)
        .await
        .expect("gap detected");
    assert_eq!(
        outcome,
        Ingested::NeedsCatchUp {
            to: winning.block.block_num
        }
    );
    api.stop().await;
}

#[tokio::test]
async fn sqlite_index_rolls_back_a_fork_to_the_common_ancestor() {
    let dir = tempfile::tempdir().expect("tempdir");
    fork(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_index_rolls_back_a_fork_to_the_common_ancestor() {
    drop_postgres_schema("fork").await;
    fork(&postgres_url("fork")).await;
    drop_postgres_schema("fork").await;
}
