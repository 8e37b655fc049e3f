//! Participants: organisations (network admins only), their sites and agents
//! (network admins or the organisation's ADMIN agents), temperature loggers
//! (any agent of the owning organisation) and gateway grants (admins).
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext};

use super::authority::{
    authorize, authorize_org_admin, load_organization, require_network_admin, short_key,
};
use super::request::{bad_identifier, invalid};
use super::{check_text, Signed};
use crate::addressing::{gateway_key, RecordKind};
use crate::identifiers::{check_date, check_gln, check_public_key, check_record_id};
use crate::messages::coldchain::{
    AddAgent, AddSite, Agent, AuthorizeGateway, CreateOrganization, Device, GatewayGrant,
    Organization, RegisterDevice, RevokeAgent, RevokeDevice, RevokeGateway, Role, Site,
};
use crate::state;

const NAME_MAX: usize = 200;
const REASON_MAX: usize = 500;

/// Roles as given, without ROLE_UNSET (refused) and without repeats.
fn clean_roles(roles: &[Role]) -> Result<Vec<Role>, ApplyError> {
    if roles.is_empty() {
        return Err(invalid("roles is empty; give at least one role"));
    }
    let mut clean = Vec::with_capacity(roles.len());
    for role in roles {
        if *role == Role::ROLE_UNSET {
            return Err(invalid("roles contains ROLE_UNSET; name real roles only"));
        }
        if !clean.contains(role) {
            clean.push(*role);
        }
    }
    Ok(clean)
}

pub(super) fn create_organization(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &CreateOrganization,
) -> Result<(), ApplyError> {
    require_network_admin(context, by.signer)?;
    check_record_id("org id", action.get_org_id()).map_err(bad_identifier)?;
    check_text("name", action.get_name(), NAME_MAX, true)?;
    let roles = clean_roles(action.get_roles())?;
    let address = RecordKind::Organization.address(action.get_org_id());
    if state::load::<Organization>(context, &address)?.is_some() {
        return Err(invalid(format!(
            "organisation {} already exists; choose another org id",
            action.get_org_id()
        )));
    }
    let mut org = Organization::new();
    org.set_org_id(action.get_org_id().to_string());
    org.set_name(action.get_name().to_string());
    org.set_roles(roles);
    org.set_created_by(by.signer.to_string());
    org.set_created_at_s(by.now);
    state::store(context, address, &org)
}

pub(super) fn add_site(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &AddSite,
) -> Result<(), ApplyError> {
    let mut org = load_organization(context, action.get_org_id())?;
    authorize_org_admin(context, by.signer, action.get_org_id())?;
    check_gln(action.get_gln()).map_err(bad_identifier)?;
    check_text("name", action.get_name(), NAME_MAX, true)?;
    check_text("address", action.get_address(), REASON_MAX, false)?;
    let address = RecordKind::Site.address(action.get_gln());
    if let Some(site) = state::load::<Site>(context, &address)? {
        return Err(invalid(format!(
            "site GLN {} is already registered to organisation {}",
            action.get_gln(),
            site.get_org_id()
        )));
    }
    let mut site = Site::new();
    site.set_gln(action.get_gln().to_string());
    site.set_org_id(action.get_org_id().to_string());
    site.set_name(action.get_name().to_string());
    site.set_address(action.get_address().to_string());
    org.mut_site_glns().push(action.get_gln().to_string());
    state::store_all(
        context,
        vec![
            (
                RecordKind::Organization.address(action.get_org_id()),
                state::encode(&org)?,
            ),
            (address, state::encode(&site)?),
        ],
    )
}

pub(super) fn add_agent(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &AddAgent,
) -> Result<(), ApplyError> {
    let org = load_organization(context, action.get_org_id())?;
    authorize_org_admin(context, by.signer, action.get_org_id())?;
    check_public_key(action.get_public_key()).map_err(bad_identifier)?;
    check_text("name", action.get_name(), NAME_MAX, true)?;
    let roles = clean_roles(action.get_roles())?;
    if let Some(role) = roles
        .iter()
        .find(|role| **role != Role::ADMIN && !org.get_roles().contains(role))
    {
        return Err(invalid(format!(
            "role {role:?} is not one of organisation {}'s roles {:?}; an agent's roles must be a subset of its organisation's (ADMIN is always allowed)",
            org.get_org_id(),
            org.get_roles()
        )));
    }
    let address = RecordKind::Agent.address(action.get_public_key());
    if let Some(existing) = state::load::<Agent>(context, &address)? {
        let hint = if existing.get_revoked() {
            "it was revoked and a revoked key is never reinstated; generate a new key"
        } else {
            "revoke it first if it must move"
        };
        return Err(invalid(format!(
            "public key {} is already an agent of organisation {}; {hint}",
            action.get_public_key(),
            existing.get_org_id()
        )));
    }
    let mut agent = Agent::new();
    agent.set_public_key(action.get_public_key().to_string());
    agent.set_org_id(action.get_org_id().to_string());
    agent.set_name(action.get_name().to_string());
    agent.set_roles(roles);
    state::store(context, address, &agent)
}

pub(super) fn revoke_agent(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &RevokeAgent,
) -> Result<(), ApplyError> {
    let address = RecordKind::Agent.address(action.get_public_key());
    let mut agent: Agent = state::load_required(context, &address, || {
        format!(
            "public key {} is not a registered agent; nothing to revoke",
            action.get_public_key()
        )
    })?;
    authorize_org_admin(context, by.signer, agent.get_org_id())?;
    check_text("reason", action.get_reason(), REASON_MAX, true)?;
    if agent.get_revoked() {
        return Err(invalid(format!(
            "agent {} is already revoked (at {})",
            action.get_public_key(),
            agent.get_revoked_at_s()
        )));
    }
    agent.set_revoked(true);
    agent.set_revoked_by(by.signer.to_string());
    agent.set_revoked_at_s(by.now);
    agent.set_revoke_reason(action.get_reason().to_string());
    state::store(context, address, &agent)
}

pub(super) fn register_device(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &RegisterDevice,
) -> Result<(), ApplyError> {
    load_organization(context, action.get_org_id())?;
    authorize(context, by.signer, Some(action.get_org_id()), &[])?;
    check_record_id("device id", action.get_device_id()).map_err(bad_identifier)?;
    if !action.get_public_key().is_empty() {
        check_public_key(action.get_public_key()).map_err(bad_identifier)?;
    }
    check_text("model", action.get_model(), NAME_MAX, true)?;
    if action.get_calibration_due_date() != 0 {
        check_date(action.get_calibration_due_date()).map_err(bad_identifier)?;
    }
    let address = RecordKind::Device.address(action.get_device_id());
    if let Some(device) = state::load::<Device>(context, &address)? {
        return Err(invalid(format!(
            "device {} is already registered to organisation {}; device ids are never reused",
            action.get_device_id(),
            device.get_org_id()
        )));
    }
    let mut device = Device::new();
    device.set_device_id(action.get_device_id().to_string());
    device.set_org_id(action.get_org_id().to_string());
    device.set_public_key(action.get_public_key().to_string());
    device.set_model(action.get_model().to_string());
    device.set_calibration_due_date(action.get_calibration_due_date());
    state::store(context, address, &device)
}

pub(super) fn revoke_device(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &RevokeDevice,
) -> Result<(), ApplyError> {
    let address = RecordKind::Device.address(action.get_device_id());
    let mut device: Device = state::load_required(context, &address, || {
        format!("device {} is not registered", action.get_device_id())
    })?;
    authorize(context, by.signer, Some(device.get_org_id()), &[])?;
    check_text("reason", action.get_reason(), REASON_MAX, true)?;
    if device.get_revoked() {
        return Err(invalid(format!(
            "device {} is already revoked",
            action.get_device_id()
        )));
    }
    device.set_revoked(true);
    state::store(context, address, &device)
}

pub(super) fn authorize_gateway(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &AuthorizeGateway,
) -> Result<(), ApplyError> {
    load_organization(context, action.get_org_id())?;
    authorize_org_admin(context, by.signer, action.get_org_id())?;
    check_public_key(action.get_public_key()).map_err(bad_identifier)?;
    check_text("name", action.get_name(), NAME_MAX, true)?;
    let address = RecordKind::GatewayGrant
        .address(&gateway_key(action.get_org_id(), action.get_public_key()));
    if let Some(grant) = state::load::<GatewayGrant>(context, &address)? {
        if !grant.get_revoked() {
            return Err(invalid(format!(
                "gateway {} is already authorised for organisation {}",
                short_key(action.get_public_key()),
                action.get_org_id()
            )));
        }
    }
    let mut grant = GatewayGrant::new();
    grant.set_org_id(action.get_org_id().to_string());
    grant.set_public_key(action.get_public_key().to_string());
    grant.set_name(action.get_name().to_string());
    state::store(context, address, &grant)
}

pub(super) fn revoke_gateway(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &RevokeGateway,
) -> Result<(), ApplyError> {
    authorize_org_admin(context, by.signer, action.get_org_id())?;
    check_text("reason", action.get_reason(), REASON_MAX, true)?;
    let address = RecordKind::GatewayGrant
        .address(&gateway_key(action.get_org_id(), action.get_public_key()));
    let mut grant: GatewayGrant = state::load_required(context, &address, || {
        format!(
            "gateway {} has no grant for organisation {}; nothing to revoke",
            action.get_public_key(),
            action.get_org_id()
        )
    })?;
    if grant.get_revoked() {
        return Err(invalid(format!(
            "gateway {} is already revoked for organisation {}",
            short_key(action.get_public_key()),
            action.get_org_id()
        )));
    }
    grant.set_revoked(true);
    state::store(context, address, &grant)
}
