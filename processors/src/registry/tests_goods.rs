//! Rules for lots, packs, lot status changes and blood units.
use super::testkit::{assert_invalid, World, GTIN, T0};
use crate::addressing::{goods_key, RecordKind};
use crate::messages::coldchain::RegistryPayload_oneof_action as A;
use crate::messages::coldchain::*;
use crate::registry::{check_lot_transition, check_profile, mark_lot_compromised};

#[test]
fn manufacturer_registers_a_lot_with_its_packs() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let action = world.create_lot_action("L1", &maker.site, 3, &["S1", "S2"]);
    world.registry(&maker.agent, A::create_lot(action)).unwrap();
    let lot = world.lot("L1");
    assert_eq!(lot.get_status(), LotStatus::ACTIVE);
    assert_eq!(lot.get_custodian_org_id(), "maker");
    assert_eq!(lot.get_manufacturer_org_id(), "maker");
    assert_eq!(lot.get_history().len(), 1);
    assert_eq!(
        lot.get_history()[0].get_by_public_key(),
        maker.agent.public_key()
    );
    let pack: Pack = world.load(RecordKind::Pack, &goods_key(GTIN, "S2"));
    assert_eq!(pack.get_lot(), "L1");
    assert!(!pack.get_dispensed());
}

#[test]
fn short_gtins_are_stored_as_gtin14() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let mut action = world.create_lot_action("L1", &maker.site, 1, &[]);
    action.set_gtin("9501101530003".into());
    world.registry(&maker.agent, A::create_lot(action)).unwrap();
    assert_eq!(world.lot("L1").get_gtin(), GTIN);
}

#[test]
fn only_manufacturers_register_lots() {
    let mut world = World::new();
    let shop = world.org("shop", &[Role::PHARMACY]);
    let action = world.create_lot_action("L1", &shop.site, 1, &[]);
    assert_invalid(
        world.registry(&shop.agent, A::create_lot(action)),
        "MANUFACTURER",
    );
}

#[test]
fn lot_registration_refusals_name_the_bad_value() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let other = world.org("other", &[Role::MANUFACTURER]);
    let base = world.create_lot_action("L1", &maker.site, 2, &["S1"]);
    type Change = Box<dyn Fn(&mut CreateLot)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|a| a.set_gtin("09501101530004".into())),
            "expected 3",
        ),
        (Box::new(|a| a.set_lot("bad lot".into())), "bad lot"),
        (
            Box::new(|a| a.set_expiry_date(20270114)),
            "before the payload day",
        ),
        (Box::new(|a| a.set_expiry_date(20271340)), "20271340"),
        (Box::new(|a| a.set_quantity(0)), "quantity is 0"),
        (
            Box::new(|a| a.set_serials(vec!["S1".into(), "S1".into()].into())),
            "S1 appears twice",
        ),
        (
            Box::new(|a| a.set_serials(vec!["S1".into(), "S2".into(), "S3".into()].into())),
            "more serials than packs",
        ),
        (
            Box::new(|a| a.set_serials(vec!["S/1".into()].into())),
            "S/1",
        ),
        (Box::new(|a| a.clear_profile()), "profile is missing"),
        (
            Box::new(|a| a.mut_profile().set_min_cdeg(900)),
            "must be below",
        ),
        (
            Box::new(|a| a.mut_profile().set_mkt_limit_cdeg(2_500)),
            "MKT limit",
        ),
    ];
    for (change, fragment) in cases {
        let mut action = base.clone();
        change(&mut action);
        assert_invalid(
            world.registry(&maker.agent, A::create_lot(action)),
            fragment,
        );
    }
    let mut foreign_site = base.clone();
    foreign_site.set_site_gln(other.site.clone());
    assert_invalid(
        world.registry(&maker.agent, A::create_lot(foreign_site)),
        "belongs to organisation other",
    );
}

#[test]
fn lots_and_serials_are_unique() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    world.create_lot(&maker, "L1", &["S1"]);
    let again = world.create_lot_action("L1", &maker.site, 1, &[]);
    assert_invalid(
        world.registry(&maker.agent, A::create_lot(again)),
        "already exists",
    );
    let reuse = world.create_lot_action("L2", &maker.site, 1, &["S1"]);
    assert_invalid(
        world.registry(&maker.agent, A::create_lot(reuse)),
        "already exists in lot L1",
    );
}

#[test]
fn inspector_quarantines_and_releases_with_history_and_events() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let inspection = world.org("insp", &[Role::INSPECTOR]);
    world.create_lot(&maker, "L1", &[]);
    world.events();
    world.now += 60;
    world
        .change_status(&inspection.agent, "L1", LotStatus::QUARANTINED)
        .unwrap();
    world.now += 60;
    world
        .change_status(&inspection.agent, "L1", LotStatus::ACTIVE)
        .unwrap();
    let lot = world.lot("L1");
    assert_eq!(lot.get_status(), LotStatus::ACTIVE);
    let last = &lot.get_history()[2];
    assert_eq!(last.get_from(), LotStatus::QUARANTINED);
    assert_eq!(last.get_to(), LotStatus::ACTIVE);
    assert_eq!(last.get_at_s(), T0 + 120);
    assert_eq!(last.get_reason(), "test");
    assert_eq!(last.get_by_public_key(), inspection.agent.public_key());
    let events = world.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type, "coldchain/lot-status");
    assert!(events[0]
        .attributes
        .contains(&("to".to_string(), "QUARANTINED".to_string())));
}

#[test]
fn manufacturers_cannot_quarantine_and_inspectors_cannot_recall() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let inspection = world.org("insp", &[Role::INSPECTOR]);
    world.create_lot(&maker, "L1", &[]);
    assert_invalid(
        world.change_status(&maker.agent, "L1", LotStatus::QUARANTINED),
        "INSPECTOR or REGULATOR",
    );
    assert_invalid(
        world.change_status(&inspection.agent, "L1", LotStatus::RECALLED),
        "MANUFACTURER agent of maker",
    );
}

#[test]
fn only_the_lots_own_manufacturer_or_a_regulator_recalls() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let rival = world.org("rival", &[Role::MANUFACTURER]);
    let fda = world.org("fda", &[Role::REGULATOR]);
    world.create_lot(&maker, "L1", &[]);
    world.create_lot(&maker, "L2", &[]);
    assert_invalid(
        world.change_status(&rival.agent, "L1", LotStatus::RECALLED),
        "MANUFACTURER agent of maker",
    );
    world
        .change_status(&maker.agent, "L1", LotStatus::RECALLED)
        .unwrap();
    world
        .change_status(&fda.agent, "L2", LotStatus::RECALLED)
        .unwrap();
    assert_eq!(world.lot("L2").get_status(), LotStatus::RECALLED);
}

#[test]
fn illegal_transitions_are_refused() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let fda = world.org("fda", &[Role::REGULATOR]);
    world.create_lot(&maker, "L1", &[]);
    world
        .change_status(&maker.agent, "L1", LotStatus::RECALLED)
        .unwrap();
    assert_invalid(
        world.change_status(&fda.agent, "L1", LotStatus::ACTIVE),
        "a RECALLED lot cannot become ACTIVE",
    );
    assert_invalid(
        world.change_status(&fda.agent, "L1", LotStatus::RECALLED),
        "already RECALLED",
    );
    world
        .change_status(&maker.agent, "L1", LotStatus::DESTROYED)
        .unwrap();
    assert_invalid(
        world.change_status(&fda.agent, "L1", LotStatus::QUARANTINED),
        "DESTROYED; nothing can change",
    );
    world.create_lot(&maker, "L2", &[]);
    assert_invalid(
        world.change_status(&fda.agent, "L2", LotStatus::COMPROMISED),
        "sensor family",
    );
    assert_invalid(
        world.change_status(&fda.agent, "L2", LotStatus::DISPENSED),
        "`coldchain dispense`",
    );
}

#[test]
fn destroy_is_for_the_custodian_or_a_regulator() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let shop = world.org("shop", &[Role::PHARMACY]);
    world.create_lot(&maker, "L1", &[]);
    assert_invalid(
        world.change_status(&shop.agent, "L1", LotStatus::DESTROYED),
        "custodian maker",
    );
    world
        .change_status(&maker.agent, "L1", LotStatus::DESTROYED)
        .unwrap();
}

#[test]
fn status_change_cannot_go_back_in_time() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    world.create_lot(&maker, "L1", &[]);
    world.now -= 10;
    assert_invalid(
        world.change_status(&maker.agent, "L1", LotStatus::RECALLED),
        "time cannot go backwards",
    );
}

#[test]
fn transition_table_matches_the_documented_rules() {
    use LotStatus::*;
    let all = [
        ACTIVE,
        QUARANTINED,
        RECALLED,
        COMPROMISED,
        DISPENSED,
        DESTROYED,
    ];
    let allowed: &[(LotStatus, LotStatus)] = &[
        (ACTIVE, QUARANTINED),
        (COMPROMISED, QUARANTINED),
        (QUARANTINED, ACTIVE),
        (ACTIVE, RECALLED),
        (QUARANTINED, RECALLED),
        (COMPROMISED, RECALLED),
        (DISPENSED, RECALLED),
        (ACTIVE, DESTROYED),
        (QUARANTINED, DESTROYED),
        (COMPROMISED, DESTROYED),
        (RECALLED, DESTROYED),
    ];
    for from in all {
        for to in all {
            assert_eq!(
                check_lot_transition(from, to).is_ok(),
                allowed.contains(&(from, to)),
                "{from:?} -> {to:?}"
            );
        }
    }
}

#[test]
fn sensor_marks_active_and_quarantined_lots_compromised_once() {
    let mut lot = Lot::new();
    lot.set_status(LotStatus::ACTIVE);
    assert!(mark_lot_compromised(
        &mut lot,
        "02aa",
        10,
        "cumulative high budget used up"
    ));
    assert_eq!(lot.get_status(), LotStatus::COMPROMISED);
    assert_eq!(
        lot.get_history()[0].get_reason(),
        "cumulative high budget used up"
    );
    assert!(!mark_lot_compromised(&mut lot, "02aa", 11, "again"));
    assert_eq!(lot.get_history().len(), 1);
    let mut held = Lot::new();
    held.set_status(LotStatus::QUARANTINED);
    assert!(mark_lot_compromised(&mut held, "02aa", 12, "excursion"));
    let mut recalled = Lot::new();
    recalled.set_status(LotStatus::RECALLED);
    assert!(!mark_lot_compromised(
        &mut recalled,
        "02aa",
        12,
        "excursion"
    ));
    assert_eq!(recalled.get_status(), LotStatus::RECALLED);
}

#[test]
fn profile_sanity_rules() {
    let mut profile = super::testkit::profile_2_8();
    assert!(check_profile(&profile).is_ok());
    profile.set_has_hard_limits(true);
    profile.set_hard_min_cdeg(300);
    profile.set_hard_max_cdeg(1_000);
    assert!(check_profile(&profile).unwrap_err().contains("enclose"));
    profile.set_has_hard_limits(false);
    assert!(check_profile(&profile)
        .unwrap_err()
        .contains("has_hard_limits is false"));
    let mut hot = super::testkit::profile_2_8();
    hot.set_max_cdeg(20_000);
    assert!(check_profile(&hot).unwrap_err().contains("outside"));
    let mut unnamed = super::testkit::profile_2_8();
    unnamed.set_name(" ".into());
    assert!(check_profile(&unnamed).is_err());
}

fn blood_unit(donation_id: &str, site: &str) -> RegisterBloodUnit {
    let mut unit = RegisterBloodUnit::new();
    unit.set_donation_id(donation_id.into());
    unit.set_component(BloodComponent::RED_CELLS);
    unit.set_abo(AboGroup::O);
    unit.set_rh(RhD::NEGATIVE);
    unit.set_volume_ml(280);
    unit.set_expiry_date(20270201);
    unit.set_site_gln(site.into());
    unit
}

#[test]
fn blood_banks_register_blood_units() {
    let mut world = World::new();
    let bank = world.org("bank", &[Role::BLOOD_BANK]);
    let hospital = world.org("hosp", &[Role::HOSPITAL]);
    world
        .registry(
            &bank.agent,
            A::register_blood_unit(blood_unit("W123427000001", &bank.site)),
        )
        .unwrap();
    let unit: BloodUnit = world.load(RecordKind::BloodUnit, "W123427000001");
    assert_eq!(unit.get_holder_org_id(), "bank");
    assert_eq!(unit.get_status(), LotStatus::ACTIVE);
    assert_invalid(
        world.registry(
            &bank.agent,
            A::register_blood_unit(blood_unit("W123427000001", &bank.site)),
        ),
        "already registered",
    );
    assert_invalid(
        world.registry(
            &hospital.agent,
            A::register_blood_unit(blood_unit("W123427000002", &hospital.site)),
        ),
        "BLOOD_BANK",
    );
    assert_invalid(
        world.registry(
            &bank.agent,
            A::register_blood_unit(blood_unit("W1234", &bank.site)),
        ),
        "W1234",
    );
    let mut expired = blood_unit("W123427000003", &bank.site);
    expired.set_expiry_date(20270101);
    assert_invalid(
        world.registry(&bank.agent, A::register_blood_unit(expired)),
        "expired unit",
    );
    let mut untyped = blood_unit("W123427000004", &bank.site);
    untyped.set_rh(RhD::RH_UNSET);
    assert_invalid(
        world.registry(&bank.agent, A::register_blood_unit(untyped)),
        "RhD",
    );
}

#[test]
fn transaction_spec_lists_packs_exactly_or_by_prefix_for_big_lots() {
    use crate::registry::transaction_spec;
    let world = World::new();
    let small = world.create_lot_action("L1", "0000000000000", 2, &["S1", "S2"]);
    let mut payload = RegistryPayload::new();
    payload.action = Some(A::create_lot(small));
    let spec = transaction_spec(&payload).unwrap();
    assert!(spec
        .outputs
        .contains(&RecordKind::Pack.address(&goods_key(GTIN, "S2"))));
    let serials: Vec<String> = (0..300).map(|i| format!("S{i}")).collect();
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    let big = world.create_lot_action("L2", "0000000000000", 300, &refs);
    payload.action = Some(A::create_lot(big));
    let spec = transaction_spec(&payload).unwrap();
    assert!(spec.outputs.contains(&RecordKind::Pack.address_prefix()));
    assert_eq!(spec.outputs.len(), 2);
    payload.action = None;
    assert!(transaction_spec(&payload).is_err());
}

#[test]
fn creating_a_lot_needs_no_more_than_the_spec_allows_for_big_lots() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let serials: Vec<String> = (0..300).map(|i| format!("S{i}")).collect();
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    world.create_lot(&maker, "BIG", &refs);
    assert_eq!(world.lot("BIG").get_serials().len(), 300);
}

#[test]
fn a_profile_without_a_name_is_refused_saying_so() {
    let mut unnamed = super::testkit::profile_2_8();
    unnamed.set_name(" ".into());
    assert_eq!(
        check_profile(&unnamed).unwrap_err(),
        "storage profile needs a name of 1-100 characters"
    );
}

#[test]
fn a_profile_with_an_mkt_limit_but_no_mkt_flag_is_refused() {
    let mut profile = super::testkit::profile_2_8();
    profile.set_has_mkt_limit(false);
    assert!(check_profile(&profile)
        .unwrap_err()
        .contains("sets mkt_limit_cdeg but has_mkt_limit is false"));
}

#[test]
fn a_status_change_that_names_no_status_is_refused() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    world.create_lot(&maker, "L1", &[]);
    assert_invalid(
        world.change_status(&maker.agent, "L1", LotStatus::LOT_STATUS_UNSET),
        "status is unset; name the new status",
    );
}

#[test]
fn more_serials_than_one_transaction_may_carry_are_refused() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let serials: Vec<String> = (0..=10_000).map(|i| format!("S{i}")).collect();
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    let action = world.create_lot_action("HUGE", &maker.site, 20_000, &refs);
    assert_invalid(
        world.registry(&maker.agent, A::create_lot(action)),
        "10001 serials is more than 10000 per transaction; split the lot registration",
    );
}

#[test]
fn a_status_change_of_an_unregistered_lot_is_refused() {
    let mut world = World::new();
    let fda = world.org("fda", &[Role::REGULATOR]);
    assert_invalid(
        world.change_status(&fda.agent, "L9", LotStatus::RECALLED),
        &format!("lot L9 of GTIN {GTIN} is not registered"),
    );
}

#[test]
fn destroying_a_lot_that_is_in_a_shipment_is_refused() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let shop = world.org("shop", &[Role::PHARMACY]);
    world.create_lot(&maker, "L1", &[]);
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    assert_invalid(
        world.change_status(&maker.agent, "L1", LotStatus::DESTROYED),
        &format!(
            "lot {GTIN}/L1 is in shipment SH1; deliver or cancel the shipment before destroying it"
        ),
    );
    assert_eq!(world.lot("L1").get_status(), LotStatus::ACTIVE);
}

#[test]
fn a_blood_unit_without_a_component_is_refused() {
    let mut world = World::new();
    let bank = world.org("bank", &[Role::BLOOD_BANK]);
    let mut unit = blood_unit("W123427000001", &bank.site);
    unit.set_component(BloodComponent::BLOOD_COMPONENT_UNSET);
    assert_invalid(
        world.registry(&bank.agent, A::register_blood_unit(unit)),
        "component is unset; name the blood component",
    );
}

#[test]
fn a_blood_unit_volume_outside_1_to_1000_ml_is_refused() {
    let mut world = World::new();
    let bank = world.org("bank", &[Role::BLOOD_BANK]);
    for volume in [0, 1_001] {
        let mut unit = blood_unit("W123427000001", &bank.site);
        unit.set_volume_ml(volume);
        assert_invalid(
            world.registry(&bank.agent, A::register_blood_unit(unit)),
            &format!("volume_ml {volume} must be 1-1000"),
        );
    }
}
