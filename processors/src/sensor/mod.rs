//! The sensor family (`coldchain-sensor` 1.1): a gateway submits one device's
//! readings for one shipment; the handler checks them and updates that
//! logger's track in the thermal records of the shipment and of every lot and
//! blood unit it carries ([`crate::thermal::tracks`]).
//!
//! Layout: [`checks`] holds every refusal, [`spec`] builds the client's
//! transaction, this file reads state, applies [`crate::thermal`] and writes.
//! It never does I/O beyond the `TransactionContext`, and never keeps raw
//! readings in state: they stay in the committed transaction payloads, which the
//! records' `readings_chain_head` commits to (see `docs/families-sensor.md`).
pub mod checks;
pub mod spec;

pub use checks::{decode_record_readings, ALREADY_RECORDED, MAX_READINGS_PER_BATCH};
pub use spec::record_readings_spec;

use protobuf::Message;
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext, TransactionHandler};

use crate::addressing::{self, gateway_key, goods_key, RecordKind, SENSOR_FAMILY};
use crate::messages::coldchain::{
    BloodUnit, Device, GatewayGrant, Lot, LotStatus, RecordReadings, Shipment, StorageProfile,
    ThermalRecord,
};
use crate::state;
use crate::thermal::{self, ReadingPoint, ThermalOutcome};

/// Event emitted when an excursion opens.
pub const EVENT_EXCURSION_STARTED: &str = "coldchain/excursion-started";
/// Event emitted when an excursion closes.
pub const EVENT_EXCURSION_ENDED: &str = "coldchain/excursion-ended";
/// Event emitted once when a record becomes compromised.
pub const EVENT_COMPROMISED: &str = "coldchain/compromised";

/// The Sawtooth handler of the sensor family.
#[derive(Debug, Default, Clone, Copy)]
pub struct SensorHandler;

impl SensorHandler {
    pub fn new() -> SensorHandler {
        SensorHandler
    }
}

impl TransactionHandler for SensorHandler {
    fn family_name(&self) -> String {
        SENSOR_FAMILY.to_string()
    }

    fn family_versions(&self) -> Vec<String> {
        // 1.0 stays served so a validator replaying blocks written before 1.1
        // (or a network before its cut-over vote) computes the same state.
        vec![
            addressing::SENSOR_FAMILY_VERSION_1_0.to_string(),
            addressing::SENSOR_FAMILY_VERSION.to_string(),
        ]
    }

    fn namespaces(&self) -> Vec<String> {
        vec![addressing::namespace(SENSOR_FAMILY)]
    }

    fn apply(
        &self,
        request: &TpProcessRequest,
        context: &mut dyn TransactionContext,
    ) -> Result<(), ApplyError> {
        let payload = request.get_payload();
        let rules = match request.get_header().get_family_version() {
            addressing::SENSOR_FAMILY_VERSION => Rules::PerLogger,
            addressing::SENSOR_FAMILY_VERSION_1_0 => Rules::Merged,
            other => {
                return Err(ApplyError::InvalidTransaction(format!(
                    "coldchain-sensor version {other} is not served; send version {}",
                    addressing::SENSOR_FAMILY_VERSION
                )))
            }
        };
        let batch = checks::decode_record_readings(payload)?;
        checks::check_batch(&batch)?;
        record_readings(
            context,
            &batch,
            request.get_header().get_signer_public_key(),
            &thermal::payload_digest(payload),
            rules,
        )
    }
}

/// Which version's rules a transaction is applied with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rules {
    /// 1.0: every logger's readings merged into one record, in commit order.
    Merged,
    /// 1.1: one track per logger ([`crate::thermal::tracks`]).
    PerLogger,
}

/// What the subject of a thermal record is; named in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubjectKind {
    Shipment,
    Lot,
    BloodUnit,
}

impl SubjectKind {
    fn name(self) -> &'static str {
        match self {
            SubjectKind::Shipment => "shipment",
            SubjectKind::Lot => "lot",
            SubjectKind::BloodUnit => "blood-unit",
        }
    }
}

/// A thermal record being updated, with where it lives.
struct Subject {
    kind: SubjectKind,
    key: String,
    address: String,
    record: Option<ThermalRecord>,
}

/// Reads several addresses in one round trip (one message to the validator).
fn load_raw(
    context: &dyn TransactionContext,
    addresses: &[String],
) -> Result<Vec<Option<Vec<u8>>>, ApplyError> {
    let mut found = context
        .get_state_entries(addresses)
        .map_err(|e| ApplyError::InternalError(format!("state read failed: {e}")))?;
    Ok(addresses
        .iter()
        .map(|a| {
            found
                .iter()
                .position(|(address, bytes)| address == a && !bytes.is_empty())
                .map(|i| std::mem::take(&mut found[i].1))
        })
        .collect())
}

fn decode<M: Message>(bytes: Option<Vec<u8>>, address: &str) -> Result<Option<M>, ApplyError> {
    bytes
        .map(|b| {
            M::parse_from_bytes(&b).map_err(|e| {
                ApplyError::InternalError(format!("state at {address} is not a valid record: {e}"))
            })
        })
        .transpose()
}

/// Checks `batch` against state and applies it (the body of `apply`).
fn record_readings(
    context: &mut dyn TransactionContext,
    batch: &RecordReadings,
    signer: &str,
    payload_sha512: &[u8; 64],
    rules: Rules,
) -> Result<(), ApplyError> {
    let device_address = RecordKind::Device.address(&batch.device_id);
    let shipment_address = RecordKind::Shipment.address(&batch.shipment_id);
    let thermal_address = RecordKind::ShipmentThermal.address(&batch.shipment_id);
    let mut first_read = load_raw(
        context,
        &[
            device_address.clone(),
            shipment_address.clone(),
            thermal_address.clone(),
        ],
    )?
    .into_iter();
    let mut device: Device =
        decode(first_read.next().flatten(), &device_address)?.ok_or_else(|| {
            ApplyError::InvalidTransaction(format!(
                "device {} is not registered; register it with the registry family's \
                 RegisterDevice first",
                batch.device_id
            ))
        })?;
    let shipment: Option<Shipment> = decode(first_read.next().flatten(), &shipment_address)?;
    let shipment_thermal: Option<ThermalRecord> =
        decode(first_read.next().flatten(), &thermal_address)?;

    let grant_address = RecordKind::GatewayGrant.address(&gateway_key(&device.org_id, signer));
    let mut subjects = vec![Subject {
        kind: SubjectKind::Shipment,
        key: batch.shipment_id.clone(),
        address: thermal_address,
        record: shipment_thermal,
    }];
    if let Some(shipment) = &shipment {
        // A lot or unit listed twice is still one record, updated once.
        let mut seen = std::collections::BTreeSet::new();
        for lot in shipment.lots.iter() {
            let key = goods_key(&lot.gtin, &lot.lot);
            if !seen.insert(key.clone()) {
                continue;
            }
            let address = RecordKind::GoodsThermal.address(&key);
            subjects.push(Subject {
                kind: SubjectKind::Lot,
                key,
                address,
                record: None,
            });
        }
        for unit in shipment.blood_units.iter() {
            if !seen.insert(unit.clone()) {
                continue;
            }
            subjects.push(Subject {
                kind: SubjectKind::BloodUnit,
                key: unit.clone(),
                address: RecordKind::GoodsThermal.address(unit),
                record: None,
            });
        }
    }
    let mut second: Vec<String> = vec![grant_address.clone()];
    second.extend(subjects[1..].iter().map(|s| s.address.clone()));
    let mut second_read = load_raw(context, &second)?.into_iter();
    let grant: Option<GatewayGrant> = decode(second_read.next().flatten(), &grant_address)?;
    for subject in subjects[1..].iter_mut() {
        subject.record = decode(second_read.next().flatten(), &subject.address)?;
    }

    // The signer's authority first: an outsider learns nothing about the device.
    checks::check_gateway(grant.as_ref(), signer, &device)?;
    checks::check_device(&device, batch)?;
    let shipment = shipment.ok_or_else(|| {
        ApplyError::InvalidTransaction(format!(
            "shipment {} does not exist; create it with the custody family first",
            batch.shipment_id
        ))
    })?;
    checks::check_shipment(&shipment, batch)?;

    let mut writes: Vec<(String, Vec<u8>)> = Vec::with_capacity(subjects.len() * 2 + 1);
    for subject in subjects.iter_mut() {
        apply_to_subject(
            context,
            subject,
            &shipment,
            batch,
            signer,
            (payload_sha512, rules),
            &mut writes,
        )?;
    }
    if let Some(last) = batch.readings.last() {
        device.last_sequence = last.sequence;
        device.last_time_s = last.time_s;
    }
    writes.push((device_address, state::encode(&device)?));
    state::store_all(context, writes)
}

/// Applies the batch to one thermal record, then handles what it reported.
fn apply_to_subject(
    context: &mut dyn TransactionContext,
    subject: &mut Subject,
    shipment: &Shipment,
    batch: &RecordReadings,
    signer: &str,
    (payload_sha512, rules): (&[u8; 64], Rules),
    writes: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), ApplyError> {
    // A lot's record is judged by the lot's own profile, read from the lot the
    // first time; shipments and blood units by the shipment's transport profile.
    let mut lot: Option<Lot> = None;
    let mut record = match subject.record.take() {
        Some(record) => record,
        None => {
            let profile = match subject.kind {
                SubjectKind::Lot => {
                    let found = load_lot(context, &subject.key, &shipment.shipment_id)?;
                    let profile = found.profile.as_ref().cloned().unwrap_or_default();
                    lot = Some(found);
                    profile
                }
                _ => shipment
                    .profile
                    .as_ref()
                    .cloned()
                    .unwrap_or_else(StorageProfile::new),
            };
            thermal::new_record(&subject.key, &profile)
        }
    };
    let points = batch.readings.iter().map(|r| ReadingPoint {
        time_s: r.time_s,
        temperature_cdeg: r.temperature_cdeg,
    });
    let applied = match rules {
        Rules::PerLogger => thermal::record_logger_readings(
            &mut record,
            &batch.shipment_id,
            &batch.device_id,
            points,
            payload_sha512,
            match subject.kind {
                SubjectKind::Shipment => thermal::MAX_LISTED_PER_TRACK,
                SubjectKind::Lot | SubjectKind::BloodUnit => 0,
            },
        ),
        Rules::Merged => {
            if !record.tracks.is_empty() {
                return Err(ApplyError::InvalidTransaction(format!(
                    "the thermal record of {} is kept per logger since coldchain-sensor {}; \
                     send these readings as version {}",
                    subject.key,
                    addressing::SENSOR_FAMILY_VERSION,
                    addressing::SENSOR_FAMILY_VERSION
                )));
            }
            // Exactly what version 1.0 wrote.
            thermal::apply_merged(&mut record, &batch.device_id, points, payload_sha512)
        }
    };
    let outcomes = applied.map_err(|e| ApplyError::InternalError(e.to_string()))?;

    for outcome in &outcomes {
        emit(context, outcome, subject, batch)?;
        if let ThermalOutcome::Compromised { reason, at_s } = outcome {
            match subject.kind {
                SubjectKind::Shipment => {}
                SubjectKind::Lot => {
                    let mut found = match lot.take() {
                        Some(found) => found,
                        None => load_lot(context, &subject.key, &shipment.shipment_id)?,
                    };
                    if crate::registry::mark_lot_compromised(
                        &mut found,
                        signer,
                        *at_s,
                        &format!("cold chain broken: {reason}"),
                    ) {
                        let address = RecordKind::Lot.address(&subject.key);
                        writes.push((address, state::encode(&found)?));
                    }
                }
                SubjectKind::BloodUnit => {
                    let address = RecordKind::BloodUnit.address(&subject.key);
                    let unit: Option<BloodUnit> = state::load(&*context, &address)?;
                    if let Some(mut unit) = unit {
                        if matches!(unit.status, LotStatus::ACTIVE | LotStatus::QUARANTINED) {
                            unit.status = LotStatus::COMPROMISED;
                            writes.push((address, state::encode(&unit)?));
                        }
                    }
                }
            }
        }
    }
    writes.push((subject.address.clone(), state::encode(&record)?));
    Ok(())
}

fn load_lot(
    context: &dyn TransactionContext,
    key: &str,
    shipment_id: &str,
) -> Result<Lot, ApplyError> {
    state::load_required(context, &RecordKind::Lot.address(key), || {
        format!("shipment {shipment_id} carries lot {key}, which is not registered")
    })
}

fn emit(
    context: &dyn TransactionContext,
    outcome: &ThermalOutcome,
    subject: &Subject,
    batch: &RecordReadings,
) -> Result<(), ApplyError> {
    let mut attributes = vec![
        ("shipment_id".to_string(), batch.shipment_id.clone()),
        ("device_id".to_string(), batch.device_id.clone()),
        ("subject".to_string(), subject.key.clone()),
        ("subject_kind".to_string(), subject.kind.name().to_string()),
    ];
    let side = |high: bool| if high { "high" } else { "low" }.to_string();
    let event_type = match outcome {
        ThermalOutcome::ExcursionStarted {
            high,
            start_s,
            temperature_cdeg,
        } => {
            attributes.push(("side".to_string(), side(*high)));
            attributes.push(("start_s".to_string(), start_s.to_string()));
            attributes.push(("temperature_cdeg".to_string(), temperature_cdeg.to_string()));
            EVENT_EXCURSION_STARTED
        }
        ThermalOutcome::ExcursionEnded(closed) => {
            attributes.push(("side".to_string(), side(closed.high)));
            attributes.push(("start_s".to_string(), closed.start_s.to_string()));
            attributes.push(("end_s".to_string(), closed.end_s.to_string()));
            attributes.push(("peak_cdeg".to_string(), closed.peak_cdeg.to_string()));
            attributes.push(("duration_s".to_string(), closed.duration_s.to_string()));
            EVENT_EXCURSION_ENDED
        }
        ThermalOutcome::Compromised { reason, at_s } => {
            attributes.push(("reason".to_string(), reason.clone()));
            attributes.push(("at_s".to_string(), at_s.to_string()));
            EVENT_COMPROMISED
        }
    };
    context
        .add_event(event_type.to_string(), attributes, &[])
        .map_err(|e| ApplyError::InternalError(format!("could not emit {event_type}: {e}")))
}

#[cfg(test)]
mod tests;
