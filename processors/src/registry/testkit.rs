//! Test scaffolding shared by the registry and custody tests: an in-memory
//! chain with a network admin, signed requests, and ready-made organisations.
use protobuf::Message;
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sawtooth_sdk::processor::handler::{ApplyError, TransactionHandler};

use crate::addressing::{goods_key, setting_address, RecordKind, ADMINS_SETTING};
use crate::custody::CustodyHandler;
use crate::identifiers::with_check_digit;
use crate::memory_context::{EmittedEvent, MemoryContext};
use crate::messages::coldchain::*;
use crate::registry::RegistryHandler;
use crate::signing::{Signer, TransactionSpec};
use crate::state;
use sawtooth_sdk::processor::handler::{ContextError, TransactionContext};
use std::cell::RefCell;

/// For payloads a client could not even build a spec for (e.g. a bad GTIN):
/// the handler must still refuse them, so they run with every namespace allowed.
fn permissive_spec() -> TransactionSpec {
    use crate::addressing::{namespace, CUSTODY_FAMILY, REGISTRY_FAMILY, SENSOR_FAMILY};
    let all = vec![
        "000000".to_string(),
        namespace(REGISTRY_FAMILY),
        namespace(CUSTODY_FAMILY),
        namespace(SENSOR_FAMILY),
    ];
    TransactionSpec {
        family_name: String::new(),
        family_version: String::new(),
        inputs: all.clone(),
        outputs: all,
        dependencies: Vec::new(),
        payload: Vec::new(),
    }
}

/// Delegates to a MemoryContext and records which addresses were touched.
struct Recording<'a> {
    inner: &'a MemoryContext,
    reads: RefCell<Vec<String>>,
    writes: RefCell<Vec<String>>,
}

impl TransactionContext for Recording<'_> {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        self.reads.borrow_mut().extend(addresses.iter().cloned());
        self.inner.get_state_entries(addresses)
    }
    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        self.writes
            .borrow_mut()
            .extend(entries.iter().map(|(a, _)| a.clone()));
        self.inner.set_state_entries(entries)
    }
    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError> {
        self.writes.borrow_mut().extend(addresses.iter().cloned());
        self.inner.delete_state_entries(addresses)
    }
    fn add_receipt_data(&self, data: &[u8]) -> Result<(), ContextError> {
        self.inner.add_receipt_data(data)
    }
    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        data: &[u8],
    ) -> Result<(), ContextError> {
        self.inner.add_event(event_type, attributes, data)
    }
}

/// 2027-01-15 08:00 UTC.
pub const T0: u64 = 1_800_000_000;
pub const GTIN: &str = "09501101530003";

pub struct World {
    pub context: MemoryContext,
    pub admin: Signer,
    pub now: u64,
    sites: u64,
}

/// A valid GLN made from `n`.
pub fn gln(n: u64) -> String {
    with_check_digit(&format!("{n:012}")).unwrap()
}

pub fn request(signer: &Signer, payload: Vec<u8>) -> TpProcessRequest {
    let mut header = TransactionHeader::new();
    header.set_signer_public_key(signer.public_key().to_string());
    let mut request = TpProcessRequest::new();
    request.set_header(header);
    request.set_payload(payload);
    request
}

/// Asserts `result` is an InvalidTransaction whose message contains `fragment`.
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, ApplyError>, fragment: &str) {
    match result {
        Err(ApplyError::InvalidTransaction(message)) => assert!(
            message.contains(fragment),
            "message {message:?} does not contain {fragment:?}"
        ),
        other => panic!("expected InvalidTransaction containing {fragment:?}, got {other:?}"),
    }
}

pub fn profile_2_8() -> StorageProfile {
    let mut profile = StorageProfile::new();
    profile.set_name("refrigerated 2-8 C".into());
    profile.set_min_cdeg(200);
    profile.set_max_cdeg(800);
    profile.set_max_single_high_s(3_600);
    profile.set_max_cumulative_high_s(36_000);
    profile.set_max_warnings(50);
    profile.set_has_mkt_limit(true);
    profile.set_mkt_limit_cdeg(800);
    profile.set_max_gap_s(600);
    profile
}

pub fn lot_ref(gtin: &str, lot: &str) -> LotRef {
    let mut lot_ref = LotRef::new();
    lot_ref.set_gtin(gtin.into());
    lot_ref.set_lot(lot.into());
    lot_ref
}

/// An organisation made by [`World::org`]: its id, ADMIN+roles agent and first site.
pub struct Org {
    pub id: String,
    pub agent: Signer,
    pub site: String,
}

impl World {
    pub fn new() -> World {
        let context = MemoryContext::new();
        let admin = Signer::generate();
        context.put(
            &setting_address(ADMINS_SETTING),
            state::encode_setting(ADMINS_SETTING, &format!("{}, 02ffff", admin.public_key()))
                .unwrap(),
        );
        World {
            context,
            admin,
            now: T0,
            sites: 0,
        }
    }

    /// Applies a handler like a validator: on failure the state and events are
    /// discarded. On success, every address read or written must be covered by
    /// the transaction spec's inputs or outputs (as a validator enforces).
    fn apply(
        &mut self,
        handler: &dyn TransactionHandler,
        signer: &Signer,
        payload: Vec<u8>,
        spec: TransactionSpec,
    ) -> Result<(), ApplyError> {
        let before = self.context.snapshot();
        let earlier_events = self.context.take_events();
        let mut recording = Recording {
            inner: &self.context,
            reads: RefCell::new(Vec::new()),
            writes: RefCell::new(Vec::new()),
        };
        let result = handler.apply(&request(signer, payload), &mut recording);
        let (reads, writes) = (recording.reads.take(), recording.writes.take());
        let new_events = self.context.take_events();
        let kept = if result.is_err() {
            Vec::new()
        } else {
            new_events
        };
        for event in earlier_events.into_iter().chain(kept) {
            self.context
                .add_event(event.event_type, event.attributes, &event.data)
                .unwrap();
        }
        if result.is_err() {
            // A validator discards an invalid transaction's writes and events.
            self.context.restore(before);
            return result;
        }
        let covered = |list: &[String], address: &String| {
            list.iter()
                .any(|prefix| address.starts_with(prefix.as_str()))
        };
        for address in &reads {
            assert!(
                covered(&spec.inputs, address),
                "read of {address} not in inputs {:?}",
                spec.inputs
            );
        }
        for address in &writes {
            assert!(
                covered(&spec.outputs, address),
                "write of {address} not in outputs {:?}",
                spec.outputs
            );
        }
        result
    }

    pub fn registry(
        &mut self,
        signer: &Signer,
        action: RegistryPayload_oneof_action,
    ) -> Result<(), ApplyError> {
        let mut payload = RegistryPayload::new();
        payload.set_timestamp_s(self.now);
        payload.action = Some(action);
        let spec =
            crate::registry::transaction_spec(&payload).unwrap_or_else(|_| permissive_spec());
        self.apply(
            &RegistryHandler::new(),
            signer,
            payload.write_to_bytes().unwrap(),
            spec,
        )
    }

    pub fn custody(
        &mut self,
        signer: &Signer,
        action: CustodyPayload_oneof_action,
    ) -> Result<(), ApplyError> {
        let mut payload = CustodyPayload::new();
        payload.set_timestamp_s(self.now);
        payload.action = Some(action);
        let spec = crate::custody::transaction_spec(&payload).unwrap_or_else(|_| permissive_spec());
        self.apply(
            &CustodyHandler::new(),
            signer,
            payload.write_to_bytes().unwrap(),
            spec,
        )
    }

    pub fn load<M: Message>(&self, kind: RecordKind, key: &str) -> M {
        state::load(&self.context, &kind.address(key))
            .unwrap()
            .unwrap_or_else(|| panic!("no {kind:?} record for {key}"))
    }

    pub fn lot(&self, lot: &str) -> Lot {
        self.load(RecordKind::Lot, &goods_key(GTIN, lot))
    }

    pub fn events(&self) -> Vec<EmittedEvent> {
        self.context.take_events()
    }

    pub fn new_site(&mut self, org: &Org) -> String {
        self.sites += 1;
        let gln = gln(4_000_000_000 + self.sites);
        let mut site = AddSite::new();
        site.set_org_id(org.id.clone());
        site.set_gln(gln.clone());
        site.set_name(format!("site {}", self.sites));
        self.registry(&org.agent, RegistryPayload_oneof_action::add_site(site))
            .unwrap();
        gln
    }

    /// Adds an agent with `roles` to `org_id`, signed by `by`.
    pub fn add_agent(
        &mut self,
        by: &Signer,
        org_id: &str,
        roles: &[Role],
    ) -> Result<Signer, ApplyError> {
        let key = Signer::generate();
        let mut add = AddAgent::new();
        add.set_org_id(org_id.into());
        add.set_public_key(key.public_key().into());
        add.set_name("agent".into());
        add.set_roles(roles.to_vec());
        self.registry(by, RegistryPayload_oneof_action::add_agent(add))
            .map(|_| key)
    }

    /// Creates organisation `id` with `roles`, an agent holding them plus ADMIN,
    /// and one site.
    pub fn org(&mut self, id: &str, roles: &[Role]) -> Org {
        let mut create = CreateOrganization::new();
        create.set_org_id(id.into());
        create.set_name(format!("{id} Ltd"));
        create.set_roles(roles.to_vec());
        let admin = self.admin.clone();
        self.registry(
            &admin,
            RegistryPayload_oneof_action::create_organization(create),
        )
        .unwrap();
        let mut agent_roles = roles.to_vec();
        agent_roles.push(Role::ADMIN);
        let agent = self.add_agent(&admin, id, &agent_roles).unwrap();
        let mut org = Org {
            id: id.into(),
            agent,
            site: String::new(),
        };
        org.site = self.new_site(&org);
        org
    }

    pub fn create_lot_action(
        &self,
        lot: &str,
        site: &str,
        quantity: u64,
        serials: &[&str],
    ) -> CreateLot {
        let mut create = CreateLot::new();
        create.set_gtin(GTIN.into());
        create.set_lot(lot.into());
        create.set_expiry_date(20281231);
        create.set_quantity(quantity);
        create.set_serials(serials.iter().map(|s| s.to_string()).collect());
        create.set_profile(profile_2_8());
        create.set_site_gln(site.into());
        create.set_product_name("Vaccine X".into());
        create
    }

    /// Registers lot `lot` at the manufacturer's site.
    pub fn create_lot(&mut self, maker: &Org, lot: &str, serials: &[&str]) {
        let action = self.create_lot_action(lot, &maker.site, serials.len().max(1) as u64, serials);
        let agent = maker.agent.clone();
        self.registry(&agent, RegistryPayload_oneof_action::create_lot(action))
            .unwrap();
    }

    pub fn change_status(
        &mut self,
        by: &Signer,
        lot: &str,
        status: LotStatus,
    ) -> Result<(), ApplyError> {
        let mut change = ChangeLotStatus::new();
        change.set_lot(lot_ref(GTIN, lot));
        change.set_status(status);
        change.set_reason("test".into());
        self.registry(by, RegistryPayload_oneof_action::change_lot_status(change))
    }
}

/// Custody helpers.
impl World {
    pub fn ship(
        &mut self,
        from: &Org,
        id: &str,
        to_gln: &str,
        lots: &[&str],
    ) -> Result<(), ApplyError> {
        let mut create = CreateShipment::new();
        create.set_shipment_id(id.into());
        create.set_from_gln(from.site.clone());
        create.set_to_gln(to_gln.into());
        create.set_lots(lots.iter().map(|lot| lot_ref(GTIN, lot)).collect());
        self.custody(
            &from.agent,
            CustodyPayload_oneof_action::create_shipment(create),
        )
    }

    pub fn propose(
        &mut self,
        by: &Signer,
        shipment: &str,
        to_org: &str,
        at_gln: &str,
    ) -> Result<(), ApplyError> {
        let mut propose = ProposeHandoff::new();
        propose.set_shipment_id(shipment.into());
        propose.set_to_org_id(to_org.into());
        propose.set_at_gln(at_gln.into());
        self.custody(by, CustodyPayload_oneof_action::propose_handoff(propose))
    }

    pub fn accept(
        &mut self,
        by: &Signer,
        shipment: &str,
        into_quarantine: bool,
    ) -> Result<(), ApplyError> {
        let mut accept = AcceptHandoff::new();
        accept.set_shipment_id(shipment.into());
        accept.set_into_quarantine(into_quarantine);
        self.custody(by, CustodyPayload_oneof_action::accept_handoff(accept))
    }

    pub fn shipment(&self, id: &str) -> Shipment {
        self.load(RecordKind::Shipment, id)
    }

    /// Writes the sensor family's shipment record, as its processor would.
    pub fn put_shipment_thermal(&self, shipment_id: &str, compromised: bool) {
        let mut record = ThermalRecord::new();
        record.set_subject(shipment_id.into());
        record.set_reading_count(42);
        record.set_min_cdeg(310);
        record.set_max_cdeg(1_250);
        record.set_time_above_s(7_200);
        record.set_warnings(3);
        record.set_compromised(compromised);
        if compromised {
            record.set_compromised_reason("single high excursion over 3600 s".into());
        }
        self.context.put(
            &RecordKind::ShipmentThermal.address(shipment_id),
            record.write_to_bytes().unwrap(),
        );
    }

    /// Rewrites lot `lot` in state after `change` (simulates another family's write).
    pub fn edit_lot(&self, lot: &str, change: impl FnOnce(&mut Lot)) {
        let mut record = self.lot(lot);
        change(&mut record);
        self.context.put(
            &RecordKind::Lot.address(&goods_key(GTIN, lot)),
            record.write_to_bytes().unwrap(),
        );
    }

    /// Rewrites blood unit `donation_id` in state after `change` (simulates another family's write).
    pub fn edit_unit(&self, donation_id: &str, change: impl FnOnce(&mut BloodUnit)) {
        let mut unit: BloodUnit = self.load(RecordKind::BloodUnit, donation_id);
        change(&mut unit);
        self.context.put(
            &RecordKind::BloodUnit.address(donation_id),
            unit.write_to_bytes().unwrap(),
        );
    }

    /// Empties the state entry of `kind`/`key`, as if the record had never been written.
    pub fn forget(&self, kind: RecordKind, key: &str) {
        self.context.put(&kind.address(key), Vec::new());
    }

    /// Registers an O-negative red-cell unit `donation_id` of `bank` at `site`, expiring on `expiry`.
    pub fn blood_unit(&mut self, bank: &Org, donation_id: &str, site: &str, expiry: u32) {
        let mut unit = RegisterBloodUnit::new();
        unit.set_donation_id(donation_id.into());
        unit.set_component(BloodComponent::RED_CELLS);
        unit.set_abo(AboGroup::O);
        unit.set_rh(RhD::NEGATIVE);
        unit.set_volume_ml(280);
        unit.set_expiry_date(expiry);
        unit.set_site_gln(site.into());
        let agent = bank.agent.clone();
        self.registry(
            &agent,
            RegistryPayload_oneof_action::register_blood_unit(unit),
        )
        .unwrap();
    }

    /// Creates shipment `id` of blood units `units` from `from`'s `from_gln` to `to_gln`.
    pub fn ship_units(
        &mut self,
        from: &Org,
        id: &str,
        from_gln: &str,
        to_gln: &str,
        units: &[&str],
    ) -> Result<(), ApplyError> {
        let mut create = CreateShipment::new();
        create.set_shipment_id(id.into());
        create.set_from_gln(from_gln.into());
        create.set_to_gln(to_gln.into());
        create.set_blood_units(units.iter().map(|unit| unit.to_string()).collect());
        self.custody(
            &from.agent,
            CustodyPayload_oneof_action::create_shipment(create),
        )
    }

    /// maker -> carrier -> shop: lot `lot` delivered to the shop in shipment `id`.
    pub fn deliver(&mut self, maker: &Org, carrier: &Org, shop: &Org, id: &str, lot: &str) {
        self.ship(maker, id, &shop.site, &[lot]).unwrap();
        self.now += 60;
        self.propose(&maker.agent, id, &carrier.id, &maker.site)
            .unwrap();
        self.now += 60;
        self.accept(&carrier.agent, id, false).unwrap();
        self.now += 3_600;
        self.propose(&carrier.agent, id, &shop.id, &shop.site)
            .unwrap();
        self.now += 60;
        self.accept(&shop.agent, id, false).unwrap();
        self.now += 60;
    }
}
