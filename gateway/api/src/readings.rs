//! Shipment readings as served to partners: the hash-chain check against the
//! on-chain head, min/max/mean buckets for charts (excursions survive
//! downsampling because each bucket keeps its extremes) and CSV export.
use coldchain_processors::thermal::next_chain_head;
use serde::Serialize;

use crate::index::chunk::Buckets;
use crate::index::{BucketLayout, ReadingRow, ReadingsBatchRow};

/// The result of recomputing a shipment's readings hash chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainCheck {
    pub batches: usize,
    pub recomputed_head: String,
    pub on_chain_head: String,
    /// True when the indexed readings transactions reproduce the on-chain head.
    pub intact: bool,
}

/// Recomputes the chain over the indexed batches (chain order) and compares it
/// with the head stored in the shipment's ThermalRecord.
pub fn check_chain(batches: &[ReadingsBatchRow], on_chain_head: &str) -> ChainCheck {
    let mut head = String::new();
    let mut valid = true;
    for batch in batches {
        let mut digest = [0u8; 64];
        let next = hex::decode_to_slice(&batch.payload_sha512, &mut digest)
            .ok()
            .and_then(|_| next_chain_head(&head, &digest));
        match next {
            Some(next) => head = next,
            None => {
                valid = false;
                break;
            }
        }
    }
    ChainCheck {
        batches: batches.len(),
        intact: valid && head == on_chain_head,
        recomputed_head: head,
        on_chain_head: on_chain_head.to_string(),
    }
}

/// What `verify=payloads` found for one readings transaction: its payload
/// fetched from the node, hashed and decoded, against the index's digest and
/// the rows served from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayloadCheck {
    pub transaction_id: String,
    /// The node served the transaction.
    pub payload_found: bool,
    /// sha512(payload) equals the digest the index chained (`chain` above).
    pub digest_matches: bool,
    /// Every served row of this transaction is a reading of the payload, field for field.
    pub rows_match: bool,
    pub rows_checked: usize,
    /// What was wrong, when something was.
    pub problem: Option<String>,
}

impl PayloadCheck {
    pub fn ok(&self) -> bool {
        self.payload_found && self.digest_matches && self.rows_match
    }

    /// The node could not be asked or did not have the transaction.
    pub fn unavailable(txn_id: &str, rows: usize, problem: String) -> PayloadCheck {
        PayloadCheck {
            transaction_id: txn_id.to_string(),
            payload_found: false,
            digest_matches: false,
            rows_match: false,
            rows_checked: rows,
            problem: Some(problem),
        }
    }
}

/// Checks the rows served from transaction `txn_id` against its payload as the
/// node has it and the digest the index stored for it.
pub fn check_payload(
    txn_id: &str,
    payload: &[u8],
    stored_sha512: Option<&str>,
    rows: &[&ReadingRow],
) -> PayloadCheck {
    use coldchain_processors::messages::coldchain::SensorPayload;
    use protobuf::Message;
    use sha2::{Digest, Sha512};
    let digest = hex::encode(Sha512::digest(payload));
    let digest_matches = stored_sha512 == Some(digest.as_str());
    let mut problem = (!digest_matches).then(|| match stored_sha512 {
        Some(stored) => format!(
            "sha512 of the node's payload is {}…, the index chained {}…",
            &digest[..16],
            stored.get(..16).unwrap_or(stored)
        ),
        None => "the index holds no digest for this transaction".to_string(),
    });
    let decoded = SensorPayload::parse_from_bytes(payload)
        .ok()
        .filter(|p| p.has_record_readings());
    let rows_match = match &decoded {
        None => {
            problem.get_or_insert_with(|| "the payload is not a RecordReadings".into());
            false
        }
        Some(sensor) => {
            let batch = sensor.get_record_readings();
            let mismatch = rows.iter().find(|row| {
                row.shipment_id != batch.get_shipment_id()
                    || row.device_id != batch.get_device_id()
                    || !batch.get_readings().iter().any(|r| {
                        r.get_sequence() == row.sequence
                            && r.get_time_s() == row.time_s
                            && r.get_temperature_cdeg() == row.temperature_cdeg
                            && r.get_has_humidity().then(|| r.get_humidity_permille())
                                == row.humidity_permille
                            && r.get_door() as i32 == row.door
                    })
            });
            if let Some(row) = mismatch {
                problem.get_or_insert_with(|| {
                    format!(
                        "served reading {} of device {} at {} ({} cdeg) is not in the payload",
                        row.sequence, row.device_id, row.time_s, row.temperature_cdeg
                    )
                });
            }
            mismatch.is_none()
        }
    };
    PayloadCheck {
        transaction_id: txn_id.to_string(),
        payload_found: true,
        digest_matches,
        rows_match,
        rows_checked: rows.len(),
        problem,
    }
}

pub use crate::index::Bucket;

/// Splits `[from_s, to_s]` into `points` equal buckets and summarises the given
/// readings in each (the stores do the same over a whole window with
/// [`crate::index::IndexStore::reading_buckets`]).
pub fn downsample(rows: &[ReadingRow], from_s: u64, to_s: u64, points: u32) -> Vec<Bucket> {
    let mut buckets = Buckets::new(
        from_s,
        to_s,
        Some((from_s, to_s)),
        BucketLayout::Points(points),
    );
    for row in rows {
        buckets.add(row.time_s, row.temperature_cdeg);
    }
    buckets.finish()
}

/// CSV with a header line; temperatures in °C with two decimals; `humidity_permille`
/// and `door` empty when the logger did not report them.
pub fn to_csv(rows: &[ReadingRow]) -> String {
    let mut out = String::from(
        "time_s,device_id,sequence,temperature_c,humidity_permille,door,block_num,transaction_id\n",
    );
    for r in rows {
        let humidity = r
            .humidity_permille
            .map(|h| h.to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.time_s,
            csv_field(&r.device_id),
            r.sequence,
            celsius(r.temperature_cdeg),
            humidity,
            door_field(r.door),
            r.block_num,
            r.txn_id
        ));
    }
    out
}

/// The CSV `door` column: `1` closed, `2` open (the `DoorState` numbers of the
/// JSON answer), empty when the logger did not say; an unknown door is not a
/// closed one.
fn door_field(door: i32) -> String {
    if door == 0 {
        String::new()
    } else {
        door.to_string()
    }
}

/// Hundredths of a degree as plain decimal degrees: `-0.50`.
pub fn celsius(cdeg: i32) -> String {
    let sign = if cdeg < 0 { "-" } else { "" };
    let abs = cdeg.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Quotes a field when needed and defuses spreadsheet formulas.
fn csv_field(value: &str) -> String {
    let defused = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldchain_processors::thermal::payload_digest;

    fn row(time_s: u64, cdeg: i32) -> ReadingRow {
        ReadingRow {
            shipment_id: "S".into(),
            device_id: "D".into(),
            sequence: time_s,
            time_s,
            temperature_cdeg: cdeg,
            humidity_permille: None,
            door: 0,
            block_num: 1,
            txn_id: "t".into(),
        }
    }

    #[test]
    fn chain_over_batches_matches_head_and_detects_a_missing_batch() {
        let digests: Vec<String> = [b"one".as_slice(), b"two".as_slice()]
            .iter()
            .map(|p| hex::encode(payload_digest(p)))
            .collect();
        let batches: Vec<ReadingsBatchRow> = digests
            .iter()
            .enumerate()
            .map(|(i, d)| ReadingsBatchRow {
                block_num: 1,
                position: i as u32,
                txn_id: format!("t{i}"),
                payload_sha512: d.clone(),
            })
            .collect();
        let first = next_chain_head("", &payload_digest(b"one")).unwrap();
        let head = next_chain_head(&first, &payload_digest(b"two")).unwrap();
        assert!(check_chain(&batches, &head).intact);
        assert!(!check_chain(&batches[1..], &head).intact);
    }

    #[test]
    fn downsampling_keeps_the_extremes_of_each_bucket() {
        let rows: Vec<ReadingRow> = (0..100)
            .map(|t| row(t, if t == 42 { 1200 } else { 500 }))
            .collect();
        let buckets = downsample(&rows, 0, 99, 10);
        assert_eq!(buckets.len(), 10);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 100);
        assert_eq!(buckets[4].max_cdeg, 1200);
        assert_eq!(buckets[3].max_cdeg, 500);
    }

    #[test]
    fn csv_quotes_and_defuses_hostile_device_ids() {
        let mut hostile = row(1, 525);
        hostile.device_id = "=cmd,\"x\"".into();
        let csv = to_csv(&[hostile]);
        assert!(csv.contains("\"'=cmd,\"\"x\"\"\""));
        assert!(csv.lines().nth(1).is_some_and(|l| l.contains(",5.25,")));
    }

    #[test]
    fn csv_door_is_empty_when_the_logger_did_not_say() {
        let (unknown, mut closed, mut open) = (row(1, 500), row(2, 500), row(3, 500));
        closed.door = 1;
        open.door = 2;
        let csv = to_csv(&[unknown, closed, open]);
        let doors: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|line| line.split(',').nth(5).unwrap_or("missing"))
            .collect();
        assert_eq!(doors, ["", "1", "2"], "{csv}");
    }
}
