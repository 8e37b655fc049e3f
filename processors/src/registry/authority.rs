//! Who the signer is and what they may do: registered, non-revoked agents,
//! their organisation and roles, and the network admins named by the on-chain
//! setting `coldchain.admins`.
//!
//! Every action of every family starts here. Read-only: nothing in this module
//! writes state.
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext};

use super::request::invalid;
use crate::addressing::{RecordKind, ADMINS_SETTING};
use crate::messages::coldchain::{Agent, Organization, Role, Site};
use crate::state;

/// Short form of a key for messages: the first 10 hex characters.
pub fn short_key(key: &str) -> &str {
    key.get(..10).unwrap_or(key)
}

/// The Agent record of `public_key`, refused when it is not registered or
/// has been revoked. The sensor and custody families call this for every signer.
pub fn require_active_agent(
    context: &dyn TransactionContext,
    public_key: &str,
) -> Result<Agent, ApplyError> {
    let agent: Agent = state::load_required(
        context,
        &RecordKind::Agent.address(public_key),
        || {
            format!(
                "signer {public_key} is not a registered agent; an admin of your organisation must add it first (`coldchain org add-agent`)"
            )
        },
    )?;
    refuse_revoked(&agent)?;
    Ok(agent)
}

fn refuse_revoked(agent: &Agent) -> Result<(), ApplyError> {
    if agent.get_revoked() {
        return Err(invalid(format!(
            "agent {} of organisation {} was revoked on {} ({}); a revoked key can do nothing",
            agent.get_public_key(),
            agent.get_org_id(),
            crate::identifiers::utc_time_text(agent.get_revoked_at_s()),
            agent.get_revoke_reason()
        )));
    }
    Ok(())
}

/// True when `agent` holds `role`.
pub fn has_role(agent: &Agent, role: Role) -> bool {
    agent.get_roles().contains(&role)
}

/// Checks the signer is an active agent, of `org_id` when given, holding at
/// least one of `roles` when `roles` is not empty. Returns the agent.
pub fn authorize(
    context: &dyn TransactionContext,
    signer_public_key: &str,
    org_id: Option<&str>,
    roles: &[Role],
) -> Result<Agent, ApplyError> {
    let agent = require_active_agent(context, signer_public_key)?;
    if let Some(org_id) = org_id {
        if agent.get_org_id() != org_id {
            return Err(invalid(format!(
                "signer {} is an agent of organisation {}, not of {org_id}; sign with a key of {org_id}",
                short_key(signer_public_key),
                agent.get_org_id()
            )));
        }
    }
    if !roles.is_empty() && !roles.iter().any(|role| has_role(&agent, *role)) {
        return Err(invalid(format!(
            "signer {} of organisation {} has roles {:?} but this action needs one of {:?}",
            short_key(signer_public_key),
            agent.get_org_id(),
            agent.get_roles(),
            roles
        )));
    }
    Ok(agent)
}

/// True when `public_key` is listed in the on-chain setting `coldchain.admins`
/// and is not a revoked agent.
pub fn is_network_admin(
    context: &dyn TransactionContext,
    public_key: &str,
) -> Result<bool, ApplyError> {
    let admins = state::setting_list(context, ADMINS_SETTING)?;
    if !admins.iter().any(|admin| admin == public_key) {
        return Ok(false);
    }
    if let Some(agent) = state::load::<Agent>(context, &RecordKind::Agent.address(public_key))? {
        refuse_revoked(&agent)?;
    }
    Ok(true)
}

/// Refuses a signer that is not a network admin.
pub fn require_network_admin(
    context: &dyn TransactionContext,
    public_key: &str,
) -> Result<(), ApplyError> {
    if is_network_admin(context, public_key)? {
        Ok(())
    } else {
        Err(invalid(format!(
            "signer {public_key} is not a network admin: only keys listed in the setting {ADMINS_SETTING} may do this"
        )))
    }
}

/// Network admins, or active ADMIN agents of `org_id`, may administer `org_id`.
pub fn authorize_org_admin(
    context: &dyn TransactionContext,
    signer_public_key: &str,
    org_id: &str,
) -> Result<(), ApplyError> {
    if is_network_admin(context, signer_public_key)? {
        return Ok(());
    }
    authorize(context, signer_public_key, Some(org_id), &[Role::ADMIN]).map(|_| ())
}

/// The organisation `org_id`, refused when it does not exist.
pub fn load_organization(
    context: &dyn TransactionContext,
    org_id: &str,
) -> Result<Organization, ApplyError> {
    state::load_required(context, &RecordKind::Organization.address(org_id), || {
        format!("organisation {org_id} does not exist; a network admin creates it (`coldchain org create`)")
    })
}

/// The site `gln`, refused when it is not registered.
pub fn load_site(context: &dyn TransactionContext, gln: &str) -> Result<Site, ApplyError> {
    state::load_required(context, &RecordKind::Site.address(gln), || {
        format!(
            "site GLN {gln} is not registered; its organisation adds it first (`coldchain org add-site`)"
        )
    })
}

/// The site `gln`, refused unless it belongs to `org_id`.
pub fn load_own_site(
    context: &dyn TransactionContext,
    gln: &str,
    org_id: &str,
) -> Result<Site, ApplyError> {
    let site = load_site(context, gln)?;
    if site.get_org_id() != org_id {
        return Err(invalid(format!(
            "site GLN {gln} belongs to organisation {}, not to {org_id}; use one of your own sites",
            site.get_org_id()
        )));
    }
    Ok(site)
}
