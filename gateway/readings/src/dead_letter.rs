//! The dead-letter store: every refused line or message with its reason and
//! its bytes as received, listable and replayable.
//!
//! Replay re-judges an entry with today's configuration (a device added since,
//! a clock fixed, a queue drained) from the bytes kept: a serial line is read
//! as a serial line, an MQTT message with the MQTT decoder (JSON or binary), a
//! SenML pack with the SenML decoder and its broker's `[mqtt.senml]` naming.
//! The entry leaves the store once its readings are queued, or when it is
//! refused afresh (the new refusal replaces it), in the same transaction.
//! Entries the ledger refused go straight back to the queue: the gateway
//! already accepted them once, and the ledger decides again. A message that
//! was over the size limit cannot be replayed (only its head was kept).
//! Storage only; no network.
use crate::admission::admit_in;
use crate::arrivals;
use crate::protocol::senml::{self, SenmlNaming};
use crate::protocol::{mqtt_payload, serial_line};
use crate::queue::{insert_reading, refresh_device, Admission, Arrival, Queue, QueueError, Route};
use crate::validation::{Plausibility, Reason};
use base64::Engine;
use rusqlite::{params, OptionalExtension};

/// What the bytes kept with an arrival are, so that a dead letter can be
/// decoded again on replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawForm {
    /// A serial line as received.
    SerialLine,
    /// A whole MQTT payload as received (JSON or binary).
    MqttPayload,
    /// Only the first bytes of an MQTT payload over the size limit: not replayable.
    MqttPayloadCut,
    /// A `$CCR` line the gateway rebuilt from a stored reading (readings the
    /// ledger refused; readings refused by gateways before the raw form was kept).
    ReadingLine,
    /// A whole SenML pack as received (JSON or CBOR, as its topic says).
    Senml,
}

impl RawForm {
    pub const ALL: [RawForm; 5] = [
        RawForm::SerialLine,
        RawForm::MqttPayload,
        RawForm::MqttPayloadCut,
        RawForm::ReadingLine,
        RawForm::Senml,
    ];

    /// Stable label, as stored in the dead-letter store and listed.
    pub fn label(self) -> &'static str {
        match self {
            RawForm::SerialLine => "serial_line",
            RawForm::MqttPayload => "mqtt_payload",
            RawForm::MqttPayloadCut => "mqtt_payload_cut",
            RawForm::ReadingLine => "reading_line",
            RawForm::Senml => "senml_payload",
        }
    }

    pub fn from_label(label: &str) -> Option<RawForm> {
        RawForm::ALL.into_iter().find(|f| f.label() == label)
    }
}

/// Brings a dead-letter store written by an older gateway (no `raw_form` /
/// `raw_size`) up to date in one transaction, keeping every row. Old rows
/// without a device were refused before parsing and hold the bytes as
/// received (MQTT payloads were cut at 4096 bytes); the others hold a line
/// the gateway rebuilt.
const MIGRATE_DEAD_LETTERS: &str = "
ALTER TABLE dead_letters ADD COLUMN raw_form TEXT NOT NULL DEFAULT 'reading_line';
ALTER TABLE dead_letters ADD COLUMN raw_size INTEGER;
UPDATE dead_letters SET raw_size = length(raw), raw_form = CASE
    WHEN device_id IS NULL AND source LIKE 'mqtt:%' AND length(raw) >= 4096 THEN 'mqtt_payload_cut'
    WHEN device_id IS NULL AND source LIKE 'mqtt:%' THEN 'mqtt_payload'
    WHEN device_id IS NULL AND source LIKE 'serial:%' THEN 'serial_line'
    ELSE 'reading_line' END;
";

/// Runs [`MIGRATE_DEAD_LETTERS`] if the store needs it. The check is inside
/// the write transaction, so a gateway and a `dead-letters` command opening
/// the same old store at once migrate it once.
pub(crate) fn migrate(conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('dead_letters') WHERE name = 'raw_form'",
        [],
        |r| r.get(0),
    )?;
    if current == 0 {
        tx.execute_batch(MIGRATE_DEAD_LETTERS)?;
    }
    tx.commit()
}

/// One dead-letter entry, as listed (`dead-letters list` prints it as JSON).
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub received_at_ms: u64,
    /// `serial:<port>`, `mqtt:<topic>` or `ledger`.
    pub source: String,
    pub reason: String,
    pub detail: String,
    pub device_id: Option<String>,
    pub sequence: Option<u64>,
    /// The bytes kept, shown as text (lossily, for bytes that are not UTF-8).
    pub raw: String,
    /// The same bytes in base64 when they are not UTF-8 text (binary MQTT payloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
    /// What the bytes are: `serial_line`, `mqtt_payload` (whole, as received),
    /// `mqtt_payload_cut` (the head of a `too_large` message) or `reading_line`
    /// (a line the gateway rebuilt from a stored reading).
    pub raw_form: String,
    /// Bytes that arrived; above the length of `raw` for a cut payload.
    pub raw_size: u64,
}

/// source, reason, raw bytes, raw form, raw size, org, shipment of a stored entry.
type StoredEntry = (
    String,
    String,
    Vec<u8>,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// What replaying one entry did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Its readings are queued and the entry left the store.
    Queued { readings: usize },
    /// Judged again and refused; the new refusal replaced the entry.
    RefusedAgain { reason: Reason, detail: String },
    /// Left in the store: it cannot be replayed, for the reason given.
    NotReplayable(String),
    /// No entry with this id.
    Missing,
}

impl std::fmt::Display for ReplayOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayOutcome::Queued { readings: 1 } => write!(f, "queued 1 reading"),
            ReplayOutcome::Queued { readings } => write!(f, "queued {readings} readings"),
            ReplayOutcome::RefusedAgain { reason, detail } => {
                write!(f, "refused again: {}: {detail}", reason.label())
            }
            ReplayOutcome::NotReplayable(why) => write!(f, "kept, cannot be replayed: {why}"),
            ReplayOutcome::Missing => write!(f, "no dead letter with this id"),
        }
    }
}

impl Queue {
    /// Dead letters, oldest first, optionally only those with `reason` (a
    /// label; an unknown one is an error listing the valid labels).
    pub fn dead_letters(
        &self,
        reason: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        let reason = reason.map(Reason::parse).transpose()?.map(Reason::label);
        let mut statement = self.conn.prepare(
            "SELECT id, received_at_ms, source, reason, detail, device_id, sequence, raw, raw_form,
                    COALESCE(raw_size, length(raw))
             FROM dead_letters WHERE ?1 IS NULL OR reason = ?1 ORDER BY id LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement.query_map(params![reason, limit], |r| {
            let raw: Vec<u8> = r.get(7)?;
            let raw_base64 = std::str::from_utf8(&raw)
                .is_err()
                .then(|| base64::engine::general_purpose::STANDARD.encode(&raw));
            Ok(DeadLetter {
                id: r.get(0)?,
                received_at_ms: r.get::<_, i64>(1)? as u64,
                source: r.get(2)?,
                reason: r.get(3)?,
                detail: r.get(4)?,
                device_id: r.get(5)?,
                sequence: r.get::<_, Option<i64>>(6)?.map(|s| s as u64),
                raw: String::from_utf8_lossy(&raw).into_owned(),
                raw_base64,
                raw_form: r.get(8)?,
                raw_size: r.get::<_, i64>(9)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replays entry `id` with the current device directory, at `now_ms`
    /// (SenML entries are kept: see [`Queue::replay_dead_letter_with`]).
    pub fn replay_dead_letter(
        &mut self,
        id: i64,
        directory: &dyn Fn(&str) -> Option<Route>,
        now_ms: u64,
        limits: Plausibility,
        disk_cap_bytes: u64,
    ) -> Result<ReplayOutcome, QueueError> {
        self.replay_dead_letter_with(id, directory, &|_| None, now_ms, limits, disk_cap_bytes)
    }

    /// [`Queue::replay_dead_letter`], with `senml` giving the SenML naming of
    /// the broker whose topic prefix it is passed (`[mqtt.senml]`).
    pub fn replay_dead_letter_with(
        &mut self,
        id: i64,
        directory: &dyn Fn(&str) -> Option<Route>,
        senml: &dyn Fn(&str) -> Option<SenmlNaming>,
        now_ms: u64,
        limits: Plausibility,
        disk_cap_bytes: u64,
    ) -> Result<ReplayOutcome, QueueError> {
        let entry: Option<StoredEntry> = self
            .conn
            .query_row(
                "SELECT source, reason, raw, raw_form, raw_size, org_id, shipment_id FROM dead_letters WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((source, reason, raw, form, size, org, shipment)) = entry else {
            return Ok(ReplayOutcome::Missing);
        };
        if reason == Reason::LedgerInvalid.label() {
            return self.requeue_ledger_refusal(id, &raw, org, shipment, now_ms);
        }
        let arrival = match RawForm::from_label(&form) {
            Some(RawForm::SerialLine) => arrivals::from_serial_line(&source, &raw, &[], directory),
            Some(RawForm::ReadingLine) => arrivals::from_reading_line(&source, &raw, directory),
            Some(RawForm::MqttPayload) => {
                let topic = source.strip_prefix("mqtt:").unwrap_or(&source);
                let Some((prefix, _, _)) = mqtt_payload::split_topic(topic) else {
                    return Ok(ReplayOutcome::NotReplayable(format!(
                        "its topic {topic:?} is not <prefix>/<org>/<device>/readings"
                    )));
                };
                arrivals::from_mqtt_message(prefix, topic, &raw, directory)
            }
            Some(RawForm::Senml) => {
                let topic = source.strip_prefix("mqtt:").unwrap_or(&source);
                let Some((prefix, _, _)) = senml::split_senml_topic(topic) else {
                    return Ok(ReplayOutcome::NotReplayable(format!(
                        "its topic {topic:?} is not <prefix>/<org>/<publisher>/senml[-cbor]"
                    )));
                };
                let Some(naming) = senml(prefix) else {
                    return Ok(ReplayOutcome::NotReplayable(format!(
                        "no [[mqtt]] broker with topic_prefix {prefix:?} has a [mqtt.senml] section to read it with"
                    )));
                };
                arrivals::from_senml_message(topic, &raw, Some(&naming), directory)
            }
            Some(RawForm::MqttPayloadCut) => {
                return Ok(ReplayOutcome::NotReplayable(format!(
                    "only the first {} of the message's {} bytes were kept; have the logger send its readings again in smaller messages",
                    raw.len(),
                    size.map_or_else(|| "?".to_string(), |s| s.to_string())
                )))
            }
            None => {
                return Ok(ReplayOutcome::NotReplayable(format!(
                    "its bytes are of an unknown form {form:?} (written by a newer gateway?)"
                )))
            }
        };
        self.readmit(id, arrival, now_ms, limits, disk_cap_bytes)
    }

    /// Judges `arrival` afresh and removes entry `id`, in one transaction: if
    /// the arrival is refused again, its new entry replaces this one.
    fn readmit(
        &mut self,
        id: i64,
        arrival: Arrival,
        now_ms: u64,
        limits: Plausibility,
        disk_cap_bytes: u64,
    ) -> Result<ReplayOutcome, QueueError> {
        let full = self.disk_bytes()? >= disk_cap_bytes;
        let tx = self.conn.transaction()?;
        let admissions = admit_in(&tx, &[arrival], now_ms, limits, full, disk_cap_bytes)?;
        tx.execute("DELETE FROM dead_letters WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(match admissions.into_iter().next() {
            Some(Admission::Queued { readings, .. }) => ReplayOutcome::Queued { readings },
            Some(Admission::Refused(r)) => ReplayOutcome::RefusedAgain {
                reason: r.reason,
                detail: r.detail,
            },
            None => ReplayOutcome::Queued { readings: 0 },
        })
    }

    /// A reading the ledger refused goes back to the queue as it was.
    fn requeue_ledger_refusal(
        &mut self,
        id: i64,
        raw: &[u8],
        org: Option<String>,
        shipment: Option<String>,
        now_ms: u64,
    ) -> Result<ReplayOutcome, QueueError> {
        let (Ok(reading), Some(org), Some(shipment)) =
            (serial_line::parse_line(raw), org, shipment)
        else {
            return Ok(ReplayOutcome::NotReplayable(
                "the entry lost its reading or its route".into(),
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
        Ok(ReplayOutcome::Queued { readings: 1 })
    }
}
