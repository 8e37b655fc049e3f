//! Tracks per logger, the record's summary over them, and the stability budget.
use proptest::prelude::*;

use super::stability::{self, BUDGET_PPB};
use super::*;
use crate::messages::coldchain::{StabilityArrhenius, StabilityBand};

fn fridge() -> StorageProfile {
    let mut p = StorageProfile::new();
    p.name = "refrigerated 2-8 C".to_string();
    p.min_cdeg = 200;
    p.max_cdeg = 800;
    p.max_single_high_s = 60;
    p.max_single_low_s = 3_600;
    p.max_cumulative_high_s = 600;
    p.max_cumulative_low_s = 36_000;
    p.max_gap_s = 900;
    p
}

const DIGEST: [u8; 64] = [7; 64];

/// Applies one batch of `(time, cdeg)` of `device` in `shipment`.
fn feed(
    record: &mut ThermalRecord,
    shipment: &str,
    device: &str,
    readings: &[(u64, i32)],
) -> Vec<ThermalOutcome> {
    let points = readings
        .iter()
        .map(|&(time_s, temperature_cdeg)| ReadingPoint {
            time_s,
            temperature_cdeg,
        });
    record_logger_readings(
        record,
        shipment,
        device,
        points,
        &DIGEST,
        MAX_LISTED_PER_TRACK,
    )
    .expect("applies")
}

fn compromised(outcomes: &[ThermalOutcome]) -> Option<&str> {
    outcomes.iter().find_map(|o| match o {
        ThermalOutcome::Compromised { reason, .. } => Some(reason.as_str()),
        _ => None,
    })
}

/// The defect of issue 13: TRK-42 above 8 °C for 80 s while TRK-43 in the same
/// shipment stays in range. Merged in commit order, every TRK-43 reading
/// "closed" TRK-42's excursion (21 excursions of 0–2 s, in specification).
#[test]
fn a_second_logger_in_range_does_not_close_the_first_loggers_excursion() {
    let mut record = new_record("S-1", &fridge());
    let mut outcomes = Vec::new();
    for step in 0..=42u64 {
        let t = 1_000 + step * 2;
        let warm = if (5..=45).contains(&step) { 1_100 } else { 500 };
        outcomes.extend(feed(&mut record, "S-1", "TRK-42", &[(t, warm)]));
        outcomes.extend(feed(&mut record, "S-1", "TRK-43", &[(t + 1, 500)]));
    }
    let hot = track_of(&record, "S-1", "TRK-42").expect("TRK-42 has a track");
    let cool = track_of(&record, "S-1", "TRK-43").expect("TRK-43 has a track");
    assert_eq!(hot.excursions_closed_total, 0, "one excursion, still open");
    let open = hot.current.as_ref().expect("TRK-42's excursion is open");
    assert_eq!((open.start_s, open.duration_s), (1_010, 74));
    assert_eq!(hot.time_above_s, 74);
    assert!(hot.compromised, "74 s > 60 s single-excursion limit");
    assert_eq!(cool.time_above_s, 0);
    assert_eq!(cool.warnings, 0);
    assert!(!cool.compromised);

    assert!(record.compromised);
    assert_eq!(
        record.compromised_reason,
        "single high excursion of 62 s since 1010 exceeds the limit of 60 s (logger TRK-42)"
    );
    assert_eq!(record.compromised_at_s, 1_072);
    assert_eq!(
        compromised(&outcomes),
        Some(record.compromised_reason.as_str())
    );
    let shown = record
        .current
        .as_ref()
        .expect("the summary shows the open excursion");
    assert_eq!(shown.device_id, "TRK-42");
    assert_eq!(record.time_above_s, 74, "the worst logger's time above");
    assert_eq!(record.reading_count, 86);
    assert_eq!((record.min_cdeg, record.max_cdeg), (500, 1_100));
}

#[test]
fn each_logger_keeps_its_own_readings_chain() {
    let mut record = new_record("S-1", &fridge());
    feed(&mut record, "S-1", "A", &[(10, 500)]);
    feed(&mut record, "S-1", "B", &[(11, 500)]);
    feed(&mut record, "S-1", "A", &[(20, 500)]);
    let a = track_of(&record, "S-1", "A").unwrap();
    let b = track_of(&record, "S-1", "B").unwrap();
    let once = next_chain_head("", &DIGEST).unwrap();
    let twice = next_chain_head(&once, &DIGEST).unwrap();
    assert_eq!(
        (a.readings_batches, a.readings_chain_head.as_str()),
        (2, twice.as_str())
    );
    assert_eq!(
        (b.readings_batches, b.readings_chain_head.as_str()),
        (1, once.as_str())
    );
    assert_eq!(
        record.readings_batches, 3,
        "the record's chain covers every batch"
    );
}

#[test]
fn a_shipment_without_a_reporting_logger_for_longer_than_max_gap_has_a_gap() {
    let mut record = new_record("S-1", &fridge());
    // Logger A reports until 600 s and is detached; B is attached at 3 000 s.
    let a: Vec<(u64, i32)> = (0..=10).map(|i| (i * 60, 500)).collect();
    let b: Vec<(u64, i32)> = (50..=60).map(|i| (i * 60, 500)).collect();
    feed(&mut record, "S-1", "A", &a);
    feed(&mut record, "S-1", "B", &b);
    assert_eq!(record.gaps.len(), 1);
    assert_eq!((record.gaps[0].from_s, record.gaps[0].to_s), (600, 3_000));
    assert_eq!(record.gaps[0].device_id, "", "no logger was reporting");
    assert_eq!(record.gaps_total, 1);
    assert_eq!(record.time_in_gaps_s, 2_400);
    // Overlapping loggers leave no gap.
    let mut covered = new_record("S-2", &fridge());
    feed(&mut covered, "S-2", "A", &a);
    let c: Vec<(u64, i32)> = (5..=60).map(|i| (i * 60, 500)).collect();
    feed(&mut covered, "S-2", "C", &c);
    assert!(covered.gaps.is_empty());
    assert_eq!(covered.gaps_total, 0);
}

#[test]
fn a_lot_adds_the_worst_logger_of_each_shipment() {
    let mut profile = fridge();
    profile.max_single_high_s = 3_600;
    profile.max_cumulative_high_s = 500;
    let mut lot = new_record("09501101530003/L1", &profile);
    // Shipment 1: A is 300 s above, B 100 s: the leg counts 300 s.
    feed(&mut lot, "S-1", "A", &[(0, 900), (300, 500)]);
    feed(&mut lot, "S-1", "B", &[(0, 900), (100, 500)]);
    assert_eq!(lot.time_above_s, 300);
    assert!(!lot.compromised);
    // Shipment 2: C is 250 s above: 550 s over two shipments > 500 s.
    let outcomes = feed(&mut lot, "S-2", "C", &[(1_000, 900), (1_250, 500)]);
    assert_eq!(lot.time_above_s, 550);
    assert!(lot.compromised);
    assert_eq!(
        lot.compromised_reason,
        "cumulative time above range 550 s over 2 shipments exceeds the limit of 500 s"
    );
    assert!(compromised(&outcomes).is_some());
    assert_eq!(lot.tracks.len(), 3);
}

#[test]
fn a_record_from_sensor_family_1_0_becomes_a_frozen_track() {
    let profile = fridge();
    let mut old = new_record("S-1", &profile);
    apply_readings(
        &mut old,
        "D-1",
        [(0, 500), (60, 900), (90, 500)].map(|(t, c)| ReadingPoint {
            time_s: t,
            temperature_cdeg: c,
        }),
    )
    .unwrap();
    old.readings_batches = 1;
    assert_eq!(old.closed.len(), 1);
    let mut record = old.clone();
    feed(&mut record, "S-1", "D-1", &[(120, 500)]);
    assert_eq!(record.tracks.len(), 2);
    let legacy = track_of(&record, "", "").expect("the 1.0 figures are kept");
    assert_eq!(legacy.reading_count, 3);
    assert_eq!(legacy.time_above_s, 30);
    assert_eq!(legacy.closed.len(), 1);
    assert_eq!(record.reading_count, 4);
    assert_eq!(record.time_above_s, 30);
    assert_eq!(record.readings_batches, 2);
}

#[test]
fn stability_bands_worked_example() {
    // "Up to 72 h at 8–25 °C and 12 h at 25–30 °C in total": 36 h at 10 °C and
    // 3 h at 27 °C use 36/72 + 3/12 = 0.5 + 0.25 = 75 %.
    let mut profile = fridge();
    profile.max_single_high_s = u64::MAX;
    profile.max_cumulative_high_s = u64::MAX;
    profile.max_gap_s = 0;
    profile.stability_bands.push(band(801, 2_500, 72 * 3_600));
    profile.stability_bands.push(band(2_501, 3_000, 12 * 3_600));
    let mut record = new_record("L1", &profile);
    feed(
        &mut record,
        "S-1",
        "A",
        &[(0, 1_000), (36 * 3_600, 2_700), (39 * 3_600, 500)],
    );
    assert_eq!(record.stability_used_ppb, 750_000_000);
    assert_eq!(stability::show_used(record.stability_used_ppb), "75 %");
    assert!(!record.compromised);
    // 9 more hours at 27 °C: 0.5 + 12/12 = 150 % at the next reading, which
    // compromises the lot (a budget is judged at each reading).
    feed(
        &mut record,
        "S-1",
        "A",
        &[(40 * 3_600, 2_700), (49 * 3_600, 500)],
    );
    assert!(record.compromised);
    assert!(
        record
            .compromised_reason
            .starts_with("stability budget used up (150 % of"),
        "{}",
        record.compromised_reason
    );
}

fn band(min_cdeg: i32, max_cdeg: i32, allowed_s: u64) -> StabilityBand {
    let mut band = StabilityBand::new();
    band.min_cdeg = min_cdeg;
    band.max_cdeg = max_cdeg;
    band.allowed_s = allowed_s;
    band
}

fn arrhenius(activation_j_per_mol: u32, reference_cdeg: i32, allowed_s: u64) -> StorageProfile {
    let mut profile = fridge();
    profile.max_single_high_s = u64::MAX;
    profile.max_cumulative_high_s = u64::MAX;
    profile.max_gap_s = 0;
    let mut model = StabilityArrhenius::new();
    model.activation_j_per_mol = activation_j_per_mol;
    model.reference_cdeg = reference_cdeg;
    model.allowed_s = allowed_s;
    profile.set_stability_arrhenius(model);
    profile
}

#[test]
fn arrhenius_time_at_the_reference_temperature_counts_one_for_one() {
    // 10 h at 25 °C of 100 h allowed at 25 °C: exactly 10 %.
    let mut record = new_record("L1", &arrhenius(83_144, 2_500, 100 * 3_600));
    feed(&mut record, "S-1", "A", &[(0, 2_500), (10 * 3_600, 2_500)]);
    assert_eq!(record.stability_used_ppb, 100_000_000);
    assert_eq!(stability::show_used(record.stability_used_ppb), "10 %");
}

#[test]
fn arrhenius_worked_example_by_hand() {
    // Ea = 83 144 J/mol, so Ea/R = 10 000 K. One hour at 35 °C counts as
    // exp(10 000 · (1/298.15 − 1/308.15)) = exp(1.088 4) = 2.969 8 hours at 25 °C;
    // of 100 h allowed, that is 2.969 8 % (2 969 8xx xxx ppb).
    let mut record = new_record("L1", &arrhenius(83_144, 2_500, 100 * 3_600));
    feed(&mut record, "S-1", "A", &[(0, 3_500), (3_600, 2_500)]);
    let by_hand = 29_698_000u64;
    let used = record.stability_used_ppb;
    assert!(used.abs_diff(by_hand) < 10_000, "{used} ppb");
    let exact = (10_000f64 * (1.0 / 298.15 - 1.0 / 308.15)).exp() / 100.0 * 1e9;
    assert!((used as f64 - exact).abs() < 2.0, "{used} vs {exact}");
    assert_eq!(stability::show_used(used), "2.9 %");
}

#[test]
fn a_vaccine_vial_monitor_style_budget_is_used_up_at_its_reference_time() {
    // VVM-like: 30 days allowed at 37 °C with Ea = 100 kJ/mol; 30 days at 37 °C
    // use it all (reaching 100 % compromises), 29 days do not.
    let profile = arrhenius(100_000, 3_700, 30 * 86_400);
    let mut record = new_record("L1", &profile);
    feed(&mut record, "S-1", "A", &[(0, 3_700), (29 * 86_400, 3_700)]);
    assert!(!record.compromised);
    assert!(record.stability_used_ppb < BUDGET_PPB);
    feed(&mut record, "S-1", "A", &[(30 * 86_400, 3_700)]);
    assert!(record.compromised, "{}", record.stability_used_ppb);
    // Colder storage uses it much more slowly: 30 days at 5 °C.
    let mut cold = new_record("L2", &profile);
    feed(&mut cold, "S-1", "A", &[(0, 500), (30 * 86_400, 500)]);
    assert!(
        cold.stability_used_ppb < BUDGET_PPB / 50,
        "{}",
        cold.stability_used_ppb
    );
}

#[test]
fn stability_profiles_are_validated() {
    let mut profile = fridge();
    assert_eq!(stability::profile_problem(&profile), None);
    profile.stability_bands.push(band(801, 2_500, 3_600));
    profile.stability_bands.push(band(2_000, 3_000, 3_600));
    assert_eq!(
        stability::profile_problem(&profile).as_deref(),
        Some("stability bands 1 and 2 overlap; each temperature may belong to one band")
    );
    let mut zero = fridge();
    zero.stability_bands.push(band(801, 2_500, 0));
    assert!(stability::profile_problem(&zero)
        .unwrap()
        .contains("allows 0 s"));
    let wild = arrhenius(5, 2_500, 3_600);
    assert!(stability::profile_problem(&wild)
        .unwrap()
        .contains("activation energy 5 J/mol"));
}

/// A batch of one logger in one shipment: (shipment, device, readings).
type Batch = (String, String, Vec<(u64, i32)>);
/// A logger's readings in one shipment: (shipment, device, readings).
type Logger<'a> = (&'a str, &'a str, Vec<(u64, i32)>);

/// One logger's readings: (time offset, cdeg), times non-decreasing.
fn logger_readings() -> impl Strategy<Value = Vec<(u64, i32)>> {
    prop::collection::vec((0u64..400, -300i32..1_500), 1..40).prop_map(|steps| {
        let mut t = 0;
        steps
            .into_iter()
            .map(|(dt, c)| {
                t += dt;
                (t, c)
            })
            .collect()
    })
}

/// Splits each logger's readings into batches and returns them in one commit
/// order chosen by `order` (a logger's batches keep their own order).
fn interleave(loggers: &[Logger<'_>], cuts: &[usize], order: &[usize]) -> Vec<Batch> {
    let mut queues: Vec<std::collections::VecDeque<Vec<(u64, i32)>>> = loggers
        .iter()
        .enumerate()
        .map(|(i, (_, _, readings))| {
            let size = 1 + cuts[i % cuts.len()] % 7;
            readings.chunks(size).map(|c| c.to_vec()).collect()
        })
        .collect();
    let mut batches = Vec::new();
    let mut k = 0;
    while queues.iter().any(|q| !q.is_empty()) {
        let pick = order[k % order.len()] % queues.len();
        k += 1;
        let chosen = (0..queues.len())
            .map(|j| (pick + j) % queues.len())
            .find(|j| !queues[*j].is_empty())
            .unwrap_or(0);
        if let Some(batch) = queues[chosen].pop_front() {
            let (shipment, device, _) = &loggers[chosen];
            batches.push((shipment.to_string(), device.to_string(), batch));
        }
    }
    batches
}

fn without_commit_order(record: &ThermalRecord) -> ThermalRecord {
    let mut copy = record.clone();
    copy.readings_chain_head.clear();
    copy.readings_batches = 0;
    copy
}

proptest! {
    #[test]
    fn commit_order_of_loggers_changes_no_track_and_no_verdict(
        a in logger_readings(),
        b in logger_readings(),
        c in logger_readings(),
        cuts in prop::collection::vec(0usize..100, 3),
        first in prop::collection::vec(0usize..3, 1..20),
        second in prop::collection::vec(0usize..3, 1..20),
    ) {
        let mut profile = fridge();
        profile.max_single_high_s = 120;
        profile.max_cumulative_high_s = 900;
        profile.max_warnings = 30;
        profile.stability_bands.push(band(801, 1_500, 2_000));
        let loggers = [("S-1", "A", a), ("S-1", "B", b), ("S-1", "C", c)];
        let mut one = new_record("S-1", &profile);
        let mut other = new_record("S-1", &profile);
        for (shipment, device, batch) in interleave(&loggers, &cuts, &first) {
            feed(&mut one, &shipment, &device, &batch);
        }
        for (shipment, device, batch) in interleave(&loggers, &cuts, &second) {
            feed(&mut other, &shipment, &device, &batch);
        }
        prop_assert_eq!(without_commit_order(&one), without_commit_order(&other));
    }
}
