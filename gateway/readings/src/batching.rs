//! Batching: queued readings into signed `RecordReadings` transactions and
//! Sawtooth batches.
//!
//! One transaction per run of a device's readings for one shipment, in sequence
//! order, at most `max_readings` each; several devices' transactions share a
//! batch. Pure (signing included): the caller stores and sends the result.
use crate::protocol::{DeviceReading, Door};
use crate::queue::QueuedReading;
use coldchain_processors::messages::coldchain::{DoorState, Reading, RecordReadings};
use coldchain_processors::sensor::record_readings_spec;
use coldchain_processors::signing::{
    batch_list_bytes, sign_batch, sign_transaction, Signer, SigningError,
};

/// A reading in ledger form.
pub fn ledger_reading(reading: &DeviceReading) -> Reading {
    let mut out = Reading::new();
    out.set_sequence(reading.sequence);
    out.set_time_s(reading.time_s);
    out.set_temperature_cdeg(reading.temperature_cdeg);
    if let Some(h) = reading.humidity_permille {
        out.set_has_humidity(true);
        out.set_humidity_permille(h);
    }
    out.set_door(match reading.door {
        None => DoorState::DOOR_UNKNOWN,
        Some(Door::Closed) => DoorState::DOOR_CLOSED,
        Some(Door::Open) => DoorState::DOOR_OPEN,
    });
    if let Some((lat, lon)) = reading.location {
        out.set_has_location(true);
        out.set_latitude_udeg(lat);
        out.set_longitude_udeg(lon);
    }
    out
}

/// A signed batch ready to store and send.
pub struct SignedBatch {
    pub batch_id: String,
    /// The `BatchList` body for `POST /batches`.
    pub body: Vec<u8>,
    /// Queue row id → transaction id.
    pub members: Vec<(i64, String)>,
}

/// Splits one device's readings (sequence order) into runs per shipment of at
/// most `max_readings`.
pub fn runs(readings: &[QueuedReading], max_readings: usize) -> Vec<&[QueuedReading]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=readings.len() {
        let boundary = i == readings.len()
            || readings[i].shipment != readings[start].shipment
            || readings[i].org != readings[start].org
            || i - start >= max_readings;
        if boundary && i > start {
            out.push(&readings[start..i]);
            start = i;
        }
    }
    out
}

/// Signs one transaction per run and wraps them all in one batch.
pub fn sign_readings_batch(
    groups: &[&[QueuedReading]],
    signer: &Signer,
) -> Result<SignedBatch, SigningError> {
    let mut transactions = Vec::with_capacity(groups.len());
    let mut members = Vec::new();
    for group in groups {
        let Some(first) = group.first() else { continue };
        let mut record = RecordReadings::new();
        record.set_device_id(first.reading.device_id.clone());
        record.set_shipment_id(first.shipment.clone());
        record.set_readings(
            group
                .iter()
                .map(|q| ledger_reading(&q.reading))
                .collect::<Vec<_>>()
                .into(),
        );
        let spec = record_readings_spec(&record, &first.org, signer.public_key());
        let transaction = sign_transaction(spec, signer, signer.public_key())?;
        let transaction_id = transaction.get_header_signature().to_string();
        members.extend(group.iter().map(|q| (q.id, transaction_id.clone())));
        transactions.push(transaction);
    }
    let batch = sign_batch(transactions, signer)?;
    let batch_id = batch.get_header_signature().to_string();
    let body = batch_list_bytes(vec![batch])?;
    Ok(SignedBatch {
        batch_id,
        body,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldchain_processors::messages::coldchain::SensorPayload;
    use protobuf::Message;

    fn queued(id: i64, shipment: &str, sequence: u64) -> QueuedReading {
        QueuedReading {
            id,
            org: "acme".into(),
            shipment: shipment.into(),
            reading: DeviceReading {
                device_id: "D1".into(),
                sequence,
                time_s: 10 + sequence,
                temperature_cdeg: 500,
                humidity_permille: None,
                door: None,
                location: None,
            },
            received_at_ms: 0,
        }
    }

    #[test]
    fn runs_split_on_shipment_change_and_size() {
        let readings: Vec<_> = (1..=5)
            .map(|i| queued(i, if i <= 3 { "S1" } else { "S2" }, i as u64))
            .collect();
        let sizes: Vec<usize> = runs(&readings, 2).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![2, 1, 2]);
    }

    #[test]
    fn batch_carries_every_reading_in_its_transaction() {
        let readings: Vec<_> = (1..=4).map(|i| queued(i, "S1", i as u64)).collect();
        let signer = Signer::generate();
        let groups = runs(&readings, 2);
        let batch = sign_readings_batch(&groups, &signer).unwrap();
        assert_eq!(batch.members.len(), 4);
        assert_eq!(batch.batch_id.len(), 128);
        assert_ne!(batch.members[0].1, batch.members[2].1);
        let list = sawtooth_sdk::messages::batch::BatchList::parse_from_bytes(&batch.body).unwrap();
        let transactions = list.get_batches()[0].get_transactions();
        assert_eq!(transactions.len(), 2);
        let payload = SensorPayload::parse_from_bytes(transactions[1].get_payload()).unwrap();
        let sequences: Vec<u64> = payload
            .get_record_readings()
            .get_readings()
            .iter()
            .map(|r| r.get_sequence())
            .collect();
        assert_eq!(sequences, vec![3, 4]);
    }
}
