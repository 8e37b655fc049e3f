//! The durable on-disk queue (SQLite): readings from acceptance to commit.
//!
//! A reading row is written, in a transaction that also advances its device's
//! progress, before anyone is told it was received (the MQTT QoS 1 ack comes
//! after the commit). It stays until the ledger says COMMITTED. Batches are
//! stored with their exact bytes before they are sent, so a restart re-sends
//! the same batch id instead of building a new one: the validator's duplicate
//! check and the sensor TP's sequence check then make a resend harmless.
//!
//! Durability: WAL with `synchronous=FULL`. In WAL mode NORMAL may lose the last
//! commits on power loss, and a lost commit after an MQTT ack is a lost reading;
//! FULL costs one fsync per commit, which ingestion amortises by committing
//! whole groups of readings at once.
//!
//! Storage only: no network, no clocks (callers pass `now`).
use crate::config::ShipmentRange;
pub use crate::dead_letter::RawForm;
use crate::protocol::{serial_line, DeviceReading, Door};
use crate::validation::{DeviceProgress, Reason, Rejection};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// Why the queue could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue database {path}: {source}; check the path is writable and not used by another gateway")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("queue database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("could not sign a batch: {0}")]
    Signing(String),
    #[error(transparent)]
    UnknownReason(#[from] crate::validation::UnknownReason),
}

/// Where an accepted reading goes on the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub org: String,
    pub shipment: String,
    /// The shipment's allowed range, when known; used to flush excursion edges at once.
    pub range: Option<ShipmentRange>,
}

/// One serial line or one MQTT message on its way into the queue: its
/// readings (all for one device) and their route, or why it was refused
/// before judging.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// `serial:<path>` or `mqtt:<topic>`.
    pub source: String,
    /// The bytes as received (for a payload over the size limit, its first bytes).
    pub raw: Vec<u8>,
    pub form: RawForm,
    /// Bytes that arrived; more than `raw.len()` only for [`RawForm::MqttPayloadCut`].
    pub size: u64,
    pub outcome: Result<(Vec<DeviceReading>, Route), Rejection>,
}

/// What became of one arrival. A message is all or nothing: either its new
/// readings are queued, or none of them is and the message is one dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// `readings` new readings were queued. `skipped`: the message also held
    /// readings the gateway already had (a resend); they were left out and
    /// noted as one dead letter.
    Queued {
        readings: usize,
        urgent: bool,
        skipped: Option<Rejection>,
    },
    /// Nothing was queued; the arrival is one dead letter.
    Refused(Rejection),
}

/// A queued reading with its destination.
#[derive(Clone, Debug)]
pub struct QueuedReading {
    pub id: i64,
    pub org: String,
    pub shipment: String,
    pub reading: DeviceReading,
    pub received_at_ms: u64,
}

/// A queued reading that was marked urgent: an excursion starts or ends with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExcursionEdge {
    pub device_id: String,
    pub sequence: u64,
    pub received_at_ms: u64,
}

/// The readings of a batch the ledger committed, for latency accounting.
#[derive(Clone, Debug, Default)]
pub struct CommittedReadings {
    /// When each reading was received (ms).
    pub received_at_ms: Vec<u64>,
    /// The excursion edges among them.
    pub excursion_edges: Vec<ExcursionEdge>,
}

/// Counts for metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueStats {
    pub queued: u64,
    pub in_flight: u64,
    pub oldest_unsent_ms: Option<u64>,
    pub dead_letters: u64,
    pub disk_bytes: u64,
}

/// The on-disk queue. One per gateway; not shared between processes.
pub struct Queue {
    pub(crate) conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    org_id TEXT NOT NULL,
    shipment_id TEXT NOT NULL,
    time_s INTEGER NOT NULL,
    temperature_cdeg INTEGER NOT NULL,
    humidity_permille INTEGER,
    door INTEGER,
    latitude_udeg INTEGER,
    longitude_udeg INTEGER,
    received_at_ms INTEGER NOT NULL,
    urgent INTEGER NOT NULL DEFAULT 0,
    batch_id TEXT,
    transaction_id TEXT,
    UNIQUE (device_id, sequence)
);
CREATE INDEX IF NOT EXISTS readings_by_batch ON readings (batch_id);
CREATE INDEX IF NOT EXISTS readings_by_age ON readings (received_at_ms);
-- One row per device: its progress, and a summary of its queued readings so
-- the batcher never scans the readings table (which grows large in an outage).
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    last_sequence INTEGER NOT NULL,
    last_time_s INTEGER NOT NULL,
    last_shipment_id TEXT,
    last_in_range INTEGER,
    unsent INTEGER NOT NULL DEFAULT 0,
    oldest_unsent_ms INTEGER,
    urgent INTEGER NOT NULL DEFAULT 0,
    in_flight INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    received_at_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    device_id TEXT,
    sequence INTEGER,
    org_id TEXT,
    shipment_id TEXT,
    raw BLOB NOT NULL,
    -- What raw is (RawForm label) and how many bytes arrived (raw may be cut).
    raw_form TEXT NOT NULL DEFAULT 'reading_line',
    raw_size INTEGER
);
";

impl Queue {
    /// Opens (creating if needed) the queue at `path`.
    pub fn open(path: &Path) -> Result<Queue, QueueError> {
        let open_error = |source| QueueError::Open {
            path: path.display().to_string(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_error)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_error)?;
        conn.execute_batch(SCHEMA).map_err(open_error)?;
        crate::dead_letter::migrate(&mut conn).map_err(open_error)?;
        Ok(Queue { conn })
    }

    /// How long a statement waits for a lock held by another connection (the
    /// dead-letters CLI, a backup) before it fails; 10 s unless changed.
    pub fn set_busy_timeout(&self, timeout: std::time::Duration) -> Result<(), QueueError> {
        Ok(self.conn.busy_timeout(timeout)?)
    }

    /// Bytes the queue's data occupies (the cap and the alarm are judged on
    /// this). Pages freed by committed readings are not counted: SQLite keeps
    /// the file at its high-water mark and reuses those pages for new rows, so
    /// counting them would hold the alarm on forever after one long outage.
    pub fn disk_bytes(&self) -> Result<u64, QueueError> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok((pages.saturating_sub(free).max(0) * page_size) as u64)
    }

    /// Devices with readings due for sending: not already in a batch awaiting
    /// its outcome (one batch per device at a time keeps sequences in order), and
    /// with `max_readings` waiting, or an urgent one, or one older than `max_age_ms`.
    pub fn due_devices(
        &self,
        now_ms: u64,
        max_readings: usize,
        max_age_ms: u64,
    ) -> Result<Vec<String>, QueueError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT device_id FROM devices WHERE in_flight = 0 AND unsent > 0
               AND (unsent >= ?1 OR urgent = 1 OR oldest_unsent_ms <= ?2)
             ORDER BY urgent DESC, oldest_unsent_ms",
        )?;
        let cutoff = now_ms.saturating_sub(max_age_ms) as i64;
        let rows = statement.query_map(params![max_readings as i64, cutoff], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` unsent readings of `device_id`, in sequence order.
    pub fn unsent_readings(
        &self,
        device_id: &str,
        limit: usize,
    ) -> Result<Vec<QueuedReading>, QueueError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, org_id, shipment_id, sequence, time_s, temperature_cdeg, humidity_permille, door,
                    latitude_udeg, longitude_udeg, received_at_ms
             FROM readings WHERE device_id = ?1 AND batch_id IS NULL ORDER BY sequence LIMIT ?2",
        )?;
        let rows = statement.query_map(params![device_id, limit as i64], |r| {
            let lat: Option<i32> = r.get(8)?;
            let lon: Option<i32> = r.get(9)?;
            let door: Option<bool> = r.get(7)?;
            Ok(QueuedReading {
                id: r.get(0)?,
                org: r.get(1)?,
                shipment: r.get(2)?,
                reading: DeviceReading {
                    device_id: device_id.to_string(),
                    sequence: r.get::<_, i64>(3)? as u64,
                    time_s: r.get::<_, i64>(4)? as u64,
                    temperature_cdeg: r.get(5)?,
                    humidity_permille: r.get(6)?,
                    door: door.map(|open| if open { Door::Open } else { Door::Closed }),
                    location: lat.zip(lon),
                },
                received_at_ms: r.get::<_, i64>(10)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a signed batch and the readings it carries (reading id → transaction id),
    /// before it is sent.
    pub fn record_batch(
        &mut self,
        batch_id: &str,
        body: &[u8],
        members: &[(i64, String)],
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO batches (batch_id, body, created_at_ms) VALUES (?1, ?2, ?3)",
            params![batch_id, body, now_ms as i64],
        )?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE readings SET batch_id = ?1, transaction_id = ?2 WHERE id = ?3",
            )?;
            for (id, transaction_id) in members {
                update.execute(params![batch_id, transaction_id, id])?;
            }
        }
        refresh_batch_devices(&tx, batch_id)?;
        tx.commit()?;
        Ok(())
    }

    /// Batches sent or about to be sent whose outcome is not yet known.
    pub fn open_batches(&self) -> Result<Vec<(String, Vec<u8>)>, QueueError> {
        let mut statement = self
            .conn
            .prepare("SELECT batch_id, body FROM batches ORDER BY created_at_ms")?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The ledger committed the batch: its readings are done. Returns their
    /// receive times for latency accounting.
    pub fn settle_committed(&mut self, batch_id: &str) -> Result<CommittedReadings, QueueError> {
        let tx = self.conn.transaction()?;
        let mut committed = CommittedReadings::default();
        {
            let mut statement = tx.prepare_cached(
                "SELECT received_at_ms, urgent, device_id, sequence FROM readings WHERE batch_id = ?1",
            )?;
            let mut rows = statement.query(params![batch_id])?;
            while let Some(row) = rows.next()? {
                let received_at_ms = row.get::<_, i64>(0)? as u64;
                committed.received_at_ms.push(received_at_ms);
                // Device ids are read for the few urgent rows only: this runs for every reading.
                if row.get::<_, bool>(1)? {
                    committed.excursion_edges.push(ExcursionEdge {
                        device_id: row.get(2)?,
                        sequence: row.get::<_, i64>(3)? as u64,
                        received_at_ms,
                    });
                }
            }
        }
        let devices = batch_devices(&tx, batch_id)?;
        tx.execute(
            "DELETE FROM readings WHERE batch_id = ?1",
            params![batch_id],
        )?;
        tx.execute("DELETE FROM batches WHERE batch_id = ?1", params![batch_id])?;
        for device in devices {
            refresh_device(&tx, &device)?;
        }
        tx.commit()?;
        Ok(committed)
    }

    /// The ledger refused the batch. For each refused transaction: if its message
    /// says the readings are already recorded, readings with a sequence at or
    /// below the device's recorded `last_sequence` (from `recorded`) count as
    /// committed and the rest go back to the queue; any other message moves the
    /// transaction's readings to the dead-letter store with that message.
    /// Readings of transactions the ledger did not blame go back to the queue.
    /// Returns (settled as already committed, requeued, dead-lettered).
    pub fn settle_invalid(
        &mut self,
        batch_id: &str,
        refused: &[(String, String)],
        recorded: &dyn Fn(&str) -> Option<u64>,
        now_ms: u64,
    ) -> Result<(u64, u64, u64), QueueError> {
        let tx = self.conn.transaction()?;
        let members: Vec<(i64, String, i64, Option<String>)> = {
            let mut statement = tx.prepare_cached(
                "SELECT id, device_id, sequence, transaction_id FROM readings WHERE batch_id = ?1",
            )?;
            let rows = statement.query_map(params![batch_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let devices = batch_devices(&tx, batch_id)?;
        let blame_unknown = refused.is_empty();
        let (mut settled, mut requeued, mut dead) = (0, 0, 0);
        for (id, device, sequence, transaction_id) in members {
            let message = transaction_id
                .as_deref()
                .and_then(|t| refused.iter().find(|(id, _)| id == t))
                .map(|(_, m)| m.as_str())
                .or(blame_unknown.then_some("batch INVALID without a transaction message"));
            match message {
                None => {
                    tx.execute(
                        "UPDATE readings SET batch_id = NULL, transaction_id = NULL WHERE id = ?1",
                        params![id],
                    )?;
                    requeued += 1;
                }
                Some(m) if m.starts_with(crate::ALREADY_RECORDED) => {
                    if recorded(&device).is_some_and(|last| sequence as u64 <= last) {
                        tx.execute("DELETE FROM readings WHERE id = ?1", params![id])?;
                        settled += 1;
                    } else {
                        tx.execute("UPDATE readings SET batch_id = NULL, transaction_id = NULL WHERE id = ?1", params![id])?;
                        requeued += 1;
                    }
                }
                Some(m) => {
                    dead_letter_reading(&tx, id, m, now_ms)?;
                    dead += 1;
                }
            }
        }
        tx.execute("DELETE FROM batches WHERE batch_id = ?1", params![batch_id])?;
        for device in devices {
            refresh_device(&tx, &device)?;
        }
        tx.commit()?;
        Ok((settled, requeued, dead))
    }

    /// Counts for metrics.
    pub fn stats(&self, now_ms: u64) -> Result<QueueStats, QueueError> {
        let (queued, in_flight): (i64, i64) = self.conn.query_row(
            "SELECT COALESCE(SUM(unsent), 0), COALESCE(SUM(in_flight), 0) FROM devices",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let oldest: Option<i64> =
            self.conn
                .query_row("SELECT MIN(received_at_ms) FROM readings", [], |r| r.get(0))?;
        let dead_letters: i64 =
            self.conn
                .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))?;
        Ok(QueueStats {
            queued: queued as u64,
            in_flight: in_flight as u64,
            oldest_unsent_ms: oldest.map(|o| now_ms.saturating_sub(o as u64)),
            dead_letters: dead_letters as u64,
            disk_bytes: self.disk_bytes()?,
        })
    }
}

pub(crate) fn device_progress(
    tx: &rusqlite::Transaction<'_>,
    device_id: &str,
) -> Result<(DeviceProgress, Option<(String, bool)>), QueueError> {
    let mut statement = tx.prepare_cached(
        "SELECT last_sequence, last_time_s, last_shipment_id, last_in_range FROM devices WHERE device_id = ?1",
    )?;
    let row = statement
        .query_row(params![device_id], |r| {
            let shipment: Option<String> = r.get(2)?;
            let in_range: Option<bool> = r.get(3)?;
            Ok((
                DeviceProgress {
                    last_sequence: r.get::<_, i64>(0)? as u64,
                    last_time_s: r.get::<_, i64>(1)? as u64,
                },
                shipment.zip(in_range),
            ))
        })
        .optional()?;
    Ok(row.unwrap_or_default())
}

fn batch_devices(
    tx: &rusqlite::Transaction<'_>,
    batch_id: &str,
) -> Result<Vec<String>, QueueError> {
    let mut statement =
        tx.prepare_cached("SELECT DISTINCT device_id FROM readings WHERE batch_id = ?1")?;
    let rows = statement.query_map(params![batch_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn refresh_batch_devices(tx: &rusqlite::Transaction<'_>, batch_id: &str) -> Result<(), QueueError> {
    for device in batch_devices(tx, batch_id)? {
        refresh_device(tx, &device)?;
    }
    Ok(())
}

/// Recomputes a device's queue summary from its readings (one index range scan).
pub(crate) fn refresh_device(
    tx: &rusqlite::Transaction<'_>,
    device_id: &str,
) -> Result<(), QueueError> {
    tx.prepare_cached(
        "UPDATE devices SET
            unsent = (SELECT COUNT(*) FROM readings WHERE device_id = ?1 AND batch_id IS NULL),
            oldest_unsent_ms = (SELECT MIN(received_at_ms) FROM readings WHERE device_id = ?1 AND batch_id IS NULL),
            urgent = COALESCE((SELECT MAX(urgent) FROM readings WHERE device_id = ?1 AND batch_id IS NULL), 0),
            in_flight = (SELECT COUNT(*) FROM readings WHERE device_id = ?1 AND batch_id IS NOT NULL)
         WHERE device_id = ?1",
    )?
    .execute(params![device_id])?;
    Ok(())
}

pub(crate) fn insert_reading(
    tx: &rusqlite::Transaction<'_>,
    reading: &DeviceReading,
    route: &Route,
    now_ms: u64,
    urgent: bool,
) -> Result<(), QueueError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO readings (device_id, sequence, org_id, shipment_id, time_s, temperature_cdeg,
             humidity_permille, door, latitude_udeg, longitude_udeg, received_at_ms, urgent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    insert.execute(params![
        reading.device_id,
        reading.sequence as i64,
        route.org,
        route.shipment,
        reading.time_s as i64,
        reading.temperature_cdeg,
        reading.humidity_permille,
        reading.door.map(|d| d == Door::Open),
        reading.location.map(|l| l.0),
        reading.location.map(|l| l.1),
        now_ms as i64,
        urgent,
    ])?;
    Ok(())
}

/// Moves a queued reading to the dead-letter store as `ledger_invalid`.
fn dead_letter_reading(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    message: &str,
    now_ms: u64,
) -> Result<(), QueueError> {
    let (reading, org, shipment) = tx.query_row(
        "SELECT device_id, sequence, time_s, temperature_cdeg, humidity_permille, door, latitude_udeg, longitude_udeg, org_id, shipment_id
         FROM readings WHERE id = ?1",
        params![id],
        |r| {
            let lat: Option<i32> = r.get(6)?;
            let lon: Option<i32> = r.get(7)?;
            let door: Option<bool> = r.get(5)?;
            Ok((
                DeviceReading {
                    device_id: r.get(0)?,
                    sequence: r.get::<_, i64>(1)? as u64,
                    time_s: r.get::<_, i64>(2)? as u64,
                    temperature_cdeg: r.get(3)?,
                    humidity_permille: r.get(4)?,
                    door: door.map(|open| if open { Door::Open } else { Door::Closed }),
                    location: lat.zip(lon),
                },
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
            ))
        },
    )?;
    tx.execute(
        "INSERT INTO dead_letters (received_at_ms, source, reason, detail, device_id, sequence, org_id, shipment_id,
             raw, raw_form, raw_size)
         VALUES (?1, 'ledger', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, length(?8))",
        params![
            now_ms as i64,
            Reason::LedgerInvalid.label(),
            message,
            reading.device_id,
            reading.sequence as i64,
            org,
            shipment,
            serial_line::format_line(&reading).into_bytes(),
            RawForm::ReadingLine.label(),
        ],
    )?;
    tx.execute("DELETE FROM readings WHERE id = ?1", params![id])?;
    Ok(())
}

impl Queue {
    /// (transaction id, device id) of each transaction in a stored batch.
    pub fn batch_transactions(&self, batch_id: &str) -> Result<Vec<(String, String)>, QueueError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT DISTINCT transaction_id, device_id FROM readings WHERE batch_id = ?1 AND transaction_id IS NOT NULL",
        )?;
        let rows = statement.query_map(params![batch_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
