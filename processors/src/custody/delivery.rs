//! Delivery by the holder: the custodian closes its shipment as DELIVERED at
//! the destination site, which must be one of its own sites.
//!
//! A hand-off accepted *at* the destination site by the organisation owning it
//! delivers the shipment at once (`handoff::accept`). Every other way a
//! shipment can reach its destination organisation ends here: a receiver that
//! took the goods at the sender's dock and drove them home, or an organisation
//! moving goods between two of its own sites. Without this action such a
//! shipment would stay IN_TRANSIT forever (nobody may propose to itself).
//!
//! Compromised goods are taken in only into quarantine, exactly as at a
//! hand-off: the holder answers for what enters its site's stock.
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext};

use super::handoff::{compromise_reason, emit_quarantined, land_goods, Landing};
use super::shipments::close_shipment;
use super::{
    load_shipment, load_shipment_lots, load_shipment_units, shipment_last_time, shipment_thermal,
};
use crate::addressing::RecordKind;
use crate::identifiers::check_gln;
use crate::messages::coldchain::{DeliverShipment, ShipmentStatus};
use crate::registry::request::{bad_identifier, emit, invalid, not_before};
use crate::registry::{authorize, load_site, require_active_agent, Signed};
use crate::state;

pub(super) fn deliver(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &DeliverShipment,
) -> Result<(), ApplyError> {
    require_active_agent(context, by.signer)?;
    let id = action.get_shipment_id();
    let mut shipment = load_shipment(context, id)?;
    let holder = shipment.get_custodian_org_id().to_string();
    authorize(context, by.signer, Some(&holder), &[])?;
    match shipment.get_status() {
        ShipmentStatus::PREPARING | ShipmentStatus::IN_TRANSIT | ShipmentStatus::REFUSED => {}
        ShipmentStatus::HANDOFF_PENDING => {
            return Err(invalid(format!(
                "shipment {id} has a hand-off pending to {}; it moves on when they decide, or withdraw it first (`coldchain shipment cancel --id {id}`)",
                shipment.get_pending().get_to_org_id()
            )))
        }
        status => {
            return Err(invalid(format!(
                "shipment {id} is {status:?}; it is already closed"
            )))
        }
    }
    check_gln(action.get_at_gln()).map_err(bad_identifier)?;
    let to_gln = shipment.get_to_gln().to_string();
    if action.get_at_gln() != to_gln {
        return Err(invalid(format!(
            "shipment {id} goes to site {to_gln}, not {}; it is delivered only at its destination (`--at {to_gln}`)",
            action.get_at_gln()
        )));
    }
    let destination = load_site(context, &to_gln)?;
    if destination.get_org_id() != holder {
        return Err(invalid(format!(
            "destination site {to_gln} belongs to organisation {}, not to the holder {holder}; hand the shipment to them there (`coldchain shipment propose --id {id} --to-org {} --at {to_gln}`)",
            destination.get_org_id(),
            destination.get_org_id()
        )));
    }
    not_before(
        by.now,
        shipment_last_time(&shipment),
        "the shipment's last event",
    )?;
    let thermal = shipment_thermal(context, id)?;
    let mut lots = load_shipment_lots(context, &shipment)?;
    let mut units = load_shipment_units(context, &shipment)?;
    let compromised = compromise_reason(thermal.as_ref(), &lots, &units);
    let into_quarantine = action.get_into_quarantine();
    if let (Some(why), false) = (&compromised, into_quarantine) {
        return Err(invalid(format!(
            "shipment {id} cannot be delivered: {why}. Take it knowingly into quarantine (`coldchain shipment deliver --id {id} --at {to_gln} --into-quarantine`)"
        )));
    }
    let landing = Landing {
        holder: &holder,
        at_gln: &to_gln,
        delivered: true,
        quarantine_reason: into_quarantine
            .then(|| format!("delivered into quarantine: shipment {id}")),
    };
    let (mut entries, quarantined) = land_goods(by, &shipment, &mut lots, &mut units, &landing)?;
    close_shipment(
        context,
        &mut shipment,
        ShipmentStatus::DELIVERED,
        &by,
        &mut entries,
    )?;
    entries.insert(
        0,
        (RecordKind::Shipment.address(id), state::encode(&shipment)?),
    );
    state::store_all(context, entries)?;
    emit(
        context,
        "shipment-delivered",
        &[
            ("shipment_id", id),
            ("org_id", &holder),
            ("at_gln", &to_gln),
            (
                "into_quarantine",
                if into_quarantine { "true" } else { "false" },
            ),
        ],
        &[],
    )?;
    emit_quarantined(context, quarantined)
}
