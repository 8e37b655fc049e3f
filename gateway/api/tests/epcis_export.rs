//! EPCIS export and CSV readings of a shipment watched by two loggers: one
//! sensor element per logger and window, each from that logger's own
//! readings, with URI-safe `deviceID` and `bizRules` (the profile's name
//! holds spaces); the CSV leaves `door` empty when the logger did not say.
mod support;

use support::http::{signed_get, token_for};
use support::scenario::{self, GTIN, T0};
use support::{drop_postgres_schema, postgres_url, Ledger};

async fn two_loggers_two_series(index_url: &str) {
    let mut ledger = Ledger::new();
    let parties = scenario::register(&mut ledger);
    scenario::ship_with_loggers(
        &mut ledger,
        &parties,
        "SH-TWO",
        "L-OK",
        &["D1", "D2"],
        T0 + 100,
    );
    // Same hour: D1 stays at 5 °C, D2 (near the door) reaches 12 °C.
    let start_s = T0 + 3_600;
    scenario::record(
        &mut ledger,
        &parties,
        "D1",
        "SH-TWO",
        1,
        start_s,
        &[500, 510, 490],
    );
    scenario::record(
        &mut ledger,
        &parties,
        "D2",
        "SH-TWO",
        1,
        start_s,
        &[600, 1_200, 700],
    );
    let api = support::serve_ledger(index_url, &ledger).await;
    let base = api.url();

    let (status, epcis) = signed_get(
        &base,
        &format!("/api/v1/lots/{GTIN}/L-OK/epcis"),
        &parties.maker,
    )
    .await;
    assert_eq!(status, 200, "{epcis}");
    let sensor = epcis["epcisBody"]["eventList"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "ObjectEvent")
        .expect("sensor event")
        .clone();
    let elements = sensor["sensorElementList"].as_array().expect("elements");
    let devices: Vec<&str> = elements
        .iter()
        .filter_map(|e| e["sensorMetadata"]["deviceID"].as_str())
        .collect();
    assert_eq!(
        devices,
        ["urn:coldchain:device:D1", "urn:coldchain:device:D2"],
        "one element per logger: {sensor}"
    );
    let (d1, d2) = (&elements[0], &elements[1]);
    assert_eq!(
        d1["sensorMetadata"]["startTime"],
        d2["sensorMetadata"]["startTime"]
    );
    assert_eq!(d1["sensorReport"][0]["maxValue"], 5.1, "{d1}");
    assert_eq!(d1["sensorReport"][0]["minValue"], 4.9, "{d1}");
    assert_eq!(
        d1["sensorReport"].as_array().map(Vec::len),
        Some(1),
        "D1 stayed in range: {d1}"
    );
    assert_eq!(d2["sensorReport"][0]["maxValue"], 12.0, "{d2}");
    assert_eq!(d2["sensorReport"][0]["minValue"], 6.0, "{d2}");
    assert_eq!(
        d2["sensorReport"][1]["exception"], "ALARM_CONDITION",
        "{d2}"
    );
    for element in elements {
        let rules = element["sensorMetadata"]["bizRules"]
            .as_str()
            .expect("bizRules");
        assert_eq!(rules, "urn:coldchain:profile:refrigerated%202-8%20C");
        assert!(!rules.contains(' '), "bizRules is a URI: {rules}");
    }

    // The scenario's loggers report no door state: the CSV says nothing, not 0 (closed-looking).
    let csv = reqwest::Client::new()
        .get(format!(
            "{base}/api/v1/shipments/SH-TWO/readings?format=csv"
        ))
        .bearer_auth(token_for(&base, &parties.carrier).await)
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("CSV body");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let door = header
        .iter()
        .position(|h| *h == "door")
        .expect("door column");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 6, "{csv}");
    assert!(rows.iter().all(|r| r[door].is_empty()), "{csv}");
    api.stop().await;
}

#[tokio::test]
async fn sqlite_epcis_has_one_sensor_series_per_logger() {
    let dir = tempfile::tempdir().expect("tempdir");
    two_loggers_two_series(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_epcis_has_one_sensor_series_per_logger() {
    drop_postgres_schema("epcis_two_loggers").await;
    two_loggers_two_series(&postgres_url("epcis_two_loggers")).await;
    drop_postgres_schema("epcis_two_loggers").await;
}
