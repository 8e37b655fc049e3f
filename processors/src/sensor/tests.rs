//! Handler tests: every refusal and the allowed path, on a `MemoryContext`.
use protobuf::Message;
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sha2::{Digest, Sha512};

use super::*;
use crate::addressing::namespace;
use crate::memory_context::MemoryContext;
use crate::messages::coldchain::{LotRef, Reading};

const GATEWAY: &str = "02aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ORG: &str = "carrier-1";
const GTIN: &str = "09501101530003";
const CREATED: u64 = 1_000_000;

fn fridge() -> StorageProfile {
    let mut p = StorageProfile::new();
    p.name = "refrigerated 2-8 C".to_string();
    p.min_cdeg = 200;
    p.max_cdeg = 800;
    p.max_single_high_s = 3_600;
    p.max_single_low_s = 3_600;
    p.max_cumulative_high_s = 36_000;
    p.max_cumulative_low_s = 36_000;
    p
}

struct Fixture {
    context: MemoryContext,
}

impl Fixture {
    /// Device D-1 of `ORG` attached to shipment S-1 carrying lots L1 and L2,
    /// gateway `GATEWAY` authorised for `ORG`.
    fn new() -> Fixture {
        let mut context = MemoryContext::new();
        let mut device = Device::new();
        device.device_id = "D-1".to_string();
        device.org_id = ORG.to_string();
        device.attached_shipment_id = "S-1".to_string();
        state::store(&mut context, RecordKind::Device.address("D-1"), &device).unwrap();
        let mut grant = GatewayGrant::new();
        grant.org_id = ORG.to_string();
        grant.public_key = GATEWAY.to_string();
        let grant_address = RecordKind::GatewayGrant.address(&gateway_key(ORG, GATEWAY));
        state::store(&mut context, grant_address, &grant).unwrap();
        let mut shipment = Shipment::new();
        shipment.shipment_id = "S-1".to_string();
        shipment.created_at_s = CREATED;
        shipment.set_profile(fridge());
        for name in ["L1", "L2"] {
            let mut lot_ref = LotRef::new();
            lot_ref.gtin = GTIN.to_string();
            lot_ref.lot = name.to_string();
            shipment.lots.push(lot_ref);
            let mut lot = Lot::new();
            lot.gtin = GTIN.to_string();
            lot.lot = name.to_string();
            lot.status = LotStatus::ACTIVE;
            lot.set_profile(fridge());
            let address = RecordKind::Lot.address(&goods_key(GTIN, name));
            state::store(&mut context, address, &lot).unwrap();
        }
        state::store(&mut context, RecordKind::Shipment.address("S-1"), &shipment).unwrap();
        Fixture { context }
    }

    fn update<M: Message>(&mut self, address: String, change: impl FnOnce(&mut M)) {
        let mut record: M = state::load(&self.context, &address).unwrap().unwrap();
        change(&mut record);
        state::store(&mut self.context, address, &record).unwrap();
    }

    fn submit_as(&mut self, signer: &str, payload: Vec<u8>) -> Result<(), ApplyError> {
        self.submit_version(signer, addressing::SENSOR_FAMILY_VERSION, payload)
    }

    fn submit_version(
        &mut self,
        signer: &str,
        version: &str,
        payload: Vec<u8>,
    ) -> Result<(), ApplyError> {
        let mut header = TransactionHeader::new();
        header.set_signer_public_key(signer.to_string());
        header.set_family_version(version.to_string());
        let mut request = TpProcessRequest::new();
        request.set_header(header);
        request.set_payload(payload);
        SensorHandler::new().apply(&request, &mut self.context)
    }

    fn submit(&mut self, batch: &RecordReadings) -> Result<(), ApplyError> {
        self.submit_as(GATEWAY, spec::record_readings_payload(batch))
    }

    fn refusal(&mut self, batch: &RecordReadings) -> String {
        let before = self.context.snapshot();
        match self.submit(batch) {
            Err(ApplyError::InvalidTransaction(message)) => {
                assert_eq!(self.context.snapshot(), before, "a refusal wrote state");
                message
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn thermal(&self, key: &str, kind: RecordKind) -> ThermalRecord {
        state::load(&self.context, &kind.address(key))
            .unwrap()
            .unwrap()
    }

    fn lot(&self, name: &str) -> Lot {
        let address = RecordKind::Lot.address(&goods_key(GTIN, name));
        state::load(&self.context, &address).unwrap().unwrap()
    }

    fn device(&self) -> Device {
        state::load(&self.context, &RecordKind::Device.address("D-1"))
            .unwrap()
            .unwrap()
    }
}

/// Readings `(sequence, time offset after CREATED, temperature)` from D-1 for S-1.
fn batch(readings: &[(u64, u64, i32)]) -> RecordReadings {
    let mut batch = RecordReadings::new();
    batch.device_id = "D-1".to_string();
    batch.shipment_id = "S-1".to_string();
    for &(sequence, offset, temperature_cdeg) in readings {
        let mut reading = Reading::new();
        reading.sequence = sequence;
        reading.time_s = CREATED + offset;
        reading.temperature_cdeg = temperature_cdeg;
        batch.readings.push(reading);
    }
    batch
}

fn in_range(from_sequence: u64, count: u64) -> RecordReadings {
    let readings: Vec<(u64, u64, i32)> = (0..count)
        .map(|i| (from_sequence + i, (from_sequence + i) * 60, 500))
        .collect();
    batch(&readings)
}

#[test]
fn accepted_batch_updates_device_shipment_and_every_lot() {
    let mut f = Fixture::new();
    f.submit(&in_range(1, 10)).unwrap();
    let device = f.device();
    assert_eq!(
        (device.last_sequence, device.last_time_s),
        (10, CREATED + 600)
    );
    let shipment = f.thermal("S-1", RecordKind::ShipmentThermal);
    assert_eq!(shipment.reading_count, 10);
    assert_eq!(shipment.time_in_range_s, 540);
    assert_eq!(shipment.readings_batches, 1);
    for name in ["L1", "L2"] {
        let lot = f.thermal(&goods_key(GTIN, name), RecordKind::GoodsThermal);
        assert_eq!(lot.subject, goods_key(GTIN, name));
        assert_eq!(lot.reading_count, 10);
        assert_eq!(lot.get_profile(), &fridge());
    }
    assert!(f.context.take_events().is_empty());
}

#[test]
fn chain_head_commits_to_every_payload_in_order() {
    let mut f = Fixture::new();
    let payloads = [
        spec::record_readings_payload(&in_range(1, 5)),
        spec::record_readings_payload(&in_range(6, 5)),
    ];
    let mut head = [0u8; 64].to_vec();
    for payload in &payloads {
        f.submit_as(GATEWAY, payload.clone()).unwrap();
        let mut hasher = Sha512::new();
        hasher.update(&head);
        hasher.update(Sha512::digest(payload));
        head = hasher.finalize().to_vec();
    }
    let record = f.thermal("S-1", RecordKind::ShipmentThermal);
    assert_eq!(record.readings_chain_head, hex::encode(&head));
    assert_eq!(record.readings_batches, 2);
}

#[test]
fn unregistered_device_is_refused() {
    let mut f = Fixture::new();
    let mut b = in_range(1, 2);
    b.device_id = "D-404".to_string();
    assert!(f.refusal(&b).starts_with("device D-404 is not registered"));
}

#[test]
fn revoked_device_is_refused() {
    let mut f = Fixture::new();
    f.update(RecordKind::Device.address("D-1"), |d: &mut Device| {
        d.revoked = true
    });
    assert!(f
        .refusal(&in_range(1, 2))
        .starts_with("device D-1 has been revoked"));
}

#[test]
fn device_not_attached_to_the_shipment_is_refused() {
    let mut f = Fixture::new();
    f.update(RecordKind::Device.address("D-1"), |d: &mut Device| {
        d.attached_shipment_id = "S-2".to_string()
    });
    assert!(f.refusal(&in_range(1, 2)).starts_with(
        "device D-1 is not attached to shipment S-1 (it is attached to shipment S-2)"
    ));
}

#[test]
fn unauthorised_gateway_is_refused() {
    let mut f = Fixture::new();
    let other = "03bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let result = f.submit_as(other, spec::record_readings_payload(&in_range(1, 2)));
    match result {
        Err(ApplyError::InvalidTransaction(m)) => assert!(
            m.starts_with(&format!(
                "signer {other} is not an authorised gateway of organisation {ORG}"
            )),
            "{m}"
        ),
        other => panic!("expected refusal, got {other:?}"),
    }
}

#[test]
fn revoked_gateway_is_refused() {
    let mut f = Fixture::new();
    let address = RecordKind::GatewayGrant.address(&gateway_key(ORG, GATEWAY));
    f.update(address, |g: &mut GatewayGrant| g.revoked = true);
    assert!(f.refusal(&in_range(1, 2)).contains("has been revoked"));
}

#[test]
fn empty_batch_is_refused() {
    let mut f = Fixture::new();
    assert!(f.refusal(&batch(&[])).contains("is empty"));
}

#[test]
fn oversized_batch_is_refused() {
    let mut f = Fixture::new();
    let b = in_range(1, MAX_READINGS_PER_BATCH as u64 + 1);
    assert!(f.refusal(&b).contains("more than the limit of 10000"));
}

#[test]
fn non_increasing_sequence_within_batch_is_refused() {
    let mut f = Fixture::new();
    let b = batch(&[(1, 60, 500), (3, 120, 500), (3, 180, 500)]);
    assert!(f
        .refusal(&b)
        .starts_with("reading sequence 3 follows sequence 3 in the batch"));
}

#[test]
fn time_going_backwards_within_batch_is_refused() {
    let mut f = Fixture::new();
    let b = batch(&[(1, 120, 500), (2, 60, 500)]);
    assert!(f.refusal(&b).contains("times must not go backwards"));
}

#[test]
fn replayed_batch_is_refused_as_already_recorded() {
    let mut f = Fixture::new();
    let b = in_range(1, 5);
    f.submit(&b).unwrap();
    let message = f.refusal(&b);
    assert!(message.starts_with(ALREADY_RECORDED), "{message}");
    assert!(message.contains("up to sequence 5, so the whole batch"));
}

#[test]
fn overlapping_batch_is_refused_naming_the_overlap() {
    let mut f = Fixture::new();
    f.submit(&in_range(1, 5)).unwrap();
    let message = f.refusal(&in_range(4, 5));
    assert!(message.starts_with(ALREADY_RECORDED));
    assert!(
        message.contains("sequences 4..=5 of this batch"),
        "{message}"
    );
}

#[test]
fn skipped_sequence_numbers_are_accepted() {
    let mut f = Fixture::new();
    f.submit(&in_range(1, 2)).unwrap();
    f.submit(&in_range(10, 2)).unwrap();
    assert_eq!(f.device().last_sequence, 11);
}

#[test]
fn time_before_the_devices_last_reading_is_refused() {
    let mut f = Fixture::new();
    f.submit(&batch(&[(1, 600, 500)])).unwrap();
    assert!(f
        .refusal(&batch(&[(2, 300, 500)]))
        .contains("goes back before the last accepted reading of device D-1"));
}

#[test]
fn reading_before_shipment_creation_is_refused() {
    let mut f = Fixture::new();
    let mut b = in_range(1, 1);
    b.readings[0].time_s = CREATED - 1;
    assert!(f.refusal(&b).contains("is before shipment S-1 was created"));
}

#[test]
fn reading_after_shipment_closed_is_refused() {
    let mut f = Fixture::new();
    f.update(RecordKind::Shipment.address("S-1"), |s: &mut Shipment| {
        s.closed_at_s = CREATED + 100
    });
    assert!(f
        .refusal(&batch(&[(1, 50, 500), (2, 101, 500)]))
        .contains("is after shipment S-1 was closed"));
}

#[test]
fn missing_shipment_is_refused() {
    let mut f = Fixture::new();
    f.context
        .put(&RecordKind::Shipment.address("S-1"), Vec::new());
    assert!(f
        .refusal(&in_range(1, 1))
        .starts_with("shipment S-1 does not exist"));
}

#[test]
fn impossible_values_are_refused() {
    let mut f = Fixture::new();
    let mut hot = in_range(1, 1);
    hot.readings[0].temperature_cdeg = 10_001;
    assert!(f.refusal(&hot).contains("impossible temperature 10001"));
    let mut wet = in_range(1, 1);
    wet.readings[0].has_humidity = true;
    wet.readings[0].humidity_permille = 1_001;
    assert!(f.refusal(&wet).contains("impossible humidity"));
    let mut lost = in_range(1, 1);
    lost.readings[0].has_location = true;
    lost.readings[0].latitude_udeg = 90_000_001;
    assert!(f.refusal(&lost).contains("impossible location"));
    let mut zero = in_range(1, 1);
    zero.readings[0].sequence = 0;
    assert!(f.refusal(&zero).contains("sequence 0 is not allowed"));
}

#[test]
fn malformed_or_empty_payloads_are_refused() {
    let mut f = Fixture::new();
    match f.submit_as(GATEWAY, vec![0xff, 0xff, 0xff]) {
        Err(ApplyError::InvalidTransaction(m)) => assert!(m.contains("not a valid SensorPayload")),
        other => panic!("expected refusal, got {other:?}"),
    }
    match f.submit_as(GATEWAY, Vec::new()) {
        Err(ApplyError::InvalidTransaction(m)) => assert!(m.contains("no known action")),
        other => panic!("expected refusal, got {other:?}"),
    }
}

#[test]
fn unregistered_lot_on_the_shipment_is_refused() {
    let mut f = Fixture::new();
    f.context
        .put(&RecordKind::Lot.address(&goods_key(GTIN, "L2")), Vec::new());
    assert!(f
        .refusal(&in_range(1, 2))
        .contains(&format!("carries lot {GTIN}/L2, which is not registered")));
}

#[test]
fn excursion_events_name_shipment_device_and_subject() {
    let mut f = Fixture::new();
    f.submit(&batch(&[(1, 0, 500), (2, 60, 900), (3, 120, 500)]))
        .unwrap();
    let events = f.context.take_events();
    let started: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == EVENT_EXCURSION_STARTED)
        .collect();
    assert_eq!(started.len(), 3, "shipment and two lots");
    let ended = events
        .iter()
        .find(|e| e.event_type == EVENT_EXCURSION_ENDED)
        .unwrap();
    let attribute = |name: &str| {
        ended
            .attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(attribute("shipment_id"), "S-1");
    assert_eq!(attribute("device_id"), "D-1");
    assert_eq!(attribute("subject"), "S-1");
    assert_eq!(attribute("subject_kind"), "shipment");
    assert_eq!(attribute("side"), "high");
    assert_eq!(attribute("duration_s"), "60");
    assert_eq!(attribute("peak_cdeg"), "900");
}

#[test]
fn broken_budget_compromises_the_lot_with_a_status_change() {
    let mut f = Fixture::new();
    f.submit(&batch(&[(1, 0, 900), (2, 3_601, 900)])).unwrap();
    let lot = f.lot("L1");
    assert_eq!(lot.status, LotStatus::COMPROMISED);
    let change = lot.history.last().unwrap();
    assert_eq!(change.from, LotStatus::ACTIVE);
    assert_eq!(change.to, LotStatus::COMPROMISED);
    assert_eq!(change.by_public_key, GATEWAY);
    assert_eq!(change.at_s, CREATED + 3_601);
    assert!(change.reason.contains("single high excursion of 3601 s"));
    let compromised = f
        .context
        .take_events()
        .into_iter()
        .filter(|e| e.event_type == EVENT_COMPROMISED)
        .count();
    assert_eq!(compromised, 3);
    assert!(f.thermal("S-1", RecordKind::ShipmentThermal).compromised);
}

#[test]
fn recalled_lot_keeps_its_status_when_its_record_is_compromised() {
    let mut f = Fixture::new();
    f.update(
        RecordKind::Lot.address(&goods_key(GTIN, "L2")),
        |l: &mut Lot| l.status = LotStatus::RECALLED,
    );
    f.submit(&batch(&[(1, 0, 900), (2, 3_601, 900)])).unwrap();
    assert_eq!(f.lot("L2").status, LotStatus::RECALLED);
    assert!(
        f.thermal(&goods_key(GTIN, "L2"), RecordKind::GoodsThermal)
            .compromised
    );
}

#[test]
fn carried_blood_unit_is_tracked_and_compromised() {
    let mut f = Fixture::new();
    let donation = "A999926123456";
    let mut unit = BloodUnit::new();
    unit.donation_id = donation.to_string();
    unit.status = LotStatus::ACTIVE;
    state::store(
        &mut f.context,
        RecordKind::BloodUnit.address(donation),
        &unit,
    )
    .unwrap();
    f.update(RecordKind::Shipment.address("S-1"), |s: &mut Shipment| {
        s.blood_units.push(donation.to_string())
    });
    f.submit(&batch(&[(1, 0, 100), (2, 3_601, 100)])).unwrap();
    let record = f.thermal(donation, RecordKind::GoodsThermal);
    assert_eq!(record.subject, donation);
    assert!(record.compromised);
    let unit: BloodUnit = state::load(&f.context, &RecordKind::BloodUnit.address(donation))
        .unwrap()
        .unwrap();
    assert_eq!(unit.status, LotStatus::COMPROMISED);
}

#[test]
fn spec_names_exact_addresses_and_goods_prefixes() {
    let b = in_range(1, 3);
    let spec = record_readings_spec(&b, ORG, GATEWAY);
    assert_eq!(spec.family_name, SENSOR_FAMILY);
    assert_eq!(spec.family_version, "1.1");
    let grant = RecordKind::GatewayGrant.address(&gateway_key(ORG, GATEWAY));
    for address in [
        RecordKind::Device.address("D-1"),
        RecordKind::Shipment.address("S-1"),
        RecordKind::ShipmentThermal.address("S-1"),
        grant,
        RecordKind::Lot.address_prefix(),
        RecordKind::GoodsThermal.address_prefix(),
        RecordKind::BloodUnit.address_prefix(),
    ] {
        assert!(spec.inputs.contains(&address), "input {address}");
    }
    assert!(spec
        .outputs
        .contains(&RecordKind::ShipmentThermal.address("S-1")));
    assert!(spec
        .outputs
        .contains(&RecordKind::GoodsThermal.address_prefix()));
    assert!(!spec.outputs.contains(&RecordKind::Shipment.address("S-1")));
    assert_eq!(decode_record_readings(&spec.payload).unwrap(), b);
}

#[test]
fn handler_registers_the_sensor_family_namespace() {
    let handler = SensorHandler::new();
    assert_eq!(handler.family_name(), "coldchain-sensor");
    assert_eq!(
        handler.family_versions(),
        vec!["1.0".to_string(), "1.1".to_string()]
    );
    assert_eq!(handler.namespaces(), vec![namespace(SENSOR_FAMILY)]);
}

/// A context that refuses reads and writes outside a transaction's declared
/// inputs and outputs, as a validator does.
struct Declared<'a> {
    inner: &'a MemoryContext,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

fn covered(list: &[String], address: &str) -> bool {
    list.iter()
        .any(|prefix| address.starts_with(prefix.as_str()))
}

impl sawtooth_sdk::processor::handler::TransactionContext for Declared<'_> {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, sawtooth_sdk::processor::handler::ContextError> {
        if let Some(a) = addresses.iter().find(|a| !covered(&self.inputs, a)) {
            return Err(
                sawtooth_sdk::processor::handler::ContextError::AuthorizationError(format!(
                    "read of {a} is not in the inputs"
                )),
            );
        }
        self.inner.get_state_entries(addresses)
    }

    fn set_state_entries(
        &self,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), sawtooth_sdk::processor::handler::ContextError> {
        if let Some((a, _)) = entries.iter().find(|(a, _)| !covered(&self.outputs, a)) {
            return Err(
                sawtooth_sdk::processor::handler::ContextError::AuthorizationError(format!(
                    "write of {a} is not in the outputs"
                )),
            );
        }
        self.inner.set_state_entries(entries)
    }

    fn delete_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<String>, sawtooth_sdk::processor::handler::ContextError> {
        self.inner.delete_state_entries(addresses)
    }

    fn add_receipt_data(
        &self,
        data: &[u8],
    ) -> Result<(), sawtooth_sdk::processor::handler::ContextError> {
        self.inner.add_receipt_data(data)
    }

    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        data: &[u8],
    ) -> Result<(), sawtooth_sdk::processor::handler::ContextError> {
        self.inner.add_event(event_type, attributes, data)
    }
}

#[test]
fn spec_covers_every_address_the_handler_reads_and_writes() {
    let mut f = Fixture::new();
    let donation = "A999926123456";
    let mut unit = BloodUnit::new();
    unit.donation_id = donation.to_string();
    unit.status = LotStatus::ACTIVE;
    state::store(
        &mut f.context,
        RecordKind::BloodUnit.address(donation),
        &unit,
    )
    .unwrap();
    f.update(RecordKind::Shipment.address("S-1"), |s: &mut Shipment| {
        s.blood_units.push(donation.to_string())
    });
    // An excursion long enough to compromise lots and the unit: every write path.
    let b = batch(&[(1, 0, 900), (2, 3_601, 900)]);
    let spec = record_readings_spec(&b, ORG, GATEWAY);
    let mut declared = Declared {
        inner: &f.context,
        inputs: spec.inputs.clone(),
        outputs: spec.outputs.clone(),
    };
    let mut header = TransactionHeader::new();
    header.set_signer_public_key(GATEWAY.to_string());
    header.set_family_version(spec.family_version.clone());
    let mut request = TpProcessRequest::new();
    request.set_header(header);
    request.set_payload(spec.payload);
    SensorHandler::new().apply(&request, &mut declared).unwrap();
    assert_eq!(f.lot("L1").status, LotStatus::COMPROMISED);
}

proptest::proptest! {
    #[test]
    fn arbitrary_payloads_are_refused_or_applied_never_panic(
        payload in proptest::collection::vec(proptest::num::u8::ANY, 0..512)
    ) {
        let mut f = Fixture::new();
        let result = f.submit_as(GATEWAY, payload);
        proptest::prop_assert!(!matches!(result, Err(ApplyError::InternalError(_))), "{:?}", result);
    }
}

#[test]
fn empty_device_or_shipment_ids_are_refused() {
    let mut f = Fixture::new();
    let mut no_device = in_range(1, 1);
    no_device.device_id = String::new();
    assert_eq!(f.refusal(&no_device), "device_id is empty");
    let mut no_shipment = in_range(1, 1);
    no_shipment.shipment_id = String::new();
    assert_eq!(f.refusal(&no_shipment), "shipment_id is empty");
}

#[test]
fn overlong_device_or_shipment_ids_are_refused() {
    let mut f = Fixture::new();
    let mut long_device = in_range(1, 1);
    long_device.device_id = "D".repeat(checks::MAX_ID_LEN + 1);
    assert_eq!(
        f.refusal(&long_device),
        "device_id is 129 bytes long, more than 128"
    );
    let mut long_shipment = in_range(1, 1);
    long_shipment.shipment_id = "S".repeat(checks::MAX_ID_LEN + 1);
    assert_eq!(
        f.refusal(&long_shipment),
        "shipment_id is 129 bytes long, more than 128"
    );
}

#[test]
fn shipment_without_a_transport_profile_is_refused() {
    let mut f = Fixture::new();
    f.update(RecordKind::Shipment.address("S-1"), |s: &mut Shipment| {
        s.clear_profile()
    });
    assert_eq!(
        f.refusal(&in_range(1, 1)),
        "shipment S-1 has no transport profile, so its readings cannot be judged"
    );
}

#[test]
fn device_and_shipment_checks_refuse_an_empty_batch_on_their_own() {
    let f = Fixture::new();
    let empty = batch(&[]);
    let shipment: Shipment = state::load(&f.context, &RecordKind::Shipment.address("S-1"))
        .unwrap()
        .unwrap();
    for result in [
        checks::check_device(&f.device(), &empty),
        checks::check_shipment(&shipment, &empty),
    ] {
        match result {
            Err(ApplyError::InvalidTransaction(m)) => assert_eq!(m, "readings batch is empty"),
            other => panic!("expected refusal, got {other:?}"),
        }
    }
}

/// Issue 13 through the handler: a second logger in range on the same shipment
/// must not close the first logger's excursion. D-1 reads 11 °C for 80 s while
/// D-2 reads 5 °C every 2 s in between; the shipment and both lots it carries
/// are compromised by D-1's single excursion, and the reason names D-1.
#[test]
fn a_second_logger_cannot_hide_the_first_loggers_excursion() {
    let mut fixture = Fixture::new();
    let mut second = fixture.device();
    second.device_id = "D-2".to_string();
    state::store(
        &mut fixture.context,
        RecordKind::Device.address("D-2"),
        &second,
    )
    .unwrap();
    fixture.update(RecordKind::Shipment.address("S-1"), |s: &mut Shipment| {
        let mut profile = fridge();
        profile.max_single_high_s = 60;
        s.set_profile(profile);
    });
    for lot in ["L1", "L2"] {
        fixture.update(
            RecordKind::Lot.address(&goods_key(GTIN, lot)),
            |l: &mut Lot| {
                let mut profile = fridge();
                profile.max_single_high_s = 60;
                l.set_profile(profile);
            },
        );
    }
    for step in 0..45u64 {
        let warm = if (5..=45).contains(&step) { 1_100 } else { 500 };
        fixture
            .submit(&batch(&[(step + 1, 100 + step * 2, warm)]))
            .unwrap();
        let mut other = batch(&[(step + 1, 101 + step * 2, 500)]);
        other.device_id = "D-2".to_string();
        fixture.submit(&other).unwrap();
    }
    let shipment = fixture.thermal("S-1", RecordKind::ShipmentThermal);
    assert_eq!(shipment.tracks.len(), 2);
    assert!(shipment.compromised);
    assert!(
        shipment.compromised_reason.ends_with("(logger D-1)"),
        "{}",
        shipment.compromised_reason
    );
    let d1 = thermal::track_of(&shipment, "S-1", "D-1").unwrap();
    assert_eq!(d1.current.as_ref().map(|e| e.duration_s), Some(78));
    let d2 = thermal::track_of(&shipment, "S-1", "D-2").unwrap();
    assert_eq!((d2.warnings, d2.time_above_s), (0, 0));
    for lot in ["L1", "L2"] {
        assert_eq!(fixture.lot(lot).status, LotStatus::COMPROMISED, "{lot}");
        let record = fixture.thermal(&goods_key(GTIN, lot), RecordKind::GoodsThermal);
        assert!(
            record
                .compromised_reason
                .ends_with("(logger D-1 in shipment S-1)"),
            "{}",
            record.compromised_reason
        );
        assert!(record.tracks.iter().all(|t| t.closed.is_empty()));
    }
    let events = fixture.context.take_events();
    let compromised: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == EVENT_COMPROMISED)
        .collect();
    assert_eq!(compromised.len(), 3, "shipment and both lots, once each");
}

/// Version 1.0 stays served, with its own rules, so blocks written before 1.1
/// replay to the same state: two loggers merge into one record (no tracks),
/// and a 1.0 transaction is refused once the record keeps tracks.
#[test]
fn version_1_0_transactions_keep_the_merged_rules() {
    let mut fixture = Fixture::new();
    let mut second = fixture.device();
    second.device_id = "D-2".to_string();
    state::store(
        &mut fixture.context,
        RecordKind::Device.address("D-2"),
        &second,
    )
    .unwrap();
    let payload = spec::record_readings_payload(&batch(&[(1, 60, 500), (2, 120, 900)]));
    fixture.submit_version(GATEWAY, "1.0", payload).unwrap();
    let mut other = batch(&[(1, 130, 500)]);
    other.device_id = "D-2".to_string();
    fixture
        .submit_version(GATEWAY, "1.0", spec::record_readings_payload(&other))
        .unwrap();
    let merged = fixture.thermal("S-1", RecordKind::ShipmentThermal);
    assert!(merged.tracks.is_empty());
    assert_eq!(merged.reading_count, 3);
    // 1.0's flaw, kept for replay: D-2's in-range reading closed D-1's excursion.
    assert_eq!(merged.closed.len(), 1);
    // A 1.1 transaction turns the record into tracks; 1.0 is then refused.
    fixture.submit(&batch(&[(3, 180, 500)])).unwrap();
    let tracked = fixture.thermal("S-1", RecordKind::ShipmentThermal);
    assert_eq!(tracked.tracks.len(), 2, "the 1.0 figures and D-1's track");
    let mut late = batch(&[(2, 190, 500)]);
    late.device_id = "D-2".to_string();
    let refused = fixture.submit_version(GATEWAY, "1.0", spec::record_readings_payload(&late));
    match refused {
        Err(ApplyError::InvalidTransaction(message)) => assert!(
            message.contains("kept per logger since coldchain-sensor 1.1"),
            "{message}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let unknown = fixture.submit_version(GATEWAY, "2.0", spec::record_readings_payload(&late));
    assert!(
        matches!(unknown, Err(ApplyError::InvalidTransaction(m)) if m.contains("version 2.0 is not served"))
    );
}
