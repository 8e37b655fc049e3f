//! The client side of the custody family: which addresses a transaction reads
//! and writes, computed from its payload alone.
//!
//! Exact addresses where the payload names the record; type prefixes where
//! they depend on state (the lots inside a shipment, the lot of a pack, the
//! signer's Agent record).
use protobuf::Message;

use crate::addressing::{goods_key, RecordKind, CUSTODY_FAMILY, FAMILY_VERSION};
use crate::identifiers::normalize_gtin;
use crate::messages::coldchain::{CustodyPayload, CustodyPayload_oneof_action as Action};
use crate::registry::spec::dedup;
use crate::registry::SpecError;
use crate::signing::TransactionSpec;

/// Inputs, outputs and encoded payload of a custody transaction.
pub fn transaction_spec(payload: &CustodyPayload) -> Result<TransactionSpec, SpecError> {
    use RecordKind::*;
    let action = payload.action.as_ref().ok_or(SpecError::NoAction)?;
    let agents = Agent.address_prefix();
    let shipment = |id: &str| Shipment.address(id);
    // What an acceptance touches: every lot, unit and logger of the shipment.
    let goods = || {
        vec![
            Lot.address_prefix(),
            BloodUnit.address_prefix(),
            Device.address_prefix(),
        ]
    };
    let (inputs, outputs): (Vec<String>, Vec<String>) = match action {
        Action::create_shipment(a) => {
            let mut touched = vec![shipment(a.get_shipment_id())];
            for lot_ref in a.get_lots() {
                let gtin = normalize_gtin(lot_ref.get_gtin())?;
                touched.push(Lot.address(&goods_key(&gtin, lot_ref.get_lot())));
            }
            touched.extend(a.get_blood_units().iter().map(|id| BloodUnit.address(id)));
            let mut inputs = vec![
                agents,
                Site.address(a.get_from_gln()),
                Site.address(a.get_to_gln()),
            ];
            inputs.extend(touched.iter().cloned());
            (inputs, touched)
        }
        Action::cancel_shipment(a) => {
            let mut touched = vec![shipment(a.get_shipment_id())];
            touched.extend(goods());
            // A blood shipment may be cancelled once its request is withdrawn.
            let mut inputs = vec![agents, EmergencyRequest.address_prefix()];
            inputs.extend(touched.iter().cloned());
            (inputs, touched)
        }
        Action::attach_device(a) => {
            let touched = vec![
                shipment(a.get_shipment_id()),
                Device.address(a.get_device_id()),
            ];
            let mut inputs = vec![agents];
            inputs.extend(touched.iter().cloned());
            (inputs, touched)
        }
        Action::detach_device(a) => {
            let touched = vec![
                shipment(a.get_shipment_id()),
                Device.address(a.get_device_id()),
            ];
            let mut inputs = vec![agents];
            inputs.extend(touched.iter().cloned());
            (inputs, touched)
        }
        Action::propose_handoff(a) => (
            vec![
                agents,
                shipment(a.get_shipment_id()),
                Organization.address(a.get_to_org_id()),
                Site.address(a.get_at_gln()),
            ],
            vec![shipment(a.get_shipment_id())],
        ),
        Action::accept_handoff(a) => {
            let mut touched = vec![shipment(a.get_shipment_id())];
            touched.extend(goods());
            let mut inputs = vec![
                agents,
                ShipmentThermal.address(a.get_shipment_id()),
                Site.address_prefix(),
            ];
            inputs.extend(touched.iter().cloned());
            (inputs, touched)
        }
        Action::deliver_shipment(a) => {
            let mut touched = vec![shipment(a.get_shipment_id())];
            touched.extend(goods());
            let mut inputs = vec![
                agents,
                ShipmentThermal.address(a.get_shipment_id()),
                Site.address_prefix(),
            ];
            inputs.extend(touched.iter().cloned());
            (inputs, touched)
        }
        Action::reject_handoff(a) => (
            vec![
                agents,
                shipment(a.get_shipment_id()),
                ShipmentThermal.address(a.get_shipment_id()),
            ],
            vec![shipment(a.get_shipment_id())],
        ),
        Action::cancel_handoff(a) => (
            vec![
                agents,
                shipment(a.get_shipment_id()),
                ShipmentThermal.address(a.get_shipment_id()),
            ],
            vec![shipment(a.get_shipment_id())],
        ),
        Action::dispense_pack(a) => {
            let gtin = normalize_gtin(a.get_gtin())?;
            let pack = Pack.address(&goods_key(&gtin, a.get_serial()));
            (
                vec![
                    agents,
                    Site.address(a.get_site_gln()),
                    pack.clone(),
                    Lot.address_prefix(),
                ],
                vec![pack, Lot.address_prefix()],
            )
        }
        Action::file_emergency_request(a) => {
            let request = EmergencyRequest.address(a.get_request_id());
            (
                vec![agents, Site.address(a.get_hospital_gln()), request.clone()],
                vec![request],
            )
        }
        Action::offer_blood_units(a) => {
            let mut touched = vec![
                EmergencyRequest.address(a.get_request_id()),
                BloodOffer.address(a.get_offer_id()),
            ];
            touched.extend(a.get_donation_ids().iter().map(|id| BloodUnit.address(id)));
            let mut inputs = vec![agents];
            inputs.extend(touched.iter().cloned());
            inputs.extend(
                a.get_donation_ids()
                    .iter()
                    .map(|id| GoodsThermal.address(id)),
            );
            (inputs, touched)
        }
        Action::accept_blood_offer(a) => {
            let touched = vec![
                EmergencyRequest.address(a.get_request_id()),
                BloodOffer.address_prefix(),
                BloodUnit.address_prefix(),
                shipment(a.get_shipment_id()),
            ];
            let mut inputs = vec![agents];
            inputs.extend(touched.iter().cloned());
            (inputs, touched)
        }
        Action::cancel_blood_request(a) => {
            let touched = vec![
                EmergencyRequest.address(a.get_request_id()),
                BloodUnit.address_prefix(),
            ];
            let mut inputs = vec![
                agents,
                BloodOffer.address_prefix(),
                Shipment.address_prefix(),
            ];
            inputs.extend(touched.iter().cloned());
            (inputs, touched)
        }
        Action::confirm_blood_delivery(a) => {
            let mut touched = vec![
                EmergencyRequest.address(a.get_request_id()),
                Shipment.address_prefix(),
            ];
            touched.extend(goods());
            let mut inputs = vec![
                agents,
                ShipmentThermal.address_prefix(),
                Site.address_prefix(),
            ];
            inputs.extend(touched.iter().cloned());
            (inputs, touched)
        }
    };
    Ok(TransactionSpec {
        family_name: CUSTODY_FAMILY.to_string(),
        family_version: FAMILY_VERSION.to_string(),
        inputs: dedup(inputs),
        outputs: dedup(outputs),
        dependencies: Vec::new(),
        payload: payload
            .write_to_bytes()
            .map_err(|e| SpecError::Encode(e.to_string()))?,
    })
}
