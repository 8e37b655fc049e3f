//! Issue 13 through the API: two loggers on one shipment. D2 (near the door)
//! reads 12 °C for 40 minutes while D1 stays at 5 °C; their batches are
//! committed one reading at a time, interleaved. Under sensor family 1.0 every
//! D1 reading "closed" D2's excursion and the lot verified in specification;
//! now D2's own track breaks the 30-minute single-excursion limit, the lot is
//! compromised naming D2, and the summaries list each logger.
mod support;

use coldchain_processors::messages::coldchain::RegistryPayload_oneof_action as R;
use coldchain_processors::messages::coldchain::{CreateLot, StabilityBand};
use support::http::{get, signed_get};
use support::scenario::{self, site, GTIN, T0};
use support::{drop_postgres_schema, postgres_url, registry, Chain, Ledger};

async fn a_second_logger_cannot_hide_an_excursion(index_url: &str) {
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
    let start_s = T0 + 3_600;
    let warm = [600, 1_200, 1_200, 1_200, 1_200, 1_200, 700];
    for (i, d2) in warm.iter().enumerate() {
        let at = start_s + 600 * i as u64;
        let sequence = 1 + i as u64;
        scenario::record(&mut ledger, &parties, "D2", "SH-TWO", sequence, at, &[*d2]);
        scenario::record(
            &mut ledger,
            &parties,
            "D1",
            "SH-TWO",
            sequence,
            at + 300,
            &[500],
        );
    }
    let api = support::serve_ledger(index_url, &ledger).await;
    let base = api.url();

    let (status, verdict) = get(&base, &format!("/api/v1/verify?gtin={GTIN}&lot=L-OK")).await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["verdict"], "compromised", "{verdict}");
    let reasons = verdict["reasons"].to_string();
    assert!(
        reasons.contains("single high excursion of 2400 s") && reasons.contains("logger D2"),
        "{reasons}"
    );

    let (status, provenance) =
        signed_get(&base, &format!("/api/v1/lots/{GTIN}/L-OK"), &parties.maker).await;
    assert_eq!(status, 200, "{provenance}");
    let shipment = provenance["shipments"]
        .as_array()
        .expect("shipments")
        .iter()
        .find(|s| s["shipment_id"] == "SH-TWO")
        .expect("SH-TWO")
        .clone();
    let thermal = &shipment["thermal"];
    let loggers = thermal["loggers"].as_array().expect("loggers");
    let devices: Vec<&str> = loggers
        .iter()
        .filter_map(|l| l["device_id"].as_str())
        .collect();
    assert_eq!(devices, ["D1", "D2"], "{thermal}");
    assert_eq!(loggers[0]["time_above_s"], 0);
    assert_eq!(loggers[0]["compromised"], false);
    assert_eq!(loggers[1]["time_above_s"], 3_000);
    assert_eq!(loggers[1]["excursions_total"], 1);
    assert_eq!(loggers[1]["compromised"], true);
    assert_eq!(thermal["excursions_total"], 1, "{thermal}");
    let excursions = thermal["excursions"].as_array().expect("excursions");
    assert_eq!(excursions.len(), 1, "{thermal}");
    assert_eq!(excursions[0]["device_id"], "D2");
    assert_eq!(excursions[0]["duration_s"], 3_000);
    assert_eq!(thermal["stability_budget_used"], serde_json::Value::Null);
    let lot = &provenance["thermal"];
    assert_eq!(lot["compromised"], true, "{lot}");
    let lot_loggers = lot["loggers"].as_array().expect("lot loggers");
    assert!(
        lot_loggers.iter().all(|l| l["shipment_id"] == "SH-TWO"),
        "{lot}"
    );
    api.stop().await;
}

/// A lot whose maker allows 2 h in all at 8.01–25 °C: 30 minutes at 12 °C
/// use a quarter of it; the verdict, the summary and the EPCIS sensor event
/// say so.
async fn the_stability_budget_used_is_shown(index_url: &str) {
    let mut ledger = Ledger::new();
    let parties = scenario::register(&mut ledger);
    let mut profile = scenario::profile();
    let mut band = StabilityBand::new();
    band.set_min_cdeg(801);
    band.set_max_cdeg(2_500);
    band.set_allowed_s(7_200);
    profile.stability_bands.push(band);
    let mut create = CreateLot::new();
    create.set_gtin(GTIN.into());
    create.set_lot("L-BUDGET".into());
    create.set_expiry_date(20301231);
    create.set_quantity(1);
    create.set_serials(vec!["L-BUDGET-S1".to_string()].into());
    create.set_profile(profile);
    create.set_site_gln(site("maker"));
    create.set_product_name("Cold vaccine".into());
    ledger
        .submit(vec![registry(
            &parties.maker,
            T0 + 20,
            R::create_lot(create),
        )])
        .expect("lot with a budget registers");
    scenario::ship_with_loggers(&mut ledger, &parties, "SH-B", "L-BUDGET", &["D1"], T0 + 100);
    let start_s = T0 + 3_600;
    scenario::record(
        &mut ledger,
        &parties,
        "D1",
        "SH-B",
        1,
        start_s,
        &[500, 1_200, 1_200, 1_200, 500],
    );
    let api = support::serve_ledger(index_url, &ledger).await;
    let base = api.url();

    let (status, verdict) = get(&base, &format!("/api/v1/verify?gtin={GTIN}&lot=L-BUDGET")).await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["verdict"], "authentic_in_spec", "{verdict}");
    let reasons = verdict["reasons"].to_string();
    assert!(reasons.contains("stability budget used: 25 %"), "{reasons}");

    let (_, provenance) = signed_get(
        &base,
        &format!("/api/v1/lots/{GTIN}/L-BUDGET"),
        &parties.maker,
    )
    .await;
    assert_eq!(
        provenance["thermal"]["stability_budget_used_ppb"], 250_000_000,
        "{provenance}"
    );
    assert_eq!(provenance["thermal"]["stability_budget_used"], "25 %");

    let (status, epcis) = signed_get(
        &base,
        &format!("/api/v1/lots/{GTIN}/L-BUDGET/epcis"),
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
    assert_eq!(
        sensor["coldchain:stabilityBudget"]["usedInShipment"], "25 %",
        "{sensor}"
    );
    assert_eq!(
        sensor["coldchain:stabilityBudget"]["usedByLotPpb"], 250_000_000,
        "{sensor}"
    );
    api.stop().await;
}

#[tokio::test]
async fn the_stability_budget_used_is_shown_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("index.db").display());
    the_stability_budget_used_is_shown(&url).await;
}

#[tokio::test]
async fn a_second_logger_cannot_hide_an_excursion_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("index.db").display());
    a_second_logger_cannot_hide_an_excursion(&url).await;
}

#[tokio::test]
async fn a_second_logger_cannot_hide_an_excursion_postgres() {
    let test = "loggers_two";
    drop_postgres_schema(test).await;
    a_second_logger_cannot_hide_an_excursion(&postgres_url(test)).await;
    drop_postgres_schema(test).await;
}
