//! A partner sees its own shipments of a lot, and every shipment upstream of
//! them (the legs that brought the goods to their sender), never the legs that
//! went elsewhere afterwards or from the same sender to someone else.
//!
//! The custody processor moves a lot whole (one holder, one open shipment at a
//! time; it cannot be split), so "the distributor ships to pharmacy A, then to
//! pharmacy B" takes one of two shapes on the ledger, each a case here:
//!
//! * **Refused at the door**: maker → carrier → distributor (S1); distributor
//!   → pharmacy A (S2), which A refuses at its door, so the distributor
//!   cancels it; distributor → pharmacy B (S3). A sees S1 and S2, not S3. The
//!   goods B received travelled in S2 to A's door and back, so B sees S2 too
//!   (its thermal summary and readings), with A's identity withheld ("refused
//!   at the receiving dock"; issue 12's decision). An organisation with no
//!   part in the lot sees none of it.
//! * **Returned** (in turn): S1 as above; distributor → carrier → A (S2); A
//!   sends the lot back (S2R); distributor → B (S3). The goods B received were
//!   held by A, so S2 and S2R are upstream of S3 and B sees them; A still does
//!   not see S3.
mod support;

use coldchain_processors::messages::coldchain::CustodyPayload_oneof_action as C;
use coldchain_processors::messages::coldchain::RegistryPayload_oneof_action as R;
use coldchain_processors::messages::coldchain::*;
use coldchain_processors::signing::Signer;
use support::http::signed_get;
use support::scenario::{self, site, Parties, GTIN, T0};
use support::{custody, drop_postgres_schema, gln, postgres_url, registry, Chain, Ledger};

/// The scenario's parties plus a distributor and an organisation with no
/// part in the lot.
struct Cast {
    p: Parties,
    distributor: Signer,
    outsider: Signer,
}

/// Where each organisation receives and ships from.
fn at(org: &str) -> String {
    match org {
        "distributor" => gln("950110153006"),
        org => site(org),
    }
}

fn register(ledger: &mut Ledger) -> Cast {
    let p = scenario::register(ledger);
    let distributor = Signer::generate();
    let admin = ledger.admin();
    let mut create = CreateOrganization::new();
    create.set_org_id("distributor".into());
    create.set_name("distributor".into());
    create.set_roles(vec![Role::DISTRIBUTOR]);
    let mut add = AddSite::new();
    add.set_org_id("distributor".into());
    add.set_gln(at("distributor"));
    add.set_name("distributor site".into());
    let mut agent = AddAgent::new();
    agent.set_org_id("distributor".into());
    agent.set_public_key(distributor.public_key().to_string());
    agent.set_name("distributor agent".into());
    agent.set_roles(vec![Role::DISTRIBUTOR, Role::ADMIN]);
    let outsider = Signer::generate();
    let mut create_outsider = CreateOrganization::new();
    create_outsider.set_org_id("outsider".into());
    create_outsider.set_name("outsider".into());
    create_outsider.set_roles(vec![Role::PHARMACY]);
    let mut outsider_agent = AddAgent::new();
    outsider_agent.set_org_id("outsider".into());
    outsider_agent.set_public_key(outsider.public_key().to_string());
    outsider_agent.set_name("outsider agent".into());
    outsider_agent.set_roles(vec![Role::PHARMACY, Role::ADMIN]);
    ledger
        .submit(vec![
            registry(&admin, T0, R::create_organization(create)),
            registry(&admin, T0, R::add_site(add)),
            registry(&admin, T0, R::add_agent(agent)),
            registry(&admin, T0, R::create_organization(create_outsider)),
            registry(&admin, T0, R::add_agent(outsider_agent)),
        ])
        .expect("distributor and outsider register");
    Cast {
        p,
        distributor,
        outsider,
    }
}

/// `sender` (of `from`) opens `shipment` of L-OK to `to`'s site, with the
/// carrier's logger `device` attached when given.
fn open(
    ledger: &mut Ledger,
    cast: &Cast,
    sender: &Signer,
    shipment: &str,
    (from, to): (&str, &str),
    device: Option<&str>,
    at_s: u64,
) {
    let mut create = CreateShipment::new();
    create.set_shipment_id(shipment.into());
    create.set_from_gln(at(from));
    create.set_to_gln(at(to));
    let mut lot = LotRef::new();
    lot.set_gtin(GTIN.into());
    lot.set_lot("L-OK".into());
    create.set_lots(vec![lot].into());
    let mut txns = vec![custody(sender, at_s, C::create_shipment(create))];
    if let Some(device) = device {
        let mut attach = AttachDevice::new();
        attach.set_shipment_id(shipment.into());
        attach.set_device_id(device.into());
        txns.push(custody(&cast.p.carrier, at_s, C::attach_device(attach)));
    }
    ledger.submit(txns).expect("shipment opened");
}

/// `from` proposes a hand-off of `shipment` to `receiver` (of `org`) at
/// `gln`; the receiver accepts a minute later.
fn hand_over(
    ledger: &mut Ledger,
    from: &Signer,
    shipment: &str,
    (receiver, org): (&Signer, &str),
    gln: &str,
    at_s: u64,
) {
    let mut propose = ProposeHandoff::new();
    propose.set_shipment_id(shipment.into());
    propose.set_to_org_id(org.into());
    propose.set_at_gln(gln.into());
    ledger
        .submit(vec![custody(from, at_s, C::propose_handoff(propose))])
        .expect("hand-off proposed");
    let mut accept = AcceptHandoff::new();
    accept.set_shipment_id(shipment.into());
    ledger
        .submit(vec![custody(
            receiver,
            at_s + 60,
            C::accept_handoff(accept),
        )])
        .expect("hand-off accepted");
}

/// S1: maker → carrier → distributor, 5.0-5.2 °C on D1.
fn first_leg(ledger: &mut Ledger, cast: &Cast) {
    let p = &cast.p;
    open(
        ledger,
        cast,
        &p.maker,
        "S1",
        ("maker", "distributor"),
        Some("D1"),
        T0 + 100,
    );
    hand_over(
        ledger,
        &p.maker,
        "S1",
        (&p.carrier, "carrier"),
        &at("maker"),
        T0 + 100,
    );
    scenario::record(ledger, p, "D1", "S1", 1, T0 + 200, &[500, 510, 520]);
    hand_over(
        ledger,
        &p.carrier,
        "S1",
        (&cast.distributor, "distributor"),
        &at("distributor"),
        T0 + 10_000,
    );
}

/// S3: distributor → pharmacy B ("stranger"), 6.1-6.3 °C on D1.
fn last_leg(ledger: &mut Ledger, cast: &Cast, at_s: u64) {
    let p = &cast.p;
    open(
        ledger,
        cast,
        &cast.distributor,
        "S3",
        ("distributor", "stranger"),
        Some("D1"),
        at_s,
    );
    scenario::record(ledger, p, "D1", "S3", 4, at_s + 200, &[610, 620, 630]);
    hand_over(
        ledger,
        &cast.distributor,
        "S3",
        (&p.stranger, "stranger"),
        &at("stranger"),
        at_s + 5_000,
    );
}

/// Refused at the door: S2 delivers nothing, but its goods came back to the
/// distributor, who sends them on in S3.
fn refused_story(ledger: &mut Ledger) -> Cast {
    let cast = register(ledger);
    let p = &cast.p;
    first_leg(ledger, &cast);
    open(
        ledger,
        &cast,
        &cast.distributor,
        "S2",
        ("distributor", "pharmacy"),
        Some("D2"),
        T0 + 11_000,
    );
    scenario::record(ledger, p, "D2", "S2", 1, T0 + 11_200, &[530, 540, 550]);
    let mut propose = ProposeHandoff::new();
    propose.set_shipment_id("S2".into());
    propose.set_to_org_id("pharmacy".into());
    propose.set_at_gln(at("pharmacy"));
    let mut reject = RejectHandoff::new();
    reject.set_shipment_id("S2".into());
    reject.set_reason("not ordered".into());
    let mut cancel = CancelShipment::new();
    cancel.set_shipment_id("S2".into());
    cancel.set_reason("refused by the pharmacy".into());
    ledger
        .submit(vec![custody(
            &cast.distributor,
            T0 + 13_000,
            C::propose_handoff(propose),
        )])
        .expect("hand-off proposed");
    ledger
        .submit(vec![custody(
            &p.pharmacy,
            T0 + 13_060,
            C::reject_handoff(reject),
        )])
        .expect("pharmacy refuses");
    ledger
        .submit(vec![custody(
            &cast.distributor,
            T0 + 13_120,
            C::cancel_shipment(cancel),
        )])
        .expect("distributor cancels");
    last_leg(ledger, &cast, T0 + 14_000);
    cast
}

/// Returned: S2 via the carrier to pharmacy A, S2R back to the distributor.
fn returned_story(ledger: &mut Ledger) -> Cast {
    let cast = register(ledger);
    let p = &cast.p;
    first_leg(ledger, &cast);
    open(
        ledger,
        &cast,
        &cast.distributor,
        "S2",
        ("distributor", "pharmacy"),
        Some("D2"),
        T0 + 11_000,
    );
    hand_over(
        ledger,
        &cast.distributor,
        "S2",
        (&p.carrier, "carrier"),
        &at("distributor"),
        T0 + 11_000,
    );
    scenario::record(ledger, p, "D2", "S2", 1, T0 + 11_200, &[530, 540, 550]);
    hand_over(
        ledger,
        &p.carrier,
        "S2",
        (&p.pharmacy, "pharmacy"),
        &at("pharmacy"),
        T0 + 20_000,
    );
    open(
        ledger,
        &cast,
        &p.pharmacy,
        "S2R",
        ("pharmacy", "distributor"),
        None,
        T0 + 21_000,
    );
    hand_over(
        ledger,
        &p.pharmacy,
        "S2R",
        (&cast.distributor, "distributor"),
        &at("distributor"),
        T0 + 21_000,
    );
    last_leg(ledger, &cast, T0 + 22_000);
    cast
}

/// What `who` sees of L-OK: shipment ids (provenance), the shipments named by
/// EPCIS events, and the provenance body.
async fn seen(base: &str, who: &Signer) -> (Vec<String>, Vec<String>, serde_json::Value) {
    let (status, body) = signed_get(base, &format!("/api/v1/lots/{GTIN}/L-OK"), who).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<String> = body["shipments"]
        .as_array()
        .expect("shipments")
        .iter()
        .filter_map(|s| s["shipment_id"].as_str().map(str::to_string))
        .collect();
    for handoff in body["custody"].as_array().expect("custody") {
        let id = handoff["shipment_id"].as_str().unwrap_or_default();
        assert!(
            ids.iter().any(|s| s == id),
            "hand-off of hidden {id}: {body}"
        );
    }
    let (status, epcis) = signed_get(base, &format!("/api/v1/lots/{GTIN}/L-OK/epcis"), who).await;
    assert_eq!(status, 200, "{epcis}");
    let text = epcis.to_string();
    let mut in_epcis: Vec<String> = ["S1", "S2", "S2R", "S3"]
        .iter()
        .filter(|id| text.contains(&format!("urn:coldchain:shipment:{id}\"")))
        .map(|id| id.to_string())
        .collect();
    in_epcis.sort();
    (ids, in_epcis, body)
}

/// Asserts `who` sees exactly `visible` (provenance, EPCIS and readings) and
/// gets 403 for the readings of the story's other shipments.
async fn sees(base: &str, story: &[&str], who: &Signer, visible: &[&str]) -> serde_json::Value {
    let (ids, in_epcis, body) = seen(base, who).await;
    assert_eq!(ids, visible, "{body}");
    let mut sorted = visible.to_vec();
    sorted.sort();
    assert_eq!(in_epcis, sorted);
    for &id in story {
        let (status, readings) =
            signed_get(base, &format!("/api/v1/shipments/{id}/readings"), who).await;
        if visible.contains(&id) {
            assert_eq!(status, 200, "{id}: {readings}");
            let expected = if id == "S2R" { 0 } else { 3 };
            assert_eq!(
                readings["readings"].as_array().map(Vec::len),
                Some(expected),
                "{id}: {readings}"
            );
        } else {
            assert_eq!(status, 403, "{id}: {readings}");
        }
    }
    body
}

/// The holder (pharmacy B) is shown to `who` or withheld.
fn holder(body: &serde_json::Value, shown: bool) {
    assert_eq!(body["product"]["holder_withheld"], !shown, "{body}");
    let expected = if shown { "stranger" } else { "" };
    assert_eq!(body["product"]["custodian_org_id"], expected, "{body}");
}

/// The hand-off of `shipment` in a provenance body that went to the refusing
/// dock (the rejected one).
fn refusal<'a>(body: &'a serde_json::Value, shipment: &str) -> &'a serde_json::Value {
    body["custody"]
        .as_array()
        .expect("custody")
        .iter()
        .find(|h| h["shipment_id"] == shipment && h["outcome"] == "rejected")
        .unwrap_or_else(|| panic!("no refused hand-off of {shipment}: {body}"))
}

fn shipment_view<'a>(body: &'a serde_json::Value, shipment: &str) -> &'a serde_json::Value {
    body["shipments"]
        .as_array()
        .expect("shipments")
        .iter()
        .find(|s| s["shipment_id"] == shipment)
        .unwrap_or_else(|| panic!("no shipment {shipment}: {body}"))
}

async fn refused_leg_reaches_later_receivers(index_url: &str) {
    let mut ledger = Ledger::new();
    let cast = refused_story(&mut ledger);
    let p = &cast.p;
    let api = support::serve_ledger(index_url, &ledger).await;
    let base = api.url();
    let story = &["S1", "S2", "S3"];

    // Pharmacy A: the delivery it refused (as it refused it) and the leg
    // that brought it to the distributor, nothing of B's.
    let body = sees(&base, story, &p.pharmacy, &["S1", "S2"]).await;
    let text = body.to_string();
    assert!(!text.contains(&site("stranger")), "{text}");
    assert!(!text.contains("\"stranger\""), "{text}");
    holder(&body, false);
    let own = refusal(&body, "S2");
    assert_eq!(own["to_org_id"], "pharmacy", "{body}");
    assert_eq!(own["at_gln"], site("pharmacy"), "{body}");
    assert_eq!(own["reason"], "not ordered", "{body}");
    assert_eq!(shipment_view(&body, "S2")["to_gln"], site("pharmacy"));

    // Pharmacy B: its delivery, S1, and the trip its goods made to A's door
    // and back (thermal summary and readings), without A's identity.
    let body = sees(&base, story, &p.stranger, &["S1", "S2", "S3"]).await;
    let text = body.to_string();
    assert!(!text.contains(&site("pharmacy")), "{text}");
    assert!(!text.contains("\"pharmacy\""), "{text}");
    assert!(!text.contains("not ordered"), "{text}");
    holder(&body, true);
    let withheld = refusal(&body, "S2");
    assert_eq!(withheld["to_org_id"], "", "{body}");
    assert_eq!(withheld["at_gln"], "", "{body}");
    assert_eq!(
        withheld["reason"], "refused at the receiving dock",
        "{body}"
    );
    assert_eq!(withheld["from_org_id"], "distributor", "{body}");
    let refused_leg = shipment_view(&body, "S2");
    assert_eq!(refused_leg["status"], "cancelled", "{body}");
    assert_eq!(refused_leg["to_gln"], "", "{body}");
    assert_eq!(refused_leg["thermal"]["reading_count"], 3, "{body}");
    assert_eq!(refused_leg["thermal"]["min_cdeg"], 530, "{body}");
    assert_eq!(refused_leg["thermal"]["max_cdeg"], 550, "{body}");

    // No part in the lot: nothing of it, not even the refused leg's readings.
    let (status, refusal) =
        signed_get(&base, &format!("/api/v1/lots/{GTIN}/L-OK"), &cast.outsider).await;
    assert_eq!(status, 403, "{refusal}");
    for id in story {
        let (status, readings) = signed_get(
            &base,
            &format!("/api/v1/shipments/{id}/readings"),
            &cast.outsider,
        )
        .await;
        assert_eq!(status, 403, "{id}: {readings}");
    }

    // The carrier carried S1 only; the distributor sent S2 and S3.
    holder(&sees(&base, story, &p.carrier, &["S1"]).await, false);
    holder(
        &sees(&base, story, &cast.distributor, &["S1", "S2", "S3"]).await,
        true,
    );
    for who in [&p.maker, &p.regulator] {
        holder(&sees(&base, story, who, &["S1", "S2", "S3"]).await, true);
    }
    api.stop().await;
}

async fn returned_goods_bring_their_past(index_url: &str) {
    let mut ledger = Ledger::new();
    let cast = returned_story(&mut ledger);
    let p = &cast.p;
    let api = support::serve_ledger(index_url, &ledger).await;
    let base = api.url();
    let story = &["S1", "S2", "S2R", "S3"];
    let all = story;

    // Pharmacy A: S1 upstream, its delivery and its return; not S3.
    let body = sees(&base, story, &p.pharmacy, &["S1", "S2", "S2R"]).await;
    let text = body.to_string();
    assert!(!text.contains(&site("stranger")), "{text}");
    assert!(!text.contains("\"stranger\""), "{text}");
    holder(&body, false);

    // Pharmacy B: the goods it received were with A, so all of it.
    holder(&sees(&base, story, &p.stranger, all).await, true);

    // The carrier: its legs S1 and S2 (and S2's upstream, S1); not the
    // return or S3, which went on without it.
    holder(&sees(&base, story, &p.carrier, &["S1", "S2"]).await, false);
    for who in [&cast.distributor, &p.maker, &p.regulator] {
        holder(&sees(&base, story, who, all).await, true);
    }
    api.stop().await;
}

#[tokio::test]
async fn sqlite_refused_leg_reaches_later_receivers() {
    let dir = tempfile::tempdir().expect("tempdir");
    refused_leg_reaches_later_receivers(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_refused_leg_reaches_later_receivers() {
    drop_postgres_schema("visibility").await;
    refused_leg_reaches_later_receivers(&postgres_url("visibility")).await;
    drop_postgres_schema("visibility").await;
}

#[tokio::test]
async fn sqlite_returned_goods_bring_their_past() {
    let dir = tempfile::tempdir().expect("tempdir");
    returned_goods_bring_their_past(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_returned_goods_bring_their_past() {
    drop_postgres_schema("visibility_returned").await;
    returned_goods_bring_their_past(&postgres_url("visibility_returned")).await;
    drop_postgres_schema("visibility_returned").await;
}
