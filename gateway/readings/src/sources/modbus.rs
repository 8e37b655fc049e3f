//! Modbus RTU over RS-485: the gateway polls temperature transmitters.
//!
//! One task per `[[modbus]]` line (the bus is half duplex: one request at a
//! time), polling each configured register on its own interval with
//! `tokio-modbus` (RTU client) on a `tokio-serial` port. A good answer
//! becomes a reading stamped with the gateway's clock and the device's next
//! sequence number; a timeout, a CRC error, an exception response or a frame
//! that does not fit is a gap, counted per device and kind in `/metrics`
//! ([`gaps`]) and never a reading.
//!
//! ## Sequences
//! Transmitters have no sequence numbers, so the gateway numbers their
//! readings. Numbers are reserved in blocks of [`SEQUENCE_BLOCK`] in the
//! gateway's SQLite queue (table `modbus_sequences`, committed before any
//! number of the block is used), so a restart continues above every number
//! ever handed out: it may skip up to a block's unused numbers (the sensor
//! processor accepts gaps in sequences) but never reuses one. A new block
//! also starts above the device's last queued sequence and, when the ledger
//! answers, above its `last_sequence` there (a lost queue file must not make
//! new readings look already recorded).
//!
//! ## Framing
//! The wait of 3.5 character times between frames (1.75 ms above 19200
//! baud) is kept after every answer or timeout before the next request. The
//! RTU decoder of `tokio-modbus` skips bytes that do not form a frame with a
//! good CRC and waits for more, so a corrupted answer surfaces as a timeout;
//! the port is read through [`LineTap`], which keeps the bytes that came back,
//! so such a poll is counted as `crc_error`, not `timeout`.
pub mod gaps;
pub mod register;

pub use gaps::{GapKind, ModbusCounters};
pub use register::{
    DataType, ModbusDeviceConfig, ModbusLineConfig, Parity, PollGroup, RegisterFunction,
};

use crate::ingest::Inbound;
use crate::protocol::{serial_line, DeviceReading};
use crate::queue::{Arrival, Queue, QueueError, RawForm};
use crate::validation::{Reason, Rejection};
use crate::Shared;
use rusqlite::{params, OptionalExtension};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::slave::{Slave, SlaveContext};
use tokio_serial::SerialPort;

/// Sequence numbers reserved per write to the queue.
pub const SEQUENCE_BLOCK: u64 = 100;

/// Reserves the next block of sequence numbers for `device` in the queue's
/// database and returns it (first, last). The block starts above the last
/// reservation, the device's last queued sequence and `floor` (its
/// `last_sequence` on the ledger, when known).
pub fn reserve_sequences(
    queue: &mut Queue,
    device: &str,
    floor: u64,
    block: u64,
) -> Result<(u64, u64), QueueError> {
    let tx = queue.conn.transaction()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS modbus_sequences (
            device_id TEXT PRIMARY KEY,
            reserved_through INTEGER NOT NULL
        )",
    )?;
    let reserved: Option<i64> = tx
        .query_row(
            "SELECT reserved_through FROM modbus_sequences WHERE device_id = ?1",
            params![device],
            |r| r.get(0),
        )
        .optional()?;
    let queued: Option<i64> = tx
        .query_row(
            "SELECT last_sequence FROM devices WHERE device_id = ?1",
            params![device],
            |r| r.get(0),
        )
        .optional()?;
    let first = reserved
        .unwrap_or(0)
        .max(queued.unwrap_or(0))
        .max(floor as i64)
        + 1;
    let last = first + block.max(1) as i64 - 1;
    tx.execute(
        "INSERT INTO modbus_sequences (device_id, reserved_through) VALUES (?1, ?2)
         ON CONFLICT (device_id) DO UPDATE SET reserved_through = excluded.reserved_through",
        params![device, last],
    )?;
    tx.commit()?;
    Ok((first as u64, last as u64))
}

/// The slot after `due` (offsets from the line's start), and how many whole
/// slots passed without a poll: a slot is missed when the next one has
/// already begun by the time the line is free (`now`).
pub fn next_slot(due: Duration, interval: Duration, now: Duration) -> (Duration, u64) {
    let next = due + interval;
    if now < next + interval {
        return (next, 0);
    }
    let missed = ((now - next).as_nanos() / interval.as_nanos().max(1)) as u64;
    (next + interval * missed as u32, missed)
}

/// The silence between frames: 3.5 characters, fixed at 1.75 ms above 19200
/// baud (Modbus over Serial Line V1.02 §2.5.1.1).
pub fn frame_gap(baud: u32, bits_per_char: u32) -> Duration {
    if baud > 19_200 {
        Duration::from_micros(1_750)
    } else {
        Duration::from_nanos(bits_per_char as u64 * 3_500_000_000 / baud.max(1) as u64)
    }
}

/// What [`LineTap`] shares with the poller.
#[derive(Default)]
struct TapState {
    /// Bytes read since the current request was written.
    received: Vec<u8>,
    /// Set before a request: discard stale input and forget old bytes first.
    new_request: bool,
}

/// The serial port as `tokio-modbus` sees it, keeping the bytes each request
/// got back (to tell a corrupted answer from silence) and flushing stale
/// input (a late answer to an earlier request) before each request.
struct LineTap {
    port: tokio_serial::SerialStream,
    state: Arc<Mutex<TapState>>,
}

impl AsyncRead for LineTap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.port).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if let Ok(mut state) = self.state.lock() {
                state.received.extend_from_slice(&buf.filled()[before..]);
            }
        }
        polled
    }
}

impl AsyncWrite for LineTap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let fresh = self
            .state
            .lock()
            .map(|mut s| {
                let fresh = s.new_request;
                s.new_request = false;
                if fresh {
                    s.received.clear();
                }
                fresh
            })
            .unwrap_or(false);
        if fresh {
            // A late answer still in the OS buffer would be taken for this request's.
            let _ = self.port.clear(tokio_serial::ClearBuffer::Input);
        }
        Pin::new(&mut self.port).poll_write(cx, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.port).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.port).poll_shutdown(cx)
    }
}

/// An open line: the Modbus client and the tap under it.
struct OpenLine {
    client: Context,
    tap: Arc<Mutex<TapState>>,
}

fn open_line(line: &ModbusLineConfig) -> Result<OpenLine, String> {
    let parity = match line.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = match line.stop_bits() {
        2 => tokio_serial::StopBits::Two,
        _ => tokio_serial::StopBits::One,
    };
    let path = line.path.display().to_string();
    let builder = tokio_serial::new(&path, line.baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(parity)
        .stop_bits(stop_bits);
    let port = tokio_serial::SerialStream::open(&builder).map_err(|e| e.to_string())?;
    let tap = Arc::new(Mutex::new(TapState::default()));
    let transport = LineTap {
        port,
        state: tap.clone(),
    };
    Ok(OpenLine {
        client: tokio_modbus::client::rtu::attach_slave(transport, Slave(1)),
        tap,
    })
}

/// A failed poll: its kind, what happened, and whether the client must be
/// rebuilt (its framing is gone after an I/O error).
struct Failure {
    kind: GapKind,
    detail: String,
    reopen: bool,
}

/// One request/answer for `group`: its register words or why there are none.
async fn poll_group(
    line: &mut OpenLine,
    group: &PollGroup,
    timeout: Duration,
) -> Result<Vec<u16>, Failure> {
    line.client.set_slave(Slave(group.unit_id));
    if let Ok(mut tap) = line.tap.lock() {
        tap.new_request = true;
    }
    let count = group.count;
    let call = async {
        match group.function {
            RegisterFunction::Holding => {
                line.client.read_holding_registers(group.start, count).await
            }
            RegisterFunction::Input => line.client.read_input_registers(group.start, count).await,
        }
    };
    let answered = tokio::time::timeout(timeout, call).await;
    let received = || {
        line.tap
            .lock()
            .map(|t| t.received.clone())
            .unwrap_or_default()
    };
    let failure = |kind, detail: String, reopen| {
        Err(Failure {
            kind,
            detail,
            reopen,
        })
    };
    match answered {
        Ok(Ok(Ok(words))) if words.len() == count as usize => Ok(words),
        Ok(Ok(Ok(words))) => failure(
            GapKind::BadFrame,
            format!("asked for {count} register(s), got {}", words.len()),
            false,
        ),
        Ok(Ok(Err(exception))) => failure(
            GapKind::Exception,
            format!("exception response: {exception}"),
            false,
        ),
        Ok(Err(tokio_modbus::Error::Protocol(e))) => {
            failure(GapKind::BadFrame, e.to_string(), false)
        }
        Ok(Err(tokio_modbus::Error::Transport(e))) => {
            let bytes = received();
            let kind = match gaps::classify_failed_answer(&bytes) {
                GapKind::Timeout => GapKind::PortError,
                kind => kind,
            };
            failure(kind, format!("{e}; line carried back {bytes:02X?}"), true)
        }
        Err(_) => {
            let bytes = received();
            let kind = gaps::classify_failed_answer(&bytes);
            failure(
                kind,
                format!(
                    "no valid answer within {} ms; line carried back {bytes:02X?}",
                    timeout.as_millis()
                ),
                false,
            )
        }
    }
}

/// A device's reserved sequence numbers not yet used.
#[derive(Clone, Copy, Default)]
struct SequenceBlock {
    next: u64,
    last: u64,
}

/// The device's next sequence number, reserving a new block when needed.
async fn next_sequence(
    shared: &Arc<Shared>,
    device: &str,
    block: &mut SequenceBlock,
    floor: u64,
) -> anyhow::Result<u64> {
    if block.next == 0 || block.next > block.last {
        let id = device.to_string();
        let (first, last) = crate::submission::with_queue(shared, move |q| {
            reserve_sequences(q, &id, floor, SEQUENCE_BLOCK)
        })
        .await?;
        *block = SequenceBlock { next: first, last };
    }
    let sequence = block.next;
    block.next += 1;
    Ok(sequence)
}

/// The device's `last_sequence` on the ledger, if the ledger answers soon.
async fn ledger_floor(shared: &Shared, device: &str) -> u64 {
    match tokio::time::timeout(Duration::from_secs(2), shared.ledger.device(device)).await {
        Ok(Ok(Some(record))) => record.get_last_sequence(),
        Ok(Ok(None)) => 0,
        Ok(Err(e)) => {
            tracing::info!(device, error = %e, "cannot ask the ledger for the device's last sequence; numbering continues from the queue");
            0
        }
        Err(_) => 0,
    }
}

/// Every device's `last_sequence` on the ledger, asked all at once so a slow
/// ledger delays the first polls by at most the 2 s of one question.
async fn ledger_floors(shared: &Arc<Shared>, devices: &[ModbusDeviceConfig]) -> Vec<u64> {
    let mut questions = tokio::task::JoinSet::new();
    for (index, config) in devices.iter().enumerate() {
        let shared = shared.clone();
        let device = config.device.clone();
        questions.spawn(async move { (index, ledger_floor(&shared, &device).await) });
    }
    let mut floors = vec![0; devices.len()];
    while let Some(answer) = questions.join_next().await {
        if let Ok((index, floor)) = answer {
            floors[index] = floor;
        }
    }
    floors
}

/// The arrival for one good poll: the reading and its route (or why it has none).
fn arrival(source: &str, reading: DeviceReading, shared: &Shared) -> Arrival {
    let raw = serial_line::format_line(&reading).into_bytes();
    let outcome = match shared.directory.route(&reading.device_id) {
        Some(route) => Ok((vec![reading], route)),
        None => Err(Rejection::new(
            Reason::UnknownDevice,
            format!(
                "Modbus device {:?} is not in the gateway config nor attached to a shipment on the ledger; add it under [devices] or attach it",
                reading.device_id
            ),
        )),
    };
    Arrival {
        source: source.to_string(),
        size: raw.len() as u64,
        raw,
        form: RawForm::ReadingLine,
        outcome,
    }
}

fn now_s() -> u64 {
    crate::submission::now_ms() / 1000
}

/// Polls one line until shutdown.
pub(crate) async fn run_modbus(
    shared: Arc<Shared>,
    line: ModbusLineConfig,
    sink: mpsc::Sender<Inbound>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let counters = &shared.metrics.modbus;
    let path = line.path.display().to_string();
    let timeout = Duration::from_millis(line.response_timeout_ms);
    let gap = frame_gap(line.baud, line.bits_per_char());
    let groups = register::group_polls(&line.devices, line.max_registers_per_request);
    for config in &line.devices {
        counters.register(&config.device);
    }
    let mut devices: Vec<PolledDevice> = ledger_floors(&shared, &line.devices)
        .await
        .into_iter()
        .map(|floor| PolledDevice {
            floor,
            block: SequenceBlock::default(),
        })
        .collect();
    let poller = Poller {
        shared: &shared,
        source: format!("modbus:{path}"),
        line: &line,
        sink: &sink,
    };
    let start = Instant::now();
    let mut due: Vec<Duration> = vec![Duration::ZERO; groups.len()];
    let mut open: Option<OpenLine> = None;
    let mut quiet_from = Instant::now();
    let mut port_warned = false;
    loop {
        let Some((index, at)) = due.iter().copied().enumerate().min_by_key(|(_, d)| *d) else {
            return;
        };
        let group = &groups[index];
        tokio::select! {
            _ = tokio::time::sleep_until((start + at).into()) => {}
            _ = shutdown.changed() => return,
        }
        if open.is_none() {
            match open_line(&line) {
                Ok(opened) => {
                    tracing::info!(port = %path, baud = line.baud, devices = line.devices.len(),
                        requests = groups.len(), "Modbus line open");
                    port_warned = false;
                    open = Some(opened);
                }
                Err(e) => {
                    if !port_warned {
                        tracing::warn!(port = %path, error = %e, "cannot open Modbus serial port; polls are port_error gaps until it opens");
                        port_warned = true;
                    }
                    poller.gap(group, GapKind::PortError, &e);
                }
            }
        }
        if let Some(opened) = open.as_mut() {
            tokio::time::sleep_until(quiet_from.into()).await;
            let polled = poll_group(opened, group, timeout).await;
            quiet_from = Instant::now() + gap;
            match polled {
                Ok(words) => {
                    if !poller.readings(group, &words, &mut devices).await {
                        return;
                    }
                }
                Err(failure) => {
                    poller.gap(group, failure.kind, &failure.detail);
                    if failure.reopen {
                        open = None;
                    }
                }
            }
        }
        let (next, missed) = next_slot(
            at,
            Duration::from_millis(group.interval_ms),
            start.elapsed(),
        );
        for (member, _) in &group.members {
            counters.missed(&line.devices[*member].device, missed);
        }
        due[index] = next;
    }
}

/// What the poll loop keeps per device.
struct PolledDevice {
    /// The device's `last_sequence` on the ledger at start-up (0 if unknown).
    floor: u64,
    block: SequenceBlock,
}

/// Turns answers into readings or gaps for one line.
struct Poller<'a> {
    shared: &'a Arc<Shared>,
    source: String,
    line: &'a ModbusLineConfig,
    sink: &'a mpsc::Sender<Inbound>,
}

impl Poller<'_> {
    /// Every device of `group` got no reading.
    fn gap(&self, group: &PollGroup, kind: GapKind, detail: &str) {
        for (member, _) in &group.members {
            let device = &self.line.devices[*member];
            self.shared.metrics.modbus.gap(&device.device, kind);
            tracing::debug!(
                device = device.device,
                unit_id = device.unit_id,
                kind = kind.label(),
                detail,
                "Modbus poll gave no reading"
            );
        }
    }

    /// Decodes each device's registers from `words` and hands the readings to
    /// ingestion; false once ingestion has stopped.
    async fn readings(
        &self,
        group: &PollGroup,
        words: &[u16],
        devices: &mut [PolledDevice],
    ) -> bool {
        let counters = &self.shared.metrics.modbus;
        let mut arrivals = Vec::with_capacity(group.members.len());
        for &(member, offset) in &group.members {
            let config = &self.line.devices[member];
            let span = offset as usize..(offset + config.data_type.registers()) as usize;
            let decoded = words
                .get(span)
                .ok_or_else(|| "answer shorter than the request".to_string())
                .and_then(|own| register::to_cdeg(config, own));
            let temperature_cdeg = match decoded {
                Ok(value) => value,
                Err(detail) => {
                    counters.gap(&config.device, GapKind::BadValue);
                    tracing::debug!(
                        device = config.device,
                        detail,
                        "Modbus registers hold no temperature"
                    );
                    continue;
                }
            };
            let state = &mut devices[member];
            let sequence = match next_sequence(
                self.shared,
                &config.device,
                &mut state.block,
                state.floor,
            )
            .await
            {
                Ok(sequence) => sequence,
                Err(e) => {
                    // No number can be promised never to repeat: no reading.
                    tracing::error!(device = config.device, error = %e, "cannot reserve sequence numbers in the queue; the poll is dropped");
                    counters.gap(&config.device, GapKind::PortError);
                    continue;
                }
            };
            counters.reading(&config.device);
            let reading = DeviceReading {
                device_id: config.device.clone(),
                sequence,
                time_s: now_s(),
                temperature_cdeg,
                humidity_permille: None,
                door: None,
                location: None,
            };
            self.shared.directory.prepare(&config.device).await;
            arrivals.push(arrival(&self.source, reading, self.shared));
        }
        if arrivals.is_empty() {
            return true;
        }
        self.sink
            .send(Inbound {
                arrivals,
                stored: None,
            })
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_missed_only_when_the_next_one_has_begun() {
        let s = Duration::from_millis;
        assert_eq!(next_slot(s(0), s(1000), s(20)), (s(1000), 0));
        assert_eq!(
            next_slot(s(0), s(1000), s(1500)),
            (s(1000), 0),
            "late, not missed"
        );
        assert_eq!(next_slot(s(0), s(1000), s(2300)), (s(2000), 1));
        assert_eq!(next_slot(s(0), s(1000), s(5000)), (s(5000), 4));
    }

    #[test]
    fn frame_gap_is_three_and_a_half_characters() {
        assert_eq!(frame_gap(9600, 11), Duration::from_nanos(4_010_416));
        assert_eq!(frame_gap(19_200, 11), Duration::from_nanos(2_005_208));
        assert_eq!(frame_gap(115_200, 11), Duration::from_micros(1750));
    }

    #[test]
    fn sequence_blocks_never_reuse_a_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.sqlite");
        let mut queue = Queue::open(&path).unwrap();
        assert_eq!(
            reserve_sequences(&mut queue, "CR-1", 0, 100).unwrap(),
            (1, 100)
        );
        assert_eq!(
            reserve_sequences(&mut queue, "CR-1", 0, 100).unwrap(),
            (101, 200)
        );
        assert_eq!(
            reserve_sequences(&mut queue, "CR-2", 0, 10).unwrap(),
            (1, 10)
        );
        drop(queue);
        // A restart continues above the last block, or above the ledger's number.
        let mut queue = Queue::open(&path).unwrap();
        assert_eq!(
            reserve_sequences(&mut queue, "CR-1", 0, 100).unwrap(),
            (201, 300)
        );
        assert_eq!(
            reserve_sequences(&mut queue, "CR-2", 5_000, 10).unwrap(),
            (5_001, 5_010)
        );
    }
}
