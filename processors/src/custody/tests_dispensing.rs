//! Rules for dispensing packs.
use crate::addressing::{goods_key, RecordKind};
use crate::messages::coldchain::CustodyPayload_oneof_action as C;
use crate::messages::coldchain::*;
use crate::registry::mark_lot_compromised;
use crate::registry::testkit::{assert_invalid, Org, World, GTIN};
use crate::signing::Signer;

fn delivered() -> (World, Org, Org) {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let carrier = world.org("carrier", &[Role::CARRIER]);
    let shop = world.org("shop", &[Role::PHARMACY]);
    world.create_lot(&maker, "L1", &["S1", "S2"]);
    world.deliver(&maker, &carrier, &shop, "SH1", "L1");
    world.events();
    (world, maker, shop)
}

fn dispense(serial: &str, site: &str) -> C {
    let mut dispense = DispensePack::new();
    dispense.set_gtin(GTIN.into());
    dispense.set_serial(serial.into());
    dispense.set_site_gln(site.into());
    C::dispense_pack(dispense)
}

#[test]
fn pharmacy_dispenses_each_pack_once_and_the_lot_ends_dispensed() {
    let (mut world, _, shop) = delivered();
    world
        .custody(&shop.agent, dispense("S1", &shop.site))
        .unwrap();
    let pack: Pack = world.load(RecordKind::Pack, &goods_key(GTIN, "S1"));
    assert!(pack.get_dispensed());
    assert_eq!(pack.get_dispensed_org_id(), "shop");
    assert_eq!(pack.get_dispensed_at_gln(), shop.site);
    assert_eq!(pack.get_dispensed_at_s(), world.now);
    assert_eq!(world.lot("L1").get_dispensed_count(), 1);
    assert_eq!(world.lot("L1").get_status(), LotStatus::ACTIVE);
    assert_invalid(
        world.custody(&shop.agent, dispense("S1", &shop.site)),
        "already dispensed",
    );
    world
        .custody(&shop.agent, dispense("S2", &shop.site))
        .unwrap();
    let lot = world.lot("L1");
    assert_eq!(lot.get_status(), LotStatus::DISPENSED);
    assert_eq!(
        lot.get_history().last().unwrap().get_reason(),
        "last pack dispensed"
    );
    let types: Vec<String> = world.events().into_iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            "coldchain/pack-dispensed",
            "coldchain/pack-dispensed",
            "coldchain/lot-status"
        ]
    );
}

#[test]
fn recalled_quarantined_and_compromised_lots_are_not_dispensed() {
    let (mut world, maker, shop) = delivered();
    let inspection = world.org("insp", &[Role::INSPECTOR]);
    world
        .change_status(&inspection.agent, "L1", LotStatus::QUARANTINED)
        .unwrap();
    assert_invalid(
        world.custody(&shop.agent, dispense("S1", &shop.site)),
        "QUARANTINED",
    );
    world
        .change_status(&inspection.agent, "L1", LotStatus::ACTIVE)
        .unwrap();
    world.edit_lot("L1", |lot| {
        mark_lot_compromised(lot, "02gateway", world.now, "excursion");
    });
    assert_invalid(
        world.custody(&shop.agent, dispense("S1", &shop.site)),
        "COMPROMISED",
    );
    world
        .change_status(&maker.agent, "L1", LotStatus::RECALLED)
        .unwrap();
    assert_invalid(
        world.custody(&shop.agent, dispense("S1", &shop.site)),
        "RECALLED: do not dispense",
    );
}

#[test]
fn expired_lots_are_not_dispensed() {
    let (mut world, _, shop) = delivered();
    // Expiry is 2028-12-31; move to 2029-01-01.
    world.now = 1_861_920_000;
    assert_invalid(
        world.custody(&shop.agent, dispense("S1", &shop.site)),
        "expired on 20281231",
    );
}

#[test]
fn only_a_pharmacy_holding_the_lot_dispenses_at_its_own_site() {
    let (mut world, maker, shop) = delivered();
    let other = world.org("other", &[Role::PHARMACY]);
    assert_invalid(
        world.custody(&maker.agent, dispense("S1", &maker.site)),
        "PHARMACY",
    );
    assert_invalid(
        world.custody(&other.agent, dispense("S1", &other.site)),
        "custody of shop",
    );
    assert_invalid(
        world.custody(&shop.agent, dispense("S1", &other.site)),
        "belongs to organisation other",
    );
    assert_invalid(
        world.custody(&shop.agent, dispense("NOPE", &shop.site)),
        "counterfeit",
    );
}

#[test]
fn packs_in_a_shipment_are_not_dispensed() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER, Role::PHARMACY]);
    let shop = world.org("shop", &[Role::PHARMACY]);
    world.create_lot(&maker, "L1", &["S1"]);
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    assert_invalid(
        world.custody(&maker.agent, dispense("S1", &maker.site)),
        "still in shipment SH1",
    );
}

#[test]
fn unregistered_signer_cannot_dispense() {
    let (mut world, _, shop) = delivered();
    let stranger = Signer::generate();
    assert_invalid(
        world.custody(&stranger, dispense("S1", &shop.site)),
        "not a registered agent",
    );
}

#[test]
fn packs_of_a_destroyed_lot_are_not_dispensed() {
    let (mut world, _, shop) = delivered();
    world
        .change_status(&shop.agent, "L1", LotStatus::DESTROYED)
        .unwrap();
    assert_invalid(
        world.custody(&shop.agent, dispense("S1", &shop.site)),
        &format!("lot {GTIN}/L1 is DESTROYED and cannot be dispensed"),
    );
}

#[test]
fn a_pack_whose_lot_is_missing_from_state_is_refused() {
    let (mut world, _, shop) = delivered();
    world.forget(RecordKind::Lot, &goods_key(GTIN, "L1"));
    assert_invalid(
        world.custody(&shop.agent, dispense("S1", &shop.site)),
        &format!("lot {GTIN}/L1 of the pack is missing from state"),
    );
}
