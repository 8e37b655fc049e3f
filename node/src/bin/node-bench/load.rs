//! The load generator of `node-bench run`: child node process, pre-signed
//! batches, a pool of client threads posting over HTTP, and the figures.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use coldchain_node::testing::http;
use coldchain_processors::signing::{batch_list_bytes, sign_batch, Signer};

use crate::world::{self, READINGS_PER_TX};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Client threads posting batches in the peak phase.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Transactions submitted in the peak phase.
    #[arg(long, default_value_t = 40_000)]
    pub transactions: u64,
    /// Transactions per batch in the peak phase.
    #[arg(long, default_value_t = 50)]
    pub batch_size: usize,
    /// Length of the latency phase, in seconds.
    #[arg(long, default_value_t = 10)]
    pub latency_seconds: u64,
    /// Transactions per batch in the latency phase.
    #[arg(long, default_value_t = 10)]
    pub latency_batch_size: usize,
    /// Offered transactions/s in the latency phase (default: half the measured
    /// peak); fix it to compare builds at the same load.
    #[arg(long)]
    pub latency_rate: Option<f64>,
    /// Devices (and shipments) the load is spread over.
    #[arg(long, default_value_t = 64)]
    pub devices: usize,
    /// `sensor` (readings transactions, 100 readings each) or `probe` (~2 KB payloads).
    #[arg(long, default_value = "sensor")]
    pub workload: String,
    /// Execute the sensor family in an external TP process over ZeroMQ.
    #[arg(long)]
    pub external_tp: bool,
}

struct Prepared {
    device: usize,
    id: String,
    body: Vec<u8>,
    txns: usize,
}

struct ChildNode {
    child: Child,
    url: String,
    data_dir: PathBuf,
    tp: Option<Child>,
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        if let Some(tp) = &mut self.tp {
            let _ = tp.kill();
            let _ = tp.wait();
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn start_node(gateway: &Signer, devices: usize, external_tp: bool) -> anyhow::Result<ChildNode> {
    let data_dir = std::env::temp_dir().join(format!("node-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let exe = std::env::current_exe().context("cannot find the node-bench executable")?;
    let mut child = Command::new(exe)
        .args(["serve", "--data-dir"])
        .arg(&data_dir)
        .args([
            "--gateway-key",
            gateway.public_key(),
            "--devices",
            &devices.to_string(),
        ])
        .args(if external_tp {
            &["--external-sensor"][..]
        } else {
            &[][..]
        })
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start `node-bench serve`")?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout from the node"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let mut words = line
        .trim()
        .strip_prefix("READY ")
        .ok_or_else(|| anyhow!("node did not start: {line:?}"))?
        .split_whitespace();
    let url = words.next().unwrap_or_default().to_string();
    let endpoint = words.next().unwrap_or_default().to_string();
    let tp = if external_tp {
        let exe = std::env::current_exe()?;
        Some(
            Command::new(exe)
                .args(["tp", "--endpoint", &endpoint])
                .spawn()
                .context("cannot start the external TP")?,
        )
    } else {
        None
    };
    Ok(ChildNode {
        child,
        url,
        data_dir,
        tp,
    })
}

fn prepare(
    args: &RunArgs,
    signer: &Signer,
    first_batch: u64,
    batches: u64,
    batch_size: usize,
) -> anyhow::Result<Vec<Prepared>> {
    let devices = args.devices as u64;
    let build = |j: u64| -> anyhow::Result<Prepared> {
        let device = (j % devices) as usize;
        let round = j / devices;
        let txns = (0..batch_size as u64)
            .map(|k| {
                let n = round * batch_size as u64 + k;
                if args.workload == "probe" {
                    world::probe_transaction(signer, device, n + j * 1_000_000)
                } else {
                    world::readings_transaction(signer, device, n)
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let batch = sign_batch(txns, signer)?;
        Ok(Prepared {
            device,
            id: batch.get_header_signature().to_string(),
            body: batch_list_bytes(vec![batch])?,
            txns: batch_size,
        })
    };
    let range: Vec<u64> = (first_batch..first_batch + batches).collect();
    let (a, b) = range.split_at(range.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| {
            b.iter()
                .map(|j| build(*j))
                .collect::<anyhow::Result<Vec<_>>>()
        });
        let mut mine = a
            .iter()
            .map(|j| build(*j))
            .collect::<anyhow::Result<Vec<_>>>()?;
        mine.extend(
            other
                .join()
                .map_err(|_| anyhow!("signing thread panicked"))??,
        );
        Ok(mine)
    })
}

/// Waits until the external TP registered (the node refuses unknown families).
fn wait_for_tp(url: &str, body: &[u8]) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let reply = http::post_batches(url, body)?;
        if reply.status == 202 {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "the external TP did not register: {}",
                String::from_utf8_lossy(&reply.body)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Posts a BatchList, retrying while the queue is full.
fn post(url: &str, body: &[u8]) -> anyhow::Result<()> {
    loop {
        let reply = http::post_batches(url, body)?;
        match reply.status {
            202 => return Ok(()),
            429 => std::thread::sleep(Duration::from_millis(2)),
            other => bail!(
                "POST /batches answered {other}: {}",
                String::from_utf8_lossy(&reply.body)
            ),
        }
    }
}

/// Waits until every batch settled; returns (committed txns, invalid batches, first invalid message).
fn settle(url: &str, batches: &[Prepared]) -> anyhow::Result<(usize, usize, Option<String>)> {
    let (mut committed, mut invalid, mut message) = (0, 0, None);
    for chunk in batches.chunks(200) {
        let ids: Vec<&str> = chunk.iter().map(|b| b.id.as_str()).collect();
        let body = serde_json::to_vec(&ids)?;
        let reply = http::request(
            url,
            "POST",
            "/batch_statuses?wait=120",
            Some("application/json"),
            &body,
        )?;
        let json = reply.json();
        let statuses = json["data"]
            .as_array()
            .ok_or_else(|| anyhow!("bad status reply: {json}"))?;
        for (status, batch) in statuses.iter().zip(chunk) {
            match status["status"].as_str() {
                Some("COMMITTED") => committed += batch.txns,
                _ => {
                    invalid += 1;
                    message.get_or_insert_with(|| status.to_string());
                }
            }
        }
    }
    Ok((committed, invalid, message))
}

fn peak(args: &RunArgs, url: &str, batches: Vec<Prepared>) -> anyhow::Result<f64> {
    let clients = args.clients;
    let mut lanes: Vec<Vec<Prepared>> = (0..clients).map(|_| Vec::new()).collect();
    for batch in batches {
        lanes[batch.device % clients].push(batch);
    }
    let start = Instant::now();
    let posted: Vec<Vec<Prepared>> = std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                s.spawn(move || -> anyhow::Result<Vec<Prepared>> {
                    for batch in &lane {
                        post(url, &batch.body)?;
                    }
                    Ok(lane)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("client thread panicked"))?)
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let all: Vec<Prepared> = posted.into_iter().flatten().collect();
    let (committed, invalid, message) = settle(url, &all)?;
    let seconds = start.elapsed().as_secs_f64();
    let tps = committed as f64 / seconds;
    println!(
        "peak: {committed} transactions committed in {seconds:.2} s = {tps:.0} tx/s ({:.0} readings/s for the sensor workload); {invalid} batches not committed",
        tps * READINGS_PER_TX as f64
    );
    if let Some(m) = message {
        println!("  first non-committed status: {m}");
    }
    Ok(tps)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latency(args: &RunArgs, url: &str, batches: Vec<Prepared>, rate_tps: f64) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(args.latency_batch_size as f64 / rate_tps);
    let (tx, rx) = mpsc::channel::<(Instant, Prepared)>();
    let rx = Arc::new(Mutex::new(rx));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(0usize));
    let workers: Vec<_> = (0..24)
        .map(|_| {
            let (rx, samples, failures, url) = (
                rx.clone(),
                samples.clone(),
                failures.clone(),
                url.to_string(),
            );
            std::thread::spawn(move || loop {
                let job = rx.lock().map(|r| r.recv());
                let Ok(Ok((due, batch))) = job else { return };
                let ok = post(&url, &batch.body).is_ok()
                    && http::get(&url, &format!("/batch_statuses?id={}&wait=30", batch.id))
                        .map(|r| r.json()["data"][0]["status"] == "COMMITTED")
                        .unwrap_or(false);
                if ok {
                    samples
                        .lock()
                        .map(|mut s| s.push(due.elapsed().as_secs_f64() * 1000.0))
                        .ok();
                } else {
                    failures.lock().map(|mut f| *f += 1).ok();
                }
            })
        })
        .collect();
    let start = Instant::now();
    for (i, batch) in batches.into_iter().enumerate() {
        let due = start + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        tx.send((due, batch))
            .map_err(|_| anyhow!("latency workers stopped"))?;
    }
    drop(tx);
    for worker in workers {
        let _ = worker.join();
    }
    let mut samples = samples.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    samples.sort_by(|a, b| a.total_cmp(b));
    println!(
        "latency at {rate_tps:.0} tx/s offered ({} tx/batch, {} batches): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} not committed",
        args.latency_batch_size,
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or(f64::NAN),
        failures.lock().map(|f| *f).unwrap_or(0)
    );
    Ok(())
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.workload != "sensor" && args.workload != "probe" {
        bail!(
            "--workload must be `sensor` or `probe`, not {:?}",
            args.workload
        );
    }
    let signer = Signer::generate();
    let node = start_node(&signer, args.devices, args.external_tp)?;
    let peak_batches = args.transactions.div_ceil(args.batch_size as u64);
    println!(
        "workload {}: {} transactions in {peak_batches} batches of {}, {} clients, {} devices; node {}",
        args.workload, args.transactions, args.batch_size, args.clients, args.devices, node.url
    );
    let prepared = prepare(&args, &signer, 0, peak_batches, args.batch_size)?;
    if args.external_tp {
        wait_for_tp(&node.url, &prepared[0].body)?;
    }
    let tps = peak(&args, &node.url, prepared)?;

    // The latency phase continues every device's sequence after the peak phase.
    let rate = args.latency_rate.unwrap_or(tps / 2.0).max(1.0);
    let latency_batches =
        ((rate * args.latency_seconds as f64) / args.latency_batch_size as f64).ceil() as u64;
    let per_device_done = peak_batches.div_ceil(args.devices as u64) * args.batch_size as u64;
    let rounds_offset = per_device_done.div_ceil(args.latency_batch_size as u64);
    let first = rounds_offset * args.devices as u64;
    let prepared = prepare(
        &args,
        &signer,
        first,
        latency_batches,
        args.latency_batch_size,
    )?;
    latency(&args, &node.url, prepared, rate)?;

    let rss = peak_rss_kib(node.child.id());
    let disk = dir_bytes(&node.data_dir);
    let blocks = http::get(&node.url, "/blocks?limit=1")?.json();
    let height = blocks["data"][0]["header"]["block_num"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let txns_total = args.transactions + latency_batches * args.latency_batch_size as u64;
    println!(
        "node peak RSS: {} MiB; chain height {height}; disk {:.1} MiB = {:.1} bytes per reading ({} readings submitted; for `probe`, read \"reading\" as 1/100 transaction)",
        rss.map(|k| format!("{:.0}", k as f64 / 1024.0)).unwrap_or_else(|| "?".into()),
        disk as f64 / 1_048_576.0,
        disk as f64 / (txns_total * READINGS_PER_TX) as f64,
        txns_total * READINGS_PER_TX
    );
    Ok(())
}
