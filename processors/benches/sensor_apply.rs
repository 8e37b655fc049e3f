//! Benchmark of the sensor family's apply path, in-process on one core:
//! (1) `thermal::apply_readings` alone, in readings/s;
//! (2) `SensorHandler::apply` on a `MemoryContext` with transactions of 100
//!     readings each (gateway, devices and shipments carrying 2 lots each
//!     registered beforehand; 1, 2 and 4 loggers per shipment, each with its own
//!     track; the lots' profile has a stability budget of bands and an
//!     Arrhenius model), in transactions/s and readings/s.
//! Run: `cargo bench -p coldchain-processors --bench sensor_apply`.
//! Prints figures only; it asserts nothing about speed.
use std::hint::black_box;
use std::time::Instant;

use coldchain_processors::addressing::{gateway_key, goods_key, RecordKind};
use coldchain_processors::memory_context::MemoryContext;
use coldchain_processors::messages::coldchain::{
    Device, GatewayGrant, Lot, LotRef, LotStatus, Reading, RecordReadings, Shipment,
    StabilityArrhenius, StabilityBand, StorageProfile,
};
use coldchain_processors::sensor::{record_readings_spec, SensorHandler};
use coldchain_processors::state;
use coldchain_processors::thermal::{self, ReadingPoint};
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sawtooth_sdk::processor::handler::TransactionHandler;

const GATEWAY: &str = "02aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ORG: &str = "carrier-1";
const GTIN: &str = "09501101530003";
const READINGS_PER_TX: u64 = 100;
/// Sizes under `cargo bench`; `cargo test --benches` runs a small smoke version.
const TRANSACTIONS: u64 = 50_000;
const THERMAL_READINGS: u64 = 20_000_000;
const SMOKE_DIVISOR: u64 = 100;

fn profile() -> StorageProfile {
    let mut p = StorageProfile::new();
    p.name = "refrigerated 2-8 C".to_string();
    p.min_cdeg = 200;
    p.max_cdeg = 800;
    p.max_single_high_s = 3_600;
    p.max_single_low_s = 3_600;
    p.max_cumulative_high_s = u64::MAX / 2;
    p.max_cumulative_low_s = u64::MAX / 2;
    p.has_mkt_limit = true;
    p.mkt_limit_cdeg = 800;
    p.max_gap_s = 900;
    p
}

/// The lots' profile: the transport profile plus a stability budget (two bands
/// and a vaccine-vial-monitor-like Arrhenius model), so it is computed too.
fn lot_profile() -> StorageProfile {
    let mut p = profile();
    for (min_cdeg, max_cdeg, hours) in [(801, 2_500, 72_000), (2_501, 3_000, 12_000)] {
        let mut band = StabilityBand::new();
        band.min_cdeg = min_cdeg;
        band.max_cdeg = max_cdeg;
        band.allowed_s = hours * 3_600;
        p.stability_bands.push(band);
    }
    let mut model = StabilityArrhenius::new();
    model.activation_j_per_mol = 100_000;
    model.reference_cdeg = 3_700;
    model.allowed_s = 30_000 * 86_400;
    p.set_stability_arrhenius(model);
    p
}

/// A temperature trace around 5 °C with a short excursion to 9 °C every 1 000 readings.
fn temperature(i: u64) -> i32 {
    if i % 1_000 < 5 {
        900
    } else {
        450 + (i % 7) as i32 * 10
    }
}

/// Registers gateway `GATEWAY` for `ORG`, and per shipment `S-k` devices
/// `D-k-j` (j < `loggers`) attached to it and two lots `Lk-a`, `Lk-b` it carries.
fn setup(shipments: u64, loggers: u64) -> Result<MemoryContext, Box<dyn std::error::Error>> {
    let mut context = MemoryContext::new();
    let mut grant = GatewayGrant::new();
    grant.org_id = ORG.to_string();
    grant.public_key = GATEWAY.to_string();
    let grant_address = RecordKind::GatewayGrant.address(&gateway_key(ORG, GATEWAY));
    state::store(&mut context, grant_address, &grant)?;
    for k in 0..shipments {
        let shipment_id = format!("S-{k}");
        for j in 0..loggers {
            let device_id = format!("D-{k}-{j}");
            let mut device = Device::new();
            device.device_id = device_id.clone();
            device.org_id = ORG.to_string();
            device.attached_shipment_id = shipment_id.clone();
            state::store(
                &mut context,
                RecordKind::Device.address(&device_id),
                &device,
            )?;
        }
        let mut shipment = Shipment::new();
        shipment.shipment_id = shipment_id.clone();
        shipment.set_profile(profile());
        for name in [format!("L{k}-a"), format!("L{k}-b")] {
            let mut lot_ref = LotRef::new();
            lot_ref.gtin = GTIN.to_string();
            lot_ref.lot = name.clone();
            shipment.lots.push(lot_ref);
            let mut lot = Lot::new();
            lot.gtin = GTIN.to_string();
            lot.lot = name.clone();
            lot.status = LotStatus::ACTIVE;
            lot.set_profile(lot_profile());
            let address = RecordKind::Lot.address(&goods_key(GTIN, &name));
            state::store(&mut context, address, &lot)?;
        }
        state::store(
            &mut context,
            RecordKind::Shipment.address(&shipment_id),
            &shipment,
        )?;
    }
    Ok(context)
}

/// `transactions` requests spread round-robin over `shipments` shipments and
/// their `loggers` loggers.
fn requests(shipments: u64, loggers: u64, transactions: u64) -> Vec<TpProcessRequest> {
    (0..transactions)
        .map(|tx| {
            let k = tx % shipments;
            let j = (tx / shipments) % loggers;
            let round = tx / (shipments * loggers);
            let mut batch = RecordReadings::new();
            batch.device_id = format!("D-{k}-{j}");
            batch.shipment_id = format!("S-{k}");
            for r in 0..READINGS_PER_TX {
                let i = round * READINGS_PER_TX + r;
                let mut reading = Reading::new();
                reading.sequence = i + 1;
                reading.time_s = 1_700_000_000 + i * 60;
                reading.temperature_cdeg = temperature(i);
                batch.readings.push(reading);
            }
            let spec = record_readings_spec(&batch, ORG, GATEWAY);
            let mut header = TransactionHeader::new();
            header.set_signer_public_key(GATEWAY.to_string());
            header.set_family_version(spec.family_version.clone());
            let mut request = TpProcessRequest::new();
            request.set_header(header);
            request.set_payload(spec.payload);
            request
        })
        .collect()
}

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`); `None` elsewhere.
/// On a shared machine it gives steadier rates than wall-clock time.
fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// "`n` per CPU-second" for work that started at `cpu_start`.
fn per_cpu_second(n: u64, cpu_start: Option<u64>) -> String {
    match (cpu_start, cpu_ns()) {
        (Some(start), Some(end)) if end > start => {
            format!(
                "{:.0} per CPU-second",
                n as f64 * 1e9 / (end - start) as f64
            )
        }
        _ => "CPU time unavailable".to_string(),
    }
}

fn bench_thermal(readings: u64) -> Result<(), Box<dyn std::error::Error>> {
    let points: Vec<ReadingPoint> = (0..readings)
        .map(|i| ReadingPoint {
            time_s: 1_700_000_000 + i * 60,
            temperature_cdeg: temperature(i),
        })
        .collect();
    let mut record = thermal::new_record("S-1", &profile());
    let cpu_start = cpu_ns();
    let start = Instant::now();
    for chunk in points.chunks(READINGS_PER_TX as usize) {
        black_box(thermal::apply_readings(
            &mut record,
            "D-1",
            chunk.iter().copied(),
        )?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = per_cpu_second(readings, cpu_start);
    println!(
        "thermal::apply_readings: {readings} readings in {seconds:.3} s = {:.0} readings/s, \
         {cpu} (MKT {:?} cdeg, {} excursions, compromised: {})",
        readings as f64 / seconds,
        thermal::mkt_cdeg(&record),
        record.excursions_closed_total,
        record.compromised
    );
    Ok(())
}

fn bench_handler(
    label: &str,
    shipments: u64,
    loggers: u64,
    transactions: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut context = setup(shipments, loggers)?;
    let requests = requests(shipments, loggers, transactions);
    let handler = SensorHandler::new();
    let cpu_start = cpu_ns();
    let start = Instant::now();
    for request in &requests {
        handler.apply(request, &mut context)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let events = context.take_events().len();
    let cpu = per_cpu_second(transactions, cpu_start);
    println!(
        "SensorHandler::apply, {label}, {loggers} logger(s) per shipment: {transactions} \
         transactions x {READINGS_PER_TX} readings over {shipments} shipment(s) in \
         {seconds:.3} s = {:.0} transactions/s, \
         {:.0} readings/s; transactions: {cpu} ({events} events)",
        transactions as f64 / seconds,
        (transactions * READINGS_PER_TX) as f64 / seconds
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`) only
    // checks, on a hundredth of the work, that the benchmark still runs.
    let divisor = if std::env::args().any(|a| a == "--bench") {
        1
    } else {
        println!("sensor_apply: smoke run (use `cargo bench` for figures)");
        SMOKE_DIVISOR
    };
    bench_thermal(THERMAL_READINGS / divisor)?;
    // 500 shipments of 100 transactions each: 10 000 readings (about a week at one
    // a minute) and up to 10 excursions per record, as in real transport.
    for loggers in [1, 2, 4] {
        bench_handler("typical", 500, loggers, TRANSACTIONS / divisor)?;
    }
    // One shipment with 5 million readings: every track lists the maximum of
    // closed excursions, so each transaction decodes and encodes the largest records.
    for loggers in [1, 2, 4] {
        bench_handler("worst case", 1, loggers, TRANSACTIONS / divisor)?;
    }
    Ok(())
}
