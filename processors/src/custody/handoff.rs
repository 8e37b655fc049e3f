//! Two-step custody transfer. The custodian proposes a hand-off to a named
//! organisation at a site; that organisation accepts or rejects it with a
//! reason; the proposer may cancel it while it is pending.
//!
//! Acceptance is refused when the goods are compromised — any lot or unit
//! COMPROMISED, or the sensor family's shipment record says so — unless the
//! receiver accepts explicitly into quarantine: then the outcome is
//! ACCEPTED_INTO_QUARANTINE and every ACTIVE or COMPROMISED lot and unit
//! becomes QUARANTINED (with a history entry). Every decision records the
//! parties, the time, the place and a thermal snapshot.
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext};

use super::shipments::close_shipment;
use super::{
    load_shipment, load_shipment_lots, load_shipment_units, shipment_last_time, shipment_thermal,
    snapshot,
};
use crate::addressing::RecordKind;
use crate::identifiers::{check_gln, check_record_id};
use crate::messages::coldchain::{
    BloodUnit, CancelHandoff, Handoff, HandoffOutcome, Lot, LotStatus, ProposeHandoff,
    RejectHandoff, Shipment, ShipmentStatus, ThermalRecord,
};
use crate::registry::request::{bad_identifier, emit, invalid, not_before};
use crate::registry::{
    authorize, check_text, load_organization, load_site, record_status_change,
    require_active_agent, Signed,
};
use crate::state;

pub(super) fn propose(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &ProposeHandoff,
) -> Result<(), ApplyError> {
    require_active_agent(context, by.signer)?;
    let id = action.get_shipment_id();
    let mut shipment = load_shipment(context, id)?;
    authorize(
        context,
        by.signer,
        Some(shipment.get_custodian_org_id()),
        &[],
    )?;
    match shipment.get_status() {
        ShipmentStatus::PREPARING | ShipmentStatus::IN_TRANSIT | ShipmentStatus::REFUSED => {}
        ShipmentStatus::HANDOFF_PENDING => {
            return Err(invalid(format!(
                "shipment {id} already has a hand-off pending to {}; wait for its decision or withdraw it (`coldchain shipment cancel --id {id}`)",
                shipment.get_pending().get_to_org_id()
            )))
        }
        status => {
            return Err(invalid(format!(
                "shipment {id} is {status:?}; a closed shipment cannot be handed off"
            )))
        }
    }
    check_record_id("org id", action.get_to_org_id()).map_err(bad_identifier)?;
    load_organization(context, action.get_to_org_id())?;
    if action.get_to_org_id() == shipment.get_custodian_org_id() {
        return Err(invalid(format!(
            "organisation {} already holds shipment {id}; hand it off to another organisation, or, at its destination site {}, close it (`coldchain shipment deliver --id {id} --at {}`)",
            action.get_to_org_id(),
            shipment.get_to_gln(),
            shipment.get_to_gln()
        )));
    }
    check_gln(action.get_at_gln()).map_err(bad_identifier)?;
    load_site(context, action.get_at_gln())?;
    not_before(
        by.now,
        shipment_last_time(&shipment),
        "the shipment's last event",
    )?;
    let mut handoff = Handoff::new();
    handoff.set_from_org_id(shipment.get_custodian_org_id().to_string());
    handoff.set_to_org_id(action.get_to_org_id().to_string());
    handoff.set_at_gln(action.get_at_gln().to_string());
    handoff.set_proposed_by(by.signer.to_string());
    handoff.set_proposed_at_s(by.now);
    handoff.set_outcome(HandoffOutcome::PROPOSED);
    let data = state::encode(&handoff)?;
    shipment.set_pending(handoff);
    shipment.set_status(ShipmentStatus::HANDOFF_PENDING);
    state::store(context, RecordKind::Shipment.address(id), &shipment)?;
    emit(
        context,
        "handoff-proposed",
        &[
            ("shipment_id", id),
            ("from_org_id", shipment.get_custodian_org_id()),
            ("to_org_id", action.get_to_org_id()),
            ("at_gln", action.get_at_gln()),
        ],
        &data,
    )
}

/// The pending hand-off of `shipment`, refused when there is none.
fn pending(shipment: &Shipment) -> Result<Handoff, ApplyError> {
    if shipment.get_status() != ShipmentStatus::HANDOFF_PENDING {
        return Err(invalid(format!(
            "shipment {} has no pending hand-off (it is {:?}); its custodian proposes one first (`coldchain shipment propose`)",
            shipment.get_shipment_id(),
            shipment.get_status()
        )));
    }
    Ok(shipment.get_pending().clone())
}

/// Why the goods of a shipment are compromised, if they are.
pub(super) fn compromise_reason(
    thermal: Option<&ThermalRecord>,
    lots: &[(String, Lot)],
    units: &[(String, BloodUnit)],
) -> Option<String> {
    if let Some(record) = thermal.filter(|record| record.get_compromised()) {
        return Some(format!(
            "its cold-chain record is compromised: {}",
            record.get_compromised_reason()
        ));
    }
    if let Some((_, lot)) = lots
        .iter()
        .find(|(_, lot)| lot.get_status() == LotStatus::COMPROMISED)
    {
        return Some(format!(
            "lot {}/{} is COMPROMISED",
            lot.get_gtin(),
            lot.get_lot()
        ));
    }
    units
        .iter()
        .find(|(_, unit)| unit.get_status() == LotStatus::COMPROMISED)
        .map(|(_, unit)| format!("blood unit {} is COMPROMISED", unit.get_donation_id()))
}

/// Accepts the pending hand-off of `shipment_id`; returns the updated shipment.
/// Also used by ConfirmBloodDelivery when the hospital accepts and confirms at once.
pub(super) fn accept(
    context: &mut dyn TransactionContext,
    by: Signed,
    shipment_id: &str,
    into_quarantine: bool,
) -> Result<Shipment, ApplyError> {
    // Who is asking comes before what state the shipment is in: a stranger
    // learns that it may not act, not the shipment's status.
    require_active_agent(context, by.signer)?;
    let mut shipment = load_shipment(context, shipment_id)?;
    let mut handoff = pending(&shipment)?;
    let receiver = handoff.get_to_org_id().to_string();
    authorize(context, by.signer, Some(&receiver), &[])?;
    not_before(
        by.now,
        handoff.get_proposed_at_s(),
        "the hand-off was proposed",
    )?;
    let thermal = shipment_thermal(context, shipment_id)?;
    let mut lots = load_shipment_lots(context, &shipment)?;
    let mut units = load_shipment_units(context, &shipment)?;
    let compromised = compromise_reason(thermal.as_ref(), &lots, &units);
    if let (Some(why), false) = (&compromised, into_quarantine) {
        return Err(invalid(format!(
            "shipment {shipment_id} cannot be accepted: {why}. Reject it (`coldchain shipment reject --id {shipment_id} --reason …`) or take it knowingly into quarantine (`coldchain shipment accept --id {shipment_id} --into-quarantine`)"
        )));
    }
    let at_gln = handoff.get_at_gln().to_string();
    let destination = load_site(context, shipment.get_to_gln())?;
    let delivered = at_gln == shipment.get_to_gln() && destination.get_org_id() == receiver;
    let outcome = if into_quarantine {
        HandoffOutcome::ACCEPTED_INTO_QUARANTINE
    } else {
        HandoffOutcome::ACCEPTED
    };
    handoff.set_decided_by(by.signer.to_string());
    handoff.set_decided_at_s(by.now);
    handoff.set_outcome(outcome);
    handoff.set_thermal(snapshot(thermal.as_ref()));
    if into_quarantine {
        handoff.set_reason(
            compromised.unwrap_or_else(|| "accepted into quarantine by the receiver".into()),
        );
    }
    let landing = Landing {
        holder: &receiver,
        at_gln: &at_gln,
        delivered,
        quarantine_reason: into_quarantine
            .then(|| format!("accepted into quarantine at hand-off of shipment {shipment_id}")),
    };
    let (mut entries, quarantined) = land_goods(by, &shipment, &mut lots, &mut units, &landing)?;
    if delivered {
        close_shipment(
            context,
            &mut shipment,
            ShipmentStatus::DELIVERED,
            &by,
            &mut entries,
        )?;
    } else {
        shipment.set_status(ShipmentStatus::IN_TRANSIT);
    }
    shipment.set_custodian_org_id(receiver.clone());
    shipment.clear_pending();
    shipment.mut_handoffs().push(handoff.clone());
    entries.insert(
        0,
        (
            RecordKind::Shipment.address(shipment_id),
            state::encode(&shipment)?,
        ),
    );
    state::store_all(context, entries)?;
    emit(
        context,
        "handoff-accepted",
        &[
            ("shipment_id", shipment_id),
            ("from_org_id", handoff.get_from_org_id()),
            ("to_org_id", &receiver),
            ("at_gln", &at_gln),
            ("outcome", &format!("{outcome:?}")),
            ("delivered", if delivered { "true" } else { "false" }),
        ],
        &state::encode(&handoff)?,
    )?;
    emit_quarantined(context, quarantined)?;
    Ok(shipment)
}

/// Where and with whom a shipment's goods land when custody moves or the
/// shipment is delivered.
pub(super) struct Landing<'a> {
    pub holder: &'a str,
    pub at_gln: &'a str,
    /// The goods leave the shipment (and blood of a request counts as delivered).
    pub delivered: bool,
    /// Quarantine every ACTIVE or COMPROMISED lot and unit, with this history reason.
    pub quarantine_reason: Option<String>,
}

/// A lot that went into quarantine: gtin, lot and the status it left.
pub(super) type Quarantined = (String, String, LotStatus);

/// State entries to write: address and encoded record.
pub(super) type Entries = Vec<(String, Vec<u8>)>;

/// Moves the goods of `shipment` as `landing` says; returns the state entries
/// to write (lots, then units, in the shipment's order) and the quarantined lots.
pub(super) fn land_goods(
    by: Signed,
    shipment: &Shipment,
    lots: &mut [(String, Lot)],
    units: &mut [(String, BloodUnit)],
    landing: &Landing,
) -> Result<(Entries, Vec<Quarantined>), ApplyError> {
    let mut entries = Vec::new();
    let mut quarantined = Vec::new();
    let quarantine = |status: LotStatus| {
        landing.quarantine_reason.is_some()
            && matches!(status, LotStatus::ACTIVE | LotStatus::COMPROMISED)
    };
    for (address, lot) in lots.iter_mut() {
        lot.set_custodian_org_id(landing.holder.to_string());
        lot.set_site_gln(landing.at_gln.to_string());
        if landing.delivered {
            lot.clear_shipment_id();
        }
        if let (true, Some(reason)) = (
            quarantine(lot.get_status()),
            landing.quarantine_reason.as_deref(),
        ) {
            quarantined.push((
                lot.get_gtin().to_string(),
                lot.get_lot().to_string(),
                lot.get_status(),
            ));
            record_status_change(lot, LotStatus::QUARANTINED, by.signer, by.now, reason);
        }
        entries.push((address.clone(), state::encode(lot)?));
    }
    for (address, unit) in units.iter_mut() {
        unit.set_holder_org_id(landing.holder.to_string());
        unit.set_site_gln(landing.at_gln.to_string());
        if landing.delivered {
            unit.clear_shipment_id();
            if !shipment.get_blood_request_id().is_empty() {
                unit.set_transfused_or_delivered(true);
            }
        }
        if quarantine(unit.get_status()) {
            unit.set_status(LotStatus::QUARANTINED);
        }
        entries.push((address.clone(), state::encode(unit)?));
    }
    Ok((entries, quarantined))
}

/// One `lot-status` event per lot that went into quarantine.
pub(super) fn emit_quarantined(
    context: &mut dyn TransactionContext,
    quarantined: Vec<Quarantined>,
) -> Result<(), ApplyError> {
    for (gtin, lot, from) in quarantined {
        emit(
            context,
            "lot-status",
            &[
                ("gtin", &gtin),
                ("lot", &lot),
                ("from", &format!("{from:?}")),
                ("to", "QUARANTINED"),
            ],
            &[],
        )?;
    }
    Ok(())
}

pub(super) fn reject(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &RejectHandoff,
) -> Result<(), ApplyError> {
    require_active_agent(context, by.signer)?;
    let id = action.get_shipment_id();
    let mut shipment = load_shipment(context, id)?;
    let mut handoff = pending(&shipment)?;
    authorize(context, by.signer, Some(handoff.get_to_org_id()), &[])?;
    check_text("reason", action.get_reason(), 500, true)?;
    not_before(
        by.now,
        handoff.get_proposed_at_s(),
        "the hand-off was proposed",
    )?;
    let thermal = shipment_thermal(context, id)?;
    handoff.set_decided_by(by.signer.to_string());
    handoff.set_decided_at_s(by.now);
    handoff.set_outcome(HandoffOutcome::REJECTED);
    handoff.set_reason(action.get_reason().to_string());
    handoff.set_thermal(snapshot(thermal.as_ref()));
    shipment.clear_pending();
    shipment.set_status(ShipmentStatus::REFUSED);
    shipment.mut_handoffs().push(handoff.clone());
    state::store(context, RecordKind::Shipment.address(id), &shipment)?;
    emit(
        context,
        "handoff-rejected",
        &[
            ("shipment_id", id),
            ("from_org_id", handoff.get_from_org_id()),
            ("to_org_id", handoff.get_to_org_id()),
            ("at_gln", handoff.get_at_gln()),
            ("reason", action.get_reason()),
        ],
        &state::encode(&handoff)?,
    )
}

/// The status a shipment returns to when its pending hand-off is cancelled.
fn status_before_proposal(shipment: &Shipment) -> ShipmentStatus {
    for handoff in shipment.get_handoffs().iter().rev() {
        match handoff.get_outcome() {
            HandoffOutcome::ACCEPTED | HandoffOutcome::ACCEPTED_INTO_QUARANTINE => {
                return ShipmentStatus::IN_TRANSIT
            }
            HandoffOutcome::REJECTED => return ShipmentStatus::REFUSED,
            _ => continue,
        }
    }
    ShipmentStatus::PREPARING
}

pub(super) fn cancel(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &CancelHandoff,
) -> Result<(), ApplyError> {
    require_active_agent(context, by.signer)?;
    let id = action.get_shipment_id();
    let mut shipment = load_shipment(context, id)?;
    let mut handoff = pending(&shipment)?;
    authorize(context, by.signer, Some(handoff.get_from_org_id()), &[])?;
    check_text("reason", action.get_reason(), 500, false)?;
    not_before(
        by.now,
        handoff.get_proposed_at_s(),
        "the hand-off was proposed",
    )?;
    let thermal = shipment_thermal(context, id)?;
    handoff.set_decided_by(by.signer.to_string());
    handoff.set_decided_at_s(by.now);
    handoff.set_outcome(HandoffOutcome::CANCELLED_BY_PROPOSER);
    handoff.set_reason(action.get_reason().to_string());
    handoff.set_thermal(snapshot(thermal.as_ref()));
    shipment.clear_pending();
    shipment.mut_handoffs().push(handoff.clone());
    shipment.set_status(status_before_proposal(&shipment));
    state::store(context, RecordKind::Shipment.address(id), &shipment)?;
    emit(
        context,
        "handoff-cancelled",
        &[
            ("shipment_id", id),
            ("from_org_id", handoff.get_from_org_id()),
            ("to_org_id", handoff.get_to_org_id()),
            ("reason", action.get_reason()),
        ],
        &state::encode(&handoff)?,
    )
}
