//! # The custody family (`coldchain-custody`, version 1.0)
//!
//! Where goods are and who answers for them: shipments of lots and blood
//! units, loggers attached to them, two-step hand-offs (propose, then accept,
//! reject or cancel), dispensing of packs, and emergency blood requests with
//! their offers and deliveries. Rules are in `docs/families.md`.
//!
//! ## Layout
//! - `shipments`: create and cancel shipments, attach and detach loggers.
//! - `handoff`: propose, accept (refusing compromised goods unless into quarantine), reject, cancel.
//! - `delivery`: the holder closes its shipment at its own destination site.
//! - `dispensing`: a pharmacy records that a pack left the chain.
//! - `emergency`: blood requests, offers, acceptance (opens a shipment) and delivery.
//! - `spec`: the client side — inputs and outputs of a custody transaction.
//!
//! ## Boundaries
//! Custody writes registry records it is responsible for (a lot's custodian,
//! site, shipment and status; a device's attachment; a blood unit's holder) but
//! never creates them, and only reads the sensor family's thermal records.
mod delivery;
mod dispensing;
mod emergency;
mod handoff;
mod shipments;
mod spec;
#[cfg(test)]
mod tests_blood;
#[cfg(test)]
mod tests_dispensing;
#[cfg(test)]
mod tests_handoff;
#[cfg(test)]
mod tests_lifecycle;
#[cfg(test)]
mod tests_shipments;

use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext, TransactionHandler};

use crate::addressing::{goods_key, namespace, RecordKind, CUSTODY_FAMILY, FAMILY_VERSION};
use crate::messages::coldchain::{
    BloodUnit, CustodyPayload, CustodyPayload_oneof_action as Action, Lot, LotRef, Shipment,
    ThermalRecord, ThermalSnapshot,
};
use crate::registry::request::{decode_payload, invalid, payload_time, signer_of};
use crate::registry::Signed;
use crate::state;

pub use dispensing::refuse_dispensing;
pub use emergency::refuse_offer_unit;
pub use shipments::strictest_profile;
pub use spec::transaction_spec;

/// The custody family's Sawtooth handler.
#[derive(Debug, Clone)]
pub struct CustodyHandler {
    namespace: String,
}

impl CustodyHandler {
    pub fn new() -> CustodyHandler {
        CustodyHandler {
            namespace: namespace(CUSTODY_FAMILY),
        }
    }
}

impl Default for CustodyHandler {
    fn default() -> Self {
        CustodyHandler::new()
    }
}

impl TransactionHandler for CustodyHandler {
    fn family_name(&self) -> String {
        CUSTODY_FAMILY.to_string()
    }

    fn family_versions(&self) -> Vec<String> {
        vec![FAMILY_VERSION.to_string()]
    }

    fn namespaces(&self) -> Vec<String> {
        vec![self.namespace.clone()]
    }

    fn apply(
        &self,
        request: &TpProcessRequest,
        context: &mut dyn TransactionContext,
    ) -> Result<(), ApplyError> {
        let payload: CustodyPayload = decode_payload(request, "CustodyPayload")?;
        let signer = signer_of(request)?;
        let Some(action) = payload.action.as_ref() else {
            return Err(invalid(
                "CustodyPayload has no action: set exactly one of its action fields",
            ));
        };
        let now = payload_time(payload.get_timestamp_s())?;
        let by = Signed { signer, now };
        match action {
            Action::create_shipment(a) => shipments::create_shipment(context, by, a),
            Action::cancel_shipment(a) => shipments::cancel_shipment(context, by, a),
            Action::attach_device(a) => shipments::attach_device(context, by, a),
            Action::detach_device(a) => shipments::detach_device(context, by, a),
            Action::propose_handoff(a) => handoff::propose(context, by, a),
            Action::accept_handoff(a) => {
                handoff::accept(context, by, a.get_shipment_id(), a.get_into_quarantine())
                    .map(|_| ())
            }
            Action::reject_handoff(a) => handoff::reject(context, by, a),
            Action::cancel_handoff(a) => handoff::cancel(context, by, a),
            Action::deliver_shipment(a) => delivery::deliver(context, by, a),
            Action::dispense_pack(a) => dispensing::dispense_pack(context, by, a),
            Action::file_emergency_request(a) => emergency::file_request(context, by, a),
            Action::offer_blood_units(a) => emergency::offer_units(context, by, a),
            Action::accept_blood_offer(a) => emergency::accept_offer(context, by, a),
            Action::confirm_blood_delivery(a) => emergency::confirm_delivery(context, by, a),
            Action::cancel_blood_request(a) => emergency::cancel_request(context, by, a),
        }
    }
}

/// The shipment `shipment_id`, refused when it does not exist.
pub(crate) fn load_shipment(
    context: &dyn TransactionContext,
    shipment_id: &str,
) -> Result<Shipment, ApplyError> {
    state::load_required(context, &RecordKind::Shipment.address(shipment_id), || {
        format!("shipment {shipment_id} does not exist; check the id, or create it (`coldchain shipment create`)")
    })
}

/// The latest time the chain knows for `shipment`: creation, proposal or decision.
pub(crate) fn shipment_last_time(shipment: &Shipment) -> u64 {
    let decided = shipment
        .get_handoffs()
        .iter()
        .map(|handoff| handoff.get_decided_at_s())
        .max()
        .unwrap_or(0);
    shipment
        .get_created_at_s()
        .max(shipment.get_pending().get_proposed_at_s())
        .max(decided)
}

/// The address of a lot named by a (normalised) LotRef.
pub(crate) fn lot_address(lot_ref: &LotRef) -> String {
    RecordKind::Lot.address(&goods_key(lot_ref.get_gtin(), lot_ref.get_lot()))
}

/// Every lot of a shipment, with its address, in the shipment's order.
pub(crate) fn load_shipment_lots(
    context: &dyn TransactionContext,
    shipment: &Shipment,
) -> Result<Vec<(String, Lot)>, ApplyError> {
    shipment
        .get_lots()
        .iter()
        .map(|lot_ref| {
            let address = lot_address(lot_ref);
            let lot = state::load_required(context, &address, || {
                format!(
                    "lot {}/{} of shipment {} is missing from state",
                    lot_ref.get_gtin(),
                    lot_ref.get_lot(),
                    shipment.get_shipment_id()
                )
            })?;
            Ok((address, lot))
        })
        .collect()
}

/// Every blood unit of a shipment, with its address, in the shipment's order.
pub(crate) fn load_shipment_units(
    context: &dyn TransactionContext,
    shipment: &Shipment,
) -> Result<Vec<(String, BloodUnit)>, ApplyError> {
    shipment
        .get_blood_units()
        .iter()
        .map(|donation_id| {
            let address = RecordKind::BloodUnit.address(donation_id);
            let unit = state::load_required(context, &address, || {
                format!(
                    "blood unit {donation_id} of shipment {} is missing from state",
                    shipment.get_shipment_id()
                )
            })?;
            Ok((address, unit))
        })
        .collect()
}

/// The sensor family's running record of a shipment, if any readings arrived.
pub(crate) fn shipment_thermal(
    context: &dyn TransactionContext,
    shipment_id: &str,
) -> Result<Option<ThermalRecord>, ApplyError> {
    state::load(context, &RecordKind::ShipmentThermal.address(shipment_id))
}

/// The thermal status recorded with a hand-off (all zero when no readings arrived).
pub(crate) fn snapshot(record: Option<&ThermalRecord>) -> ThermalSnapshot {
    let mut snapshot = ThermalSnapshot::new();
    if let Some(record) = record {
        snapshot.set_compromised(record.get_compromised());
        snapshot.set_reading_count(record.get_reading_count());
        snapshot.set_min_cdeg(record.get_min_cdeg());
        snapshot.set_max_cdeg(record.get_max_cdeg());
        snapshot.set_time_above_s(record.get_time_above_s());
        snapshot.set_time_below_s(record.get_time_below_s());
        snapshot.set_warnings(record.get_warnings());
        snapshot.set_in_excursion(record.has_current());
    }
    snapshot
}
