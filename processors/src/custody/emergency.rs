//! Emergency blood transfers. A HOSPITAL agent files a request; BLOOD_BANK
//! agents offer specific units they hold (compatible, in date on the needed
//! day, not compromised, not offered elsewhere); the hospital accepts one
//! offer, which opens a shipment of those units under the component's
//! transport profile; the hospital confirms delivery, which closes the request
//! and records the request-to-delivery time — or withdraws the request while
//! no delivery has arrived (its offered units are released).
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext};

use super::{handoff, load_shipment};
use crate::addressing::RecordKind;
use crate::blood::{self, BloodType};
use crate::identifiers::{check_donation_id, check_record_id, day_of};
use crate::messages::coldchain::{
    AboGroup, AcceptBloodOffer, BloodComponent, BloodOffer, BloodUnit, CancelBloodRequest,
    ConfirmBloodDelivery, EmergencyRequest, FileEmergencyRequest, LotStatus, OfferBloodUnits,
    Priority, RequestStatus, RhD, Role, Shipment, ShipmentStatus, ThermalRecord,
};
use crate::registry::request::{bad_identifier, emit, invalid, not_before};
use crate::registry::{authorize, load_own_site, Signed};
use crate::state;

/// Most units one emergency request may ask for.
pub const MAX_UNITS_PER_REQUEST: u32 = 50;

fn load_request(
    context: &dyn TransactionContext,
    request_id: &str,
) -> Result<EmergencyRequest, ApplyError> {
    state::load_required(
        context,
        &RecordKind::EmergencyRequest.address(request_id),
        || format!("emergency request {request_id} does not exist"),
    )
}

fn require_open(request: &EmergencyRequest) -> Result<(), ApplyError> {
    if request.get_status() != RequestStatus::OPEN {
        return Err(invalid(format!(
            "emergency request {} is {:?}, no longer OPEN",
            request.get_request_id(),
            request.get_status()
        )));
    }
    Ok(())
}

pub(super) fn file_request(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &FileEmergencyRequest,
) -> Result<(), ApplyError> {
    let agent = authorize(context, by.signer, None, &[Role::HOSPITAL])?;
    let id = action.get_request_id();
    check_record_id("request id", id).map_err(bad_identifier)?;
    if action.get_component() == BloodComponent::BLOOD_COMPONENT_UNSET
        || action.get_abo() == AboGroup::ABO_UNSET
        || action.get_rh() == RhD::RH_UNSET
    {
        return Err(invalid(
            "component, abo and rh must all be set: name the component and the patient's blood type",
        ));
    }
    if !(1..=MAX_UNITS_PER_REQUEST).contains(&action.get_units()) {
        return Err(invalid(format!(
            "units {} must be 1-{MAX_UNITS_PER_REQUEST}",
            action.get_units()
        )));
    }
    if action.get_needed_by_s() < by.now {
        return Err(invalid(format!(
            "needed_by_s {} ({}) is before the request time {} ({}); give when the blood is needed",
            action.get_needed_by_s(),
            crate::identifiers::utc_time_text(action.get_needed_by_s()),
            by.now,
            crate::identifiers::utc_time_text(by.now)
        )));
    }
    if action.get_priority() == Priority::PRIORITY_UNSET {
        return Err(invalid(
            "priority is unset; use ROUTINE, URGENT or EMERGENCY",
        ));
    }
    load_own_site(context, action.get_hospital_gln(), agent.get_org_id())?;
    let address = RecordKind::EmergencyRequest.address(id);
    if state::load::<EmergencyRequest>(context, &address)?.is_some() {
        return Err(invalid(format!(
            "emergency request {id} already exists; choose another request id"
        )));
    }
    let mut request = EmergencyRequest::new();
    request.set_request_id(id.to_string());
    request.set_component(action.get_component());
    request.set_abo(action.get_abo());
    request.set_rh(action.get_rh());
    request.set_units(action.get_units());
    request.set_needed_by_s(action.get_needed_by_s());
    request.set_priority(action.get_priority());
    request.set_hospital_org_id(agent.get_org_id().to_string());
    request.set_hospital_gln(action.get_hospital_gln().to_string());
    request.set_requested_by(by.signer.to_string());
    request.set_requested_at_s(by.now);
    request.set_status(RequestStatus::OPEN);
    state::store(context, address, &request)?;
    let patient = BloodType::new(action.get_abo(), action.get_rh()).to_string();
    emit(
        context,
        "blood-request-filed",
        &[
            ("request_id", id),
            ("component", &format!("{:?}", action.get_component())),
            ("blood_type", &patient),
            ("units", &action.get_units().to_string()),
            ("priority", &format!("{:?}", action.get_priority())),
            ("hospital_org_id", agent.get_org_id()),
            ("hospital_gln", action.get_hospital_gln()),
        ],
        &state::encode(&request)?,
    )
}

/// Why `unit` cannot be offered to `request` by `bank_org_id`, if it cannot.
pub fn refuse_offer_unit(
    unit: &BloodUnit,
    request: &EmergencyRequest,
    bank_org_id: &str,
    goods_thermal: Option<&ThermalRecord>,
) -> Option<String> {
    let name = format!("blood unit {}", unit.get_donation_id());
    let donor = BloodType::new(unit.get_abo(), unit.get_rh());
    let patient = BloodType::new(request.get_abo(), request.get_rh());
    let needed_day = day_of(request.get_needed_by_s());
    if unit.get_holder_org_id() != bank_org_id {
        Some(format!(
            "{name} is held by {}, not by {bank_org_id}",
            unit.get_holder_org_id()
        ))
    } else if unit.get_component() != request.get_component() {
        Some(format!(
            "{name} is {:?} but the request is for {:?}",
            unit.get_component(),
            request.get_component()
        ))
    } else if !blood::is_compatible(request.get_component(), donor, patient) {
        Some(format!(
            "{name} ({donor}) is not compatible with the patient's {patient} for {:?}",
            request.get_component()
        ))
    } else if unit.get_expiry_date() < needed_day {
        Some(format!(
            "{name} expires on {}, before the day it is needed ({needed_day})",
            unit.get_expiry_date()
        ))
    } else if unit.get_status() != LotStatus::ACTIVE
        || goods_thermal.is_some_and(|record| record.get_compromised())
    {
        Some(format!(
            "{name} is {:?}{}; only ACTIVE units with an intact cold chain may be offered",
            unit.get_status(),
            if goods_thermal.is_some_and(|record| record.get_compromised()) {
                " and its cold-chain record is compromised"
            } else {
                ""
            }
        ))
    } else if !unit.get_offered_in().is_empty() {
        Some(format!(
            "{name} is already offered in {}; a unit is offered to one request at a time",
            unit.get_offered_in()
        ))
    } else if !unit.get_shipment_id().is_empty() || unit.get_transfused_or_delivered() {
        Some(format!("{name} is already shipped or delivered"))
    } else {
        None
    }
}

pub(super) fn offer_units(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &OfferBloodUnits,
) -> Result<(), ApplyError> {
    let agent = authorize(context, by.signer, None, &[Role::BLOOD_BANK])?;
    let mut request = load_request(context, action.get_request_id())?;
    require_open(&request)?;
    let offer_id = action.get_offer_id();
    check_record_id("offer id", offer_id).map_err(bad_identifier)?;
    let offer_address = RecordKind::BloodOffer.address(offer_id);
    if state::load::<BloodOffer>(context, &offer_address)?.is_some() {
        return Err(invalid(format!(
            "blood offer {offer_id} already exists; choose another offer id"
        )));
    }
    not_before(
        by.now,
        request.get_requested_at_s(),
        "the request was filed",
    )?;
    let ids = action.get_donation_ids();
    if ids.len() != request.get_units() as usize {
        return Err(invalid(format!(
            "the offer names {} units but request {} asks for {}",
            ids.len(),
            request.get_request_id(),
            request.get_units()
        )));
    }
    let mut entries = Vec::with_capacity(ids.len() + 2);
    let mut site: Option<String> = None;
    for (index, donation_id) in ids.iter().enumerate() {
        check_donation_id(donation_id).map_err(bad_identifier)?;
        if ids[..index].contains(donation_id) {
            return Err(invalid(format!(
                "blood unit {donation_id} is offered twice"
            )));
        }
        let address = RecordKind::BloodUnit.address(donation_id);
        let mut unit: BloodUnit = state::load_required(context, &address, || {
            format!("blood unit {donation_id} is not registered")
        })?;
        let thermal: Option<ThermalRecord> =
            state::load(context, &RecordKind::GoodsThermal.address(donation_id))?;
        if let Some(why) = refuse_offer_unit(&unit, &request, agent.get_org_id(), thermal.as_ref())
        {
            return Err(invalid(why));
        }
        match &site {
            None => site = Some(unit.get_site_gln().to_string()),
            Some(gln) if gln != unit.get_site_gln() => {
                return Err(invalid(format!(
                    "blood unit {donation_id} is at site {} but the others are at {gln}; offer units from one site",
                    unit.get_site_gln()
                )))
            }
            Some(_) => {}
        }
        unit.set_offered_in(offer_id.to_string());
        entries.push((address, state::encode(&unit)?));
    }
    let mut offer = BloodOffer::new();
    offer.set_offer_id(offer_id.to_string());
    offer.set_request_id(request.get_request_id().to_string());
    offer.set_blood_bank_org_id(agent.get_org_id().to_string());
    offer.set_donation_ids(ids.to_vec().into());
    offer.set_offered_by(by.signer.to_string());
    offer.set_offered_at_s(by.now);
    request.mut_offer_ids().push(offer_id.to_string());
    entries.insert(0, (offer_address, state::encode(&offer)?));
    entries.insert(
        0,
        (
            RecordKind::EmergencyRequest.address(request.get_request_id()),
            state::encode(&request)?,
        ),
    );
    state::store_all(context, entries)?;
    emit(
        context,
        "blood-offer",
        &[
            ("request_id", request.get_request_id()),
            ("offer_id", offer_id),
            ("blood_bank_org_id", agent.get_org_id()),
            ("units", &ids.len().to_string()),
        ],
        &state::encode(&offer)?,
    )
}

pub(super) fn accept_offer(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &AcceptBloodOffer,
) -> Result<(), ApplyError> {
    let mut request = load_request(context, action.get_request_id())?;
    authorize(
        context,
        by.signer,
        Some(request.get_hospital_org_id()),
        &[Role::HOSPITAL],
    )?;
    require_open(&request)?;
    let offer_address = RecordKind::BloodOffer.address(action.get_offer_id());
    let mut offer: BloodOffer = state::load_required(context, &offer_address, || {
        format!("blood offer {} does not exist", action.get_offer_id())
    })?;
    if offer.get_request_id() != request.get_request_id() {
        return Err(invalid(format!(
            "blood offer {} answers request {}, not {}",
            offer.get_offer_id(),
            offer.get_request_id(),
            request.get_request_id()
        )));
    }
    let shipment_id = action.get_shipment_id();
    check_record_id("shipment id", shipment_id).map_err(bad_identifier)?;
    let shipment_address = RecordKind::Shipment.address(shipment_id);
    if state::load::<Shipment>(context, &shipment_address)?.is_some() {
        return Err(invalid(format!(
            "shipment {shipment_id} already exists; choose another shipment id"
        )));
    }
    not_before(by.now, offer.get_offered_at_s(), "the offer was made")?;
    let mut entries = Vec::new();
    let mut from_gln = String::new();
    for donation_id in offer.get_donation_ids() {
        let address = RecordKind::BloodUnit.address(donation_id);
        let mut unit: BloodUnit = state::load_required(context, &address, || {
            format!("blood unit {donation_id} of the offer is missing from state")
        })?;
        if unit.get_offered_in() != offer.get_offer_id()
            || unit.get_holder_org_id() != offer.get_blood_bank_org_id()
            || unit.get_status() != LotStatus::ACTIVE
        {
            return Err(invalid(format!(
                "blood unit {donation_id} is no longer available as offered (status {:?}, holder {}); ask the bank for a new offer",
                unit.get_status(),
                unit.get_holder_org_id()
            )));
        }
        from_gln = unit.get_site_gln().to_string();
        unit.clear_offered_in();
        unit.set_shipment_id(shipment_id.to_string());
        entries.push((address, state::encode(&unit)?));
    }
    release_other_offers(context, &request, offer.get_offer_id(), &mut entries)?;
    let profile = blood::transport_profile(request.get_component())
        .ok_or_else(|| invalid("the request has no blood component"))?;
    let mut shipment = Shipment::new();
    shipment.set_shipment_id(shipment_id.to_string());
    shipment.set_from_gln(from_gln.clone());
    shipment.set_to_gln(request.get_hospital_gln().to_string());
    shipment.set_blood_units(offer.get_donation_ids().to_vec().into());
    shipment.set_profile(profile);
    shipment.set_status(ShipmentStatus::PREPARING);
    shipment.set_custodian_org_id(offer.get_blood_bank_org_id().to_string());
    shipment.set_created_by(by.signer.to_string());
    shipment.set_created_at_s(by.now);
    shipment.set_blood_request_id(request.get_request_id().to_string());
    offer.set_accepted(true);
    request.set_status(RequestStatus::OFFER_ACCEPTED);
    request.set_accepted_offer_id(offer.get_offer_id().to_string());
    request.set_shipment_id(shipment_id.to_string());
    let request_address = RecordKind::EmergencyRequest.address(request.get_request_id());
    entries.insert(0, (shipment_address, state::encode(&shipment)?));
    entries.insert(0, (offer_address, state::encode(&offer)?));
    entries.insert(0, (request_address, state::encode(&request)?));
    state::store_all(context, entries)?;
    emit(
        context,
        "blood-offer-accepted",
        &[
            ("request_id", request.get_request_id()),
            ("offer_id", offer.get_offer_id()),
            ("shipment_id", shipment_id),
            ("blood_bank_org_id", offer.get_blood_bank_org_id()),
            ("from_gln", &from_gln),
        ],
        &state::encode(&shipment)?,
    )
}

/// Frees the units of the request's other offers, so banks can offer them elsewhere.
fn release_other_offers(
    context: &dyn TransactionContext,
    request: &EmergencyRequest,
    accepted_offer_id: &str,
    entries: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), ApplyError> {
    for offer_id in request.get_offer_ids() {
        if offer_id == accepted_offer_id {
            continue;
        }
        let Some(other) =
            state::load::<BloodOffer>(context, &RecordKind::BloodOffer.address(offer_id))?
        else {
            continue;
        };
        for donation_id in other.get_donation_ids() {
            let address = RecordKind::BloodUnit.address(donation_id);
            if let Some(mut unit) = state::load::<BloodUnit>(context, &address)? {
                if unit.get_offered_in() == offer_id {
                    unit.clear_offered_in();
                    entries.push((address, state::encode(&unit)?));
                }
            }
        }
    }
    Ok(())
}

/// Longest reason a hospital may give for withdrawing a request.
const MAX_CANCEL_REASON: usize = 500;

pub(super) fn cancel_request(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &CancelBloodRequest,
) -> Result<(), ApplyError> {
    let mut request = load_request(context, action.get_request_id())?;
    let hospital = request.get_hospital_org_id().to_string();
    authorize(context, by.signer, Some(&hospital), &[Role::HOSPITAL])?;
    let reason = action.get_reason().trim();
    if reason.is_empty() || reason.len() > MAX_CANCEL_REASON {
        return Err(invalid(format!(
            "give the reason for withdrawing emergency request {} (1-{MAX_CANCEL_REASON} \
             characters, `--reason`)",
            request.get_request_id()
        )));
    }
    let id = request.get_request_id().to_string();
    let mut entries = Vec::new();
    match request.get_status() {
        RequestStatus::OPEN => release_other_offers(context, &request, "", &mut entries)?,
        RequestStatus::OFFER_ACCEPTED => {
            let shipment = load_shipment(context, request.get_shipment_id())?;
            if shipment.get_status() == ShipmentStatus::DELIVERED {
                return Err(invalid(format!(
                    "emergency request {id}: shipment {} was delivered; confirm the delivery \
                     instead (`coldchain blood deliver --request {id}`)",
                    shipment.get_shipment_id()
                )));
            }
        }
        other => {
            return Err(invalid(format!(
                "emergency request {id} is {other:?}; only an open request, or one whose \
                 accepted delivery has not arrived, can be withdrawn"
            )))
        }
    }
    not_before(
        by.now,
        request.get_requested_at_s(),
        "the request was filed",
    )?;
    request.set_status(RequestStatus::REQUEST_CANCELLED);
    request.set_cancelled_reason(reason.to_string());
    request.set_cancelled_at_s(by.now);
    entries.insert(
        0,
        (
            RecordKind::EmergencyRequest.address(&id),
            state::encode(&request)?,
        ),
    );
    state::store_all(context, entries)?;
    emit(
        context,
        "blood-request-cancelled",
        &[
            ("request_id", &id),
            ("hospital_org_id", &hospital),
            ("shipment_id", request.get_shipment_id()),
        ],
        &state::encode(&request)?,
    )
}

pub(super) fn confirm_delivery(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &ConfirmBloodDelivery,
) -> Result<(), ApplyError> {
    let mut request = load_request(context, action.get_request_id())?;
    let hospital = request.get_hospital_org_id().to_string();
    authorize(context, by.signer, Some(&hospital), &[Role::HOSPITAL])?;
    if request.get_status() != RequestStatus::OFFER_ACCEPTED {
        return Err(invalid(format!(
            "emergency request {} is {:?}; delivery is confirmed once an offer is accepted",
            request.get_request_id(),
            request.get_status()
        )));
    }
    let mut shipment = load_shipment(context, request.get_shipment_id())?;
    if shipment.get_status() == ShipmentStatus::HANDOFF_PENDING
        && shipment.get_pending().get_to_org_id() == hospital
    {
        // Confirming delivery is the hospital's acceptance of the last hand-off.
        shipment = handoff::accept(context, by, shipment.get_shipment_id(), false)?;
    }
    if shipment.get_status() != ShipmentStatus::DELIVERED {
        let id = shipment.get_shipment_id();
        let gln = shipment.get_to_gln();
        let next = if shipment.get_custodian_org_id() == hospital {
            format!("your organisation {hospital} holds it; close it at {gln} first (`coldchain shipment deliver --id {id} --at {gln}`)")
        } else {
            format!(
                "its custodian {} proposes the hand-off to {hospital} at {gln} first (`coldchain shipment propose --id {id} --to-org {hospital} --at {gln}`)",
                shipment.get_custodian_org_id()
            )
        };
        return Err(invalid(format!(
            "shipment {id} is {:?}, not delivered; {next}",
            shipment.get_status()
        )));
    }
    not_before(
        by.now,
        shipment.get_closed_at_s(),
        "the shipment was delivered",
    )?;
    let delivered_at = shipment.get_closed_at_s();
    request.set_status(RequestStatus::FULFILLED);
    request.set_delivered_at_s(delivered_at);
    request.set_request_to_delivery_s(delivered_at.saturating_sub(request.get_requested_at_s()));
    state::store(
        context,
        RecordKind::EmergencyRequest.address(request.get_request_id()),
        &request,
    )?;
    emit(
        context,
        "blood-delivered",
        &[
            ("request_id", request.get_request_id()),
            ("shipment_id", shipment.get_shipment_id()),
            (
                "request_to_delivery_s",
                &request.get_request_to_delivery_s().to_string(),
            ),
        ],
        &state::encode(&request)?,
    )
}
