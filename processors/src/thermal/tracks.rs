//! One thermal track per logger, and a record's summary over its tracks
//! (sensor family 1.1; `docs/families-sensor.md`).
//!
//! A shipment's record has one track per logger that reported for it; a lot's
//! or blood unit's record has one per (shipment, logger). A track is judged by
//! the [`apply_rules`](super::apply_rules) of one logger alone, so a reading of
//! one logger never opens, closes or lengthens another logger's excursion or gap.
//!
//! The record's own fields are then a summary, recomputed from the tracks after
//! every batch, so they depend on the tracks only (not on the order loggers'
//! batches were committed in):
//! - per shipment (a *leg*), the **worst logger** counts: the maximum of the
//!   tracks' time above, time below, out-of-range readings, excursions, time in
//!   range, silences and stability budget used, and the MKT of the warmest one;
//! - over legs (a lot's several shipments) these are **added**;
//! - `gaps` lists the times **no logger** of a leg was reporting: between the
//!   spans (first to last reading) of its tracks, longer than `max_gap_s`
//!   (a logger detached and the next attached later). `gaps_total` and
//!   `time_in_gaps_s` add these to the worst logger's own silences;
//! - compromised when any track is (the earliest breach is named, with its
//!   logger), or, on a record of several legs, when the added figures break a
//!   budget; once compromised, a record stays so.
//!
//! A record written by sensor family 1.0 (one merged record, no tracks) becomes
//! one frozen track of logger "" the first time 1.1 adds readings to it.
use std::cmp::Ordering;

use crate::messages::coldchain::{DataGap, StorageProfile, ThermalRecord};

use super::{
    append_batch, apply_rules, mkt, show_cdeg, stability, ReadingPoint, ThermalError,
    ThermalOutcome, MAX_LISTED, MKT_MIN_WINDOW_S,
};

/// The track of (`shipment_id`, `device_id`) in `record`, if it has one.
pub fn track_of<'r>(
    record: &'r ThermalRecord,
    shipment_id: &str,
    device_id: &str,
) -> Option<&'r ThermalRecord> {
    record
        .tracks
        .binary_search_by(|t| track_order(t, shipment_id, device_id))
        .ok()
        .map(|i| &record.tracks[i])
}

fn track_order(track: &ThermalRecord, shipment_id: &str, device_id: &str) -> Ordering {
    (track.shipment_id.as_str(), track.device_id.as_str()).cmp(&(shipment_id, device_id))
}

/// Applies one logger's readings batch (`payload_sha512` is the digest of the
/// transaction payload carrying it) to its track in `record`, then recomputes
/// the record's summary. The track lists at most `listed` closed excursions and
/// gaps, and keeps its own readings chain only when `listed > 0` (the sensor
/// handler gives 0 for a lot's or blood unit's track: the shipment's track of
/// the same logger lists them and chains exactly the same batches). Returns the track's excursion
/// outcomes, and `Compromised` when the record (not only a track) has just
/// become so.
pub fn record_logger_readings(
    record: &mut ThermalRecord,
    shipment_id: &str,
    device_id: &str,
    readings: impl IntoIterator<Item = ReadingPoint>,
    payload_sha512: &[u8; 64],
    listed: usize,
) -> Result<Vec<ThermalOutcome>, ThermalError> {
    // Taken out and put back rather than cloned: this runs for every record a
    // readings transaction touches.
    let had_profile = record.has_profile();
    let profile = record.take_profile();
    let applied = apply_to_track(
        record,
        &profile,
        shipment_id,
        device_id,
        readings,
        payload_sha512,
        listed,
    );
    if had_profile {
        record.set_profile(profile);
    }
    applied
}

fn apply_to_track(
    record: &mut ThermalRecord,
    profile: &StorageProfile,
    shipment_id: &str,
    device_id: &str,
    readings: impl IntoIterator<Item = ReadingPoint>,
    payload_sha512: &[u8; 64],
    listed: usize,
) -> Result<Vec<ThermalOutcome>, ThermalError> {
    adopt_untracked(record);
    let index = match record
        .tracks
        .binary_search_by(|t| track_order(t, shipment_id, device_id))
    {
        Ok(i) => i,
        Err(i) => {
            let mut track = ThermalRecord::new();
            track.shipment_id = shipment_id.to_string();
            track.device_id = device_id.to_string();
            record.tracks.insert(i, track);
            i
        }
    };
    let track = &mut record.tracks[index];
    let mut outcomes = apply_rules(track, profile, device_id, readings, listed)?;
    // A track's breach is reported once, for the record, by the summary below.
    outcomes.retain(|o| !matches!(o, ThermalOutcome::Compromised { .. }));
    if listed > 0 {
        // A lot's track of (shipment, logger) would chain exactly the batches the
        // shipment's track of that logger chains: only the shipment keeps it.
        append_batch(track, payload_sha512)
            .ok_or_else(|| ThermalError::CorruptChainHead(format!("a track ({device_id})")))?;
    }
    append_batch(record, payload_sha512)
        .ok_or_else(|| ThermalError::CorruptChainHead(record.subject.clone()))?;

    let was_compromised = record.compromised;
    summarise(record, profile)?;
    if record.compromised && !was_compromised {
        outcomes.push(ThermalOutcome::Compromised {
            reason: record.compromised_reason.clone(),
            at_s: record.compromised_at_s,
        });
    }
    Ok(outcomes)
}

/// Turns a 1.0 record's merged figures into one frozen track of logger "".
fn adopt_untracked(record: &mut ThermalRecord) {
    if !record.tracks.is_empty() || record.reading_count == 0 {
        return;
    }
    let mut legacy = record.clone();
    legacy.clear_profile();
    legacy.subject.clear();
    legacy.device_id.clear();
    legacy.shipment_id.clear();
    record.closed.clear();
    record.gaps.clear();
    record.tracks.push(legacy);
}

/// The figures of one leg (one shipment's tracks).
#[derive(Default)]
struct Leg {
    above: u64,
    below: u64,
    in_range: u64,
    warnings: u32,
    excursions: u64,
    own_gaps: u64,
    own_gap_s: u64,
    stability_ppb: u64,
    /// (MKT, weight, sum) of the warmest logger.
    mkt: Option<(i32, u64, u128)>,
    /// (first, last) reading times of every track with readings.
    spans: Vec<(u64, u64)>,
}

impl Leg {
    fn add(&mut self, track: &ThermalRecord) -> Result<(), ThermalError> {
        self.above = self.above.max(track.time_above_s);
        self.below = self.below.max(track.time_below_s);
        self.in_range = self.in_range.max(track.time_in_range_s);
        self.warnings = self.warnings.max(track.warnings);
        let excursions = track
            .excursions_closed_total
            .max(track.closed.len() as u64)
            .saturating_add(u64::from(track.current.is_some()));
        self.excursions = self.excursions.max(excursions);
        self.own_gaps = self
            .own_gaps
            .max(track.gaps_total.max(track.gaps.len() as u64));
        self.own_gap_s = self.own_gap_s.max(track.time_in_gaps_s);
        self.stability_ppb = self.stability_ppb.max(track.stability_used_ppb);
        if let Some(mkt_cdeg) = mkt::mkt_cdeg_from_sums(track.mkt_weight_s, &track.mkt_sum) {
            let sum = mkt::decode_sum(&track.mkt_sum)
                .ok_or_else(|| ThermalError::CorruptMktSum(track.device_id.clone()))?;
            if self.mkt.is_none_or(|(warmest, _, _)| mkt_cdeg > warmest) {
                self.mkt = Some((mkt_cdeg, track.mkt_weight_s, sum));
            }
        }
        if track.reading_count > 0 {
            self.spans.push((track.first_time_s, track.last_time_s));
        }
        Ok(())
    }

    /// Times no logger of the leg reported for longer than `max_gap_s`.
    fn uncovered(&mut self, max_gap_s: u64) -> Vec<(u64, u64)> {
        if max_gap_s == 0 || self.spans.len() < 2 {
            return Vec::new();
        }
        self.spans.sort_unstable();
        let mut found = Vec::new();
        let mut covered_to = self.spans[0].1;
        for &(first, last) in &self.spans[1..] {
            if first > covered_to && first - covered_to > max_gap_s {
                found.push((covered_to, first));
            }
            covered_to = covered_to.max(last);
        }
        found
    }
}

/// Recomputes `record`'s summary fields from its tracks.
fn summarise(record: &mut ThermalRecord, profile: &StorageProfile) -> Result<(), ThermalError> {
    let mut count = 0u64;
    let mut min = i32::MAX;
    let mut max = i32::MIN;
    let mut first = u64::MAX;
    let mut last = 0u64;
    let mut last_cdeg = 0i32;
    let (mut above, mut below, mut in_range) = (0u64, 0u64, 0u64);
    let (mut warnings, mut excursions) = (0u32, 0u64);
    let (mut gaps_total, mut gap_s, mut stability_ppb) = (0u64, 0u64, 0u64);
    let (mut mkt_weight, mut mkt_sum) = (0u64, 0u128);
    let mut uncovered: Vec<DataGap> = Vec::new();
    let mut open: Option<(usize, u64)> = None;
    let mut breach: Option<usize> = None;
    let mut legs = 0usize;

    let tracks = &record.tracks;
    let mut i = 0;
    while i < tracks.len() {
        let shipment = tracks[i].shipment_id.as_str();
        let mut leg = Leg::default();
        while i < tracks.len() && tracks[i].shipment_id == shipment {
            let track = &tracks[i];
            leg.add(track)?;
            if track.reading_count > 0 {
                count = count.saturating_add(track.reading_count);
                min = min.min(track.min_cdeg);
                max = max.max(track.max_cdeg);
                first = first.min(track.first_time_s);
                // The latest reading of all loggers (the first track's on a tie).
                if count == track.reading_count || track.last_time_s > last {
                    last = track.last_time_s;
                    last_cdeg = track.last_cdeg;
                }
            }
            if let Some(current) = track.current.as_ref() {
                if open.is_none_or(|(_, longest)| current.duration_s > longest) {
                    open = Some((i, current.duration_s));
                }
            }
            if track.compromised
                && breach.is_none_or(|b| track.compromised_at_s < tracks[b].compromised_at_s)
            {
                breach = Some(i);
            }
            i += 1;
        }
        legs += 1;
        above = above.saturating_add(leg.above);
        below = below.saturating_add(leg.below);
        in_range = in_range.saturating_add(leg.in_range);
        warnings = warnings.saturating_add(leg.warnings);
        excursions = excursions.saturating_add(leg.excursions);
        stability_ppb = stability_ppb.saturating_add(leg.stability_ppb);
        if let Some((_, weight, sum)) = leg.mkt {
            mkt_weight = mkt_weight.saturating_add(weight);
            mkt_sum = mkt_sum.saturating_add(sum);
        }
        gaps_total = gaps_total.saturating_add(leg.own_gaps);
        gap_s = gap_s.saturating_add(leg.own_gap_s);
        for (from_s, to_s) in leg.uncovered(profile.max_gap_s) {
            gaps_total = gaps_total.saturating_add(1);
            gap_s = gap_s.saturating_add(to_s - from_s);
            if uncovered.len() < MAX_LISTED {
                let mut gap = DataGap::new();
                gap.from_s = from_s;
                gap.to_s = to_s;
                uncovered.push(gap);
            }
        }
    }

    let current = open.and_then(|(i, _)| {
        let track = &record.tracks[i];
        track.current.as_ref().map(|c| {
            let mut shown = c.clone();
            shown.device_id = track.device_id.clone();
            shown
        })
    });
    let track_breach = breach.map(|b| {
        let track = &record.tracks[b];
        (
            format!(
                "{} ({})",
                track.compromised_reason,
                logger_name(track, &record.subject)
            ),
            track.compromised_at_s,
        )
    });

    if count > 0 {
        record.reading_count = count;
        record.min_cdeg = min;
        record.max_cdeg = max;
        record.first_time_s = first;
        record.last_time_s = last;
        record.last_cdeg = last_cdeg;
    }
    record.time_above_s = above;
    record.time_below_s = below;
    record.time_in_range_s = in_range;
    record.warnings = warnings;
    record.excursions_closed_total = excursions.saturating_sub(u64::from(current.is_some()));
    record.closed.clear();
    record.gaps_total = gaps_total;
    record.time_in_gaps_s = gap_s;
    record.gaps = uncovered.into();
    record.mkt_weight_s = mkt_weight;
    record.mkt_sum = mkt::encode_sum(mkt_sum);
    record.stability_used_ppb = stability_ppb;
    match current {
        Some(excursion) => record.set_current(excursion),
        None => record.clear_current(),
    }

    if let Some((reason, at_s)) = track_breach {
        record.compromised = true;
        record.compromised_reason = reason;
        record.compromised_at_s = at_s;
    } else if !record.compromised && legs > 1 {
        if let Some(reason) = broken_over_legs(record, profile, legs) {
            record.compromised = true;
            record.compromised_reason = reason;
            record.compromised_at_s = record.last_time_s;
        }
    }
    Ok(())
}

/// How a track is named in the compromise reason of the record of `subject`
/// (a shipment's record does not repeat its own id).
fn logger_name(track: &ThermalRecord, subject: &str) -> String {
    if track.device_id.is_empty() {
        "readings recorded before per-logger tracks".to_string()
    } else if track.shipment_id.is_empty() || track.shipment_id == subject {
        format!("logger {}", track.device_id)
    } else {
        format!(
            "logger {} in shipment {}",
            track.device_id, track.shipment_id
        )
    }
}

/// The first budget the added figures of several legs break.
fn broken_over_legs(record: &ThermalRecord, p: &StorageProfile, legs: usize) -> Option<String> {
    let over = format!("over {legs} shipments");
    if record.time_above_s > p.max_cumulative_high_s {
        return Some(format!(
            "cumulative time above range {} s {over} exceeds the limit of {} s",
            record.time_above_s, p.max_cumulative_high_s
        ));
    }
    if record.time_below_s > p.max_cumulative_low_s {
        return Some(format!(
            "cumulative time below range {} s {over} exceeds the limit of {} s",
            record.time_below_s, p.max_cumulative_low_s
        ));
    }
    if p.max_warnings > 0 && record.warnings > p.max_warnings {
        return Some(format!(
            "{} out-of-range readings {over} exceed the limit of {}",
            record.warnings, p.max_warnings
        ));
    }
    if p.has_mkt_limit && record.mkt_weight_s >= MKT_MIN_WINDOW_S {
        let sum = mkt::decode_sum(&record.mkt_sum).unwrap_or(0);
        if mkt::mkt_exceeds(record.mkt_weight_s, sum, p.mkt_limit_cdeg) {
            let shown = mkt::mkt_cdeg_from_sums(record.mkt_weight_s, &record.mkt_sum)
                .map(show_cdeg)
                .unwrap_or_else(|| "unknown".to_string());
            return Some(format!(
                "mean kinetic temperature {shown} {over} exceeds the limit of {}",
                show_cdeg(p.mkt_limit_cdeg)
            ));
        }
    }
    if stability::has_budget(p) && record.stability_used_ppb >= stability::BUDGET_PPB {
        return Some(format!(
            "stability budget used up {over} ({})",
            stability::show_used(record.stability_used_ppb)
        ));
    }
    None
}
