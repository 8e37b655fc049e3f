//! The client side of the registry family: which addresses a transaction
//! reads and writes, computed from its payload alone.
//!
//! Exact addresses where the payload names the record; the Agent type prefix
//! for the signer (the payload does not carry the signer's key), and the Pack
//! prefix for lots with many serials (to keep headers small).
use protobuf::Message;

use crate::addressing::{
    gateway_key, goods_key, setting_address, RecordKind, ADMINS_SETTING, FAMILY_VERSION,
    REGISTRY_FAMILY,
};
use crate::identifiers::{normalize_gtin, IdentifierError};
use crate::messages::coldchain::{RegistryPayload, RegistryPayload_oneof_action as Action};
use crate::signing::TransactionSpec;

/// Lots with more serials than this list the Pack prefix instead of each pack.
const EXACT_PACK_ADDRESSES_MAX: usize = 256;

/// Why a transaction spec could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("the payload has no action; set exactly one action field")]
    NoAction,
    #[error(transparent)]
    Identifier(#[from] IdentifierError),
    #[error("could not encode the payload: {0}")]
    Encode(String),
}

/// Inputs, outputs and encoded payload of a registry transaction.
pub fn transaction_spec(payload: &RegistryPayload) -> Result<TransactionSpec, SpecError> {
    let action = payload.action.as_ref().ok_or(SpecError::NoAction)?;
    let admins = setting_address(ADMINS_SETTING);
    let agents = RecordKind::Agent.address_prefix();
    let org = |id: &str| RecordKind::Organization.address(id);
    let (inputs, outputs): (Vec<String>, Vec<String>) = match action {
        Action::create_organization(a) => (
            vec![admins, agents, org(a.get_org_id())],
            vec![org(a.get_org_id())],
        ),
        Action::add_site(a) => {
            let site = RecordKind::Site.address(a.get_gln());
            (
                vec![admins, agents, org(a.get_org_id()), site.clone()],
                vec![org(a.get_org_id()), site],
            )
        }
        Action::add_agent(a) => (
            vec![admins, agents, org(a.get_org_id())],
            vec![RecordKind::Agent.address(a.get_public_key())],
        ),
        Action::revoke_agent(a) => (
            vec![admins, agents],
            vec![RecordKind::Agent.address(a.get_public_key())],
        ),
        Action::register_device(a) => {
            let device = RecordKind::Device.address(a.get_device_id());
            (
                vec![agents, org(a.get_org_id()), device.clone()],
                vec![device],
            )
        }
        Action::revoke_device(a) => {
            let device = RecordKind::Device.address(a.get_device_id());
            (vec![agents, device.clone()], vec![device])
        }
        Action::authorize_gateway(a) => {
            let grant =
                RecordKind::GatewayGrant.address(&gateway_key(a.get_org_id(), a.get_public_key()));
            (
                vec![admins, agents, org(a.get_org_id()), grant.clone()],
                vec![grant],
            )
        }
        Action::revoke_gateway(a) => {
            let grant =
                RecordKind::GatewayGrant.address(&gateway_key(a.get_org_id(), a.get_public_key()));
            (vec![admins, agents, grant.clone()], vec![grant])
        }
        Action::create_lot(a) => {
            let gtin = normalize_gtin(a.get_gtin())?;
            let lot = RecordKind::Lot.address(&goods_key(&gtin, a.get_lot()));
            let packs: Vec<String> = if a.get_serials().len() > EXACT_PACK_ADDRESSES_MAX {
                vec![RecordKind::Pack.address_prefix()]
            } else {
                a.get_serials()
                    .iter()
                    .map(|serial| RecordKind::Pack.address(&goods_key(&gtin, serial)))
                    .collect()
            };
            let mut inputs = vec![
                agents,
                RecordKind::Site.address(a.get_site_gln()),
                lot.clone(),
            ];
            inputs.extend(packs.iter().cloned());
            let mut outputs = vec![lot];
            outputs.extend(packs);
            (inputs, outputs)
        }
        Action::change_lot_status(a) => {
            let gtin = normalize_gtin(a.get_lot().get_gtin())?;
            let lot = RecordKind::Lot.address(&goods_key(&gtin, a.get_lot().get_lot()));
            (vec![agents, lot.clone()], vec![lot])
        }
        Action::register_blood_unit(a) => {
            let unit = RecordKind::BloodUnit.address(a.get_donation_id());
            (
                vec![
                    agents,
                    RecordKind::Site.address(a.get_site_gln()),
                    unit.clone(),
                ],
                vec![unit],
            )
        }
    };
    Ok(TransactionSpec {
        family_name: REGISTRY_FAMILY.to_string(),
        family_version: FAMILY_VERSION.to_string(),
        inputs: dedup(inputs),
        outputs: dedup(outputs),
        dependencies: Vec::new(),
        payload: payload
            .write_to_bytes()
            .map_err(|e| SpecError::Encode(e.to_string()))?,
    })
}

/// Removes repeated addresses, keeping the first occurrence (stable order).
pub(crate) fn dedup(addresses: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    addresses
        .into_iter()
        .filter(|address| seen.insert(address.clone()))
        .collect()
}
