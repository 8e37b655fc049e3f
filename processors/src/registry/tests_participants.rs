//! Rules for organisations, sites, agents, devices, gateway grants, and the
//! request checks every registry transaction passes.
use protobuf::Message;
use sawtooth_sdk::processor::handler::{ApplyError, TransactionHandler};

use super::testkit::{assert_invalid, gln, request, World};
use crate::addressing::{gateway_key, RecordKind};
use crate::memory_context::MemoryContext;
use crate::messages::coldchain::RegistryPayload_oneof_action as A;
use crate::messages::coldchain::*;
use crate::registry::{RegistryHandler, MAX_PAYLOAD_BYTES};
use crate::signing::Signer;

fn create_org(id: &str, roles: &[Role]) -> A {
    let mut create = CreateOrganization::new();
    create.set_org_id(id.into());
    create.set_name("Org".into());
    create.set_roles(roles.to_vec());
    A::create_organization(create)
}

fn revoke(key: &Signer) -> A {
    let mut revoke = RevokeAgent::new();
    revoke.set_public_key(key.public_key().into());
    revoke.set_reason("left the company".into());
    A::revoke_agent(revoke)
}

fn device(id: &str, org: &str) -> RegisterDevice {
    let mut device = RegisterDevice::new();
    device.set_device_id(id.into());
    device.set_org_id(org.into());
    device.set_model("LogTag UTRED30".into());
    device.set_calibration_due_date(20280101);
    device
}

#[test]
fn network_admin_creates_an_organisation() {
    let mut world = World::new();
    let admin = world.admin.clone();
    world
        .registry(&admin, create_org("acme", &[Role::MANUFACTURER]))
        .unwrap();
    let org: Organization = world.load(RecordKind::Organization, "acme");
    assert_eq!(org.get_roles(), &[Role::MANUFACTURER]);
    assert_eq!(org.get_created_by(), admin.public_key());
    assert_eq!(org.get_created_at_s(), world.now);
}

#[test]
fn only_network_admins_create_organisations() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::MANUFACTURER]);
    assert_invalid(
        world.registry(&acme.agent, create_org("evil", &[Role::REGULATOR])),
        "not a network admin",
    );
}

#[test]
fn duplicate_organisation_and_bad_roles_are_refused() {
    let mut world = World::new();
    let admin = world.admin.clone();
    world.org("acme", &[Role::MANUFACTURER]);
    assert_invalid(
        world.registry(&admin, create_org("acme", &[Role::PHARMACY])),
        "already exists",
    );
    assert_invalid(
        world.registry(&admin, create_org("x", &[])),
        "roles is empty",
    );
    assert_invalid(
        world.registry(&admin, create_org("y", &[Role::ROLE_UNSET])),
        "ROLE_UNSET",
    );
    assert_invalid(
        world.registry(&admin, create_org("bad id!", &[Role::PHARMACY])),
        "bad id!",
    );
}

#[test]
fn org_admin_adds_agents_with_roles_of_the_organisation() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::MANUFACTURER, Role::DISTRIBUTOR]);
    let key = world
        .add_agent(&acme.agent, "acme", &[Role::DISTRIBUTOR])
        .unwrap();
    let agent: Agent = world.load(RecordKind::Agent, key.public_key());
    assert_eq!(agent.get_org_id(), "acme");
    assert_invalid(
        world.add_agent(&acme.agent, "acme", &[Role::REGULATOR]),
        "REGULATOR",
    );
}

#[test]
fn agents_without_admin_role_or_of_another_org_cannot_add_agents() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::MANUFACTURER]);
    let other = world.org("other", &[Role::PHARMACY]);
    let plain = world
        .add_agent(&acme.agent, "acme", &[Role::MANUFACTURER])
        .unwrap();
    assert_invalid(
        world.add_agent(&plain, "acme", &[Role::MANUFACTURER]),
        "needs one of [ADMIN]",
    );
    assert_invalid(
        world.add_agent(&other.agent, "acme", &[Role::MANUFACTURER]),
        "not of acme",
    );
}

#[test]
fn revoked_agent_can_do_nothing() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::MANUFACTURER]);
    let worker = world
        .add_agent(&acme.agent, "acme", &[Role::MANUFACTURER, Role::ADMIN])
        .unwrap();
    world.registry(&acme.agent, revoke(&worker)).unwrap();
    let agent: Agent = world.load(RecordKind::Agent, worker.public_key());
    assert!(agent.get_revoked());
    assert_eq!(agent.get_revoke_reason(), "left the company");
    assert_invalid(
        world.add_agent(&worker, "acme", &[Role::MANUFACTURER]),
        "revoked",
    );
    assert_invalid(
        world.registry(&worker, A::register_device(device("D1", "acme"))),
        "revoked",
    );
    assert_invalid(
        world.registry(&acme.agent, revoke(&worker)),
        "already revoked",
    );
}

#[test]
fn a_revoked_key_is_never_reinstated() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::MANUFACTURER]);
    let worker = world
        .add_agent(&acme.agent, "acme", &[Role::MANUFACTURER])
        .unwrap();
    world.registry(&acme.agent, revoke(&worker)).unwrap();
    let mut add = AddAgent::new();
    add.set_org_id("acme".into());
    add.set_public_key(worker.public_key().into());
    add.set_name("again".into());
    add.set_roles(vec![Role::MANUFACTURER]);
    assert_invalid(
        world.registry(&acme.agent, A::add_agent(add)),
        "generate a new key",
    );
}

#[test]
fn revoked_network_admin_cannot_create_organisations() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::MANUFACTURER]);
    let admin = world.admin.clone();
    // The network admin also registered as an agent of acme, then revoked.
    let mut add = AddAgent::new();
    add.set_org_id("acme".into());
    add.set_public_key(admin.public_key().into());
    add.set_name("admin".into());
    add.set_roles(vec![Role::ADMIN]);
    world.registry(&admin, A::add_agent(add)).unwrap();
    world.registry(&acme.agent, revoke(&admin)).unwrap();
    assert_invalid(
        world.registry(&admin, create_org("new", &[Role::PHARMACY])),
        "revoked",
    );
}

#[test]
fn sites_need_a_valid_gln_and_are_unique() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::MANUFACTURER]);
    let org: Organization = world.load(RecordKind::Organization, "acme");
    assert_eq!(org.get_site_glns(), std::slice::from_ref(&acme.site));
    let mut bad = gln(123).into_bytes();
    bad[12] = b'0' + (bad[12] - b'0' + 1) % 10;
    let bad = String::from_utf8(bad).unwrap();
    let mut site = AddSite::new();
    site.set_org_id("acme".into());
    site.set_gln(bad.clone());
    site.set_name("plant".into());
    assert_invalid(world.registry(&acme.agent, A::add_site(site.clone())), &bad);
    site.set_gln(acme.site.clone());
    assert_invalid(
        world.registry(&acme.agent, A::add_site(site)),
        "already registered",
    );
}

#[test]
fn devices_are_registered_by_their_organisation_once() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::CARRIER]);
    let other = world.org("other", &[Role::CARRIER]);
    let mut register = device("D1", "acme");
    register.set_public_key(Signer::generate().public_key().into());
    world
        .registry(&acme.agent, A::register_device(register.clone()))
        .unwrap();
    let stored: Device = world.load(RecordKind::Device, "D1");
    assert_eq!(stored.get_org_id(), "acme");
    assert_invalid(
        world.registry(&acme.agent, A::register_device(register)),
        "already registered",
    );
    assert_invalid(
        world.registry(&other.agent, A::register_device(device("D2", "acme"))),
        "not of acme",
    );
    let mut bad_key = device("D3", "acme");
    bad_key.set_public_key("04abc".into());
    assert_invalid(
        world.registry(&acme.agent, A::register_device(bad_key)),
        "04abc",
    );
    let mut bad_date = device("D4", "acme");
    bad_date.set_calibration_due_date(20270231);
    assert_invalid(
        world.registry(&acme.agent, A::register_device(bad_date)),
        "20270231",
    );
}

#[test]
fn device_revocation_by_its_organisation() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::CARRIER]);
    let other = world.org("other", &[Role::CARRIER]);
    world
        .registry(&acme.agent, A::register_device(device("D1", "acme")))
        .unwrap();
    let mut revoke = RevokeDevice::new();
    revoke.set_device_id("D1".into());
    revoke.set_reason("dropped".into());
    assert_invalid(
        world.registry(&other.agent, A::revoke_device(revoke.clone())),
        "not of acme",
    );
    world
        .registry(&acme.agent, A::revoke_device(revoke.clone()))
        .unwrap();
    assert!(world.load::<Device>(RecordKind::Device, "D1").get_revoked());
    assert_invalid(
        world.registry(&acme.agent, A::revoke_device(revoke)),
        "already revoked",
    );
}

#[test]
fn gateway_grants_are_given_and_revoked_by_org_admins() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::CARRIER]);
    let plain = world
        .add_agent(&acme.agent, "acme", &[Role::CARRIER])
        .unwrap();
    let gateway = Signer::generate();
    let mut grant = AuthorizeGateway::new();
    grant.set_org_id("acme".into());
    grant.set_public_key(gateway.public_key().into());
    grant.set_name("depot gateway".into());
    assert_invalid(
        world.registry(&plain, A::authorize_gateway(grant.clone())),
        "ADMIN",
    );
    world
        .registry(&acme.agent, A::authorize_gateway(grant.clone()))
        .unwrap();
    assert_invalid(
        world.registry(&acme.agent, A::authorize_gateway(grant.clone())),
        "already authorised",
    );
    let mut revoke = RevokeGateway::new();
    revoke.set_org_id("acme".into());
    revoke.set_public_key(gateway.public_key().into());
    revoke.set_reason("stolen".into());
    world
        .registry(&acme.agent, A::revoke_gateway(revoke.clone()))
        .unwrap();
    let key = gateway_key("acme", gateway.public_key());
    assert!(world
        .load::<GatewayGrant>(RecordKind::GatewayGrant, &key)
        .get_revoked());
    assert_invalid(
        world.registry(&acme.agent, A::revoke_gateway(revoke)),
        "already revoked",
    );
    world
        .registry(&acme.agent, A::authorize_gateway(grant))
        .unwrap();
    assert!(!world
        .load::<GatewayGrant>(RecordKind::GatewayGrant, &key)
        .get_revoked());
}

fn apply_raw(payload: Vec<u8>) -> Result<(), ApplyError> {
    let mut context = MemoryContext::new();
    RegistryHandler::new().apply(&request(&Signer::generate(), payload), &mut context)
}

#[test]
fn malformed_empty_and_oversized_payloads_are_invalid() {
    assert_invalid(apply_raw(vec![]), "payload is empty");
    assert_invalid(
        apply_raw(vec![0xff, 0xff, 0xff]),
        "not a valid RegistryPayload",
    );
    assert_invalid(apply_raw(vec![0; MAX_PAYLOAD_BYTES + 1]), "over the limit");
}

#[test]
fn payload_without_action_or_time_is_invalid() {
    let mut payload = RegistryPayload::new();
    payload.set_timestamp_s(5);
    assert_invalid(apply_raw(payload.write_to_bytes().unwrap()), "no action");
    let mut payload = RegistryPayload::new();
    payload.action = Some(create_org("acme", &[Role::PHARMACY]));
    assert_invalid(
        apply_raw(payload.write_to_bytes().unwrap()),
        "timestamp_s is 0",
    );
}

#[test]
fn payload_time_in_milliseconds_is_invalid_with_a_hint() {
    let mut payload = RegistryPayload::new();
    payload.set_timestamp_s(1_796_104_496_000);
    payload.action = Some(create_org("acme", &[Role::PHARMACY]));
    assert_invalid(
        apply_raw(payload.write_to_bytes().unwrap()),
        "after 9999-12-31 23:59:59 UTC; give unix time in seconds (not milliseconds)",
    );
}

#[test]
fn missing_signer_is_invalid() {
    let mut payload = RegistryPayload::new();
    payload.set_timestamp_s(5);
    payload.action = Some(create_org("acme", &[Role::PHARMACY]));
    let mut req = request(&Signer::generate(), payload.write_to_bytes().unwrap());
    req.mut_header().clear_signer_public_key();
    let mut context = MemoryContext::new();
    assert_invalid(
        RegistryHandler::new().apply(&req, &mut context),
        "no signer_public_key",
    );
}

#[test]
fn handler_registers_family_version_and_namespace() {
    let handler = RegistryHandler::new();
    assert_eq!(handler.family_name(), "coldchain-registry");
    assert_eq!(handler.family_versions(), vec!["1.0".to_string()]);
    assert_eq!(
        handler.namespaces(),
        vec![crate::addressing::namespace("coldchain-registry")]
    );
}

#[test]
fn overlong_text_fields_are_refused_naming_the_limit() {
    let mut world = World::new();
    let admin = world.admin.clone();
    let mut create = CreateOrganization::new();
    create.set_org_id("wordy".into());
    create.set_name("n".repeat(201));
    create.set_roles(vec![Role::PHARMACY]);
    assert_invalid(
        world.registry(&admin, A::create_organization(create)),
        "name is 201 characters, more than the 200 allowed; shorten it",
    );
}

#[test]
fn adding_a_key_that_is_already_an_active_agent_is_refused() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::MANUFACTURER]);
    world.org("other", &[Role::MANUFACTURER]);
    let admin = world.admin.clone();
    let mut add = AddAgent::new();
    add.set_org_id("other".into());
    add.set_public_key(acme.agent.public_key().into());
    add.set_name("moved".into());
    add.set_roles(vec![Role::MANUFACTURER]);
    assert_invalid(
        world.registry(&admin, A::add_agent(add)),
        &format!(
            "public key {} is already an agent of organisation acme; revoke it first if it must move",
            acme.agent.public_key()
        ),
    );
    let agent: Agent = world.load(RecordKind::Agent, acme.agent.public_key());
    assert_eq!(agent.get_org_id(), "acme");
}

#[test]
fn revoking_a_key_that_is_not_an_agent_is_refused() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::MANUFACTURER]);
    let stranger = Signer::generate();
    assert_invalid(
        world.registry(&acme.agent, revoke(&stranger)),
        &format!(
            "public key {} is not a registered agent; nothing to revoke",
            stranger.public_key()
        ),
    );
}

#[test]
fn revoking_an_unregistered_device_is_refused() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::CARRIER]);
    let mut revoke = RevokeDevice::new();
    revoke.set_device_id("D9".into());
    revoke.set_reason("lost".into());
    assert_invalid(
        world.registry(&acme.agent, A::revoke_device(revoke)),
        "device D9 is not registered",
    );
}

#[test]
fn revoking_a_gateway_that_has_no_grant_is_refused() {
    let mut world = World::new();
    let acme = world.org("acme", &[Role::CARRIER]);
    let gateway = Signer::generate();
    let mut revoke = RevokeGateway::new();
    revoke.set_org_id("acme".into());
    revoke.set_public_key(gateway.public_key().into());
    revoke.set_reason("never granted".into());
    assert_invalid(
        world.registry(&acme.agent, A::revoke_gateway(revoke)),
        "has no grant for organisation acme; nothing to revoke",
    );
}
