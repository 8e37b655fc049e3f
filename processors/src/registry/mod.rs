//! # The registry family (`coldchain-registry`, version 1.0)
//!
//! Who takes part and what exists: organisations, their sites and agents,
//! temperature loggers and the gateways allowed to submit for them, lots (with
//! their packs) and blood units. Rules are in `docs/families.md`.
//!
//! ## Layout
//! - [`request`]: payload size limit, signer, timestamp, errors and events (shared by every family).
//! - [`authority`]: who the signer is — active agents, roles, network admins (shared by every family).
//! - `participants`: organisations, sites, agents, devices, gateway grants.
//! - `goods`: lots and packs, lot status changes, blood units.
//! - `spec`: the client side — inputs and outputs of a registry transaction.
//!
//! ## Boundaries
//! Deterministic, as every handler: time comes from the payload, records are
//! written in a fixed order, no I/O besides the `TransactionContext`.
pub mod authority;
pub mod goods;
mod participants;
pub mod request;
pub mod spec;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests_goods;
#[cfg(test)]
mod tests_participants;

use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext, TransactionHandler};

use crate::addressing::{namespace, FAMILY_VERSION, REGISTRY_FAMILY};
use crate::messages::coldchain::{RegistryPayload, RegistryPayload_oneof_action as Action};

pub use authority::{
    authorize, authorize_org_admin, has_role, is_network_admin, load_organization, load_own_site,
    load_site, require_active_agent, require_network_admin,
};
pub use goods::{check_lot_transition, check_profile, mark_lot_compromised, record_status_change};
pub use request::MAX_PAYLOAD_BYTES;
pub use spec::{transaction_spec, SpecError};

/// The registry family's Sawtooth handler.
#[derive(Debug, Clone)]
pub struct RegistryHandler {
    namespace: String,
}

impl RegistryHandler {
    pub fn new() -> RegistryHandler {
        RegistryHandler {
            namespace: namespace(REGISTRY_FAMILY),
        }
    }
}

impl Default for RegistryHandler {
    fn default() -> Self {
        RegistryHandler::new()
    }
}

impl TransactionHandler for RegistryHandler {
    fn family_name(&self) -> String {
        REGISTRY_FAMILY.to_string()
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
        let payload: RegistryPayload = request::decode_payload(request, "RegistryPayload")?;
        let signer = request::signer_of(request)?;
        let Some(action) = payload.action.as_ref() else {
            return Err(request::invalid(
                "RegistryPayload has no action: set exactly one of its action fields",
            ));
        };
        let now = request::payload_time(payload.get_timestamp_s())?;
        let by = Signed { signer, now };
        match action {
            Action::create_organization(a) => participants::create_organization(context, by, a),
            Action::add_site(a) => participants::add_site(context, by, a),
            Action::add_agent(a) => participants::add_agent(context, by, a),
            Action::revoke_agent(a) => participants::revoke_agent(context, by, a),
            Action::register_device(a) => participants::register_device(context, by, a),
            Action::revoke_device(a) => participants::revoke_device(context, by, a),
            Action::authorize_gateway(a) => participants::authorize_gateway(context, by, a),
            Action::revoke_gateway(a) => participants::revoke_gateway(context, by, a),
            Action::create_lot(a) => goods::create_lot(context, by, a),
            Action::change_lot_status(a) => goods::change_lot_status(context, by, a),
            Action::register_blood_unit(a) => goods::register_blood_unit(context, by, a),
        }
    }
}

/// Who signed an action and the payload time it claims.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    pub signer: &'a str,
    pub now: u64,
}

/// Refuses an empty (when `required`) or overlong free-text field.
pub fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<(), ApplyError> {
    if required && value.trim().is_empty() {
        return Err(request::invalid(format!(
            "{field} is empty; give a {field}"
        )));
    }
    if value.chars().count() > max {
        return Err(request::invalid(format!(
            "{field} is {} characters, more than the {max} allowed; shorten it",
            value.chars().count()
        )));
    }
    Ok(())
}
