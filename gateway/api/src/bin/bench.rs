//! `coldchain-api-bench`: builds a large synthetic index (lots, shipments,
//! readings) through the real index write path, starts the API on it and
//! measures verification, provenance and readings latency and throughput
//! with `wrk` running as a separate process. Prints a Markdown table, with
//! the CPU time the API (this process) and wrk used during each run and the
//! load average when it started: on a shared box, requests per API
//! CPU-second move much less with other load than requests per second do.
//!
//! Usage: `coldchain-api-bench [--lots N] [--readings N] [--big-shipment N]
//! [--index URL] [--duration S] [--connections C]`.
//!
//! `coldchain-api-bench lag …` measures instead how far the index trails the
//! chain while the node commits readings transactions (see `bench/lag.rs`,
//! `coldchain-api-bench lag --help`).
use std::io::Write;
use std::process::Command;

use anyhow::{bail, Context};
use coldchain_api::index::{self, BlockRef, BlockUpdate, Reading, ReadingsBatch, StateChange};
use coldchain_api::{Api, ApiConfig};
use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::messages::coldchain::*;
use protobuf::Message;

#[path = "bench/lag.rs"]
mod lag;

const GTIN: &str = "09501101530003";

struct Options {
    lots: u64,
    readings: u64,
    big_shipment: u64,
    index: Option<String>,
    duration_s: u64,
    connections: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        lots: 10_000,
        readings: 1_000_000,
        big_shipment: 200_000,
        index: None,
        duration_s: 10,
        connections: 8,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            bail!("flag {} needs a value", pair[0])
        };
        let number = || {
            value
                .parse::<u64>()
                .with_context(|| format!("{flag} needs a whole number, got {value}"))
        };
        match flag.as_str() {
            "--lots" => o.lots = number()?,
            "--readings" => o.readings = number()?,
            "--big-shipment" => o.big_shipment = number()?,
            "--duration" => o.duration_s = number()?,
            "--connections" => o.connections = number()?,
            "--index" => o.index = Some(value.clone()),
            other => bail!("unknown flag {other}; see the module doc"),
        }
    }
    Ok(o)
}

fn encode<M: Message>(record: &M) -> anyhow::Result<Vec<u8>> {
    Ok(record.write_to_bytes()?)
}

fn lot_name(i: u64) -> String {
    format!("L{i:06}")
}

struct Builder {
    index: std::sync::Arc<dyn index::IndexStore>,
    num: u64,
    previous: String,
}

impl Builder {
    async fn commit(
        &mut self,
        changes: Vec<StateChange>,
        readings: Vec<ReadingsBatch>,
    ) -> anyhow::Result<()> {
        let block_id = format!("{:0128x}", self.num + 1);
        let block = BlockRef {
            block_id: block_id.clone(),
            block_num: self.num,
            previous_block_id: self.previous.clone(),
            state_root: String::new(),
        };
        self.index
            .apply_block(BlockUpdate {
                block,
                changes,
                readings,
            })
            .await?;
        self.previous = block_id;
        self.num += 1;
        Ok(())
    }
}

fn change(kind: RecordKind, key: &str, bytes: Vec<u8>) -> StateChange {
    StateChange {
        address: kind.address(key),
        value: Some(bytes),
        txn_id: format!("{:0128x}", 7),
    }
}

fn lot_records(i: u64) -> anyhow::Result<Vec<StateChange>> {
    let name = lot_name(i);
    let mut profile = StorageProfile::new();
    profile.set_min_cdeg(200);
    profile.set_max_cdeg(800);
    let mut lot = Lot::new();
    lot.set_gtin(GTIN.into());
    lot.set_lot(name.clone());
    lot.set_product_name("Bench vaccine".into());
    lot.set_expiry_date(20301231);
    lot.set_quantity(100);
    lot.set_profile(profile.clone());
    lot.set_status(match i % 20 {
        0 => LotStatus::RECALLED,
        1 => LotStatus::QUARANTINED,
        _ => LotStatus::ACTIVE,
    });
    lot.set_manufacturer_org_id("maker".into());
    lot.set_custodian_org_id("pharmacy".into());
    let shipment_id = format!("SH-{name}");
    let mut shipment = Shipment::new();
    shipment.set_shipment_id(shipment_id.clone());
    let mut lot_ref = LotRef::new();
    lot_ref.set_gtin(GTIN.into());
    lot_ref.set_lot(name.clone());
    shipment.set_lots(vec![lot_ref].into());
    shipment.set_profile(profile.clone());
    shipment.set_custodian_org_id("pharmacy".into());
    for (from, to) in [("maker", "carrier"), ("carrier", "pharmacy")] {
        let mut handoff = Handoff::new();
        handoff.set_from_org_id(from.into());
        handoff.set_to_org_id(to.into());
        handoff.set_outcome(HandoffOutcome::ACCEPTED);
        shipment.mut_handoffs().push(handoff);
    }
    let mut thermal = ThermalRecord::new();
    thermal.set_subject(goods_key(GTIN, &name));
    thermal.set_profile(profile);
    thermal.set_reading_count(100);
    thermal.set_min_cdeg(450);
    thermal.set_max_cdeg(560);
    Ok(vec![
        change(RecordKind::Lot, &goods_key(GTIN, &name), encode(&lot)?),
        change(RecordKind::Shipment, &shipment_id, encode(&shipment)?),
        change(
            RecordKind::GoodsThermal,
            &goods_key(GTIN, &name),
            encode(&thermal)?,
        ),
        change(RecordKind::ShipmentThermal, &shipment_id, encode(&thermal)?),
    ])
}

fn readings_batch(shipment: &str, first: u64, count: u64) -> ReadingsBatch {
    let rows = (first..first + count)
        .map(|seq| Reading {
            sequence: seq + 1,
            time_s: 1_700_000_000 + seq * 10,
            temperature_cdeg: 500 + i32::try_from(seq % 97).unwrap_or(0) - 48,
            humidity_permille: None,
            door: 1,
        })
        .collect();
    ReadingsBatch {
        shipment_id: shipment.into(),
        device_id: "D1".into(),
        txn_id: format!("{first:0128x}"),
        position: 0,
        payload_sha512: format!("{first:0128x}"),
        readings: rows,
    }
}

async fn build(builder: &mut Builder, o: &Options, partner: &str) -> anyhow::Result<()> {
    let mut agent = Agent::new();
    agent.set_public_key(partner.into());
    agent.set_org_id("agency".into());
    agent.set_roles(vec![Role::REGULATOR]);
    let mut big = Shipment::new();
    big.set_shipment_id("BIG".into());
    big.set_custodian_org_id("carrier".into());
    let mut profile = StorageProfile::new();
    profile.set_min_cdeg(200);
    profile.set_max_cdeg(800);
    big.set_profile(profile);
    builder
        .commit(
            vec![
                change(RecordKind::Agent, partner, encode(&agent)?),
                change(RecordKind::Shipment, "BIG", encode(&big)?),
            ],
            vec![],
        )
        .await?;
    for chunk in (0..o.lots).collect::<Vec<_>>().chunks(500) {
        let mut changes = Vec::new();
        for i in chunk {
            changes.extend(lot_records(*i)?);
        }
        builder.commit(changes, vec![]).await?;
    }
    let spread = o.readings.saturating_sub(o.big_shipment);
    let per_lot = spread.checked_div(o.lots).unwrap_or(0);
    let mut pending = Vec::new();
    let mut in_block = 0;
    let emit = |batch: ReadingsBatch, pending: &mut Vec<ReadingsBatch>, in_block: &mut u64| {
        *in_block += batch.readings.len() as u64;
        let mut batch = batch;
        batch.position = u32::try_from(pending.len()).unwrap_or(0);
        pending.push(batch);
        *in_block >= 50_000
    };
    let mut jobs: Vec<(String, u64)> = (0..o.lots)
        .map(|i| (format!("SH-{}", lot_name(i)), per_lot))
        .collect();
    jobs.push(("BIG".into(), o.big_shipment));
    for (shipment, count) in jobs {
        let mut first = 0;
        while first < count {
            let n = (count - first).min(1_000);
            if emit(
                readings_batch(&shipment, first, n),
                &mut pending,
                &mut in_block,
            ) {
                builder.commit(vec![], std::mem::take(&mut pending)).await?;
                in_block = 0;
            }
            first += n;
        }
    }
    if !pending.is_empty() {
        builder.commit(vec![], pending).await?;
    }
    Ok(())
}

struct WrkResult {
    rps: f64,
    p50: String,
    p99: String,
    /// Requests wrk completed (rps × its measured duration).
    requests: f64,
    /// CPU seconds this process (the API under test) used during the run.
    api_cpu_s: f64,
    /// CPU seconds wrk used (user + system, from the wait for it).
    wrk_cpu_s: f64,
    /// 1-minute load average when the run started.
    load_at_start: String,
}

/// CPU seconds used so far by this process and by its waited-for children,
/// from `/proc/self/stat` (utime + stime, cutime + cstime) in clock ticks.
fn cpu_seconds(ticks_per_s: f64) -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold
    // spaces: the first is field 3 (state), so field n is at n - 3.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0);
    (
        (field(14) + field(15)) / ticks_per_s,
        (field(16) + field(17)) / ticks_per_s,
    )
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux if it cannot be asked).
fn clock_ticks_per_s() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|t: &f64| *t > 0.0)
        .unwrap_or(100.0)
}

fn load_average_1min() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn wrk(
    url: &str,
    paths: &[String],
    token: &str,
    o: &Options,
    dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<WrkResult> {
    let list = dir.join(format!("{name}.paths"));
    std::fs::write(&list, paths.join("\n"))?;
    let script = dir.join(format!("{name}.lua"));
    let mut lua = std::fs::File::create(&script)?;
    writeln!(
        lua,
        "local paths = {{}}\nfor line in io.lines(\"{}\") do paths[#paths + 1] = line end",
        list.display()
    )?;
    writeln!(lua, "wrk.headers[\"Authorization\"] = \"Bearer {token}\"")?;
    writeln!(
        lua,
        "request = function() return wrk.format(\"GET\", paths[math.random(#paths)]) end"
    )?;
    let ticks_per_s = clock_ticks_per_s();
    let load_at_start = load_average_1min();
    let (api_before, wrk_before) = cpu_seconds(ticks_per_s);
    let output = Command::new("wrk")
        .args([
            "-t",
            "2",
            "-c",
            &o.connections.to_string(),
            "-d",
            &format!("{}s", o.duration_s),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    if text.contains("Non-2xx") {
        bail!("{name}: some requests failed:\n{text}");
    }
    let (api_after, wrk_after) = cpu_seconds(ticks_per_s);
    // "N requests in 10.00s, …": the count wrk completed.
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0.0);
    Ok(WrkResult {
        rps: field("Requests/sec:").parse().unwrap_or(0.0),
        p50: field("50%"),
        p99: field("99%"),
        requests,
        api_cpu_s: api_after - api_before,
        wrk_cpu_s: wrk_after - wrk_before,
        load_at_start,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("lag") {
        let args = <lag::LagArgs as clap::Parser>::parse_from(std::env::args().skip(1));
        let dir = tempfile_dir()?;
        let outcome = lag::run(args, &dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        return outcome;
    }
    let o = options()?;
    let dir = tempfile_dir()?;
    let outcome = run(&o, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn run(o: &Options, dir: &std::path::Path) -> anyhow::Result<()> {
    let index_url = o
        .index
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("bench-index.db").display()));
    let partner = coldchain_processors::signing::Signer::generate();
    let api = Api::start(ApiConfig {
        bind: "127.0.0.1:0".parse()?,
        rest_url: "http://127.0.0.1:9".into(),
        component: "tcp://127.0.0.1:9".into(),
        index_url: index_url.clone(),
        follow: false,
    })
    .await?;
    let index = api.index();
    if index.head().await?.is_some() {
        bail!("index {index_url} is not empty; give a fresh --index");
    }
    let started = std::time::Instant::now();
    let mut builder = Builder {
        index: index.clone(),
        num: 0,
        previous: "0000000000000000".into(),
    };
    build(&mut builder, o, partner.public_key()).await?;
    let build_s = started.elapsed().as_secs_f64();
    let token = coldchain_api::access::new_token();
    index
        .store_token(
            &coldchain_api::access::token_digest(&token),
            partner.public_key(),
            "bench",
            0,
        )
        .await?;
    println!(
        "index: {} lots, {} readings ({} in one shipment), built in {build_s:.1} s ({index_url})",
        o.lots, o.readings, o.big_shipment
    );

    let sample: Vec<u64> = (0..o.lots)
        .step_by(usize::try_from((o.lots / 2_000).max(1)).unwrap_or(1))
        .collect();
    let verify: Vec<String> = sample
        .iter()
        .map(|i| format!("/01/{GTIN}/10/{}", lot_name(*i)))
        .collect();
    let provenance: Vec<String> = sample
        .iter()
        .map(|i| format!("/api/v1/lots/{GTIN}/{}", lot_name(*i)))
        .collect();
    let big_span = o.big_shipment * 10;
    let windows: Vec<String> = (0..500u64)
        .map(|k| {
            let from = 1_700_000_000 + (k * 7_919 % big_span.max(1));
            format!(
                "/api/v1/shipments/BIG/readings?from={from}&to={}&limit=500",
                from + 3_600
            )
        })
        .collect();
    let charts: Vec<String> = (0..100u64)
        .map(|k| {
            let from = 1_700_000_000 + (k * 7_919 % big_span.max(1));
            format!(
                "/api/v1/shipments/BIG/readings?from={from}&to={}&points=200",
                from + 86_400
            )
        })
        .collect();
    println!(
        "\n| request | requests/s | p50 | p99 | API CPU s | requests per API CPU-second | wrk CPU s | load (1 min) at start |\n|---|---|---|---|---|---|---|---|"
    );
    for (name, paths) in [
        ("verification (Digital Link)", &verify),
        ("lot provenance", &provenance),
        ("readings, 1 h window of the big shipment", &windows),
        ("chart, 1 day of the big shipment in 200 points", &charts),
    ] {
        let result = wrk(
            &api.url(),
            paths,
            &token,
            o,
            dir,
            &name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        )?;
        let per_cpu_s = if result.api_cpu_s > 0.0 {
            format!("{:.0}", result.requests / result.api_cpu_s)
        } else {
            "?".into()
        };
        println!(
            "| {name} | {:.0} | {} | {} | {:.2} | {per_cpu_s} | {:.2} | {} |",
            result.rps,
            result.p50,
            result.p99,
            result.api_cpu_s,
            result.wrk_cpu_s,
            result.load_at_start
        );
    }
    api.stop().await;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("coldchain-api-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
