//! Fuzz target: arbitrary bytes as a registry, custody or sensor payload,
//! applied by the real handler to a small seeded chain (an admin, three
//! organisations with agents and sites, a lot, a device and a gateway grant).
//!
//! Input layout: byte 0 picks the family (mod 3), byte 1 picks the signer
//! (mod 5), the rest is the payload. The only property checked is that no
//! handler panics; every outcome must be `Ok` or an `ApplyError`.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use coldchain_processors::addressing::{setting_address, ADMINS_SETTING};
use coldchain_processors::custody::CustodyHandler;
use coldchain_processors::identifiers::with_check_digit;
use coldchain_processors::memory_context::MemoryContext;
use coldchain_processors::messages::coldchain::*;
use coldchain_processors::registry::RegistryHandler;
use coldchain_processors::sensor::SensorHandler;
use coldchain_processors::signing::Signer;
use coldchain_processors::state;
use libfuzzer_sys::fuzz_target;
use protobuf::Message;
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sawtooth_sdk::processor::handler::TransactionHandler;

fn signer(n: u8) -> Signer {
    Signer::from_hex(&format!("{:02x}", n + 1).repeat(32)).expect("fixed test key")
}

fn request(signer: &Signer, payload: Vec<u8>) -> TpProcessRequest {
    let mut header = TransactionHeader::new();
    header.set_signer_public_key(signer.public_key().to_string());
    // The sensor handler serves 1.0 and 1.1 by the header; the others ignore it.
    header.set_family_version(coldchain_processors::addressing::SENSOR_FAMILY_VERSION.into());
    let mut request = TpProcessRequest::new();
    request.set_header(header);
    request.set_payload(payload);
    request
}

fn registry(context: &mut MemoryContext, by: &Signer, action: RegistryPayload_oneof_action) {
    let mut payload = RegistryPayload::new();
    payload.set_timestamp_s(1_800_000_000);
    payload.action = Some(action);
    let bytes = payload.write_to_bytes().expect("encode seed payload");
    RegistryHandler::new()
        .apply(&request(by, bytes), context)
        .expect("seed transaction applies");
}

/// The seeded chain: signer 0 is the network admin, signers 1-3 are the
/// ADMIN agents of organisations with every role, signer 4 is unknown.
fn seed() -> &'static BTreeMap<String, Vec<u8>> {
    static SEED: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    SEED.get_or_init(|| {
        let mut context = MemoryContext::new();
        let admin = signer(0);
        context.put(
            &setting_address(ADMINS_SETTING),
            state::encode_setting(ADMINS_SETTING, admin.public_key()).expect("setting"),
        );
        let all_roles: Vec<Role> = (1..=9)
            .filter_map(|v| protobuf::ProtobufEnum::from_i32(v))
            .collect();
        for n in 1..=3u8 {
            let org_id = format!("org{n}");
            let mut create = CreateOrganization::new();
            create.set_org_id(org_id.clone());
            create.set_name(org_id.clone());
            create.set_roles(all_roles.clone());
            registry(
                &mut context,
                &admin,
                RegistryPayload_oneof_action::create_organization(create),
            );
            let mut agent = AddAgent::new();
            agent.set_org_id(org_id.clone());
            agent.set_public_key(signer(n).public_key().to_string());
            agent.set_name("agent".into());
            agent.set_roles(all_roles.clone());
            registry(
                &mut context,
                &admin,
                RegistryPayload_oneof_action::add_agent(agent),
            );
            let mut site = AddSite::new();
            site.set_org_id(org_id.clone());
            site.set_gln(with_check_digit(&format!("{:012}", n)).expect("digits"));
            site.set_name("site".into());
            registry(
                &mut context,
                &admin,
                RegistryPayload_oneof_action::add_site(site),
            );
        }
        context.snapshot()
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let context = MemoryContext::new();
    context.restore(seed().clone());
    let mut context = context;
    let by = signer(data[1] % 5);
    let request = request(&by, data[2..].to_vec());
    let handler: Box<dyn TransactionHandler> = match data[0] % 3 {
        0 => Box::new(RegistryHandler::new()),
        1 => Box::new(CustodyHandler::new()),
        _ => Box::new(SensorHandler::new()),
    };
    let _ = handler.apply(&request, &mut context);
});
