//! `coldchain-api-bench lag`: index lag of the provenance API while the node
//! commits readings transactions at a fixed rate.
//!
//! The API runs in this process with its real chain follower (ZeroMQ events +
//! `GET /blocks/{id}`) writing a fresh index. The node is a `node-bench serve`
//! process with the bench world seeded (64 devices, each on its own shipment,
//! and a gateway grant), either started here (`--node-bench PATH`) or already
//! running (`--rest`, `--component` and the gateway's private key in
//! `--gateway-key`). This process then:
//! - posts pre-signed batches of sensor `RecordReadings` transactions (100
//!   readings each, signed by the gateway key) open loop at `--rate`;
//! - notes when each block is announced: a separate, minimal ZeroMQ
//!   subscriber to `sawtooth/block-commit` only;
//! - notes when each block is in the index: polls the index head every 10 ms.
//!
//! Lag of a block = index time − announce time. Prints p50/p99/max lag, the
//! committed and indexed rates, and the backlog when the load ended.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use coldchain_api::index::IndexStore;
use coldchain_api::node::number;
use coldchain_api::{Api, ApiConfig};
use coldchain_processors::messages::coldchain::{Reading, RecordReadings};
use coldchain_processors::sensor::record_readings_spec;
use coldchain_processors::signing::{batch_list_bytes, sign_batch, sign_transaction, Signer};
use protobuf::Message as _;
use sawtooth_sdk::messages::client_event::{
    ClientEventsSubscribeRequest, ClientEventsSubscribeResponse,
    ClientEventsSubscribeResponse_Status,
};
use sawtooth_sdk::messages::events::{EventList, EventSubscription};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};

/// The organisation of the bench world's devices (`node-bench serve`).
const ORG: &str = "carrier-1";
const READINGS_PER_TX: u64 = 100;
const INDEX_POLL: Duration = Duration::from_millis(10);

#[derive(Parser)]
#[command(
    name = "coldchain-api-bench lag",
    about = "Index lag of the provenance API while the node commits readings transactions"
)]
pub struct LagArgs {
    /// Start `PATH serve` (the node-bench binary) with a fresh data directory and key.
    #[arg(long, conflicts_with_all = ["rest", "component", "gateway_key"])]
    node_bench: Option<PathBuf>,
    /// REST API of a running `node-bench serve` (fresh: device sequences start at 1).
    #[arg(long, requires_all = ["component", "gateway_key"])]
    rest: Option<String>,
    /// Component endpoint of that node, e.g. `tcp://127.0.0.1:4004`.
    #[arg(long)]
    component: Option<String>,
    /// Private key file of the gateway that node was seeded with (`--gateway-key` of `serve`).
    #[arg(long)]
    gateway_key: Option<PathBuf>,
    /// Transactions per second offered (open loop).
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Length of the load, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Transactions per batch.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Devices the load is spread over (at most the number seeded, 64 by default).
    #[arg(long, default_value_t = 64)]
    devices: usize,
    /// Concurrent POST /batches clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Index URL (default: a SQLite file in a temporary directory).
    #[arg(long)]
    index: Option<String>,
    /// How long to wait after the load for the index to catch up.
    #[arg(long, default_value_t = 300)]
    drain_seconds: u64,
}

/// A `node-bench serve` child process, stopped (SIGTERM) and cleaned up on drop.
struct ChildNode {
    child: Child,
    data_dir: PathBuf,
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Starts `node-bench serve`; returns it with its REST URL and component endpoint.
fn start_node(
    exe: &std::path::Path,
    gateway: &Signer,
    devices: usize,
    dir: &std::path::Path,
) -> anyhow::Result<(ChildNode, String, String)> {
    let data_dir = dir.join("node");
    let mut child = Command::new(exe)
        .args(["serve", "--data-dir"])
        .arg(&data_dir)
        .args(["--gateway-key", gateway.public_key()])
        .args(["--devices", &devices.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{} serve`", exe.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout from the node"))?;
    let node = ChildNode { child, data_dir };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let mut words = line
        .trim()
        .strip_prefix("READY ")
        .ok_or_else(|| anyhow!("the node did not start; it printed {line:?}"))?
        .split_whitespace();
    let rest = words.next().unwrap_or_default().to_string();
    let component = words.next().unwrap_or_default().to_string();
    Ok((node, rest, component))
}

/// The `n`-th readings transaction (0-based) of device `D-{device}`: 100 readings
/// a minute apart, in the profile, continuing the device's sequence (as `node-bench`).
fn readings_transaction(
    gateway: &Signer,
    device: usize,
    n: u64,
) -> anyhow::Result<sawtooth_sdk::messages::transaction::Transaction> {
    let mut readings = RecordReadings::new();
    readings.device_id = format!("D-{device}");
    readings.shipment_id = format!("S-{device}");
    for k in 0..READINGS_PER_TX {
        let i = n * READINGS_PER_TX + k;
        let mut reading = Reading::new();
        reading.sequence = i + 1;
        reading.time_s = 1_700_000_000 + i * 60;
        reading.temperature_cdeg = 450 + i32::try_from(i % 7).unwrap_or(0) * 10;
        readings.readings.push(reading);
    }
    let spec = record_readings_spec(&readings, ORG, gateway.public_key());
    Ok(sign_transaction(spec, gateway, gateway.public_key())?)
}

struct Prepared {
    id: String,
    body: bytes::Bytes,
}

/// Signs `batches` batches on two threads; batch `j` goes to device `j % devices`.
fn prepare(
    gateway: &Signer,
    batches: u64,
    batch_size: usize,
    devices: usize,
) -> anyhow::Result<Vec<Prepared>> {
    let build = |j: u64| -> anyhow::Result<Prepared> {
        let device = usize::try_from(j % devices as u64)?;
        let round = j / devices as u64;
        let txns = (0..batch_size as u64)
            .map(|k| readings_transaction(gateway, device, round * batch_size as u64 + k))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let batch = sign_batch(txns, gateway)?;
        Ok(Prepared {
            id: batch.get_header_signature().to_string(),
            body: batch_list_bytes(vec![batch])?.into(),
        })
    };
    let all: Vec<u64> = (0..batches).collect();
    let (first, second) = all.split_at(all.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| second.iter().map(|j| build(*j)).collect::<Vec<_>>());
        let mut prepared = first
            .iter()
            .map(|j| build(*j))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for batch in other
            .join()
            .map_err(|_| anyhow!("signing thread panicked"))?
        {
            prepared.push(batch?);
        }
        Ok(prepared)
    })
}

/// Block number → when this process learned about it.
type Seen = Arc<Mutex<BTreeMap<u64, Instant>>>;

fn zmq_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("component endpoint: {e}")
}

/// Subscribes to `sawtooth/block-commit` only, from `head_id`, and records the
/// arrival time of every announced block until `stop` is set.
fn announcements(
    endpoint: &str,
    head_id: &str,
    seen: Seen,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let context = zmq::Context::new();
    let socket = context.socket(zmq::DEALER).map_err(zmq_error)?;
    socket.set_linger(0).map_err(zmq_error)?;
    socket.set_rcvtimeo(200).map_err(zmq_error)?;
    socket.connect(endpoint).map_err(zmq_error)?;
    let mut commit = EventSubscription::new();
    commit.set_event_type("sawtooth/block-commit".into());
    let mut request = ClientEventsSubscribeRequest::new();
    request.set_subscriptions(vec![commit].into());
    request.set_last_known_block_ids(vec![head_id.to_string()].into());
    let mut message = Message::new();
    message.set_message_type(Message_MessageType::CLIENT_EVENTS_SUBSCRIBE_REQUEST);
    message.set_correlation_id("lag-bench-subscribe".into());
    message.set_content(request.write_to_bytes()?);
    socket
        .send(message.write_to_bytes()?, 0)
        .map_err(zmq_error)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if Instant::now() > deadline {
            bail!("no subscription response from {endpoint} within 10 s");
        }
        let bytes = match socket.recv_bytes(0) {
            Ok(bytes) => bytes,
            Err(zmq::Error::EAGAIN) => continue,
            Err(e) => return Err(zmq_error(e)),
        };
        let reply = Message::parse_from_bytes(&bytes)?;
        if reply.get_message_type() != Message_MessageType::CLIENT_EVENTS_SUBSCRIBE_RESPONSE {
            continue;
        }
        let response = ClientEventsSubscribeResponse::parse_from_bytes(reply.get_content())?;
        if response.get_status() != ClientEventsSubscribeResponse_Status::OK {
            bail!(
                "block-commit subscription refused ({:?}): {}",
                response.get_status(),
                response.get_response_message()
            );
        }
        break;
    }
    let thread = std::thread::Builder::new()
        .name("lag-announcements".into())
        .spawn(move || {
            let _context = context;
            while !stop.load(Ordering::Relaxed) {
                let bytes = match socket.recv_bytes(0) {
                    Ok(bytes) => bytes,
                    Err(zmq::Error::EAGAIN) => continue,
                    Err(e) => {
                        eprintln!("block-commit subscriber: {e}");
                        return;
                    }
                };
                let now = Instant::now();
                let Ok(message) = Message::parse_from_bytes(&bytes) else {
                    continue;
                };
                match message.get_message_type() {
                    Message_MessageType::PING_REQUEST => {
                        let mut pong = Message::new();
                        pong.set_message_type(Message_MessageType::PING_RESPONSE);
                        pong.set_correlation_id(message.get_correlation_id().to_string());
                        if let Ok(bytes) = pong.write_to_bytes() {
                            let _ = socket.send(bytes, 0);
                        }
                    }
                    Message_MessageType::CLIENT_EVENTS => {
                        let Ok(events) = EventList::parse_from_bytes(message.get_content()) else {
                            continue;
                        };
                        for event in events.get_events() {
                            let num = event
                                .get_attributes()
                                .iter()
                                .find(|a| a.get_key() == "block_num")
                                .and_then(|a| a.get_value().parse::<u64>().ok());
                            if let (Some(num), Ok(mut seen)) = (num, seen.lock()) {
                                seen.entry(num).or_insert(now);
                            }
                        }
                    }
                    _ => {}
                }
            }
        })?;
    Ok(thread)
}

/// Polls the index head every 10 ms; records when each block number first appears.
fn watch_index(
    index: Arc<dyn IndexStore>,
    seen: Seen,
    head: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let mut last = head.load(Ordering::Relaxed);
        let mut tick = tokio::time::interval(INDEX_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let Some(now_head) = index.head().await?.map(|b| b.block_num) else {
                continue;
            };
            if now_head > last {
                let now = Instant::now();
                if let Ok(mut seen) = seen.lock() {
                    for num in last + 1..=now_head {
                        seen.entry(num).or_insert(now);
                    }
                }
                last = now_head;
                head.store(now_head, Ordering::Relaxed);
            }
        }
        Ok(())
    })
}

/// Figures of the submitters.
#[derive(Default)]
struct Posted {
    accepted: u64,
    busy_retries: u64,
    max_slip: Duration,
}

/// Posts every batch at its due time (`start + i × interval`) from `clients`
/// concurrent tasks; a 429 (queue full) is retried after 2 ms.
async fn offer(
    http: &reqwest::Client,
    rest: &str,
    batches: &[Prepared],
    interval: Duration,
    clients: usize,
    start: tokio::time::Instant,
) -> anyhow::Result<Posted> {
    let (tx, rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, bytes::Bytes)>(1024);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let url = format!("{}/batches", rest.trim_end_matches('/'));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (rx, http, url) = (rx.clone(), http.clone(), url.clone());
            tokio::spawn(async move {
                let mut posted = Posted::default();
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some((due, body)) = job else {
                        return Ok::<Posted, anyhow::Error>(posted);
                    };
                    posted.max_slip = posted.max_slip.max(due.elapsed());
                    loop {
                        let response = http
                            .post(&url)
                            .header("content-type", "application/octet-stream")
                            .body(body.clone())
                            .send()
                            .await
                            .with_context(|| format!("POST {url}"))?;
                        match response.status().as_u16() {
                            202 => break,
                            429 => {
                                posted.busy_retries += 1;
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                            other => bail!(
                                "POST {url} answered {other}: {}",
                                response.text().await.unwrap_or_default()
                            ),
                        }
                    }
                    posted.accepted += 1;
                }
            })
        })
        .collect();
    for (i, batch) in batches.iter().enumerate() {
        let due = start + interval * u32::try_from(i)?;
        tokio::time::sleep_until(due).await;
        tx.send((due, batch.body.clone()))
            .await
            .map_err(|_| anyhow!("all submitters stopped"))?;
    }
    drop(tx);
    let mut total = Posted::default();
    for worker in workers {
        let posted = worker.await??;
        total.accepted += posted.accepted;
        total.busy_retries += posted.busy_retries;
        total.max_slip = total.max_slip.max(posted.max_slip);
    }
    Ok(total)
}

/// Committed transactions and non-committed batches (with the first status seen).
async fn settle(
    http: &reqwest::Client,
    rest: &str,
    batches: &[Prepared],
    batch_size: usize,
) -> anyhow::Result<(u64, u64, Option<String>)> {
    let url = format!("{}/batch_statuses?wait=60", rest.trim_end_matches('/'));
    let (mut committed, mut other, mut first) = (0u64, 0u64, None);
    for chunk in batches.chunks(200) {
        let ids: Vec<&str> = chunk.iter().map(|b| b.id.as_str()).collect();
        let reply: serde_json::Value = http
            .post(&url)
            .json(&ids)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?
            .json()
            .await
            .with_context(|| format!("reading the answer of POST {url}"))?;
        let statuses = reply["data"]
            .as_array()
            .ok_or_else(|| anyhow!("unexpected batch_statuses answer: {reply}"))?;
        for status in statuses {
            if status["status"] == "COMMITTED" {
                committed += batch_size as u64;
            } else {
                other += 1;
                first.get_or_insert_with(|| status.to_string());
            }
        }
    }
    Ok((committed, other, first))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Readings per block in a SQLite index (None for other index kinds).
fn readings_per_block(index_url: &str) -> anyhow::Result<Option<BTreeMap<u64, u64>>> {
    let Some(path) = index_url.strip_prefix("sqlite://") else {
        return Ok(None);
    };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening the index {path} to count readings"))?;
    let mut stmt =
        conn.prepare("SELECT block_num, SUM(count) FROM reading_chunks GROUP BY block_num")?;
    let rows = stmt
        .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(
        rows.into_iter()
            .map(|(b, n)| (u64::try_from(b).unwrap_or(0), u64::try_from(n).unwrap_or(0)))
            .collect(),
    ))
}

/// The chain head (number, id) from the node's REST API.
async fn chain_head(http: &reqwest::Client, rest: &str) -> anyhow::Result<(u64, String)> {
    let url = format!("{}/blocks?limit=1", rest.trim_end_matches('/'));
    let page: serde_json::Value = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .json()
        .await?;
    let header = &page["data"][0]["header"];
    let num = number(&header["block_num"])
        .ok_or_else(|| anyhow!("GET {url}: no chain head in {page}"))?;
    let id = page["data"][0]["header_signature"]
        .as_str()
        .ok_or_else(|| anyhow!("GET {url}: head without header_signature"))?
        .to_string();
    Ok((num, id))
}

pub async fn run(args: LagArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    if args.rate == 0 || args.batch_size == 0 || args.devices == 0 || args.clients == 0 {
        bail!("--rate, --batch-size, --devices and --clients must be at least 1");
    }
    let (node, rest, component, gateway) = match (&args.node_bench, &args.rest) {
        (Some(exe), _) => {
            let gateway = Signer::generate();
            let (node, rest, component) = start_node(exe, &gateway, args.devices, dir)?;
            (Some(node), rest, component, gateway)
        }
        (None, Some(rest)) => {
            let key = args
                .gateway_key
                .as_ref()
                .ok_or_else(|| anyhow!("--rest needs --gateway-key"))?;
            let gateway = Signer::from_file(key)?;
            let component = args
                .component
                .clone()
                .ok_or_else(|| anyhow!("--rest needs --component"))?;
            (None, rest.clone(), component, gateway)
        }
        (None, None) => bail!("give --node-bench PATH, or --rest, --component and --gateway-key"),
    };
    let batches = (args.rate * args.seconds).div_ceil(args.batch_size as u64);
    let signing = Instant::now();
    let prepared = prepare(&gateway, batches, args.batch_size, args.devices)?;
    println!(
        "signed {batches} batches of {} readings transactions ({} readings each) in {:.1} s",
        args.batch_size,
        READINGS_PER_TX,
        signing.elapsed().as_secs_f64()
    );

    let index_url = args
        .index
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("lag-index.db").display()));
    let api = Api::start(ApiConfig {
        bind: "127.0.0.1:0".parse()?,
        rest_url: rest.clone(),
        component: component.clone(),
        index_url: index_url.clone(),
        follow: true,
    })
    .await?;
    let index = api.index();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;

    // The follower first catches up with what is already on the chain.
    let (start_num, start_id) = chain_head(&http, &rest).await?;
    let caught_up = Instant::now();
    while index.head().await?.map(|b| b.block_num) != Some(start_num) {
        if caught_up.elapsed() > Duration::from_secs(60) {
            bail!("the index did not reach the chain head {start_num} within 60 s");
        }
        tokio::time::sleep(INDEX_POLL).await;
    }
    println!(
        "node {rest} ({component}); index {index_url} at block {start_num}; offering {} tx/s for {} s ({} tx/batch, {} clients, {} devices)",
        args.rate, args.seconds, args.batch_size, args.clients, args.devices
    );

    let stop = Arc::new(AtomicBool::new(false));
    let announced: Seen = Arc::default();
    let indexed: Seen = Arc::default();
    let index_head = Arc::new(AtomicU64::new(start_num));
    let subscriber = announcements(&component, &start_id, announced.clone(), stop.clone())?;
    let watcher = watch_index(
        index.clone(),
        indexed.clone(),
        index_head.clone(),
        stop.clone(),
    );
    let chain_num = move |announced: &Seen| {
        announced
            .lock()
            .ok()
            .and_then(|a| a.keys().next_back().copied())
            .unwrap_or(start_num)
    };

    // Progress once a second while the load runs.
    let progress = {
        let (announced, index_head, stop) = (announced.clone(), index_head.clone(), stop.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let chain = chain_num(&announced);
                let indexed = index_head.load(Ordering::Relaxed);
                println!(
                    "  t={:>4.0} s  chain head {chain:>5}  index head {indexed:>5}  backlog {} blocks",
                    t0.elapsed().as_secs_f64(),
                    chain.saturating_sub(indexed)
                );
            }
        })
    };

    let interval = Duration::from_secs_f64(args.batch_size as f64 / args.rate as f64);
    let load_start = Instant::now();
    let posted = offer(
        &http,
        &rest,
        &prepared,
        interval,
        args.clients,
        tokio::time::Instant::now(),
    )
    .await?;
    let posted_s = load_start.elapsed().as_secs_f64();

    // Wait for the node to commit what was accepted, then for the index.
    let (committed, not_committed, first_failure) =
        settle(&http, &rest, &prepared, args.batch_size).await?;
    let final_num = chain_head(&http, &rest).await?.0;
    let settled_at = Instant::now();
    while chain_num(&announced) < final_num && settled_at.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(INDEX_POLL).await;
    }
    let last_announce = announced
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .get(&final_num)
        .copied()
        .unwrap_or(settled_at);
    let backlog_at_end = final_num.saturating_sub(
        indexed
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .range(..=final_num)
            .filter(|(_, at)| **at <= last_announce)
            .map(|(n, _)| *n)
            .next_back()
            .unwrap_or(start_num),
    );
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain_seconds);
    while index_head.load(Ordering::Relaxed) < final_num && Instant::now() < drain_deadline {
        tokio::time::sleep(INDEX_POLL).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    watcher.await??;
    let _ = tokio::task::spawn_blocking(move || subscriber.join()).await;
    api.stop().await;

    let announced = announced.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    let indexed = indexed.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    let mut lags = Vec::new();
    let mut missing = 0;
    for (num, at) in announced.range(start_num + 1..=final_num) {
        match indexed.get(num) {
            Some(done) => lags.push(done.saturating_duration_since(*at).as_secs_f64() * 1000.0),
            None => missing += 1,
        }
    }
    lags.sort_by(|a, b| a.total_cmp(b));
    let last_indexed = indexed.get(&final_num).copied();
    let commit_s = last_announce.duration_since(load_start).as_secs_f64();
    let per_block = readings_per_block(&index_url)?;

    println!("\nload: {} batches accepted in {posted_s:.1} s ({:.0} tx/s offered, {} retries after 429, latest post {:.0} ms behind schedule); {not_committed} batches not committed",
        posted.accepted,
        (posted.accepted * args.batch_size as u64) as f64 / posted_s,
        posted.busy_retries,
        posted.max_slip.as_secs_f64() * 1000.0);
    if let Some(f) = first_failure {
        println!("  first non-committed status: {f}");
    }
    println!(
        "node: {committed} transactions committed in blocks {}..={final_num} by {commit_s:.1} s = {:.0} tx/s",
        start_num + 1,
        committed as f64 / commit_s
    );
    if let Some(per_block) = &per_block {
        let readings: u64 = per_block.values().sum();
        let blocks = per_block.len().max(1) as f64;
        match last_indexed {
            Some(at) => println!(
                "index: {readings} readings in {} blocks (mean {:.0} transactions per block), all indexed by {:.1} s = {:.0} readings/s",
                per_block.len(),
                readings as f64 / READINGS_PER_TX as f64 / blocks,
                at.duration_since(load_start).as_secs_f64(),
                readings as f64 / at.duration_since(load_start).as_secs_f64()
            ),
            None => println!("index: {readings} readings in {} blocks; did NOT reach block {final_num} within {} s after the load", per_block.len(), args.drain_seconds),
        }
    }
    println!(
        "lag over {} blocks: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {missing} blocks not indexed",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "backlog when the last block was announced: {backlog_at_end} blocks; drained {}",
        match last_indexed {
            Some(at) => format!(
                "{:.2} s later",
                at.saturating_duration_since(last_announce).as_secs_f64()
            ),
            None => "never (see above)".into(),
        }
    );
    drop(node);
    Ok(())
}
