//! Admission: judging an arrival (one serial line or one MQTT message) and
//! storing its readings in the queue, or the arrival in the dead-letter store.
//!
//! **A message is all or nothing.** If any of its readings is refused for
//! what it says (impossible value, clock skew, too old, time going back) —
//! or the queue is full — none of them is queued and the message becomes one
//! dead letter with its bytes as received, naming every bad element. A logger
//! that sends such a message is broken and must be looked at; storing half of
//! it would leave a gap the ledger can never fill (it takes each device's
//! sequences in increasing order only).
//!
//! Readings the gateway already holds (sequence at or below the device's last
//! accepted one — a redelivery after a crash, or a logger resending a window
//! that overlaps what it sent before) are not faults of the message: they are
//! left out, the rest is queued, and the message is noted once as a dead
//! letter (`duplicate` / `out_of_order`) so the resend stays visible.
//!
//! Storage only: no network, no clocks (callers pass `now`).
use crate::protocol::DeviceReading;
use crate::queue::{device_progress, insert_reading, Admission, Arrival, Queue, QueueError, Route};
use crate::validation::{in_range, judge_reading, DeviceProgress, Plausibility, Reason, Rejection};
use rusqlite::{params, Transaction};
use std::collections::BTreeMap;

/// Most bad elements a dead letter's detail names one by one.
const NAMED_ELEMENTS: usize = 5;

impl Queue {
    /// Judges and stores a group of arrivals in one transaction (one fsync).
    /// Refused arrivals go to the dead-letter store. Returns one admission per arrival.
    pub fn admit(
        &mut self,
        arrivals: &[Arrival],
        now_ms: u64,
        limits: Plausibility,
        disk_cap_bytes: u64,
    ) -> Result<Vec<Admission>, QueueError> {
        let full = self.disk_bytes()? >= disk_cap_bytes;
        let tx = self.conn.transaction()?;
        let admissions = admit_in(&tx, arrivals, now_ms, limits, full, disk_cap_bytes)?;
        tx.commit()?;
        Ok(admissions)
    }
}

/// [`Queue::admit`] inside the caller's transaction (replay deletes the entry
/// it replays in the same one).
pub(crate) fn admit_in(
    tx: &Transaction<'_>,
    arrivals: &[Arrival],
    now_ms: u64,
    limits: Plausibility,
    full: bool,
    disk_cap_bytes: u64,
) -> Result<Vec<Admission>, QueueError> {
    let mut admissions = Vec::with_capacity(arrivals.len());
    for arrival in arrivals {
        let (readings, route) = match &arrival.outcome {
            Err(rejection) => {
                store_dead_letter(tx, arrival, rejection, None, now_ms)?;
                admissions.push(Admission::Refused(rejection.clone()));
                continue;
            }
            Ok((readings, route)) => (readings, route),
        };
        let first = readings.first();
        if full {
            let rejection = Rejection::new(
                Reason::QueueFull,
                format!("queue is at its disk cap of {disk_cap_bytes} bytes; nothing of this arrival was stored"),
            );
            store_dead_letter(tx, arrival, &rejection, first.map(|r| (r, route)), now_ms)?;
            admissions.push(Admission::Refused(rejection));
            continue;
        }
        let judged = judge_message(tx, readings, now_ms, limits)?;
        if let Some((at, rejection)) = judged.refusal(readings.len()) {
            store_dead_letter(tx, arrival, &rejection, Some((at, route)), now_ms)?;
            admissions.push(Admission::Refused(rejection));
            continue;
        }
        let mut urgent = false;
        for reading in &judged.new {
            urgent |= queue_reading(tx, reading, route, now_ms)?;
        }
        let skipped = judged.skipped_note(readings.len());
        if let Some((at, note)) = &skipped {
            store_dead_letter(tx, arrival, note, Some((at, route)), now_ms)?;
        }
        admissions.push(match skipped {
            Some((_, note)) if judged.new.is_empty() => Admission::Refused(note),
            skipped => Admission::Queued {
                readings: judged.new.len(),
                urgent,
                skipped: skipped.map(|(_, note)| note),
            },
        });
    }
    Ok(admissions)
}

/// One message's readings sorted by verdict, in message order.
struct Judged<'a> {
    new: Vec<&'a DeviceReading>,
    /// Readings the gateway already holds: (element index, reading, refusal).
    resent: Vec<(usize, &'a DeviceReading, Rejection)>,
    /// Readings refused for what they say.
    faults: Vec<(usize, &'a DeviceReading, Rejection)>,
}

/// Judges each reading against its device's progress as the message would
/// advance it (nothing is written here).
fn judge_message<'a>(
    tx: &Transaction<'_>,
    readings: &'a [DeviceReading],
    now_ms: u64,
    limits: Plausibility,
) -> Result<Judged<'a>, QueueError> {
    let mut progress: BTreeMap<&str, DeviceProgress> = BTreeMap::new();
    let mut judged = Judged {
        new: Vec::new(),
        resent: Vec::new(),
        faults: Vec::new(),
    };
    for (index, reading) in readings.iter().enumerate() {
        let device = reading.device_id.as_str();
        let current = match progress.get(device) {
            Some(p) => *p,
            None => device_progress(tx, device)?.0,
        };
        match judge_reading(reading, current, now_ms / 1000, limits) {
            Ok(()) => {
                progress.insert(
                    device,
                    DeviceProgress {
                        last_sequence: reading.sequence,
                        last_time_s: reading.time_s,
                    },
                );
                judged.new.push(reading);
            }
            Err(r) if r.reason.is_resend() => judged.resent.push((index, reading, r)),
            Err(r) => judged.faults.push((index, reading, r)),
        }
    }
    Ok(judged)
}

impl<'a> Judged<'a> {
    /// The refusal of the whole message, if any reading in it is at fault:
    /// the first bad element's reason, and every bad element named.
    fn refusal(&self, total: usize) -> Option<(&'a DeviceReading, Rejection)> {
        let (_, first, rejection) = self.faults.first()?;
        if total == 1 {
            return Some((first, rejection.clone()));
        }
        let mut named: Vec<String> = self
            .faults
            .iter()
            .take(NAMED_ELEMENTS)
            .map(|(i, r, why)| {
                format!(
                    "element {} of {total} (sequence {}): {}: {}",
                    i + 1,
                    r.sequence,
                    why.reason.label(),
                    why.detail
                )
            })
            .collect();
        if self.faults.len() > NAMED_ELEMENTS {
            named.push(format!("{} more", self.faults.len() - NAMED_ELEMENTS));
        }
        let detail = format!(
            "{}; one bad reading refuses its whole message, so none of its {total} readings was stored: fix the logger, then replay this entry or have the logger send the readings again",
            named.join("; ")
        );
        Some((first, Rejection::new(rejection.reason, detail)))
    }

    /// The note for readings left out because the gateway already has them.
    fn skipped_note(&self, total: usize) -> Option<(&'a DeviceReading, Rejection)> {
        let (_, first, rejection) = self.resent.first()?;
        if total == 1 {
            return Some((first, rejection.clone()));
        }
        let mut sequences: Vec<String> = self
            .resent
            .iter()
            .take(NAMED_ELEMENTS)
            .map(|(_, r, _)| r.sequence.to_string())
            .collect();
        if self.resent.len() > NAMED_ELEMENTS {
            sequences.push("…".into());
        }
        let detail = format!(
            "{} of the message's {total} readings were already received (sequences {}); {}",
            self.resent.len(),
            sequences.join(", "),
            match self.new.len() {
                0 => "nothing new in it".to_string(),
                n => format!("its {n} new readings were queued"),
            }
        );
        Some((first, Rejection::new(rejection.reason, detail)))
    }
}

/// Queues one judged reading and advances its device. Returns whether it is
/// urgent: its in-range state differs from the device's previous reading in
/// the same shipment (an excursion starts or ends).
fn queue_reading(
    tx: &Transaction<'_>,
    reading: &DeviceReading,
    route: &Route,
    now_ms: u64,
) -> Result<bool, QueueError> {
    let previous_edge = device_progress(tx, &reading.device_id)?.1;
    let now_in_range = route.range.map(|r| in_range(reading.temperature_cdeg, r));
    let urgent = match (previous_edge, now_in_range) {
        (Some((shipment, was)), Some(is)) => shipment == route.shipment && was != is,
        (None, Some(is)) => !is,
        _ => false,
    };
    insert_reading(tx, reading, route, now_ms, urgent)?;
    tx.prepare_cached(
        "INSERT INTO devices (device_id, last_sequence, last_time_s, last_shipment_id, last_in_range,
             unsent, oldest_unsent_ms, urgent)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)
         ON CONFLICT (device_id) DO UPDATE SET last_sequence = ?2, last_time_s = ?3,
             last_shipment_id = ?4, last_in_range = ?5, unsent = unsent + 1,
             oldest_unsent_ms = COALESCE(oldest_unsent_ms, ?6), urgent = MAX(urgent, ?7)",
    )?
    .execute(params![
        reading.device_id,
        reading.sequence as i64,
        reading.time_s as i64,
        route.shipment,
        now_in_range,
        now_ms as i64,
        urgent
    ])?;
    Ok(urgent)
}

/// Writes one dead letter: the arrival's bytes as received, what they are,
/// and (once parsed) the reading it is about and where it was going.
fn store_dead_letter(
    tx: &Transaction<'_>,
    arrival: &Arrival,
    rejection: &Rejection,
    about: Option<(&DeviceReading, &Route)>,
    now_ms: u64,
) -> Result<(), QueueError> {
    tx.prepare_cached(
        "INSERT INTO dead_letters (received_at_ms, source, reason, detail, device_id, sequence, org_id, shipment_id,
             raw, raw_form, raw_size)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        now_ms as i64,
        arrival.source,
        rejection.reason.label(),
        rejection.detail,
        about.map(|(r, _)| &r.device_id),
        about.map(|(r, _)| r.sequence as i64),
        about.map(|(_, route)| &route.org),
        about.map(|(_, route)| &route.shipment),
        arrival.raw,
        arrival.form.label(),
        arrival.size as i64,
    ])?;
    Ok(())
}
