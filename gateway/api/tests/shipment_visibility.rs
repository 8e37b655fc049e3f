//! A partner sees its own and its counterparties' data, not every shipment of
//! a lot it once held: the lot goes maker → carrier → pharmacy (SH-A), back to
//! the maker (SH-RET), then maker → carrier → another pharmacy (SH-B). The
//! first pharmacy must not see SH-B (hand-offs, GLNs, temperatures, EPCIS
//! events, current holder); the maker and the regulator see all three.
mod support;

use coldchain_api::chain::{ingest, Ingested};
use coldchain_api::{Api, ApiConfig, ApiHandle};
use coldchain_processors::signing::Signer;
use support::http::signed_get;
use support::scenario::{self, site, Parties, GTIN, T0};
use support::{drop_postgres_schema, postgres_url, Ledger};

async fn start(index_url: &str) -> ApiHandle {
    Api::start(ApiConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        rest_url: "http://127.0.0.1:9".into(),
        component: "tcp://127.0.0.1:9".into(),
        index_url: index_url.into(),
        follow: false,
    })
    .await
    .expect("API starts")
}

fn story(ledger: &mut Ledger) -> Parties {
    let p = scenario::register(ledger);
    scenario::ship_to_carrier(ledger, &p, "SH-A", "L-OK", "D1", T0 + 100);
    scenario::record(ledger, &p, "D1", "SH-A", 1, T0 + 200, &[500, 510, 520]);
    scenario::deliver(ledger, &p, "SH-A", T0 + 10_000, false);
    scenario::return_to_maker(ledger, &p, "SH-RET", "L-OK", T0 + 11_000);
    scenario::ship_to_carrier_for(ledger, &p, "SH-B", "L-OK", "D2", "stranger", T0 + 12_000);
    scenario::record(ledger, &p, "D2", "SH-B", 1, T0 + 12_200, &[610, 620, 630]);
    scenario::deliver_to(
        ledger,
        &p,
        "SH-B",
        &p.stranger,
        "stranger",
        T0 + 20_000,
        false,
    );
    p
}

async fn shipments_seen(base: &str, who: &Signer) -> (Vec<String>, serde_json::Value) {
    let (status, body) = signed_get(base, &format!("/api/v1/lots/{GTIN}/L-OK"), who).await;
    assert_eq!(status, 200, "{body}");
    let ids = body["shipments"]
        .as_array()
        .expect("shipments")
        .iter()
        .filter_map(|s| s["shipment_id"].as_str().map(str::to_string))
        .collect();
    for handoff in body["custody"].as_array().expect("custody") {
        let id = handoff["shipment_id"].as_str().unwrap_or_default();
        assert!(
            body["shipments"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["shipment_id"] == id)),
            "hand-off of a hidden shipment {id}: {body}"
        );
    }
    (ids, body)
}

async fn partners_see_only_their_shipments(index_url: &str) {
    let mut ledger = Ledger::new();
    let p = story(&mut ledger);
    let api = start(index_url).await;
    let index = api.index();
    for update in &ledger.blocks {
        let outcome = ingest(index.as_ref(), &ledger.lookup(), update.clone())
            .await
            .expect("ingested");
        assert_eq!(outcome, Ingested::Applied);
    }
    let base = api.url();
    let all = vec!["SH-A".to_string(), "SH-RET".into(), "SH-B".into()];

    // Pharmacy A: its delivery and its return, nothing of SH-B.
    let (seen, body) = shipments_seen(&base, &p.pharmacy).await;
    assert_eq!(seen, vec!["SH-A".to_string(), "SH-RET".into()]);
    let text = body.to_string();
    assert!(!text.contains("SH-B"), "{text}");
    assert!(!text.contains(&site("stranger")), "{text}");
    assert!(!text.contains("\"stranger\""), "{text}");
    assert_eq!(body["product"]["holder_withheld"], true, "{body}");
    let (status, epcis) = signed_get(
        &base,
        &format!("/api/v1/lots/{GTIN}/L-OK/epcis"),
        &p.pharmacy,
    )
    .await;
    assert_eq!(status, 200, "{epcis}");
    let text = epcis.to_string();
    assert!(!text.contains("SH-B"), "{text}");
    assert!(!text.contains(&site("stranger")), "{text}");
    assert!(text.contains("urn:coldchain:shipment:SH-A"), "{text}");
    let (status, _) = signed_get(&base, "/api/v1/shipments/SH-B/readings", &p.pharmacy).await;
    assert_eq!(status, 403);

    // Pharmacy B: only its own delivery.
    let (seen, body) = shipments_seen(&base, &p.stranger).await;
    assert_eq!(seen, vec!["SH-B".to_string()]);
    assert!(!body.to_string().contains(&site("pharmacy")), "{body}");
    assert_eq!(body["product"]["custodian_org_id"], "stranger");
    let (status, _) = signed_get(&base, "/api/v1/shipments/SH-A/readings", &p.stranger).await;
    assert_eq!(status, 403);

    // The carrier carried SH-A and SH-B, not the return.
    let (seen, _) = shipments_seen(&base, &p.carrier).await;
    assert_eq!(seen, vec!["SH-A".to_string(), "SH-B".into()]);

    // The maker and the regulator see every shipment, its readings and the holder.
    for who in [&p.maker, &p.regulator] {
        let (seen, body) = shipments_seen(&base, who).await;
        assert_eq!(seen, all);
        assert_eq!(body["product"]["holder_withheld"], false);
        assert_eq!(body["product"]["custodian_org_id"], "stranger");
        assert_eq!(body["product"]["site_gln"], site("stranger"));
        let (status, readings) = signed_get(&base, "/api/v1/shipments/SH-B/readings", who).await;
        assert_eq!(status, 200, "{readings}");
        assert_eq!(readings["readings"].as_array().map(Vec::len), Some(3));
        let (status, epcis) =
            signed_get(&base, &format!("/api/v1/lots/{GTIN}/L-OK/epcis"), who).await;
        assert_eq!(status, 200);
        assert!(epcis.to_string().contains("urn:coldchain:shipment:SH-B"));
    }
    api.stop().await;
}

#[tokio::test]
async fn sqlite_partners_see_only_shipments_they_are_party_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    partners_see_only_their_shipments(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_partners_see_only_shipments_they_are_party_to() {
    drop_postgres_schema("visibility").await;
    partners_see_only_their_shipments(&postgres_url("visibility")).await;
    drop_postgres_schema("visibility").await;
}
