//! Thermal rules: how readings update a cold-chain record ([`ThermalRecord`])
//! under a [`StorageProfile`]. Pure functions, no I/O, no floating point, no
//! clock: the sensor handler calls [`apply_readings`] and turns the returned
//! [`ThermalOutcome`]s into events and status changes.
//!
//! ## Accounting (see `docs/families-sensor.md`)
//! - **Time weighting.** The interval between two consecutive readings belongs to
//!   the *earlier* reading: its band (below / in range / above) and its
//!   temperature (for MKT). The latest reading's state covers no time yet.
//! - **Data gaps.** When `max_gap_s > 0` and an interval is longer than
//!   `max_gap_s`, it is recorded as a [`DataGap`] and counted in `time_in_gaps_s`
//!   only: not in range, not above or below, not in MKT, not in an excursion.
//!   So `time_in_range_s + time_above_s + time_below_s + time_in_gaps_s ==
//!   last_time_s − first_time_s` always.
//! - **Late readings.** A reading not later than the record's last time (a second
//!   logger on the same shipment lagging behind) counts as a reading (count,
//!   min/max, warnings, band changes) but adds no time.
//! - **Excursions.** An excursion opens at the first reading outside the range and
//!   closes at the first reading back inside (or on the other side, which opens
//!   the opposite excursion). Its `duration_s` is the counted time it covered.
//! - **Budgets** (a record is compromised at the first one broken; it stays so):
//!   hard limits (one reading beyond them), single event (`duration_s` of one
//!   excursion > `max_single_high_s` / `max_single_low_s`), cumulative
//!   (`time_above_s` > `max_cumulative_high_s`, `time_below_s` >
//!   `max_cumulative_low_s`), warnings (out-of-range readings > `max_warnings`
//!   when it is non-zero) and MKT (above `mkt_limit_cdeg` once at least
//!   [`MKT_MIN_WINDOW_S`] have been weighted). Time limits of 0 tolerate nothing.
pub mod chain;
pub mod mkt;
pub mod presets;
pub mod stability;
pub mod tracks;

pub use chain::{append_batch, next_chain_head, payload_digest};
pub use mkt::{mkt_cdeg, mkt_exceeds};
pub use tracks::{record_logger_readings, track_of};

use crate::messages::coldchain::{DataGap, Excursion, StorageProfile, ThermalRecord};

/// At most this many closed excursions and data gaps are listed in a record
/// (the oldest ones); the totals keep counting. Bounds the record's size, so one
/// flapping logger cannot make every later transaction slower.
pub const MAX_LISTED: usize = 100;
/// The same bound for one logger's track (sensor family 1.1): a record with four
/// loggers lists as many as a 1.0 record did.
pub const MAX_LISTED_PER_TRACK: usize = 25;

/// MKT is a statement about a storage period; it is held against the profile's
/// limit only once this much time (24 h) has been weighted.
pub const MKT_MIN_WINDOW_S: u64 = 86_400;

/// One reading as the rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadingPoint {
    pub time_s: u64,
    pub temperature_cdeg: i32,
}

/// A closed excursion, as reported to the handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedExcursion {
    pub high: bool,
    pub start_s: u64,
    pub end_s: u64,
    pub peak_cdeg: i32,
    pub duration_s: u64,
}

/// What applying readings changed, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThermalOutcome {
    ExcursionStarted {
        high: bool,
        start_s: u64,
        temperature_cdeg: i32,
    },
    ExcursionEnded(ClosedExcursion),
    Compromised {
        reason: String,
        at_s: u64,
    },
}

/// Why a stored record could not be updated (only a corrupted record does this).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThermalError {
    #[error("thermal record of {0} holds an mkt_sum longer than 128 bits")]
    CorruptMktSum(String),
    #[error("thermal record of {0} holds a stability_arrhenius_sum longer than 128 bits")]
    CorruptStabilitySum(String),
    #[error("thermal record of {0} holds a malformed readings_chain_head")]
    CorruptChainHead(String),
}

/// Where a temperature lies relative to the profile's range (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    Below,
    InRange,
    Above,
}

/// The band of `cdeg` under `profile`.
#[inline]
pub fn band(profile: &StorageProfile, cdeg: i32) -> Band {
    if cdeg > profile.max_cdeg {
        Band::Above
    } else if cdeg < profile.min_cdeg {
        Band::Below
    } else {
        Band::InRange
    }
}

/// A new, empty record for `subject` kept under `profile`.
pub fn new_record(subject: &str, profile: &StorageProfile) -> ThermalRecord {
    let mut record = ThermalRecord::new();
    record.subject = subject.to_string();
    record.set_profile(profile.clone());
    record
}

#[derive(Clone, Copy)]
struct OpenExcursion {
    high: bool,
    start_s: u64,
    peak_cdeg: i32,
    duration_s: u64,
}

/// The record's numbers unpacked for the hot loop; written back once per batch.
struct Tally<'p> {
    profile: &'p StorageProfile,
    count: u64,
    min: i32,
    max: i32,
    first: u64,
    last: u64,
    last_cdeg: i32,
    last_factor: u64,
    in_range: u64,
    above: u64,
    below: u64,
    in_gaps: u64,
    warnings: u32,
    mkt_weight: u64,
    mkt_sum: u128,
    current: Option<OpenExcursion>,
    compromised: bool,
    stability: Option<StabilityTally>,
    listed: usize,
}

/// Stability-budget counters of a record, present when its profile has a budget.
struct StabilityTally {
    band_s: Vec<u64>,
    arrhenius_sum: u128,
    table: Option<std::sync::Arc<Vec<u64>>>,
    last_factor: u64,
    /// `allowed_s` · 2^32: the Arrhenius budget is used up when the sum reaches it.
    arrhenius_budget: Option<u128>,
    bands_used_up: bool,
    /// Time was added to a band since the bands were last judged.
    bands_changed: bool,
}

/// Applies `readings` (in order) from `device_id` to `record` and returns what
/// happened. The record's profile decides every band and budget. This is the
/// rule of one logger's track; [`record_logger_readings`] keeps a record's
/// tracks and its summary over them.
pub fn apply_readings(
    record: &mut ThermalRecord,
    device_id: &str,
    readings: impl IntoIterator<Item = ReadingPoint>,
) -> Result<Vec<ThermalOutcome>, ThermalError> {
    let profile = record.profile.as_ref().cloned().unwrap_or_default();
    apply_rules(record, &profile, device_id, readings, MAX_LISTED)
}

/// Sensor family 1.0's rule, kept so its blocks replay: `readings` of any
/// logger merged into `record` in commit order, then the batch appended to the
/// record's chain.
pub fn apply_merged(
    record: &mut ThermalRecord,
    device_id: &str,
    readings: impl IntoIterator<Item = ReadingPoint>,
    payload_sha512: &[u8; 64],
) -> Result<Vec<ThermalOutcome>, ThermalError> {
    let outcomes = apply_readings(record, device_id, readings)?;
    append_batch(record, payload_sha512)
        .ok_or_else(|| ThermalError::CorruptChainHead(record.subject.clone()))?;
    Ok(outcomes)
}

/// [`apply_readings`] under `profile` (a track holds no profile of its own),
/// listing at most `listed` closed excursions and gaps.
pub fn apply_rules(
    record: &mut ThermalRecord,
    profile: &StorageProfile,
    device_id: &str,
    readings: impl IntoIterator<Item = ReadingPoint>,
    listed: usize,
) -> Result<Vec<ThermalOutcome>, ThermalError> {
    let mkt_sum = mkt::decode_sum(&record.mkt_sum)
        .ok_or_else(|| ThermalError::CorruptMktSum(record.subject.clone()))?;
    let stability_tally = if stability::has_budget(profile) {
        let arrhenius_sum = mkt::decode_sum(&record.stability_arrhenius_sum)
            .ok_or_else(|| ThermalError::CorruptStabilitySum(record.subject.clone()))?;
        let table = profile
            .stability_arrhenius
            .as_ref()
            .map(stability::arrhenius_table);
        let mut band_s = record.stability_band_s.clone();
        band_s.resize(profile.stability_bands.len(), 0);
        let last_factor = table
            .as_ref()
            .map(|t| stability::factor(t, record.last_cdeg))
            .unwrap_or(0);
        let arrhenius_budget = profile
            .stability_arrhenius
            .as_ref()
            .map(|m| u128::from(m.allowed_s) << stability::ARRHENIUS_SCALE_BITS);
        let bands_used_up = stability::used_ppb_of_bands(profile, &band_s) >= stability::BUDGET_PPB;
        Some(StabilityTally {
            band_s,
            arrhenius_sum,
            table,
            last_factor,
            arrhenius_budget,
            bands_used_up,
            bands_changed: false,
        })
    } else {
        None
    };
    let mut tally = Tally {
        profile,
        count: record.reading_count,
        min: record.min_cdeg,
        max: record.max_cdeg,
        first: record.first_time_s,
        last: record.last_time_s,
        last_cdeg: record.last_cdeg,
        last_factor: mkt::factor_q48(record.last_cdeg),
        in_range: record.time_in_range_s,
        above: record.time_above_s,
        below: record.time_below_s,
        in_gaps: record.time_in_gaps_s,
        warnings: record.warnings,
        mkt_weight: record.mkt_weight_s,
        mkt_sum,
        current: record.current.as_ref().map(|e| OpenExcursion {
            high: e.high,
            start_s: e.start_s,
            peak_cdeg: e.peak_cdeg,
            duration_s: e.duration_s,
        }),
        compromised: record.compromised,
        stability: stability_tally,
        listed,
    };
    let mut outcomes = Vec::new();
    for reading in readings {
        tally.step(record, device_id, reading, &mut outcomes);
    }
    tally.write_back(record);
    Ok(outcomes)
}

impl Tally<'_> {
    fn step(
        &mut self,
        record: &mut ThermalRecord,
        device_id: &str,
        reading: ReadingPoint,
        outcomes: &mut Vec<ThermalOutcome>,
    ) {
        let ReadingPoint {
            time_s: t,
            temperature_cdeg: c,
        } = reading;
        if self.count == 0 {
            self.first = t;
            self.last = t;
            self.min = c;
            self.max = c;
        } else if t > self.last {
            self.attribute_interval(record, device_id, t);
        }
        self.count = self.count.saturating_add(1);
        self.min = self.min.min(c);
        self.max = self.max.max(c);
        let now = self.last;
        // The excursion as it stands after this interval, before this reading may
        // close it: its single-event budget is checked even when it just ended.
        let extended = self.current;
        let new_band = band(self.profile, c);
        if let Some(open) = self.current {
            let still_open =
                (open.high && new_band == Band::Above) || (!open.high && new_band == Band::Below);
            if still_open {
                self.current = Some(OpenExcursion {
                    peak_cdeg: if open.high {
                        open.peak_cdeg.max(c)
                    } else {
                        open.peak_cdeg.min(c)
                    },
                    ..open
                });
            } else {
                self.current = None;
                let closed = ClosedExcursion {
                    high: open.high,
                    start_s: open.start_s,
                    end_s: now,
                    peak_cdeg: open.peak_cdeg,
                    duration_s: open.duration_s,
                };
                record.excursions_closed_total = record.excursions_closed_total.saturating_add(1);
                if record.closed.len() < self.listed {
                    record.closed.push(to_excursion(&closed));
                }
                outcomes.push(ThermalOutcome::ExcursionEnded(closed));
            }
        }
        if new_band != Band::InRange {
            self.warnings = self.warnings.saturating_add(1);
            if self.current.is_none() {
                let high = new_band == Band::Above;
                self.current = Some(OpenExcursion {
                    high,
                    start_s: now,
                    peak_cdeg: c,
                    duration_s: 0,
                });
                outcomes.push(ThermalOutcome::ExcursionStarted {
                    high,
                    start_s: now,
                    temperature_cdeg: c,
                });
            }
        }
        self.last_cdeg = c;
        self.last_factor = mkt::factor_q48(c);
        if let Some(stability) = self.stability.as_mut() {
            if let Some(table) = stability.table.as_ref() {
                stability.last_factor = stability::factor(table, c);
            }
        }
        if !self.compromised {
            if let Some(reason) = self.broken_budget(c, extended) {
                self.compromised = true;
                record.compromised_reason = reason.clone();
                record.compromised_at_s = now;
                outcomes.push(ThermalOutcome::Compromised { reason, at_s: now });
            }
        }
    }

    /// Gives the time from the last reading to `t` to the last reading's state.
    #[inline]
    fn attribute_interval(&mut self, record: &mut ThermalRecord, device_id: &str, t: u64) {
        let dt = t - self.last;
        let gap_limit = self.profile.max_gap_s;
        if gap_limit > 0 && dt > gap_limit {
            self.in_gaps = self.in_gaps.saturating_add(dt);
            record.gaps_total = record.gaps_total.saturating_add(1);
            if record.gaps.len() < self.listed {
                let mut gap = DataGap::new();
                gap.device_id = device_id.to_string();
                gap.from_s = self.last;
                gap.to_s = t;
                record.gaps.push(gap);
            }
        } else {
            match band(self.profile, self.last_cdeg) {
                Band::InRange => self.in_range = self.in_range.saturating_add(dt),
                Band::Above => self.above = self.above.saturating_add(dt),
                Band::Below => self.below = self.below.saturating_add(dt),
            }
            if let Some(open) = self.current.as_mut() {
                open.duration_s = open.duration_s.saturating_add(dt);
            }
            self.mkt_weight = self.mkt_weight.saturating_add(dt);
            self.mkt_sum = self
                .mkt_sum
                .saturating_add(u128::from(dt) * u128::from(self.last_factor));
            if let Some(stability) = self.stability.as_mut() {
                if let Some(i) = stability::band_of(self.profile, self.last_cdeg) {
                    if let Some(seconds) = stability.band_s.get_mut(i) {
                        *seconds = seconds.saturating_add(dt);
                        stability.bands_changed = true;
                    }
                }
                stability.arrhenius_sum = stability
                    .arrhenius_sum
                    .saturating_add(u128::from(dt) * u128::from(stability.last_factor));
            }
        }
        self.last = t;
    }

    /// The first budget the record now breaks, as a reason; `None` while in budget.
    fn broken_budget(&mut self, cdeg: i32, extended: Option<OpenExcursion>) -> Option<String> {
        let p = self.profile;
        if p.has_hard_limits && (cdeg < p.hard_min_cdeg || cdeg > p.hard_max_cdeg) {
            return Some(format!(
                "reading of {} beyond the hard limits {}..{}",
                show_cdeg(cdeg),
                show_cdeg(p.hard_min_cdeg),
                show_cdeg(p.hard_max_cdeg)
            ));
        }
        if let Some(open) = extended {
            let (limit, side) = if open.high {
                (p.max_single_high_s, "high")
            } else {
                (p.max_single_low_s, "low")
            };
            if open.duration_s > limit {
                return Some(format!(
                    "single {side} excursion of {} s since {} exceeds the limit of {limit} s",
                    open.duration_s, open.start_s
                ));
            }
        }
        if self.above > p.max_cumulative_high_s {
            return Some(format!(
                "cumulative time above range {} s exceeds the limit of {} s",
                self.above, p.max_cumulative_high_s
            ));
        }
        if self.below > p.max_cumulative_low_s {
            return Some(format!(
                "cumulative time below range {} s exceeds the limit of {} s",
                self.below, p.max_cumulative_low_s
            ));
        }
        if p.max_warnings > 0 && self.warnings > p.max_warnings {
            return Some(format!(
                "{} out-of-range readings exceed the limit of {}",
                self.warnings, p.max_warnings
            ));
        }
        if p.has_mkt_limit
            && self.mkt_weight >= MKT_MIN_WINDOW_S
            && mkt::mkt_exceeds(self.mkt_weight, self.mkt_sum, p.mkt_limit_cdeg)
        {
            let shown = mkt::mkt_cdeg_from_sums(self.mkt_weight, &mkt::encode_sum(self.mkt_sum))
                .map(show_cdeg)
                .unwrap_or_else(|| "unknown".to_string());
            return Some(format!(
                "mean kinetic temperature {shown} exceeds the limit of {}",
                show_cdeg(p.mkt_limit_cdeg)
            ));
        }
        if let Some(tally) = self.stability.as_mut() {
            // Judged without dividing on every reading: the Arrhenius sum against
            // its budget, the bands only when time was added to one.
            if tally.bands_changed {
                tally.bands_changed = false;
                tally.bands_used_up =
                    stability::used_ppb_of_bands(p, &tally.band_s) >= stability::BUDGET_PPB;
            }
            let arrhenius_used_up = tally
                .arrhenius_budget
                .is_some_and(|budget| tally.arrhenius_sum >= budget);
            if tally.bands_used_up || arrhenius_used_up {
                let used = stability::used_ppb(p, &tally.band_s, tally.arrhenius_sum);
                return Some(format!(
                    "stability budget used up ({} of the time the profile allows outside its \
                     label range)",
                    stability::show_used(used)
                ));
            }
        }
        None
    }

    fn write_back(self, record: &mut ThermalRecord) {
        record.reading_count = self.count;
        record.min_cdeg = self.min;
        record.max_cdeg = self.max;
        record.first_time_s = self.first;
        record.last_time_s = self.last;
        record.last_cdeg = self.last_cdeg;
        record.time_in_range_s = self.in_range;
        record.time_above_s = self.above;
        record.time_below_s = self.below;
        record.time_in_gaps_s = self.in_gaps;
        record.warnings = self.warnings;
        record.mkt_weight_s = self.mkt_weight;
        record.mkt_sum = mkt::encode_sum(self.mkt_sum);
        record.compromised = self.compromised;
        if let Some(tally) = self.stability {
            record.stability_used_ppb =
                stability::used_ppb(self.profile, &tally.band_s, tally.arrhenius_sum);
            record.stability_band_s = tally.band_s;
            record.stability_arrhenius_sum = if tally.table.is_some() {
                mkt::encode_sum(tally.arrhenius_sum)
            } else {
                Vec::new()
            };
        }
        match self.current {
            Some(open) => {
                let mut excursion = Excursion::new();
                excursion.high = open.high;
                excursion.start_s = open.start_s;
                excursion.peak_cdeg = open.peak_cdeg;
                excursion.duration_s = open.duration_s;
                record.set_current(excursion);
            }
            None => record.clear_current(),
        }
    }
}

fn to_excursion(closed: &ClosedExcursion) -> Excursion {
    let mut excursion = Excursion::new();
    excursion.high = closed.high;
    excursion.start_s = closed.start_s;
    excursion.end_s = closed.end_s;
    excursion.peak_cdeg = closed.peak_cdeg;
    excursion.duration_s = closed.duration_s;
    excursion
}

/// A temperature in hundredths of °C for messages: `-0.50 °C`.
pub fn show_cdeg(cdeg: i32) -> String {
    let sign = if cdeg < 0 { "-" } else { "" };
    let abs = cdeg.unsigned_abs();
    format!("{sign}{}.{:02} °C", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_tracks;
