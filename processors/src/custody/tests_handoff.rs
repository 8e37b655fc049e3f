//! Rules for two-step hand-offs and the compromised-goods refusal.
use crate::addressing::RecordKind;
use crate::messages::coldchain::CustodyPayload_oneof_action as C;
use crate::messages::coldchain::RegistryPayload_oneof_action as A;
use crate::messages::coldchain::*;
use crate::registry::mark_lot_compromised;
use crate::registry::testkit::{assert_invalid, Org, World, T0};

fn setup() -> (World, Org, Org, Org) {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let carrier = world.org("carrier", &[Role::CARRIER]);
    let shop = world.org("shop", &[Role::PHARMACY]);
    world.create_lot(&maker, "L1", &["S1"]);
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    world.events();
    (world, maker, carrier, shop)
}

fn reject(shipment: &str, reason: &str) -> C {
    let mut reject = RejectHandoff::new();
    reject.set_shipment_id(shipment.into());
    reject.set_reason(reason.into());
    C::reject_handoff(reject)
}

fn cancel(shipment: &str) -> C {
    let mut cancel = CancelHandoff::new();
    cancel.set_shipment_id(shipment.into());
    cancel.set_reason("wrong truck".into());
    C::cancel_handoff(cancel)
}

#[test]
fn custody_moves_with_each_accepted_handoff_until_delivery() {
    let (mut world, maker, carrier, shop) = setup();
    world.now += 60;
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
    assert_eq!(
        world.shipment("SH1").get_status(),
        ShipmentStatus::HANDOFF_PENDING
    );
    world.now += 60;
    world.put_shipment_thermal("SH1", false);
    world.accept(&carrier.agent, "SH1", false).unwrap();
    let shipment = world.shipment("SH1");
    assert_eq!(shipment.get_status(), ShipmentStatus::IN_TRANSIT);
    assert_eq!(shipment.get_custodian_org_id(), "carrier");
    let handoff = &shipment.get_handoffs()[0];
    assert_eq!(handoff.get_from_org_id(), "maker");
    assert_eq!(handoff.get_to_org_id(), "carrier");
    assert_eq!(handoff.get_at_gln(), maker.site);
    assert_eq!(handoff.get_proposed_by(), maker.agent.public_key());
    assert_eq!(handoff.get_decided_by(), carrier.agent.public_key());
    assert_eq!(handoff.get_proposed_at_s(), T0 + 60);
    assert_eq!(handoff.get_decided_at_s(), T0 + 120);
    assert_eq!(handoff.get_outcome(), HandoffOutcome::ACCEPTED);
    assert_eq!(handoff.get_thermal().get_reading_count(), 42);
    assert_eq!(handoff.get_thermal().get_max_cdeg(), 1_250);
    assert!(!handoff.get_thermal().get_compromised());
    assert_eq!(world.lot("L1").get_custodian_org_id(), "carrier");
    assert_eq!(world.lot("L1").get_shipment_id(), "SH1");

    world.now += 3_600;
    world
        .propose(&carrier.agent, "SH1", "shop", &shop.site)
        .unwrap();
    world.now += 60;
    world.accept(&shop.agent, "SH1", false).unwrap();
    let shipment = world.shipment("SH1");
    assert_eq!(shipment.get_status(), ShipmentStatus::DELIVERED);
    assert_eq!(shipment.get_closed_at_s(), world.now);
    let lot = world.lot("L1");
    assert_eq!(lot.get_custodian_org_id(), "shop");
    assert_eq!(lot.get_site_gln(), shop.site);
    assert_eq!(lot.get_shipment_id(), "");
    let types: Vec<String> = world.events().into_iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            "coldchain/handoff-proposed",
            "coldchain/handoff-accepted",
            "coldchain/handoff-proposed",
            "coldchain/handoff-accepted"
        ]
    );
}

#[test]
fn only_the_custodian_proposes_and_only_the_named_receiver_decides() {
    let (mut world, maker, carrier, shop) = setup();
    assert_invalid(
        world.propose(&carrier.agent, "SH1", "carrier", &maker.site),
        "not of maker",
    );
    assert_invalid(
        world.propose(&maker.agent, "SH1", "maker", &maker.site),
        "already holds",
    );
    assert_invalid(
        world.propose(&maker.agent, "SH1", "nobody", &maker.site),
        "nobody does not exist",
    );
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
    assert_invalid(
        world.propose(&maker.agent, "SH1", "shop", &maker.site),
        "already has a hand-off pending to carrier",
    );
    assert_invalid(world.accept(&shop.agent, "SH1", false), "not of carrier");
    assert_invalid(
        world.custody(&shop.agent, reject("SH1", "no")),
        "not of carrier",
    );
    assert_invalid(world.custody(&carrier.agent, cancel("SH1")), "not of maker");
    assert_invalid(
        world.accept(&carrier.agent, "SH404", false),
        "SH404 does not exist",
    );
}

#[test]
fn accept_without_a_pending_handoff_is_refused() {
    let (mut world, _, carrier, _) = setup();
    assert_invalid(
        world.accept(&carrier.agent, "SH1", false),
        "no pending hand-off",
    );
}

#[test]
fn rejection_needs_a_reason_and_lets_the_custodian_try_again() {
    let (mut world, maker, carrier, _) = setup();
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
    assert_invalid(
        world.custody(&carrier.agent, reject("SH1", "")),
        "reason is empty",
    );
    world.now += 30;
    world
        .custody(&carrier.agent, reject("SH1", "reefer too warm"))
        .unwrap();
    let shipment = world.shipment("SH1");
    assert_eq!(shipment.get_status(), ShipmentStatus::REFUSED);
    assert_eq!(
        shipment.get_handoffs()[0].get_outcome(),
        HandoffOutcome::REJECTED
    );
    assert_eq!(shipment.get_handoffs()[0].get_reason(), "reefer too warm");
    assert_eq!(world.lot("L1").get_custodian_org_id(), "maker");
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
}

#[test]
fn proposer_cancels_and_the_shipment_returns_to_its_previous_status() {
    let (mut world, maker, carrier, shop) = setup();
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
    world.custody(&maker.agent, cancel("SH1")).unwrap();
    let shipment = world.shipment("SH1");
    assert_eq!(shipment.get_status(), ShipmentStatus::PREPARING);
    assert_eq!(
        shipment.get_handoffs()[0].get_outcome(),
        HandoffOutcome::CANCELLED_BY_PROPOSER
    );
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
    world.accept(&carrier.agent, "SH1", false).unwrap();
    world
        .propose(&carrier.agent, "SH1", "shop", &shop.site)
        .unwrap();
    world.custody(&carrier.agent, cancel("SH1")).unwrap();
    assert_eq!(
        world.shipment("SH1").get_status(),
        ShipmentStatus::IN_TRANSIT
    );
    assert_invalid(
        world.custody(&carrier.agent, cancel("SH1")),
        "no pending hand-off",
    );
}

#[test]
fn compromised_cold_chain_is_refused_unless_accepted_into_quarantine() {
    let (mut world, maker, carrier, _) = setup();
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
    world.put_shipment_thermal("SH1", true);
    assert_invalid(
        world.accept(&carrier.agent, "SH1", false),
        "cannot be accepted: its cold-chain record is compromised: single high excursion over 3600 s",
    );
    world.now += 60;
    world.accept(&carrier.agent, "SH1", true).unwrap();
    let handoff = world.shipment("SH1").get_handoffs()[0].clone();
    assert_eq!(
        handoff.get_outcome(),
        HandoffOutcome::ACCEPTED_INTO_QUARANTINE
    );
    assert!(handoff.get_thermal().get_compromised());
    let lot = world.lot("L1");
    assert_eq!(lot.get_status(), LotStatus::QUARANTINED);
    let change = lot.get_history().last().unwrap();
    assert_eq!(change.get_by_public_key(), carrier.agent.public_key());
    assert!(change.get_reason().contains("quarantine"));
    let events = world.events();
    assert!(events
        .iter()
        .any(|e| e.event_type == "coldchain/lot-status"));
}

#[test]
fn a_compromised_lot_is_refused_like_a_compromised_record() {
    let (mut world, maker, carrier, _) = setup();
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
    world.edit_lot("L1", |lot| {
        mark_lot_compromised(lot, "02gateway", T0, "50 warnings");
    });
    assert_invalid(world.accept(&carrier.agent, "SH1", false), "COMPROMISED");
    world.accept(&carrier.agent, "SH1", true).unwrap();
    assert_eq!(world.lot("L1").get_status(), LotStatus::QUARANTINED);
}

#[test]
fn decisions_cannot_predate_the_proposal() {
    let (mut world, maker, carrier, _) = setup();
    world.now += 600;
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
    world.now -= 1;
    assert_invalid(
        world.accept(&carrier.agent, "SH1", false),
        "before the hand-off was proposed",
    );
    assert_invalid(
        world.custody(&carrier.agent, reject("SH1", "late")),
        "time cannot go backwards",
    );
}

#[test]
fn delivery_detaches_the_loggers() {
    let (mut world, maker, carrier, shop) = setup();
    let mut device = RegisterDevice::new();
    device.set_device_id("D1".into());
    device.set_org_id("carrier".into());
    device.set_model("logger".into());
    let agent = carrier.agent.clone();
    world.registry(&agent, A::register_device(device)).unwrap();
    let mut attach = AttachDevice::new();
    attach.set_shipment_id("SH1".into());
    attach.set_device_id("D1".into());
    world
        .custody(&carrier.agent, C::attach_device(attach))
        .unwrap();
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
    world.accept(&carrier.agent, "SH1", false).unwrap();
    world
        .propose(&carrier.agent, "SH1", "shop", &shop.site)
        .unwrap();
    world.accept(&shop.agent, "SH1", false).unwrap();
    let device: Device = world.load(RecordKind::Device, "D1");
    assert_eq!(device.get_attached_shipment_id(), "");
    assert_eq!(world.shipment("SH1").get_device_ids(), &["D1".to_string()]);
}

#[test]
fn handoff_at_an_intermediate_site_keeps_the_shipment_in_transit() {
    let (mut world, maker, _carrier, shop) = setup();
    let depot = world.new_site(&shop);
    world.propose(&maker.agent, "SH1", "shop", &depot).unwrap();
    world.accept(&shop.agent, "SH1", false).unwrap();
    assert_eq!(
        world.shipment("SH1").get_status(),
        ShipmentStatus::IN_TRANSIT
    );
    assert_eq!(world.lot("L1").get_site_gln(), depot);
}

#[test]
fn a_delivered_shipment_cannot_be_handed_off_again() {
    let (mut world, maker, carrier, shop) = setup();
    world
        .propose(&maker.agent, "SH1", "carrier", &maker.site)
        .unwrap();
    world.accept(&carrier.agent, "SH1", false).unwrap();
    world
        .propose(&carrier.agent, "SH1", "shop", &shop.site)
        .unwrap();
    world.accept(&shop.agent, "SH1", false).unwrap();
    assert_invalid(
        world.propose(&shop.agent, "SH1", "maker", &maker.site),
        "shipment SH1 is DELIVERED; a closed shipment cannot be handed off",
    );
}

#[test]
fn a_compromised_blood_unit_is_refused_unless_accepted_into_quarantine() {
    let mut world = World::new();
    let bank = world.org("bank", &[Role::BLOOD_BANK]);
    let hospital = world.org("hosp", &[Role::HOSPITAL]);
    let site = bank.site.clone();
    world.blood_unit(&bank, "W123427000001", &site, 20270201);
    world
        .ship_units(
            &bank,
            "BSH1",
            &bank.site,
            &hospital.site,
            &["W123427000001"],
        )
        .unwrap();
    world
        .propose(&bank.agent, "BSH1", "hosp", &hospital.site)
        .unwrap();
    world.edit_unit("W123427000001", |unit| {
        unit.set_status(LotStatus::COMPROMISED)
    });
    assert_invalid(
        world.accept(&hospital.agent, "BSH1", false),
        "shipment BSH1 cannot be accepted: blood unit W123427000001 is COMPROMISED",
    );
    world.accept(&hospital.agent, "BSH1", true).unwrap();
    let unit: BloodUnit = world.load(RecordKind::BloodUnit, "W123427000001");
    assert_eq!(unit.get_status(), LotStatus::QUARANTINED);
}
