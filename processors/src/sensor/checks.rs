//! Refusals of the sensor family: every reason a readings batch is invalid,
//! each as a pure function returning the exact `InvalidTransaction` message.
use protobuf::Message;
use sawtooth_sdk::processor::handler::ApplyError;

use crate::messages::coldchain::{
    Device, GatewayGrant, Reading, RecordReadings, SensorPayload, SensorPayload_oneof_action,
    Shipment,
};

/// Most readings one transaction may carry (about a week at one a minute).
/// Larger batches are refused so one transaction cannot stall a block.
pub const MAX_READINGS_PER_BATCH: usize = 10_000;
/// Coldest plausible reading: −100 °C.
pub const MIN_TEMPERATURE_CDEG: i32 = -10_000;
/// Warmest plausible reading: +100 °C.
pub const MAX_TEMPERATURE_CDEG: i32 = 10_000;
/// Relative humidity is at most 100 %.
pub const MAX_HUMIDITY_PERMILLE: u32 = 1_000;
/// Longest device or shipment id accepted.
pub const MAX_ID_LEN: usize = 128;
/// Start of the message refusing replayed or overlapping readings; a gateway
/// retrying after a crash recognises "already applied" by it.
pub const ALREADY_RECORDED: &str = "readings already recorded:";

fn invalid(message: String) -> ApplyError {
    ApplyError::InvalidTransaction(message)
}

/// Decodes a sensor payload into its `RecordReadings` action.
pub fn decode_record_readings(payload: &[u8]) -> Result<RecordReadings, ApplyError> {
    let decoded = SensorPayload::parse_from_bytes(payload).map_err(|e| {
        invalid(format!(
            "payload is not a valid SensorPayload protobuf message: {e}"
        ))
    })?;
    match decoded.action {
        Some(SensorPayload_oneof_action::record_readings(readings)) => Ok(readings),
        None => Err(invalid(
            "payload has no known action; the sensor family accepts only record_readings (field 10)"
                .to_string(),
        )),
    }
}

/// Checks the batch on its own: ids, size, order and plausible values.
pub fn check_batch(batch: &RecordReadings) -> Result<(), ApplyError> {
    check_id("device_id", &batch.device_id)?;
    check_id("shipment_id", &batch.shipment_id)?;
    let count = batch.readings.len();
    if count == 0 {
        return Err(invalid(format!(
            "readings batch of device {} is empty; send at least one reading",
            batch.device_id
        )));
    }
    if count > MAX_READINGS_PER_BATCH {
        return Err(invalid(format!(
            "readings batch of device {} holds {count} readings, more than the limit of \
             {MAX_READINGS_PER_BATCH}; split it into several transactions",
            batch.device_id
        )));
    }
    let mut previous: Option<&Reading> = None;
    for reading in batch.readings.iter() {
        check_values(reading)?;
        if let Some(before) = previous {
            if reading.sequence <= before.sequence {
                return Err(invalid(format!(
                    "reading sequence {} follows sequence {} in the batch; sequences must be \
                     strictly increasing",
                    reading.sequence, before.sequence
                )));
            }
            if reading.time_s < before.time_s {
                return Err(invalid(format!(
                    "reading {} at time {} is earlier than reading {} at time {}; times must \
                     not go backwards",
                    reading.sequence, reading.time_s, before.sequence, before.time_s
                )));
            }
        }
        previous = Some(reading);
    }
    Ok(())
}

fn check_id(field: &str, id: &str) -> Result<(), ApplyError> {
    if id.is_empty() {
        return Err(invalid(format!("{field} is empty")));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid(format!(
            "{field} is {} bytes long, more than {MAX_ID_LEN}",
            id.len()
        )));
    }
    Ok(())
}

fn check_values(reading: &Reading) -> Result<(), ApplyError> {
    let seq = reading.sequence;
    if seq == 0 {
        return Err(invalid(
            "reading sequence 0 is not allowed; sequences start at 1".to_string(),
        ));
    }
    let t = reading.temperature_cdeg;
    if !(MIN_TEMPERATURE_CDEG..=MAX_TEMPERATURE_CDEG).contains(&t) {
        return Err(invalid(format!(
            "reading {seq} has impossible temperature {t} (hundredths of °C); allowed \
             {MIN_TEMPERATURE_CDEG}..={MAX_TEMPERATURE_CDEG}"
        )));
    }
    if reading.has_humidity && reading.humidity_permille > MAX_HUMIDITY_PERMILLE {
        return Err(invalid(format!(
            "reading {seq} has impossible humidity {}‰; at most {MAX_HUMIDITY_PERMILLE}",
            reading.humidity_permille
        )));
    }
    if reading.has_location {
        let (lat, lon) = (reading.latitude_udeg, reading.longitude_udeg);
        if !(-90_000_000..=90_000_000).contains(&lat)
            || !(-180_000_000..=180_000_000).contains(&lon)
        {
            return Err(invalid(format!(
                "reading {seq} has impossible location {lat},{lon} (millionths of a degree); \
                 latitude must lie in ±90°, longitude in ±180°"
            )));
        }
    }
    Ok(())
}

/// The device must be usable and the batch must continue its sequence and time.
pub fn check_device(device: &Device, batch: &RecordReadings) -> Result<(), ApplyError> {
    if device.revoked {
        return Err(invalid(format!(
            "device {} has been revoked; its readings are no longer accepted",
            device.device_id
        )));
    }
    if device.attached_shipment_id != batch.shipment_id {
        let now = if device.attached_shipment_id.is_empty() {
            "no shipment".to_string()
        } else {
            format!("shipment {}", device.attached_shipment_id)
        };
        return Err(invalid(format!(
            "device {} is not attached to shipment {} (it is attached to {now}); attach it \
             with the custody family's AttachDevice first",
            device.device_id, batch.shipment_id
        )));
    }
    let (Some(first), Some(last)) = (batch.readings.first(), batch.readings.last()) else {
        return Err(invalid("readings batch is empty".to_string()));
    };
    if first.sequence <= device.last_sequence {
        let part = if last.sequence <= device.last_sequence {
            "the whole batch".to_string()
        } else {
            format!(
                "sequences {}..={} of this batch",
                first.sequence, device.last_sequence
            )
        };
        return Err(invalid(format!(
            "{ALREADY_RECORDED} device {} has accepted readings up to sequence {}, so {part} \
             was already applied or is out of order; resend only readings after sequence {}",
            device.device_id, device.last_sequence, device.last_sequence
        )));
    }
    if first.time_s < device.last_time_s {
        return Err(invalid(format!(
            "reading {} at time {} goes back before the last accepted reading of device {} \
             at time {}",
            first.sequence, first.time_s, device.device_id, device.last_time_s
        )));
    }
    Ok(())
}

/// The signer must be a non-revoked gateway of the device's organisation.
pub fn check_gateway(
    grant: Option<&GatewayGrant>,
    signer: &str,
    device: &Device,
) -> Result<(), ApplyError> {
    match grant {
        None => Err(invalid(format!(
            "signer {signer} is not an authorised gateway of organisation {}, which owns \
             device {}; authorise it with the registry family's AuthorizeGateway",
            device.org_id, device.device_id
        ))),
        Some(grant) if grant.revoked => Err(invalid(format!(
            "gateway {signer} of organisation {} has been revoked",
            device.org_id
        ))),
        Some(_) => Ok(()),
    }
}

/// Every reading must lie inside the shipment's life (creation to closing).
pub fn check_shipment(shipment: &Shipment, batch: &RecordReadings) -> Result<(), ApplyError> {
    let (Some(first), Some(last)) = (batch.readings.first(), batch.readings.last()) else {
        return Err(invalid("readings batch is empty".to_string()));
    };
    if first.time_s < shipment.created_at_s {
        return Err(invalid(format!(
            "reading {} at time {} ({}) is before shipment {} was created at time {} ({})",
            first.sequence,
            first.time_s,
            crate::identifiers::utc_time_text(first.time_s),
            shipment.shipment_id,
            shipment.created_at_s,
            crate::identifiers::utc_time_text(shipment.created_at_s)
        )));
    }
    if shipment.closed_at_s != 0 && last.time_s > shipment.closed_at_s {
        return Err(invalid(format!(
            "reading {} at time {} is after shipment {} was closed at time {}",
            last.sequence, last.time_s, shipment.shipment_id, shipment.closed_at_s
        )));
    }
    if !shipment.has_profile() {
        return Err(invalid(format!(
            "shipment {} has no transport profile, so its readings cannot be judged",
            shipment.shipment_id
        )));
    }
    Ok(())
}
