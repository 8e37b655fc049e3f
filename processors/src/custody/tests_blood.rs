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
