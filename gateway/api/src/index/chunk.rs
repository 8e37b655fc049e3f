//! Readings chunks: the readings of one `RecordReadings` transaction stored as
//! one index row with a compact blob, and the merge that turns the chunks
//! overlapping a time window back into the rows a [`ReadingsQuery`] asks for.
//!
//! Both index stores keep one `reading_chunks` row per readings transaction
//! (the unit the chain already has) instead of one row per reading: at 100
//! readings per transaction that is 100× fewer B-tree inserts on the write path.
//!
//! ## Blob format, version 1
//!
//! ```text
//! chunk   = version:u8 (= 1)  count:varint  reading × count
//! reading = dt:varint  dseq:zvarint  dtemp:zvarint  tag:varint  [humidity:varint]
//! ```
//!
//! - `varint`: unsigned LEB128, at most 10 bytes, canonical (no overlong
//!   encodings); `zvarint`: zigzag-mapped signed value as a `varint`.
//! - Readings are sorted by `(time_s, sequence)`, strictly increasing (the
//!   device is the chunk's, so this is the query order `(time_s, device_id,
//!   sequence)` within the chunk); a repeated `(time_s, sequence)` keeps the
//!   last reading given, like the per-row `INSERT OR REPLACE` it replaces.
//! - `dt` = `time_s` − previous `time_s` (previous = 0 for the first reading, so
//!   the first time is absolute).
//! - `dseq` = `sequence` − previous `sequence` as wrapping 64-bit two's
//!   complement (previous = 0), zigzag-mapped.
//! - `dtemp` = `temperature_cdeg` − previous `temperature_cdeg` (previous = 0).
//! - `tag` = `zigzag(door) << 1 | has_humidity`; `humidity` (permille) follows
//!   only when `has_humidity` is 1.
//!
//! The encoding is deterministic (same readings, same bytes). Decoding checks
//! the version, that `count` fits in the bytes left (no large allocation from a
//! bad header), every varint, every value's range, the ordering, and that no
//! bytes trail; any failure is a [`ChunkError`], never a panic. A typical
//! 100-reading chunk (10 s apart, sequence +1) takes 4–5 bytes per reading.
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{Bucket, BucketLayout, Reading, ReadingRow, ReadingsQuery};

/// The blob format version written by [`encode`].
pub const FORMAT_V1: u8 = 1;

/// The smallest encoding of one reading (dt, dseq, dtemp, tag: one byte each).
const MIN_READING_BYTES: usize = 4;

/// Why a chunk blob could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("readings chunk blob: {reason} (at byte {offset} of {len})")]
pub struct ChunkError {
    pub reason: &'static str,
    pub offset: usize,
    pub len: usize,
}

/// The index error for a chunk row that does not decode, naming where it is.
pub fn corrupt_chunk(
    shipment_id: &str,
    txn_id: &str,
    block_num: u64,
    error: ChunkError,
) -> super::IndexError {
    super::IndexError::Corrupt(format!(
        "shipment {shipment_id} chunk of transaction {txn_id} (block {block_num}): {error}"
    ))
}

/// A chunk ready to store: its key columns and its blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedChunk {
    pub first_time_s: u64,
    pub first_sequence: u64,
    pub last_time_s: u64,
    pub count: u32,
    pub blob: Vec<u8>,
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Sorts (and de-duplicates) readings into chunk order.
fn chunk_order(readings: &[Reading]) -> Vec<Reading> {
    let mut sorted = readings.to_vec();
    // Stable, so among equal (time, sequence) the last one given stays last.
    sorted.sort_by_key(|r| (r.time_s, r.sequence));
    let mut unique: Vec<Reading> = Vec::with_capacity(sorted.len());
    for reading in sorted {
        match unique.last_mut() {
            Some(last) if (last.time_s, last.sequence) == (reading.time_s, reading.sequence) => {
                *last = reading;
            }
            _ => unique.push(reading),
        }
    }
    unique
}

/// Encodes the readings of one transaction (None when there are none).
pub fn encode(readings: &[Reading]) -> Option<EncodedChunk> {
    let sorted = chunk_order(readings);
    let (first, last) = (sorted.first()?, sorted.last()?);
    let mut blob = Vec::with_capacity(8 + sorted.len() * 6);
    blob.push(FORMAT_V1);
    put_varint(&mut blob, sorted.len() as u64);
    let (mut time, mut sequence, mut temperature) = (0u64, 0u64, 0i64);
    for r in &sorted {
        put_varint(&mut blob, r.time_s - time);
        put_varint(&mut blob, zigzag(r.sequence.wrapping_sub(sequence) as i64));
        put_varint(
            &mut blob,
            zigzag(i64::from(r.temperature_cdeg) - temperature),
        );
        put_varint(
            &mut blob,
            (zigzag(i64::from(r.door)) << 1) | u64::from(r.humidity_permille.is_some()),
        );
        if let Some(humidity) = r.humidity_permille {
            put_varint(&mut blob, u64::from(humidity));
        }
        (time, sequence, temperature) = (r.time_s, r.sequence, i64::from(r.temperature_cdeg));
    }
    Some(EncodedChunk {
        first_time_s: first.time_s,
        first_sequence: first.sequence,
        last_time_s: last.time_s,
        count: u32::try_from(sorted.len()).unwrap_or(u32::MAX),
        blob,
    })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn fail(&self, reason: &'static str) -> ChunkError {
        ChunkError {
            reason,
            offset: self.at,
            len: self.bytes.len(),
        }
    }

    fn byte(&mut self) -> Result<u8, ChunkError> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| self.fail("truncated"))?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, ChunkError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            if shift == 63 && byte > 1 {
                return Err(self.fail("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return Err(self.fail("overlong varint"));
                }
                return Ok(value);
            }
        }
        Err(self.fail("varint longer than 10 bytes"))
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }
}

/// Decodes a chunk blob back into its readings (in chunk order).
pub fn decode(bytes: &[u8]) -> Result<Vec<Reading>, ChunkError> {
    let mut cursor = Cursor { bytes, at: 0 };
    if cursor.byte()? != FORMAT_V1 {
        cursor.at = 0;
        return Err(cursor.fail("unknown format version"));
    }
    let count = cursor.varint()?;
    let fits = usize::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(MIN_READING_BYTES))
        .is_some_and(|needed| needed <= cursor.remaining());
    if count == 0 || !fits {
        return Err(cursor.fail("reading count does not fit the blob"));
    }
    let mut readings = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let (mut time, mut sequence, mut temperature) = (0u64, 0u64, 0i64);
    for i in 0..count {
        let dt = cursor.varint()?;
        let next_time = time
            .checked_add(dt)
            .ok_or_else(|| cursor.fail("time overflows"))?;
        let next_sequence = sequence.wrapping_add(unzigzag(cursor.varint()?) as u64);
        if i > 0 && dt == 0 && next_sequence <= sequence {
            return Err(cursor.fail("readings out of order"));
        }
        let next_temperature = temperature
            .checked_add(unzigzag(cursor.varint()?))
            .ok_or_else(|| cursor.fail("temperature overflows"))?;
        let temperature_cdeg =
            i32::try_from(next_temperature).map_err(|_| cursor.fail("temperature out of range"))?;
        let tag = cursor.varint()?;
        let door =
            i32::try_from(unzigzag(tag >> 1)).map_err(|_| cursor.fail("door out of range"))?;
        let humidity_permille = match tag & 1 {
            1 => Some(
                u32::try_from(cursor.varint()?)
                    .map_err(|_| cursor.fail("humidity out of range"))?,
            ),
            _ => None,
        };
        readings.push(Reading {
            sequence: next_sequence,
            time_s: next_time,
            temperature_cdeg,
            humidity_permille,
            door,
        });
        (time, sequence, temperature) = (next_time, next_sequence, next_temperature);
    }
    if cursor.remaining() != 0 {
        return Err(cursor.fail("bytes after the last reading"));
    }
    Ok(readings)
}

/// What a store knows about a chunk row besides its blob.
pub struct ChunkRow<'a> {
    pub device_id: &'a str,
    pub first_time_s: u64,
    pub last_time_s: u64,
    pub block_num: u64,
    pub txn_id: &'a str,
    pub count: u64,
    pub blob: &'a [u8],
}

impl ChunkRow<'_> {
    /// Decodes the blob and checks it against the row (count and time range).
    pub fn readings(&self) -> Result<Vec<Reading>, ChunkError> {
        let readings = decode(self.blob)?;
        let bad = |reason| ChunkError {
            reason,
            offset: 0,
            len: self.blob.len(),
        };
        if u64::try_from(readings.len()).ok() != Some(self.count) {
            return Err(bad("reading count differs from the row's count"));
        }
        let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
            return Err(bad("no readings"));
        };
        if clamp(first.time_s) != self.first_time_s || clamp(last.time_s) != self.last_time_s {
            return Err(bad("reading times differ from the row's time range"));
        }
        Ok(readings)
    }
}

/// Most buckets a [`BucketLayout::Width`] query makes (about 11 years of hours);
/// readings after the last one are not summarised.
pub const MAX_BUCKETS: u64 = 100_000;

#[derive(Clone, Copy)]
struct Accumulator {
    count: u64,
    sum: i64,
    min: i32,
    max: i32,
    first: u64,
    last: u64,
}

const EMPTY: Accumulator = Accumulator {
    count: 0,
    sum: 0,
    min: i32::MAX,
    max: i32::MIN,
    first: u64::MAX,
    last: 0,
};

/// Per-bucket min/max/mean of readings fed in any order: memory is one
/// accumulator per bucket, whatever the number of readings.
pub struct Buckets {
    from_s: u64,
    to_s: u64,
    width_s: u64,
    slots: Vec<Accumulator>,
}

impl Buckets {
    /// Buckets over the readings' span `[span_lo, span_hi]` clipped to the
    /// window `[from_s, to_s]` (`span` None: no readings, no buckets).
    pub fn new(from_s: u64, to_s: u64, span: Option<(u64, u64)>, layout: BucketLayout) -> Buckets {
        let Some((lo, hi)) = span
            .map(|(lo, hi)| (lo.max(from_s), hi.min(to_s)))
            .filter(|(lo, hi)| lo <= hi)
        else {
            return Buckets {
                from_s,
                to_s,
                width_s: 1,
                slots: Vec::new(),
            };
        };
        let span_s = (hi - lo).saturating_add(1);
        let (width_s, count) = match layout {
            BucketLayout::Points(points) => {
                let points = u64::from(points.max(1));
                (span_s.div_ceil(points).max(1), points)
            }
            BucketLayout::Width(width) => {
                let width = width.max(1);
                (width, ((hi - lo) / width + 1).min(MAX_BUCKETS))
            }
        };
        Buckets {
            from_s: lo,
            to_s: hi,
            width_s,
            slots: vec![EMPTY; usize::try_from(count).unwrap_or(0)],
        }
    }

    /// Adds one reading (ignored outside the buckets).
    pub fn add(&mut self, time_s: u64, temperature_cdeg: i32) {
        if time_s < self.from_s || time_s > self.to_s {
            return;
        }
        let slot = usize::try_from((time_s - self.from_s) / self.width_s).ok();
        if let Some(acc) = slot.and_then(|i| self.slots.get_mut(i)) {
            acc.count += 1;
            acc.sum += i64::from(temperature_cdeg);
            acc.min = acc.min.min(temperature_cdeg);
            acc.max = acc.max.max(temperature_cdeg);
            acc.first = acc.first.min(time_s);
            acc.last = acc.last.max(time_s);
        }
    }

    /// Decodes a chunk row and adds its readings.
    pub fn add_chunk(&mut self, chunk: &ChunkRow<'_>) -> Result<(), ChunkError> {
        for r in chunk.readings()? {
            self.add(r.time_s, r.temperature_cdeg);
        }
        Ok(())
    }

    /// The non-empty buckets in time order.
    pub fn finish(self) -> Vec<Bucket> {
        let (from_s, width_s) = (self.from_s, self.width_s);
        self.slots
            .into_iter()
            .enumerate()
            .filter(|(_, acc)| acc.count > 0)
            .map(|(i, acc)| {
                let start = from_s.saturating_add((i as u64).saturating_mul(width_s));
                let count = i64::try_from(acc.count).unwrap_or(i64::MAX);
                Bucket {
                    from_s: start,
                    to_s: start.saturating_add(width_s - 1),
                    count: acc.count,
                    min_cdeg: acc.min,
                    max_cdeg: acc.max,
                    mean_cdeg: i32::try_from(acc.sum / count).unwrap_or(0),
                    first_reading_s: acc.first,
                    last_reading_s: acc.last,
                }
            })
            .collect()
    }
}

/// What a bucket query of the index fills, chunk by chunk: blended
/// [`Buckets`] or one series per logger ([`DeviceBuckets`]). Both stores run
/// one loop over the chunk rows for either.
pub trait BucketSink: Sized + Send + 'static {
    type Output: Default + Send + 'static;
    /// An empty sink for the window, given the span of the readings found.
    fn start(from_s: u64, to_s: u64, span: Option<(u64, u64)>, layout: BucketLayout) -> Self;
    fn add_chunk(&mut self, chunk: &ChunkRow<'_>) -> Result<(), ChunkError>;
    fn finish(self) -> Self::Output;
}

impl BucketSink for Buckets {
    type Output = Vec<Bucket>;
    fn start(from_s: u64, to_s: u64, span: Option<(u64, u64)>, layout: BucketLayout) -> Self {
        Buckets::new(from_s, to_s, span, layout)
    }
    fn add_chunk(&mut self, chunk: &ChunkRow<'_>) -> Result<(), ChunkError> {
        Buckets::add_chunk(self, chunk)
    }
    fn finish(self) -> Vec<Bucket> {
        Buckets::finish(self)
    }
}

impl BucketSink for DeviceBuckets {
    type Output = Vec<DeviceSeries>;
    fn start(from_s: u64, to_s: u64, span: Option<(u64, u64)>, layout: BucketLayout) -> Self {
        DeviceBuckets::new(from_s, to_s, span, layout)
    }
    fn add_chunk(&mut self, chunk: &ChunkRow<'_>) -> Result<(), ChunkError> {
        DeviceBuckets::add_chunk(self, chunk)
    }
    fn finish(self) -> Vec<DeviceSeries> {
        DeviceBuckets::finish(self)
    }
}

/// [`Buckets`] kept per logger on one shared grid (the grid of all the
/// loggers' readings), so each logger's series lines up with the others and
/// with the shipment's buckets: memory is one accumulator per logger and bucket.
pub struct DeviceBuckets {
    from_s: u64,
    to_s: u64,
    span: Option<(u64, u64)>,
    layout: BucketLayout,
    devices: std::collections::BTreeMap<String, Buckets>,
}

impl DeviceBuckets {
    /// As [`Buckets::new`]; a logger's buckets start when its first chunk is added.
    pub fn new(
        from_s: u64,
        to_s: u64,
        span: Option<(u64, u64)>,
        layout: BucketLayout,
    ) -> DeviceBuckets {
        DeviceBuckets {
            from_s,
            to_s,
            span,
            layout,
            devices: std::collections::BTreeMap::new(),
        }
    }

    /// Decodes a chunk row and adds its readings to its logger's buckets.
    pub fn add_chunk(&mut self, chunk: &ChunkRow<'_>) -> Result<(), ChunkError> {
        let (from_s, to_s, span, layout) = (self.from_s, self.to_s, self.span, self.layout);
        self.devices
            .entry(chunk.device_id.to_string())
            .or_insert_with(|| Buckets::new(from_s, to_s, span, layout))
            .add_chunk(chunk)
    }

    /// Each logger's non-empty buckets in time order, loggers in id order.
    pub fn finish(self) -> Vec<DeviceSeries> {
        self.devices
            .into_iter()
            .map(|(device_id, buckets)| DeviceSeries {
                device_id,
                buckets: buckets.finish(),
            })
            .collect()
    }
}

/// One logger's buckets.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceSeries {
    pub device_id: String,
    pub buckets: Vec<Bucket>,
}

/// A reading in query order: (time_s, device_id, sequence).
struct Keyed(ReadingRow);

impl Keyed {
    fn key(&self) -> (u64, &str, u64) {
        (self.0.time_s, &self.0.device_id, self.0.sequence)
    }
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Keyed {}

impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Collects the answer of a [`ReadingsQuery`] from chunks fed in order of
/// `first_time_s`: keeps the `limit` smallest matching readings (by
/// `(time_s, device_id, sequence)`, after the cursor, inside the window) and
/// says when no later chunk can change them.
pub struct Collector {
    shipment_id: String,
    from_s: u64,
    to_s: u64,
    after: Option<(u64, String, u64)>,
    limit: usize,
    best: BinaryHeap<Keyed>,
}

impl Collector {
    pub fn new(query: &ReadingsQuery) -> Collector {
        Collector {
            shipment_id: query.shipment_id.clone(),
            from_s: query.from_s,
            to_s: query.to_s,
            after: query.after.clone(),
            limit: usize::try_from(query.limit).unwrap_or(usize::MAX),
            best: BinaryHeap::new(),
        }
    }

    /// The earliest time a reading can have and still be in the answer.
    pub fn min_time_s(&self) -> u64 {
        match &self.after {
            Some((time, _, _)) => self.from_s.max(*time),
            None => self.from_s,
        }
    }

    /// The latest such time.
    pub fn max_time_s(&self) -> u64 {
        self.to_s
    }

    /// True when nothing can match (an empty window or a zero limit).
    pub fn hopeless(&self) -> bool {
        self.limit == 0 || self.min_time_s() > self.to_s
    }

    /// True once chunks starting at `first_time_s` or later cannot change the
    /// answer: `limit` readings are held and all are earlier than that.
    pub fn done_before(&self, first_time_s: u64) -> bool {
        self.limit == 0
            || (self.best.len() >= self.limit
                && self
                    .best
                    .peek()
                    .is_some_and(|worst| worst.0.time_s < first_time_s))
    }

    /// Decodes a chunk and keeps its readings that belong in the answer.
    pub fn add(&mut self, chunk: ChunkRow<'_>) -> Result<(), ChunkError> {
        let readings = chunk.readings()?;
        let device = chunk.device_id;
        for r in readings {
            if r.time_s < self.from_s {
                continue;
            }
            if r.time_s > self.to_s {
                break;
            }
            if let Some((time, after_device, sequence)) = &self.after {
                if (r.time_s, device, r.sequence) <= (*time, after_device.as_str(), *sequence) {
                    continue;
                }
            }
            if self.best.len() >= self.limit {
                // Chunk order is query order, so no later reading of this chunk fits either.
                let fits = self
                    .best
                    .peek()
                    .is_some_and(|worst| (r.time_s, device, r.sequence) < worst.key());
                if !fits {
                    break;
                }
                self.best.pop();
            }
            self.best.push(Keyed(ReadingRow {
                shipment_id: self.shipment_id.clone(),
                device_id: device.to_string(),
                sequence: r.sequence,
                time_s: r.time_s,
                temperature_cdeg: r.temperature_cdeg,
                humidity_permille: r.humidity_permille,
                door: r.door,
                block_num: chunk.block_num,
                txn_id: chunk.txn_id.to_string(),
            }));
        }
        Ok(())
    }

    /// The answer, in query order.
    pub fn finish(self) -> Vec<ReadingRow> {
        self.best
            .into_sorted_vec()
            .into_iter()
            .map(|k| k.0)
            .collect()
    }
}

/// Times as the stores' signed 64-bit columns hold them (saturating).
pub fn clamp(time_s: u64) -> u64 {
    time_s.min(i64::MAX as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(sequence: u64, time_s: u64, cdeg: i32, humidity: Option<u32>, door: i32) -> Reading {
        Reading {
            sequence,
            time_s,
            temperature_cdeg: cdeg,
            humidity_permille: humidity,
            door,
        }
    }

    fn sample() -> Vec<Reading> {
        (0..100)
            .map(|i| {
                reading(
                    1_000 + i,
                    1_700_000_000 + i * 10,
                    500 - i as i32 * 3,
                    (i % 3 == 0).then_some(450 + i as u32),
                    (i % 4) as i32,
                )
            })
            .collect()
    }

    #[test]
    fn round_trip_is_exact_sorted_and_compact() {
        let readings = sample();
        let chunk = encode(&readings).expect("chunk");
        assert_eq!(chunk.count, 100);
        assert_eq!(chunk.first_time_s, 1_700_000_000);
        assert_eq!(chunk.last_time_s, 1_700_000_990);
        assert_eq!(chunk.first_sequence, 1_000);
        assert!(chunk.blob.len() < 100 * 7, "{} bytes", chunk.blob.len());
        assert_eq!(decode(&chunk.blob).expect("decodes"), readings);
        // Deterministic, and independent of the order given.
        let mut reversed = readings.clone();
        reversed.reverse();
        assert_eq!(encode(&reversed).expect("chunk"), chunk);
    }

    #[test]
    fn extreme_values_round_trip() {
        let readings = vec![
            reading(0, 0, i32::MIN, Some(u32::MAX), i32::MIN),
            reading(u64::MAX, 0, i32::MAX, None, i32::MAX),
            reading(1, u64::MAX - 1, 0, Some(0), 0),
            reading(0, u64::MAX, i32::MIN, None, -1),
        ];
        let chunk = encode(&readings).expect("chunk");
        assert_eq!(decode(&chunk.blob).expect("decodes"), readings);
        assert_eq!(chunk.last_time_s, u64::MAX);
    }

    #[test]
    fn repeated_readings_keep_the_last_and_empty_gives_no_chunk() {
        let readings = vec![reading(1, 10, 100, None, 0), reading(1, 10, 200, None, 0)];
        let chunk = encode(&readings).expect("chunk");
        assert_eq!(chunk.count, 1);
        assert_eq!(
            decode(&chunk.blob).expect("decodes")[0].temperature_cdeg,
            200
        );
        assert_eq!(encode(&[]), None);
    }

    #[test]
    fn truncated_or_corrupt_blobs_are_errors() {
        let blob = encode(&sample()).expect("chunk").blob;
        for cut in 0..blob.len() {
            assert!(decode(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = blob.clone();
        trailing.push(0);
        assert_eq!(
            decode(&trailing).map_err(|e| e.reason),
            Err("bytes after the last reading")
        );
        let mut version = blob.clone();
        version[0] = 2;
        assert_eq!(
            decode(&version).map_err(|e| e.reason),
            Err("unknown format version")
        );
        // A count far beyond the bytes present must not allocate or read past the end.
        let huge = [FORMAT_V1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1, 1, 0];
        assert!(decode(&huge).is_err());
        let overflow = [
            FORMAT_V1, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02,
        ];
        assert!(decode(&overflow).is_err());
        let overlong = [FORMAT_V1, 0x81, 0x00, 0, 2, 0, 0];
        assert!(decode(&overlong).is_err());
        // Second reading goes backwards (dt 0, dseq -1).
        let backwards = [FORMAT_V1, 2, 5, 4, 0, 0, 0, 1, 0, 0];
        assert_eq!(
            decode(&backwards).map_err(|e| e.reason),
            Err("readings out of order")
        );
        // Temperature delta leaves i32.
        let hot = [FORMAT_V1, 1, 0, 2, 0xfe, 0xff, 0xff, 0xff, 0x1f, 0];
        assert_eq!(
            decode(&hot).map_err(|e| e.reason),
            Err("temperature out of range")
        );
        // Every single-byte corruption decodes to an error or to some readings, never a panic.
        for at in 0..blob.len() {
            for value in [0x00, 0x7f, 0x80, 0xff] {
                let mut corrupt = blob.clone();
                corrupt[at] = value;
                let _ = decode(&corrupt);
            }
        }
    }

    fn row_chunk<'a>(device: &'a str, chunk: &'a EncodedChunk) -> ChunkRow<'a> {
        ChunkRow {
            device_id: device,
            first_time_s: chunk.first_time_s,
            last_time_s: chunk.last_time_s,
            block_num: 1,
            txn_id: "t",
            count: u64::from(chunk.count),
            blob: &chunk.blob,
        }
    }

    #[test]
    fn collector_checks_the_row_against_the_blob() {
        let chunk = encode(&sample()).expect("chunk");
        let query = ReadingsQuery {
            shipment_id: "S".into(),
            from_s: 0,
            to_s: u64::MAX,
            after: None,
            limit: 10,
        };
        let mut collector = Collector::new(&query);
        let mut row = row_chunk("D", &chunk);
        row.count = 99;
        assert!(collector.add(row).is_err());
        let mut row = row_chunk("D", &chunk);
        row.last_time_s += 1;
        assert!(collector.add(row).is_err());
        assert!(collector.add(row_chunk("D", &chunk)).is_ok());
        assert_eq!(collector.finish().len(), 10);
    }
}
