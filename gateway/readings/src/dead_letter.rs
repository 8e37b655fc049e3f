//! The dead-letter store: every refused reading or message with its reason,
//! listable and replayable.
//!
//! Replay re-judges an entry with today's configuration (a device added since,
//! a clock fixed) and removes it once it is queued or refused afresh. Entries
//! the ledger refused go straight back to the queue: the gateway already
//! accepted them once, and the ledger decides again. Storage only; no network.
use crate::arrivals;
use crate::protocol::serial_line;
use crate::queue::{insert_reading, refresh_device, Admission, Arrival, Queue, QueueError, Route};
use crate::validation::{Plausibility, Reason};
use rusqlite::params;

/// One dead-letter entry.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub received_at_ms: u64,
    pub source: String,
    pub reason: String,
    pub detail: String,
    pub device_id: Option<String>,
    pub sequence: Option<u64>,
    /// The bytes as received, lossily shown as text.
    pub raw: String,
}

/// source, reason, raw bytes, org, shipment of a stored entry.
type StoredEntry = (String, String, Vec<u8>, Option<String>, Option<String>);

/// What replaying one entry did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayOutcome {
    Queued,
    RefusedAgain(String),
    Missing,
}

impl Queue {
    /// Dead letters, oldest first, optionally only those with `reason` (a label).
    pub fn dead_letters(
        &self,
        reason: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        let mut statement = self.conn.prepare(
            "SELECT id, received_at_ms, source, reason, detail, device_id, sequence, raw FROM dead_letters
             WHERE ?1 IS NULL OR reason = ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![reason, limit as i64], |r| {
            let raw: Vec<u8> = r.get(7)?;
            Ok(DeadLetter {
                id: r.get(0)?,
                received_at_ms: r.get::<_, i64>(1)? as u64,
                source: r.get(2)?,
                reason: r.get(3)?,
                detail: r.get(4)?,
                device_id: r.get(5)?,
                sequence: r.get::<_, Option<i64>>(6)?.map(|s| s as u64),
                raw: String::from_utf8_lossy(&raw).into_owned(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replays entry `id` with the current device directory.
    pub fn replay_dead_letter(
        &mut self,
        id: i64,
        directory: &dyn Fn(&str) -> Option<Route>,
        topic_prefix: &str,
        now_ms: u64,
        limits: Plausibility,
        disk_cap_bytes: u64,
    ) -> Result<ReplayOutcome, QueueError> {
        let entry: Option<StoredEntry> = self
            .conn
            .query_row(
                "SELECT source, reason, raw, org_id, shipment_id FROM dead_letters WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .map(Some)
            .or_else(|e| {
                if e == rusqlite::Error::QueryReturnedNoRows {
                    Ok(None)
                } else {
                    Err(e)
                }
            })?;
        let Some((source, reason, raw, org, shipment)) = entry else {
            return Ok(ReplayOutcome::Missing);
        };
        if reason == Reason::LedgerInvalid.label() {
            let (Ok(reading), Some(org), Some(shipment)) =
                (serial_line::parse_line(&raw), org, shipment)
            else {
                return Ok(ReplayOutcome::RefusedAgain(
                    "ledger entry lost its reading".into(),
                ));
            };
            let tx = self.conn.transaction()?;
            insert_reading(
                &tx,
                &reading,
                &Route {
                    org,
                    shipment,
                    range: None,
                },
                now_ms,
                false,
            )?;
            tx.execute("DELETE FROM dead_letters WHERE id = ?1", params![id])?;
            refresh_device(&tx, &reading.device_id)?;
            tx.commit()?;
            return Ok(ReplayOutcome::Queued);
        }
        let arrivals: Vec<Arrival> = match source.strip_prefix("mqtt:") {
            Some(topic) => arrivals::from_mqtt_message(topic_prefix, topic, &raw, directory),
            None => vec![arrivals::from_serial_line(&source, &raw, &[], directory)],
        };
        // Admit first: if that fails the entry stays; if it is refused again the
        // new entry replaces this one.
        let admissions = self.admit(&arrivals, now_ms, limits, disk_cap_bytes)?;
        self.conn
            .execute("DELETE FROM dead_letters WHERE id = ?1", params![id])?;
        let refused: Vec<String> = admissions
            .iter()
            .filter_map(|a| match a {
                Admission::Refused(r) => Some(format!("{}: {}", r.reason.label(), r.detail)),
                Admission::Queued { .. } => None,
            })
            .collect();
        Ok(if refused.is_empty() {
            ReplayOutcome::Queued
        } else {
            ReplayOutcome::RefusedAgain(refused.join("; "))
        })
    }
}
