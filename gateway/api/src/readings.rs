//! Shipment readings as served to partners: the hash-chain check against the
//! on-chain head, min/max/mean buckets for charts (excursions survive
//! downsampling because each bucket keeps its extremes) and CSV export.
use coldchain_processors::thermal::next_chain_head;
use serde::Serialize;

use crate::index::{ReadingRow, ReadingsBatchRow};

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

/// One chart point: the readings of a time bucket.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bucket {
    pub from_s: u64,
    pub to_s: u64,
    pub count: u64,
    pub min_cdeg: i32,
    pub max_cdeg: i32,
    pub mean_cdeg: i32,
}

/// Splits `[from_s, to_s]` into `points` equal buckets and summarises the readings in each.
pub fn downsample(rows: &[ReadingRow], from_s: u64, to_s: u64, points: u32) -> Vec<Bucket> {
    let points = u64::from(points.max(1));
    let span = to_s.saturating_sub(from_s).saturating_add(1);
    let width = span.div_ceil(points).max(1);
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut sum: i64 = 0;
    for row in rows {
        let start = from_s + (row.time_s.saturating_sub(from_s) / width) * width;
        let same = buckets.last().is_some_and(|b| b.from_s == start);
        if !same {
            if let Some(last) = buckets.last_mut() {
                last.mean_cdeg = mean(sum, last.count);
            }
            sum = 0;
            buckets.push(Bucket {
                from_s: start,
                to_s: start + width - 1,
                count: 0,
                min_cdeg: i32::MAX,
                max_cdeg: i32::MIN,
                mean_cdeg: 0,
            });
        }
        if let Some(bucket) = buckets.last_mut() {
            bucket.count += 1;
            bucket.min_cdeg = bucket.min_cdeg.min(row.temperature_cdeg);
            bucket.max_cdeg = bucket.max_cdeg.max(row.temperature_cdeg);
            sum += i64::from(row.temperature_cdeg);
        }
    }
    if let Some(last) = buckets.last_mut() {
        last.mean_cdeg = mean(sum, last.count);
    }
    buckets
}

fn mean(sum: i64, count: u64) -> i32 {
    let count = i64::try_from(count.max(1)).unwrap_or(i64::MAX);
    i32::try_from(sum / count).unwrap_or(0)
}

/// CSV with a header line; temperatures in °C with two decimals.
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
            r.door,
            r.block_num,
            r.txn_id
        ));
    }
    out
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
}
