//! Test support: a stand-in Sawtooth REST API that applies the sensor
//! processor's sequence rule, pseudo-terminal serial lines, and an MQTT broker.
//!
//! The stand-in verifies batch and transaction signatures, decodes every
//! `RecordReadings` payload and records readings per device exactly like the
//! sensor TP's replay rule: a transaction whose first sequence is not above the
//! device's `last_sequence` is INVALID with "readings already recorded: …", and
//! a batch is all or nothing. It can be taken down (503) or made to forget
//! accepted batches (a validator restart losing its pending queue).
#![allow(dead_code)]
pub mod chain;
pub mod processes;
use base64::Engine;
use coldchain_processors::addressing::RecordKind;
use coldchain_processors::messages::coldchain::{Device, SensorPayload};
use protobuf::Message;
use sawtooth_sdk::messages::batch::{BatchHeader, BatchList};
use sawtooth_sdk::messages::transaction::TransactionHeader;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use warp::Filter;

pub const UP: u8 = 0;
pub const DOWN: u8 = 1;
pub const FORGETFUL: u8 = 2;
/// Applies batches but loses their status, so the gateway re-sends them.
pub const AMNESIAC: u8 = 3;
/// Refuses every `POST /batches` with 429 and `Retry-After: <retry_after_s>`,
/// as a validator with a full queue does; statuses and state still answer.
pub const BUSY: u8 = 4;

#[derive(Default)]
pub struct LedgerState {
    /// device → sequence → temperature, as recorded.
    pub recorded: BTreeMap<String, BTreeMap<u64, i32>>,
    /// batch id → (status, invalid transactions).
    pub statuses: HashMap<String, (String, Vec<(String, String)>)>,
    /// How many times a transaction tried to record an already recorded sequence.
    pub replays_refused: u64,
}

pub struct StandInLedger {
    pub url: String,
    pub state: Arc<Mutex<LedgerState>>,
    pub mode: Arc<AtomicU8>,
    pub posts: Arc<AtomicU64>,
    /// 429 answers given in [`BUSY`] mode.
    pub busy_answers: Arc<AtomicU64>,
    /// The `Retry-After` seconds sent with each 429.
    pub retry_after_s: Arc<AtomicU64>,
}

impl StandInLedger {
    pub async fn start() -> StandInLedger {
        let state = Arc::new(Mutex::new(LedgerState::default()));
        let mode = Arc::new(AtomicU8::new(UP));
        let posts = Arc::new(AtomicU64::new(0));
        let busy_answers = Arc::new(AtomicU64::new(0));
        let retry_after_s = Arc::new(AtomicU64::new(1));
        let (s1, m1, p1) = (state.clone(), mode.clone(), posts.clone());
        let (b1, r1) = (busy_answers.clone(), retry_after_s.clone());
        let post = warp::path!("batches")
            .and(warp::post())
            .and(warp::body::bytes())
            .map(move |body: bytes::Bytes| {
                p1.fetch_add(1, Ordering::Relaxed);
                match m1.load(Ordering::Relaxed) {
                    DOWN => reply(503, "{\"error\":\"down\"}".into()),
                    BUSY => {
                        b1.fetch_add(1, Ordering::Relaxed);
                        let mut response = reply(
                            429,
                            "{\"error\":{\"code\":31,\"title\":\"Unable to Accept Batches\"}}"
                                .into(),
                        );
                        response.headers_mut().insert(
                            "retry-after",
                            r1.load(Ordering::Relaxed).to_string().parse().unwrap(),
                        );
                        response
                    }
                    FORGETFUL => reply(202, "{\"link\":\"x\"}".into()),
                    AMNESIAC => {
                        let response = submit(&s1, &body);
                        let mut guard = s1.lock().unwrap();
                        guard
                            .statuses
                            .retain(|_, (status, _)| status != "COMMITTED");
                        response
                    }
                    _ => submit(&s1, &body),
                }
            });
        let (s2, m2) = (state.clone(), mode.clone());
        let statuses = warp::path!("batch_statuses")
            .and(warp::get())
            .and(warp::query::<HashMap<String, String>>())
            .map(move |query: HashMap<String, String>| {
                if m2.load(Ordering::Relaxed) == DOWN {
                    return reply(503, "{}".into());
                }
                let guard = s2.lock().unwrap();
                let ids = query.get("id").cloned().unwrap_or_default();
                let data: Vec<serde_json::Value> = ids
                    .split(',')
                    .map(|id| {
                        let (status, invalid) = guard.statuses.get(id).cloned().unwrap_or(("UNKNOWN".into(), vec![]));
                        let invalid: Vec<serde_json::Value> = invalid
                            .iter()
                            .map(|(t, m)| serde_json::json!({"id": t, "message": m, "extended_data": ""}))
                            .collect();
                        serde_json::json!({"id": id, "status": status, "invalid_transactions": invalid})
                    })
                    .collect();
                reply(200, serde_json::json!({ "data": data }).to_string())
            });
        let (s3, m3) = (state.clone(), mode.clone());
        let state_route =
            warp::path!("state" / String)
                .and(warp::get())
                .map(move |address: String| {
                    if m3.load(Ordering::Relaxed) == DOWN {
                        return reply(503, "{}".into());
                    }
                    let guard = s3.lock().unwrap();
                    let found = guard
                        .recorded
                        .iter()
                        .find(|(device, _)| RecordKind::Device.address(device) == address);
                    match found {
                        None => reply(404, "{\"error\":{\"code\":75}}".into()),
                        Some((device, readings)) => {
                            let mut record = Device::new();
                            record.set_device_id(device.clone());
                            record.set_last_sequence(
                                readings.keys().next_back().copied().unwrap_or(0),
                            );
                            let data = base64::engine::general_purpose::STANDARD
                                .encode(record.write_to_bytes().unwrap());
                            reply(
                                200,
                                serde_json::json!({ "data": data, "head": "h" }).to_string(),
                            )
                        }
                    }
                });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = warp::serve(post.or(statuses).or(state_route)).incoming(listener);
        tokio::spawn(async move { server.run().await });
        StandInLedger {
            url,
            state,
            mode,
            posts,
            busy_answers,
            retry_after_s,
        }
    }

    /// Forgets every batch status (as if the answer were lost), keeping recorded readings.
    pub fn forget_statuses(&self) {
        self.state.lock().unwrap().statuses.clear();
    }

    pub fn replays_refused(&self) -> u64 {
        self.state.lock().unwrap().replays_refused
    }

    pub fn set_mode(&self, mode: u8) {
        self.mode.store(mode, Ordering::Relaxed);
    }

    pub fn recorded_count(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .recorded
            .values()
            .map(|r| r.len())
            .sum()
    }

    pub fn recorded(&self, device: &str) -> Vec<u64> {
        self.state
            .lock()
            .unwrap()
            .recorded
            .get(device)
            .map(|r| r.keys().copied().collect())
            .unwrap_or_default()
    }
}

fn reply(status: u16, body: String) -> warp::http::Response<String> {
    let mut response = warp::http::Response::new(body);
    *response.status_mut() = warp::http::StatusCode::from_u16(status).unwrap();
    response
}

fn submit(state: &Mutex<LedgerState>, body: &[u8]) -> warp::http::Response<String> {
    let Ok(list) = BatchList::parse_from_bytes(body) else {
        return reply(400, "{\"error\":\"not a BatchList\"}".into());
    };
    let mut guard = state.lock().unwrap();
    for batch in list.get_batches() {
        let header = BatchHeader::parse_from_bytes(batch.get_header()).unwrap();
        let signed = coldchain_processors::signing::verify(
            header.get_signer_public_key(),
            batch.get_header(),
            batch.get_header_signature(),
        );
        if signed.ok() != Some(true) {
            return reply(400, "{\"error\":\"bad batch signature\"}".into());
        }
        let id = batch.get_header_signature().to_string();
        if guard
            .statuses
            .get(&id)
            .is_some_and(|(s, _)| s == "COMMITTED")
        {
            continue;
        }
        // Apply all or nothing.
        let mut pending: BTreeMap<String, BTreeMap<u64, i32>> = BTreeMap::new();
        let mut invalid = None;
        for transaction in batch.get_transactions() {
            let tx_header = TransactionHeader::parse_from_bytes(transaction.get_header()).unwrap();
            let ok = coldchain_processors::signing::verify(
                tx_header.get_signer_public_key(),
                transaction.get_header(),
                transaction.get_header_signature(),
            );
            assert_eq!(ok.ok(), Some(true), "transaction signature");
            assert_eq!(tx_header.get_family_name(), "coldchain-sensor");
            let payload = SensorPayload::parse_from_bytes(transaction.get_payload()).unwrap();
            let record = payload.get_record_readings();
            let device = record.get_device_id().to_string();
            let last = pending
                .get(&device)
                .and_then(|r| r.keys().next_back().copied())
                .or_else(|| {
                    guard
                        .recorded
                        .get(&device)
                        .and_then(|r| r.keys().next_back().copied())
                })
                .unwrap_or(0);
            let mut previous = last;
            let mut refusal = None;
            for reading in record.get_readings() {
                if reading.get_sequence() <= previous {
                    refusal = Some(format!(
                        "readings already recorded: sequence {} <= last {}",
                        reading.get_sequence(),
                        previous
                    ));
                    break;
                }
                previous = reading.get_sequence();
            }
            if let Some(message) = refusal {
                guard.replays_refused += 1;
                invalid = Some((transaction.get_header_signature().to_string(), message));
                break;
            }
            let entry = pending.entry(device).or_default();
            for reading in record.get_readings() {
                entry.insert(reading.get_sequence(), reading.get_temperature_cdeg());
            }
        }
        match invalid {
            Some(refused) => {
                guard.statuses.insert(id, ("INVALID".into(), vec![refused]));
            }
            None => {
                for (device, readings) in pending {
                    guard.recorded.entry(device).or_default().extend(readings);
                }
                guard.statuses.insert(id, ("COMMITTED".into(), vec![]));
            }
        }
    }
    reply(202, "{\"link\":\"x\"}".into())
}

/// A pseudo-terminal pair in raw mode: write logger lines to `master`, the
/// gateway opens `path`.
pub struct Pty {
    pub master: std::fs::File,
    _slave: std::os::fd::OwnedFd,
    pub path: String,
}

pub fn open_pty() -> Pty {
    use nix::sys::termios;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let pair = nix::pty::openpty(None, None).unwrap();
    let path = nix::unistd::ttyname(pair.slave)
        .unwrap()
        .display()
        .to_string();
    let mut attrs = termios::tcgetattr(pair.slave).unwrap();
    termios::cfmakeraw(&mut attrs);
    termios::tcsetattr(pair.slave, termios::SetArg::TCSANOW, &attrs).unwrap();
    let master = unsafe { std::fs::File::from_raw_fd(pair.master) };
    let slave = unsafe { OwnedFd::from_raw_fd(pair.slave) };
    let _ = slave.as_raw_fd();
    Pty {
        master,
        _slave: slave,
        path,
    }
}

/// The MQTT broker for tests: 127.0.0.1:1883 if it answers, else a Mosquitto
/// started on a free port (kept alive by the returned child).
pub fn mqtt_broker() -> (u16, Option<std::process::Child>) {
    if std::net::TcpStream::connect("127.0.0.1:1883").is_ok() {
        return (1883, None);
    }
    let port = free_port();
    let child = std::process::Command::new("mosquitto")
        .args(["-p", &port.to_string()])
        .spawn()
        .expect(
            "no broker on 127.0.0.1:1883 and `mosquitto` could not be started; install mosquitto",
        );
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (port, Some(child))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A unique word per test run, for topics and client ids.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}{}x{}", std::process::id(), nanos % 1_000_000_000)
}

pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Polls `check` every 50 ms for up to `seconds`.
pub async fn eventually(seconds: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check()
}
