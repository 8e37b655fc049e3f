//! Rules for creating and cancelling shipments and attaching loggers.
use crate::addressing::RecordKind;
use crate::custody::shipments::strictest_profile;
use crate::messages::coldchain::CustodyPayload_oneof_action as C;
use crate::messages::coldchain::RegistryPayload_oneof_action as A;
use crate::messages::coldchain::*;
use crate::registry::testkit::{assert_invalid, gln, lot_ref, profile_2_8, Org, World, GTIN};

fn three_orgs(world: &mut World) -> (Org, Org, Org) {
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let carrier = world.org("carrier", &[Role::CARRIER]);
    let shop = world.org("shop", &[Role::PHARMACY]);
    (maker, carrier, shop)
}

#[test]
fn custodian_creates_a_shipment_of_its_lots() {
    let mut world = World::new();
    let (maker, _, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &["S1"]);
    world.events();
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    let shipment = world.shipment("SH1");
    assert_eq!(shipment.get_status(), ShipmentStatus::PREPARING);
    assert_eq!(shipment.get_custodian_org_id(), "maker");
    assert_eq!(shipment.get_lots(), &[lot_ref(GTIN, "L1")]);
    assert_eq!(shipment.get_profile(), &profile_2_8());
    assert_eq!(world.lot("L1").get_shipment_id(), "SH1");
    assert_eq!(world.events()[0].event_type, "coldchain/shipment-created");
}

#[test]
fn shipment_refusals_name_what_is_wrong() {
    let mut world = World::new();
    let (maker, carrier, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    world.create_lot(&maker, "L2", &[]);
    assert_invalid(
        world.ship(&carrier, "SH1", &shop.site, &["L1"]),
        "custody of maker",
    );
    assert_invalid(
        world.ship(&maker, "SH1", &maker.site, &["L1"]),
        "from one site to another",
    );
    assert_invalid(
        world.ship(&maker, "SH1", &gln(999), &["L1"]),
        "is not registered",
    );
    assert_invalid(
        world.ship(&maker, "SH1", &shop.site, &[]),
        "no lots and no blood units",
    );
    assert_invalid(
        world.ship(&maker, "SH1", &shop.site, &["L1", "L1"]),
        "listed twice",
    );
    assert_invalid(
        world.ship(&maker, "SH1", &shop.site, &["L9"]),
        "L9 is not registered",
    );
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    assert_invalid(
        world.ship(&maker, "SH1", &shop.site, &["L2"]),
        "already exists",
    );
    assert_invalid(
        world.ship(&maker, "SH2", &shop.site, &["L1"]),
        "already in shipment SH1",
    );
    world
        .change_status(&maker.agent, "L2", LotStatus::RECALLED)
        .unwrap();
    assert_invalid(
        world.ship(&maker, "SH3", &shop.site, &["L2"]),
        "RECALLED and cannot be shipped",
    );
    let mut create = CreateShipment::new();
    create.set_shipment_id("SH4".into());
    create.set_from_gln(shop.site.clone());
    create.set_to_gln(maker.site.clone());
    create.set_lots(vec![lot_ref(GTIN, "L2")].into());
    assert_invalid(
        world.custody(&maker.agent, C::create_shipment(create)),
        "belongs to organisation shop",
    );
}

#[test]
fn default_transport_profile_is_the_strictest_of_the_lots() {
    let mut a = profile_2_8();
    let mut b = profile_2_8();
    b.set_name("narrow".into());
    b.set_min_cdeg(300);
    b.set_max_cdeg(700);
    b.set_max_single_high_s(600);
    b.set_max_warnings(0);
    b.set_max_gap_s(300);
    let combined = strictest_profile(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(
        (combined.get_min_cdeg(), combined.get_max_cdeg()),
        (300, 700)
    );
    assert_eq!(combined.get_max_single_high_s(), 600);
    assert_eq!(combined.get_max_warnings(), 50);
    assert_eq!(combined.get_max_gap_s(), 300);
    assert_eq!(combined.get_mkt_limit_cdeg(), 700);
    a.set_min_cdeg(-2_500);
    a.set_max_cdeg(-1_800);
    a.set_has_mkt_limit(false);
    a.set_mkt_limit_cdeg(0);
    assert!(strictest_profile(&[a, b]).is_err());
}

#[test]
fn lots_needing_incompatible_ranges_need_an_explicit_profile() {
    let mut world = World::new();
    let (maker, _, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    let mut frozen = world.create_lot_action("L2", &maker.site, 1, &[]);
    frozen.mut_profile().set_min_cdeg(-2_500);
    frozen.mut_profile().set_max_cdeg(-1_800);
    frozen.mut_profile().set_has_mkt_limit(false);
    frozen.mut_profile().set_mkt_limit_cdeg(0);
    world.registry(&maker.agent, A::create_lot(frozen)).unwrap();
    assert_invalid(
        world.ship(&maker, "SH1", &shop.site, &["L1", "L2"]),
        "do not overlap",
    );
}

fn register_device(world: &mut World, org: &Org, id: &str, due: u32) {
    let mut device = RegisterDevice::new();
    device.set_device_id(id.into());
    device.set_org_id(org.id.clone());
    device.set_model("logger".into());
    device.set_calibration_due_date(due);
    let agent = org.agent.clone();
    world.registry(&agent, A::register_device(device)).unwrap();
}

fn attach(shipment: &str, device: &str) -> C {
    let mut attach = AttachDevice::new();
    attach.set_shipment_id(shipment.into());
    attach.set_device_id(device.into());
    C::attach_device(attach)
}

fn detach(shipment: &str, device: &str) -> C {
    let mut detach = DetachDevice::new();
    detach.set_shipment_id(shipment.into());
    detach.set_device_id(device.into());
    C::detach_device(detach)
}

#[test]
fn loggers_attach_to_one_open_shipment_at_a_time() {
    let mut world = World::new();
    let (maker, carrier, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    world.create_lot(&maker, "L2", &[]);
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    world.ship(&maker, "SH2", &shop.site, &["L2"]).unwrap();
    register_device(&mut world, &carrier, "D1", 0);
    // The device's owner attaches it to someone else's shipment.
    world.custody(&carrier.agent, attach("SH1", "D1")).unwrap();
    assert_eq!(
        world
            .load::<Device>(RecordKind::Device, "D1")
            .get_attached_shipment_id(),
        "SH1"
    );
    assert_eq!(world.shipment("SH1").get_device_ids(), &["D1".to_string()]);
    assert_invalid(
        world.custody(&maker.agent, attach("SH2", "D1")),
        "already attached to shipment SH1",
    );
    assert_invalid(
        world.custody(&shop.agent, detach("SH1", "D1")),
        "neither owns device D1",
    );
    assert_invalid(
        world.custody(&maker.agent, detach("SH2", "D1")),
        "not attached to shipment SH2",
    );
    world.custody(&maker.agent, detach("SH1", "D1")).unwrap();
    assert!(world.shipment("SH1").get_device_ids().is_empty());
    world.custody(&maker.agent, attach("SH2", "D1")).unwrap();
}

#[test]
fn revoked_or_overdue_loggers_cannot_be_attached() {
    let mut world = World::new();
    let (maker, _, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    register_device(&mut world, &maker, "OLD", 20270101);
    assert_invalid(
        world.custody(&maker.agent, attach("SH1", "OLD")),
        "due for calibration on 20270101",
    );
    register_device(&mut world, &maker, "D2", 0);
    let mut revoke = RevokeDevice::new();
    revoke.set_device_id("D2".into());
    revoke.set_reason("broken".into());
    let agent = maker.agent.clone();
    world.registry(&agent, A::revoke_device(revoke)).unwrap();
    assert_invalid(world.custody(&maker.agent, attach("SH1", "D2")), "revoked");
    assert_invalid(
        world.custody(&maker.agent, attach("SH1", "NOPE")),
        "device NOPE is not registered",
    );
}

#[test]
fn cancelling_a_shipment_releases_its_lots_and_loggers() {
    let mut world = World::new();
    let (maker, carrier, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    register_device(&mut world, &maker, "D1", 0);
    world.custody(&maker.agent, attach("SH1", "D1")).unwrap();
    world
        .propose(&maker.agent, "SH1", &carrier.id, &maker.site)
        .unwrap();
    let mut cancel = CancelShipment::new();
    cancel.set_shipment_id("SH1".into());
    cancel.set_reason("order withdrawn".into());
    assert_invalid(
        world.custody(&maker.agent, C::cancel_shipment(cancel.clone())),
        "pending hand-off",
    );
    let mut cancel_handoff = CancelHandoff::new();
    cancel_handoff.set_shipment_id("SH1".into());
    world
        .custody(&maker.agent, C::cancel_handoff(cancel_handoff))
        .unwrap();
    assert_invalid(
        world.custody(&carrier.agent, C::cancel_shipment(cancel.clone())),
        "not of maker",
    );
    world
        .custody(&maker.agent, C::cancel_shipment(cancel.clone()))
        .unwrap();
    assert_eq!(
        world.shipment("SH1").get_status(),
        ShipmentStatus::CANCELLED
    );
    assert_eq!(world.lot("L1").get_shipment_id(), "");
    assert_eq!(
        world
            .load::<Device>(RecordKind::Device, "D1")
            .get_attached_shipment_id(),
        ""
    );
    assert_invalid(
        world.custody(&maker.agent, C::cancel_shipment(cancel)),
        "CANCELLED",
    );
    // The lot can ship again.
    world.ship(&maker, "SH2", &shop.site, &["L1"]).unwrap();
}

#[test]
fn shipment_events_cannot_predate_its_creation() {
    let mut world = World::new();
    let (maker, carrier, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    world.now += 100;
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    world.now -= 50;
    assert_invalid(
        world.propose(&maker.agent, "SH1", &carrier.id, &maker.site),
        "before the shipment's last event",
    );
    register_device(&mut world, &maker, "D1", 0);
    assert_invalid(
        world.custody(&maker.agent, attach("SH1", "D1")),
        "time cannot go backwards",
    );
}

#[test]
fn malformed_custody_payloads_are_invalid_never_panics() {
    use crate::custody::CustodyHandler;
    use crate::memory_context::MemoryContext;
    use crate::registry::testkit::request;
    use crate::registry::MAX_PAYLOAD_BYTES;
    use crate::signing::Signer;
    use protobuf::Message;
    use sawtooth_sdk::processor::handler::TransactionHandler;
    let apply = |payload: Vec<u8>| {
        CustodyHandler::new().apply(
            &request(&Signer::generate(), payload),
            &mut MemoryContext::new(),
        )
    };
    assert_invalid(apply(vec![]), "payload is empty");
    assert_invalid(apply(vec![0x52, 0xff]), "not a valid CustodyPayload");
    assert_invalid(apply(vec![1; MAX_PAYLOAD_BYTES + 1]), "over the limit");
    let mut payload = CustodyPayload::new();
    payload.set_timestamp_s(9);
    assert_invalid(apply(payload.write_to_bytes().unwrap()), "no action");
}

#[test]
fn transaction_spec_uses_exact_addresses_where_the_payload_names_them() {
    use crate::custody::transaction_spec;
    let mut payload = CustodyPayload::new();
    payload.set_timestamp_s(9);
    let mut create = CreateShipment::new();
    create.set_shipment_id("SH1".into());
    create.set_from_gln(gln(1));
    create.set_to_gln(gln(2));
    create.set_lots(vec![lot_ref("9501101530003", "L1")].into());
    payload.action = Some(C::create_shipment(create));
    let spec = transaction_spec(&payload).unwrap();
    let lot = RecordKind::Lot.address(&crate::addressing::goods_key(GTIN, "L1"));
    assert!(spec.outputs.contains(&lot));
    assert!(spec.outputs.contains(&RecordKind::Shipment.address("SH1")));
    assert!(spec.inputs.contains(&RecordKind::Site.address(&gln(1))));
    assert_eq!(spec.family_name, "coldchain-custody");
    assert!(transaction_spec(&CustodyPayload::new()).is_err());
}

fn create_from(id: &str, from_gln: &str, to_gln: &str, lots: &[&str]) -> C {
    let mut create = CreateShipment::new();
    create.set_shipment_id(id.into());
    create.set_from_gln(from_gln.into());
    create.set_to_gln(to_gln.into());
    create.set_lots(lots.iter().map(|lot| lot_ref(GTIN, lot)).collect());
    C::create_shipment(create)
}

fn cancel(id: &str) -> C {
    let mut cancel = CancelShipment::new();
    cancel.set_shipment_id(id.into());
    cancel.set_reason("order withdrawn".into());
    C::cancel_shipment(cancel)
}

/// A blood bank holding O- unit W123427000001 (expires 2027-02-01) and a hospital.
fn bank_and_hospital(world: &mut World) -> (Org, Org) {
    let bank = world.org("bank", &[Role::BLOOD_BANK]);
    let hospital = world.org("hosp", &[Role::HOSPITAL]);
    let site = bank.site.clone();
    world.blood_unit(&bank, "W123427000001", &site, 20270201);
    (bank, hospital)
}

#[test]
fn shipping_a_lot_from_a_site_where_it_is_not_is_refused() {
    let mut world = World::new();
    let (maker, _, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    let depot = world.new_site(&maker);
    assert_invalid(
        world.custody(
            &maker.agent,
            create_from("SH1", &depot, &shop.site, &["L1"]),
        ),
        &format!(
            "lot {GTIN}/L1 is at site {}, not at from_gln {depot}",
            maker.site
        ),
    );
}

#[test]
fn shipping_a_blood_unit_held_by_another_organisation_is_refused() {
    let mut world = World::new();
    let (_, hospital) = bank_and_hospital(&mut world);
    let other = world.org("other", &[Role::HOSPITAL]);
    assert_invalid(
        world.ship_units(
            &hospital,
            "SH1",
            &hospital.site,
            &other.site,
            &["W123427000001"],
        ),
        "blood unit W123427000001 is held by bank, not hosp; only the holder ships it",
    );
}

#[test]
fn shipping_a_blood_unit_out_of_circulation_is_refused() {
    let mut world = World::new();
    let (bank, hospital) = bank_and_hospital(&mut world);
    world.edit_unit("W123427000001", |unit| {
        unit.set_status(LotStatus::DESTROYED)
    });
    assert_invalid(
        world.ship_units(&bank, "SH1", &bank.site, &hospital.site, &["W123427000001"]),
        "blood unit W123427000001 is out of circulation (DESTROYED)",
    );
}

#[test]
fn a_blood_unit_ships_in_one_shipment_at_a_time() {
    let mut world = World::new();
    let (bank, hospital) = bank_and_hospital(&mut world);
    world
        .ship_units(&bank, "SH1", &bank.site, &hospital.site, &["W123427000001"])
        .unwrap();
    assert_invalid(
        world.ship_units(&bank, "SH2", &bank.site, &hospital.site, &["W123427000001"]),
        "blood unit W123427000001 is already in shipment SH1",
    );
}

#[test]
fn shipping_a_blood_unit_from_a_site_where_it_is_not_is_refused() {
    let mut world = World::new();
    let (bank, hospital) = bank_and_hospital(&mut world);
    let depot = world.new_site(&bank);
    assert_invalid(
        world.ship_units(&bank, "SH1", &depot, &hospital.site, &["W123427000001"]),
        &format!(
            "blood unit W123427000001 is at site {}, not at from_gln {depot}",
            bank.site
        ),
    );
}

#[test]
fn shipping_an_expired_blood_unit_is_refused() {
    let mut world = World::new();
    let (bank, hospital) = bank_and_hospital(&mut world);
    world.now += 20 * 86_400; // 2027-02-04, after the unit's expiry
    assert_invalid(
        world.ship_units(&bank, "SH1", &bank.site, &hospital.site, &["W123427000001"]),
        "blood unit W123427000001 expired on 20270201",
    );
}

#[test]
fn a_blood_unit_listed_twice_in_a_shipment_is_refused() {
    let mut world = World::new();
    let (bank, hospital) = bank_and_hospital(&mut world);
    assert_invalid(
        world.ship_units(
            &bank,
            "SH1",
            &bank.site,
            &hospital.site,
            &["W123427000001", "W123427000001"],
        ),
        "blood unit W123427000001 is listed twice",
    );
}

#[test]
fn shipping_an_unregistered_blood_unit_is_refused() {
    let mut world = World::new();
    let (bank, hospital) = bank_and_hospital(&mut world);
    assert_invalid(
        world.ship_units(&bank, "SH1", &bank.site, &hospital.site, &["W123427000099"]),
        "blood unit W123427000099 is not registered",
    );
}

#[test]
fn a_shipment_of_more_than_1000_lots_and_units_is_refused() {
    let mut world = World::new();
    let (maker, _, shop) = three_orgs(&mut world);
    let lots: Vec<String> = (0..=1_000).map(|i| format!("L{i}")).collect();
    let refs: Vec<&str> = lots.iter().map(String::as_str).collect();
    assert_invalid(
        world.ship(&maker, "SH1", &shop.site, &refs),
        "1001 lots and units is more than 1000 per shipment; split it",
    );
}

#[test]
fn an_explicit_transport_profile_must_be_usable() {
    let mut world = World::new();
    let (maker, _, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    let mut profile = profile_2_8();
    profile.set_min_cdeg(900);
    let mut create = CreateShipment::new();
    create.set_shipment_id("SH1".into());
    create.set_from_gln(maker.site.clone());
    create.set_to_gln(shop.site.clone());
    create.set_lots(vec![lot_ref(GTIN, "L1")].into());
    create.set_profile(profile);
    assert_invalid(
        world.custody(&maker.agent, C::create_shipment(create)),
        "storage profile min_cdeg 900 must be below max_cdeg 800",
    );
    assert_eq!(world.lot("L1").get_shipment_id(), "");
}

#[test]
fn a_delivered_shipment_cannot_be_cancelled() {
    let mut world = World::new();
    let (maker, carrier, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    world.deliver(&maker, &carrier, &shop, "SH1", "L1");
    assert_invalid(
        world.custody(&shop.agent, cancel("SH1")),
        "shipment SH1 is DELIVERED; only an open shipment can be cancelled",
    );
}

#[test]
fn loggers_do_not_attach_to_closed_shipments() {
    let mut world = World::new();
    let (maker, _, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    world.custody(&maker.agent, cancel("SH1")).unwrap();
    register_device(&mut world, &maker, "D1", 0);
    assert_invalid(
        world.custody(&maker.agent, attach("SH1", "D1")),
        "shipment SH1 is CANCELLED; loggers attach to open shipments only",
    );
}

#[test]
fn a_shipment_whose_lot_is_missing_from_state_is_refused() {
    let mut world = World::new();
    let (maker, _, shop) = three_orgs(&mut world);
    world.create_lot(&maker, "L1", &[]);
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    world.forget(RecordKind::Lot, &crate::addressing::goods_key(GTIN, "L1"));
    assert_invalid(
        world.custody(&maker.agent, cancel("SH1")),
        &format!("lot {GTIN}/L1 of shipment SH1 is missing from state"),
    );
}

#[test]
fn a_shipment_whose_blood_unit_is_missing_from_state_is_refused() {
    let mut world = World::new();
    let (bank, hospital) = bank_and_hospital(&mut world);
    world
        .ship_units(&bank, "SH1", &bank.site, &hospital.site, &["W123427000001"])
        .unwrap();
    world.forget(RecordKind::BloodUnit, "W123427000001");
    assert_invalid(
        world.custody(&bank.agent, cancel("SH1")),
        "blood unit W123427000001 of shipment SH1 is missing from state",
    );
}
