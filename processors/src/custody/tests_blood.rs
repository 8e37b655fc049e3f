//! Rules for emergency blood requests, offers, acceptance and delivery.
use crate::addressing::RecordKind;
use crate::blood;
use crate::messages::coldchain::CustodyPayload_oneof_action as C;
use crate::messages::coldchain::RegistryPayload_oneof_action as A;
use crate::messages::coldchain::*;
use crate::registry::testkit::{assert_invalid, Org, World, T0};

struct Blood {
    world: World,
    bank: Org,
    hospital: Org,
}

fn unit(world: &mut World, bank: &Org, id: &str, abo: AboGroup, rh: RhD, expiry: u32) {
    let mut unit = RegisterBloodUnit::new();
    unit.set_donation_id(id.into());
    unit.set_component(BloodComponent::RED_CELLS);
    unit.set_abo(abo);
    unit.set_rh(rh);
    unit.set_volume_ml(280);
    unit.set_expiry_date(expiry);
    unit.set_site_gln(bank.site.clone());
    let agent = bank.agent.clone();
    world
        .registry(&agent, A::register_blood_unit(unit))
        .unwrap();
}

/// A bank holding O- units U1, U2, U3 and A+ unit U4; a hospital that filed R1
/// for 2 red-cell units for an A+ patient, needed in 2 hours.
fn setup() -> Blood {
    let mut world = World::new();
    let bank = world.org("bank", &[Role::BLOOD_BANK]);
    let hospital = world.org("hosp", &[Role::HOSPITAL]);
    for id in ["W123427000001", "W123427000002", "W123427000003"] {
        unit(&mut world, &bank, id, AboGroup::O, RhD::NEGATIVE, 20270201);
    }
    unit(
        &mut world,
        &bank,
        "W123427000004",
        AboGroup::A,
        RhD::POSITIVE,
        20270201,
    );
    world
        .custody(
            &hospital.agent,
            C::file_emergency_request(request("R1", &hospital.site, AboGroup::A, RhD::POSITIVE)),
        )
        .unwrap();
    world.events();
    Blood {
        world,
        bank,
        hospital,
    }
}

fn request(id: &str, gln: &str, abo: AboGroup, rh: RhD) -> FileEmergencyRequest {
    let mut request = FileEmergencyRequest::new();
    request.set_request_id(id.into());
    request.set_component(BloodComponent::RED_CELLS);
    request.set_abo(abo);
    request.set_rh(rh);
    request.set_units(2);
    request.set_needed_by_s(T0 + 7_200);
    request.set_priority(Priority::EMERGENCY);
    request.set_hospital_gln(gln.into());
    request
}

fn offer(request: &str, offer: &str, units: &[&str]) -> C {
    let mut action = OfferBloodUnits::new();
    action.set_request_id(request.into());
    action.set_offer_id(offer.into());
    action.set_donation_ids(units.iter().map(|u| u.to_string()).collect());
    C::offer_blood_units(action)
}

fn accept(request: &str, offer: &str, shipment: &str) -> C {
    let mut action = AcceptBloodOffer::new();
    action.set_request_id(request.into());
    action.set_offer_id(offer.into());
    action.set_shipment_id(shipment.into());
    C::accept_blood_offer(action)
}

fn confirm(request: &str) -> C {
    let mut action = ConfirmBloodDelivery::new();
    action.set_request_id(request.into());
    C::confirm_blood_delivery(action)
}

fn unit_record(world: &World, id: &str) -> BloodUnit {
    world.load(RecordKind::BloodUnit, id)
}

#[test]
fn emergency_transfer_from_request_to_delivery() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world.now += 300;
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    assert_eq!(unit_record(&world, "W123427000001").get_offered_in(), "O1");
    world.now += 60;
    world
        .custody(&hospital.agent, accept("R1", "O1", "BSH1"))
        .unwrap();
    let shipment = world.shipment("BSH1");
    assert_eq!(shipment.get_custodian_org_id(), "bank");
    assert_eq!(shipment.get_from_gln(), bank.site);
    assert_eq!(shipment.get_to_gln(), hospital.site);
    assert_eq!(shipment.get_blood_request_id(), "R1");
    assert_eq!(
        shipment.get_profile(),
        &blood::transport_profile(BloodComponent::RED_CELLS).unwrap()
    );
    let request: EmergencyRequest = world.load(RecordKind::EmergencyRequest, "R1");
    assert_eq!(request.get_status(), RequestStatus::OFFER_ACCEPTED);
    assert_eq!(
        unit_record(&world, "W123427000001").get_shipment_id(),
        "BSH1"
    );
    assert_invalid(
        world.custody(&hospital.agent, confirm("R1")),
        "not delivered",
    );
    world.now += 600;
    world
        .propose(&bank.agent, "BSH1", "hosp", &hospital.site)
        .unwrap();
    world.now += 1_200;
    // Confirming delivery accepts the pending hand-off at the hospital.
    world.custody(&hospital.agent, confirm("R1")).unwrap();
    let request: EmergencyRequest = world.load(RecordKind::EmergencyRequest, "R1");
    assert_eq!(request.get_status(), RequestStatus::FULFILLED);
    assert_eq!(request.get_request_to_delivery_s(), 300 + 60 + 600 + 1_200);
    assert_eq!(
        world.shipment("BSH1").get_status(),
        ShipmentStatus::DELIVERED
    );
    let delivered = unit_record(&world, "W123427000001");
    assert!(delivered.get_transfused_or_delivered());
    assert_eq!(delivered.get_holder_org_id(), "hosp");
    let types: Vec<String> = world.events().into_iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            "coldchain/blood-offer",
            "coldchain/blood-offer-accepted",
            "coldchain/handoff-proposed",
            "coldchain/handoff-accepted",
            "coldchain/blood-delivered"
        ]
    );
}

#[test]
fn offers_must_be_compatible_in_date_and_of_the_requested_count() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    assert_invalid(
        world.custody(&bank.agent, offer("R1", "O1", &["W123427000001"])),
        "names 1 units but request R1 asks for 2",
    );
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000001"]),
        ),
        "offered twice",
    );
    world
        .custody(
            &hospital.agent,
            C::file_emergency_request(request("R2", &hospital.site, AboGroup::O, RhD::NEGATIVE)),
        )
        .unwrap();
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R2", "O2", &["W123427000001", "W123427000004"]),
        ),
        "(A+) is not compatible with the patient's O-",
    );
    let mut late = request("R3", &hospital.site, AboGroup::O, RhD::NEGATIVE);
    late.set_needed_by_s(1_801_000_000); // 2027-01-26 ... still before expiry
    world
        .custody(&hospital.agent, C::file_emergency_request(late))
        .unwrap();
    let mut later = request("R4", &hospital.site, AboGroup::O, RhD::NEGATIVE);
    later.set_needed_by_s(1_803_000_000); // 2027-02-18: after the units expire
    world
        .custody(&hospital.agent, C::file_emergency_request(later))
        .unwrap();
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R4", "O4", &["W123427000001", "W123427000002"]),
        ),
        "expires on 20270201, before the day it is needed",
    );
}

#[test]
fn a_unit_is_offered_to_one_request_at_a_time_and_freed_when_another_offer_wins() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    let other_bank = world.org("bank2", &[Role::BLOOD_BANK]);
    unit(
        &mut world,
        &other_bank,
        "X123427000001",
        AboGroup::A,
        RhD::POSITIVE,
        20270201,
    );
    unit(
        &mut world,
        &other_bank,
        "X123427000002",
        AboGroup::A,
        RhD::NEGATIVE,
        20270201,
    );
    world
        .custody(
            &hospital.agent,
            C::file_emergency_request(request("R2", &hospital.site, AboGroup::AB, RhD::POSITIVE)),
        )
        .unwrap();
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R2", "O2", &["W123427000001", "W123427000003"]),
        ),
        "already offered in O1",
    );
    world
        .custody(
            &other_bank.agent,
            offer("R1", "O3", &["X123427000001", "X123427000002"]),
        )
        .unwrap();
    world
        .custody(&hospital.agent, accept("R1", "O3", "BSH1"))
        .unwrap();
    // The losing offer's units are free again.
    assert_eq!(unit_record(&world, "W123427000001").get_offered_in(), "");
    world
        .custody(
            &bank.agent,
            offer("R2", "O2", &["W123427000001", "W123427000003"]),
        )
        .unwrap();
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R1", "O5", &["W123427000002", "W123427000003"]),
        ),
        "no longer OPEN",
    );
}

#[test]
fn only_blood_banks_offer_only_units_they_hold_and_only_the_requester_accepts() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    let other_hospital = world.org("hosp2", &[Role::HOSPITAL, Role::BLOOD_BANK]);
    assert_invalid(
        world.custody(
            &hospital.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        ),
        "BLOOD_BANK",
    );
    assert_invalid(
        world.custody(
            &other_hospital.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        ),
        "held by bank, not by hosp2",
    );
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    assert_invalid(
        world.custody(&other_hospital.agent, accept("R1", "O1", "BSH1")),
        "not of hosp",
    );
    assert_invalid(
        world.custody(&hospital.agent, accept("R1", "O9", "BSH1")),
        "O9 does not exist",
    );
}

#[test]
fn compromised_units_cannot_be_offered() {
    let Blood {
        mut world, bank, ..
    } = setup();
    let mut record = ThermalRecord::new();
    record.set_compromised(true);
    world.context.put(
        &RecordKind::GoodsThermal.address("W123427000002"),
        protobuf::Message::write_to_bytes(&record).unwrap(),
    );
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        ),
        "cold-chain record is compromised",
    );
}

#[test]
fn requests_are_filed_by_hospitals_with_complete_details() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    assert_invalid(
        world.custody(
            &bank.agent,
            C::file_emergency_request(request("R9", &bank.site, AboGroup::O, RhD::NEGATIVE)),
        ),
        "HOSPITAL",
    );
    let mut past = request("R9", &hospital.site, AboGroup::O, RhD::NEGATIVE);
    past.set_needed_by_s(T0 - 1);
    assert_invalid(
        world.custody(&hospital.agent, C::file_emergency_request(past)),
        "needed_by_s",
    );
    let mut none = request("R9", &hospital.site, AboGroup::O, RhD::NEGATIVE);
    none.set_units(0);
    assert_invalid(
        world.custody(&hospital.agent, C::file_emergency_request(none)),
        "units 0",
    );
    let untyped = request("R9", &hospital.site, AboGroup::ABO_UNSET, RhD::NEGATIVE);
    assert_invalid(
        world.custody(&hospital.agent, C::file_emergency_request(untyped)),
        "must all be set",
    );
    assert_invalid(
        world.custody(
            &hospital.agent,
            C::file_emergency_request(request("R1", &hospital.site, AboGroup::O, RhD::NEGATIVE)),
        ),
        "already exists",
    );
}

#[test]
fn offers_accepts_and_deliveries_for_an_unknown_request_are_refused() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R9", "O1", &["W123427000001", "W123427000002"]),
        ),
        "emergency request R9 does not exist",
    );
    assert_invalid(
        world.custody(&hospital.agent, accept("R9", "O1", "BSH1")),
        "emergency request R9 does not exist",
    );
    assert_invalid(
        world.custody(&hospital.agent, confirm("R9")),
        "emergency request R9 does not exist",
    );
}

#[test]
fn a_request_for_more_than_50_units_is_refused() {
    let Blood {
        mut world,
        hospital,
        ..
    } = setup();
    let mut many = request("R9", &hospital.site, AboGroup::O, RhD::NEGATIVE);
    many.set_units(51);
    assert_invalid(
        world.custody(&hospital.agent, C::file_emergency_request(many)),
        "units 51 must be 1-50",
    );
}

#[test]
fn a_request_without_a_priority_is_refused() {
    let Blood {
        mut world,
        hospital,
        ..
    } = setup();
    let mut unprioritised = request("R9", &hospital.site, AboGroup::O, RhD::NEGATIVE);
    unprioritised.set_priority(Priority::PRIORITY_UNSET);
    assert_invalid(
        world.custody(&hospital.agent, C::file_emergency_request(unprioritised)),
        "priority is unset; use ROUTINE, URGENT or EMERGENCY",
    );
}

#[test]
fn units_of_another_component_cannot_be_offered() {
    let Blood {
        mut world, bank, ..
    } = setup();
    world.edit_unit("W123427000002", |unit| {
        unit.set_component(BloodComponent::PLATELETS)
    });
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        ),
        "blood unit W123427000002 is PLATELETS but the request is for RED_CELLS",
    );
}

#[test]
fn units_that_are_not_active_cannot_be_offered() {
    let Blood {
        mut world, bank, ..
    } = setup();
    world.edit_unit("W123427000002", |unit| {
        unit.set_status(LotStatus::QUARANTINED)
    });
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        ),
        "blood unit W123427000002 is QUARANTINED; only ACTIVE units with an intact cold chain may be offered",
    );
}

#[test]
fn units_already_in_a_shipment_cannot_be_offered() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world
        .ship_units(&bank, "SH1", &bank.site, &hospital.site, &["W123427000002"])
        .unwrap();
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        ),
        "blood unit W123427000002 is already shipped or delivered",
    );
}

#[test]
fn an_offer_id_is_used_once() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world
        .custody(
            &hospital.agent,
            C::file_emergency_request(request("R2", &hospital.site, AboGroup::AB, RhD::POSITIVE)),
        )
        .unwrap();
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R2", "O1", &["W123427000003", "W123427000004"]),
        ),
        "blood offer O1 already exists; choose another offer id",
    );
}

#[test]
fn offering_an_unregistered_unit_is_refused() {
    let Blood {
        mut world, bank, ..
    } = setup();
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000099"]),
        ),
        "blood unit W123427000099 is not registered",
    );
}

#[test]
fn the_units_of_one_offer_come_from_one_site() {
    let Blood {
        mut world, bank, ..
    } = setup();
    let depot = world.new_site(&bank);
    world.blood_unit(&bank, "W123427000005", &depot, 20270201);
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000005"]),
        ),
        &format!(
            "blood unit W123427000005 is at site {depot} but the others are at {}; offer units from one site",
            bank.site
        ),
    );
    assert_eq!(unit_record(&world, "W123427000001").get_offered_in(), "");
}

#[test]
fn an_offer_cannot_predate_the_request() {
    let Blood {
        mut world, bank, ..
    } = setup();
    world.now -= 1;
    assert_invalid(
        world.custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        ),
        "before the request was filed",
    );
}

#[test]
fn accepting_an_offer_made_for_another_request_is_refused() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world
        .custody(
            &hospital.agent,
            C::file_emergency_request(request("R2", &hospital.site, AboGroup::AB, RhD::POSITIVE)),
        )
        .unwrap();
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    assert_invalid(
        world.custody(&hospital.agent, accept("R2", "O1", "BSH1")),
        "blood offer O1 answers request R1, not R2",
    );
}

#[test]
fn accepting_an_offer_into_an_existing_shipment_id_is_refused() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world
        .ship_units(
            &bank,
            "BSH1",
            &bank.site,
            &hospital.site,
            &["W123427000003"],
        )
        .unwrap();
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    assert_invalid(
        world.custody(&hospital.agent, accept("R1", "O1", "BSH1")),
        "shipment BSH1 already exists; choose another shipment id",
    );
}

#[test]
fn accepting_an_offer_cannot_predate_it() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world.now += 300;
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    world.now -= 1;
    assert_invalid(
        world.custody(&hospital.agent, accept("R1", "O1", "BSH1")),
        "before the offer was made",
    );
}

#[test]
fn an_offered_unit_that_is_no_longer_available_cannot_be_accepted() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    world.edit_unit("W123427000002", |unit| {
        unit.set_status(LotStatus::COMPROMISED)
    });
    assert_invalid(
        world.custody(&hospital.agent, accept("R1", "O1", "BSH1")),
        "blood unit W123427000002 is no longer available as offered (status COMPROMISED, holder bank)",
    );
    let request: EmergencyRequest = world.load(RecordKind::EmergencyRequest, "R1");
    assert_eq!(request.get_status(), RequestStatus::OPEN);
}

#[test]
fn delivery_cannot_be_confirmed_before_an_offer_is_accepted() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    assert_invalid(
        world.custody(&hospital.agent, confirm("R1")),
        "emergency request R1 is OPEN; delivery is confirmed once an offer is accepted",
    );
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    assert_invalid(
        world.custody(&hospital.agent, confirm("R1")),
        "emergency request R1 is OPEN; delivery is confirmed once an offer is accepted",
    );
}

#[test]
fn confirming_delivery_cannot_predate_the_delivery() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    world
        .custody(&hospital.agent, accept("R1", "O1", "BSH1"))
        .unwrap();
    world
        .propose(&bank.agent, "BSH1", "hosp", &hospital.site)
        .unwrap();
    world.now += 600;
    world.accept(&hospital.agent, "BSH1", false).unwrap();
    world.now -= 1;
    assert_invalid(
        world.custody(&hospital.agent, confirm("R1")),
        "before the shipment was delivered",
    );
}

#[test]
fn a_unit_offered_to_a_request_cannot_be_shipped_separately() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    assert_invalid(
        world.ship_units(
            &bank,
            "SH1",
            &bank.site,
            &hospital.site,
            &["W123427000001"],
        ),
        "blood unit W123427000001 is offered in blood offer O1; it ships when that offer is accepted",
    );
}

#[test]
fn a_shipment_for_an_emergency_request_is_closed_by_delivery_not_cancelled() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    world
        .custody(&hospital.agent, accept("R1", "O1", "BSH1"))
        .unwrap();
    let mut cancel = CancelShipment::new();
    cancel.set_shipment_id("BSH1".into());
    cancel.set_reason("no courier".into());
    assert_invalid(
        world.custody(&bank.agent, C::cancel_shipment(cancel)),
        "shipment BSH1 carries blood for emergency request R1; it is closed by delivery, not cancelled",
    );
}

#[test]
fn a_hospital_collecting_blood_at_the_bank_delivers_it_at_its_site_then_confirms() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    world
        .custody(&hospital.agent, accept("R1", "O1", "BSH1"))
        .unwrap();
    world.now += 60;
    world
        .propose(&bank.agent, "BSH1", "hosp", &bank.site)
        .unwrap();
    world.now += 60;
    world.accept(&hospital.agent, "BSH1", false).unwrap();
    assert_eq!(
        world.shipment("BSH1").get_status(),
        ShipmentStatus::IN_TRANSIT
    );
    assert_invalid(
        world.custody(&hospital.agent, confirm("R1")),
        &format!(
            "your organisation hosp holds it; close it at {} first (`coldchain shipment deliver --id BSH1 --at {}`)",
            hospital.site, hospital.site
        ),
    );
    world.now += 600;
    world
        .custody(
            &hospital.agent,
            super::tests_lifecycle::deliver("BSH1", &hospital.site, false),
        )
        .unwrap();
    let unit: BloodUnit = world.load(RecordKind::BloodUnit, "W123427000001");
    assert!(unit.get_transfused_or_delivered());
    assert_eq!(unit.get_site_gln(), hospital.site);
    world.now += 60;
    world.custody(&hospital.agent, confirm("R1")).unwrap();
    let request: EmergencyRequest = world.load(RecordKind::EmergencyRequest, "R1");
    assert_eq!(request.get_status(), RequestStatus::FULFILLED);
    assert_eq!(
        request.get_delivered_at_s(),
        world.shipment("BSH1").get_closed_at_s()
    );
}

/// The bank offers U1 and U2 for R1, the hospital accepts them as BSH1, and
/// ten minutes later the bank proposes the hand-off at the hospital.
fn offered_accepted_and_proposed(world: &mut World, bank: &Org, hospital: &Org) {
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    world
        .custody(&hospital.agent, accept("R1", "O1", "BSH1"))
        .unwrap();
    world.now += 600;
    world
        .propose(&bank.agent, "BSH1", "hosp", &hospital.site)
        .unwrap();
}

fn withdraw(request: &str, reason: &str) -> C {
    let mut action = CancelBloodRequest::new();
    action.set_request_id(request.into());
    action.set_reason(reason.into());
    C::cancel_blood_request(action)
}

#[test]
fn an_open_request_is_withdrawn_and_its_offered_units_are_released() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    world
        .custody(
            &bank.agent,
            offer("R1", "O1", &["W123427000001", "W123427000002"]),
        )
        .unwrap();
    world.events();
    assert_invalid(world.custody(&bank.agent, withdraw("R1", "not needed")), "");
    assert_invalid(
        world.custody(&hospital.agent, withdraw("R1", "  ")),
        "give the reason for withdrawing emergency request R1",
    );
    world.now += 60;
    world
        .custody(&hospital.agent, withdraw("R1", "patient stabilised"))
        .unwrap();
    let request: EmergencyRequest = world.load(RecordKind::EmergencyRequest, "R1");
    assert_eq!(request.get_status(), RequestStatus::REQUEST_CANCELLED);
    assert_eq!(request.get_cancelled_reason(), "patient stabilised");
    assert_eq!(request.get_cancelled_at_s(), world.now);
    assert_eq!(unit_record(&world, "W123427000001").get_offered_in(), "");
    let types: Vec<String> = world.events().into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["coldchain/blood-request-cancelled"]);
    // Withdrawn is final: no new offer, no second withdrawal.
    assert_invalid(
        world.custody(&bank.agent, offer("R1", "O2", &["W123427000003"])),
        "",
    );
    assert_invalid(
        world.custody(&hospital.agent, withdraw("R1", "again")),
        "is REQUEST_CANCELLED",
    );
}

/// The defect left open in issue 12: the hospital refuses the hand-off at its
/// door, and the request and its shipment could never close. Now the hospital
/// withdraws the request, then the bank cancels the shipment and gets its
/// units back.
#[test]
fn a_request_whose_delivery_was_refused_is_withdrawn_and_the_bank_ends_the_shipment() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    offered_accepted_and_proposed(&mut world, &bank, &hospital);
    world.now += 600;
    let mut reject = RejectHandoff::new();
    reject.set_shipment_id("BSH1".into());
    reject.set_reason("bag leaking".into());
    world
        .custody(&hospital.agent, C::reject_handoff(reject))
        .unwrap();
    let mut cancel = CancelShipment::new();
    cancel.set_shipment_id("BSH1".into());
    cancel.set_reason("returned to stock".into());
    assert_invalid(
        world.custody(&bank.agent, C::cancel_shipment(cancel.clone())),
        "unless the hospital withdraws the request first (`coldchain blood cancel --request R1",
    );
    world.now += 60;
    world
        .custody(&hospital.agent, withdraw("R1", "bags refused at the door"))
        .unwrap();
    world.now += 60;
    world
        .custody(&bank.agent, C::cancel_shipment(cancel))
        .unwrap();
    assert_eq!(
        world.shipment("BSH1").get_status(),
        ShipmentStatus::CANCELLED
    );
    let unit = unit_record(&world, "W123427000001");
    assert_eq!(unit.get_holder_org_id(), "bank");
    assert_eq!(unit.get_shipment_id(), "");
}

#[test]
fn a_delivered_request_is_confirmed_not_withdrawn() {
    let Blood {
        mut world,
        bank,
        hospital,
    } = setup();
    offered_accepted_and_proposed(&mut world, &bank, &hospital);
    let mut accept_handoff = AcceptHandoff::new();
    accept_handoff.set_shipment_id("BSH1".into());
    world
        .custody(&hospital.agent, C::accept_handoff(accept_handoff))
        .unwrap();
    assert_invalid(
        world.custody(&hospital.agent, withdraw("R1", "changed our mind")),
        "was delivered; confirm the delivery instead (`coldchain blood deliver --request R1`)",
    );
}
