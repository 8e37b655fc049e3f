//! Rule tests and property tests for the thermal accounting.
use proptest::prelude::*;

use super::*;

const HOUR: u64 = 3_600;

/// Refrigerated 2–8 °C with generous budgets unless a test narrows one.
fn fridge() -> StorageProfile {
    let mut p = StorageProfile::new();
    p.name = "refrigerated 2-8 C".to_string();
    p.min_cdeg = 200;
    p.max_cdeg = 800;
    p.max_single_high_s = 100 * HOUR;
    p.max_single_low_s = 100 * HOUR;
    p.max_cumulative_high_s = 100 * HOUR;
    p.max_cumulative_low_s = 100 * HOUR;
    p
}

fn points(readings: &[(u64, i32)]) -> Vec<ReadingPoint> {
    readings
        .iter()
        .map(|&(time_s, temperature_cdeg)| ReadingPoint {
            time_s,
            temperature_cdeg,
        })
        .collect()
}

fn run(profile: StorageProfile, readings: &[(u64, i32)]) -> (ThermalRecord, Vec<ThermalOutcome>) {
    let mut record = new_record("S-1", &profile);
    let outcomes = apply_readings(&mut record, "D-1", points(readings)).unwrap();
    (record, outcomes)
}

fn compromised_reason(outcomes: &[ThermalOutcome]) -> Option<String> {
    outcomes.iter().find_map(|o| match o {
        ThermalOutcome::Compromised { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

#[test]
fn counts_min_max_and_time_bounds() {
    let (r, outcomes) = run(fridge(), &[(100, 500), (160, 300), (220, 700)]);
    assert_eq!(r.reading_count, 3);
    assert_eq!((r.min_cdeg, r.max_cdeg), (300, 700));
    assert_eq!((r.first_time_s, r.last_time_s), (100, 220));
    assert_eq!(r.time_in_range_s, 120);
    assert!(outcomes.is_empty());
    assert!(!r.compromised);
}

#[test]
fn interval_is_attributed_to_the_earlier_reading() {
    // 60 s at 9 °C (above), then 120 s at 5 °C, then 30 s at 1 °C (below).
    let (r, _) = run(fridge(), &[(0, 900), (60, 500), (180, 100), (210, 500)]);
    assert_eq!(r.time_above_s, 60);
    assert_eq!(r.time_in_range_s, 120);
    assert_eq!(r.time_below_s, 30);
}

#[test]
fn excursion_opens_tracks_peak_and_closes() {
    let (r, outcomes) = run(fridge(), &[(0, 500), (60, 900), (120, 1100), (180, 500)]);
    assert_eq!(
        outcomes,
        vec![
            ThermalOutcome::ExcursionStarted {
                high: true,
                start_s: 60,
                temperature_cdeg: 900
            },
            ThermalOutcome::ExcursionEnded(ClosedExcursion {
                high: true,
                start_s: 60,
                end_s: 180,
                peak_cdeg: 1100,
                duration_s: 120
            }),
        ]
    );
    assert!(!r.has_current());
    assert_eq!(r.closed.len(), 1);
    assert_eq!(r.excursions_closed_total, 1);
    assert_eq!(r.warnings, 2);
}

#[test]
fn crossing_from_high_to_low_closes_one_excursion_and_opens_the_other() {
    let (r, outcomes) = run(fridge(), &[(0, 900), (60, 100)]);
    assert_eq!(outcomes.len(), 3);
    assert!(matches!(
        outcomes[2],
        ThermalOutcome::ExcursionStarted { high: false, .. }
    ));
    let current = r.current.as_ref().unwrap();
    assert!(!current.high);
    assert_eq!(current.peak_cdeg, 100);
}

#[test]
fn low_excursion_peak_is_the_coldest_reading() {
    let (r, _) = run(fridge(), &[(0, 100), (60, -50), (120, 150)]);
    assert_eq!(r.current.as_ref().unwrap().peak_cdeg, -50);
}

#[test]
fn long_interval_is_a_data_gap_and_not_in_range() {
    let mut p = fridge();
    p.max_gap_s = 300;
    let (r, _) = run(p, &[(0, 500), (300, 500), (1_000, 500)]);
    assert_eq!(r.time_in_range_s, 300);
    assert_eq!(r.time_in_gaps_s, 700);
    assert_eq!(r.gaps_total, 1);
    assert_eq!(
        (
            r.gaps[0].device_id.as_str(),
            r.gaps[0].from_s,
            r.gaps[0].to_s
        ),
        ("D-1", 300, 1_000)
    );
    assert_eq!(r.mkt_weight_s, 300);
}

#[test]
fn gap_limit_of_zero_records_no_gaps() {
    let (r, _) = run(fridge(), &[(0, 500), (100_000, 500)]);
    assert_eq!(r.gaps_total, 0);
    assert_eq!(r.time_in_range_s, 100_000);
}

#[test]
fn single_high_excursion_longer_than_allowed_compromises() {
    let mut p = fridge();
    p.max_single_high_s = HOUR;
    let (r, outcomes) = run(p, &[(0, 900), (HOUR, 900), (HOUR + 60, 900)]);
    assert!(r.compromised);
    assert_eq!(r.compromised_at_s, HOUR + 60);
    assert!(compromised_reason(&outcomes)
        .unwrap()
        .starts_with("single high excursion of 3660 s"));
}

#[test]
fn single_excursion_exactly_at_the_limit_is_tolerated() {
    let mut p = fridge();
    p.max_single_high_s = HOUR;
    let (r, _) = run(p, &[(0, 900), (HOUR, 500)]);
    assert!(!r.compromised);
}

#[test]
fn single_excursion_is_judged_when_it_closes() {
    let mut p = fridge();
    p.max_single_low_s = 600;
    let (r, outcomes) = run(p, &[(0, 100), (601, 500)]);
    assert!(r.compromised);
    assert!(compromised_reason(&outcomes)
        .unwrap()
        .starts_with("single low excursion"));
}

#[test]
fn separate_short_excursions_add_up_against_the_cumulative_budget() {
    let mut p = fridge();
    p.max_single_high_s = 600;
    p.max_cumulative_high_s = 1_000;
    let readings = [
        (0, 900),
        (500, 500),
        (1_000, 900),
        (1_500, 500),
        (2_000, 900),
        (2_100, 500),
    ];
    let (r, outcomes) = run(p, &readings);
    assert_eq!(r.time_above_s, 1_100);
    assert!(r.compromised);
    assert!(compromised_reason(&outcomes)
        .unwrap()
        .starts_with("cumulative time above range 1100 s"));
    assert_eq!(r.compromised_at_s, 2_100);
}

#[test]
fn cumulative_low_budget_is_separate_from_high() {
    let mut p = fridge();
    p.max_cumulative_low_s = 100;
    let (r, outcomes) = run(p, &[(0, 900), (500, 500), (600, 100), (701, 500)]);
    assert!(r.compromised);
    assert!(compromised_reason(&outcomes)
        .unwrap()
        .starts_with("cumulative time below range 101 s"));
}

#[test]
fn more_warnings_than_allowed_compromises() {
    // The Fabric design: one reading a minute, inactive after 50 warnings.
    let mut p = fridge();
    p.max_warnings = 50;
    p.max_single_high_s = 1_000 * HOUR;
    p.max_cumulative_high_s = 1_000 * HOUR;
    let fifty: Vec<(u64, i32)> = (0..50).map(|i| (i * 60, 900)).collect();
    let (mut r, _) = run(p, &fifty);
    assert_eq!(r.warnings, 50);
    assert!(!r.compromised);
    let outcomes = apply_readings(&mut r, "D-1", points(&[(3_000, 900)])).unwrap();
    assert!(r.compromised);
    assert_eq!(
        compromised_reason(&outcomes).unwrap(),
        "51 out-of-range readings exceed the limit of 50"
    );
}

#[test]
fn zero_max_warnings_means_no_warning_limit() {
    let mut p = fridge();
    p.max_single_high_s = 1_000 * HOUR;
    p.max_cumulative_high_s = 1_000 * HOUR;
    let readings: Vec<(u64, i32)> = (0..500).map(|i| (i * 60, 900)).collect();
    let (r, _) = run(p, &readings);
    assert_eq!(r.warnings, 500);
    assert!(!r.compromised);
}

#[test]
fn reading_beyond_hard_limits_compromises_at_once() {
    let mut p = fridge();
    p.has_hard_limits = true;
    p.hard_min_cdeg = -50;
    p.hard_max_cdeg = 2_500;
    let (r, outcomes) = run(p, &[(0, 500), (60, -60)]);
    assert!(r.compromised);
    assert_eq!(r.compromised_at_s, 60);
    assert_eq!(
        compromised_reason(&outcomes).unwrap(),
        "reading of -0.60 °C beyond the hard limits -0.50 °C..25.00 °C"
    );
}

#[test]
fn compromise_is_reported_once_and_sticks() {
    let mut p = fridge();
    p.max_single_high_s = 0;
    let (mut r, outcomes) = run(p, &[(0, 900), (60, 900), (120, 900)]);
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, ThermalOutcome::Compromised { .. }))
            .count(),
        1
    );
    let reason = r.compromised_reason.clone();
    apply_readings(&mut r, "D-1", points(&[(180, 500), (240, 500)])).unwrap();
    assert!(r.compromised);
    assert_eq!(r.compromised_reason, reason);
    assert_eq!(r.compromised_at_s, 60);
}

#[test]
fn mkt_limit_is_held_only_after_a_day_of_readings() {
    let mut p = StorageProfile::new();
    p.min_cdeg = 200;
    p.max_cdeg = 3_000;
    p.has_mkt_limit = true;
    p.mkt_limit_cdeg = 800;
    // 12 h at 10 °C: MKT 10 °C, but the window is too short to judge.
    let (mut r, outcomes) = run(p, &[(0, 1_000), (12 * HOUR, 1_000)]);
    assert!(outcomes.is_empty());
    assert_eq!(mkt_cdeg(&r), Some(1_000));
    let outcomes = apply_readings(&mut r, "D-1", points(&[(24 * HOUR, 1_000)])).unwrap();
    assert!(r.compromised);
    assert_eq!(
        compromised_reason(&outcomes).unwrap(),
        "mean kinetic temperature 10.00 °C exceeds the limit of 8.00 °C"
    );
}

#[test]
fn late_reading_from_a_second_logger_adds_no_time() {
    let mut r = new_record("S-1", &fridge());
    apply_readings(&mut r, "D-1", points(&[(0, 500), (600, 500)])).unwrap();
    apply_readings(&mut r, "D-2", points(&[(300, 900)])).unwrap();
    assert_eq!(r.reading_count, 3);
    assert_eq!(r.last_time_s, 600);
    assert_eq!(r.time_in_range_s, 600);
    assert_eq!(r.warnings, 1);
    assert_eq!(r.current.as_ref().unwrap().start_s, 600);
}

#[test]
fn closed_excursion_list_is_bounded_but_totals_keep_counting() {
    let mut readings = Vec::new();
    for i in 0..(MAX_LISTED as u64 + 5) {
        readings.push((i * 120, 900));
        readings.push((i * 120 + 60, 500));
    }
    let mut p = fridge();
    p.max_cumulative_high_s = u64::MAX;
    let (r, _) = run(p, &readings);
    assert_eq!(r.closed.len(), MAX_LISTED);
    assert_eq!(r.excursions_closed_total, MAX_LISTED as u64 + 5);
}

#[test]
fn corrupt_mkt_sum_is_an_error_not_a_panic() {
    let mut r = new_record("S-1", &fridge());
    r.mkt_sum = vec![1; 17];
    assert_eq!(
        apply_readings(&mut r, "D-1", points(&[(0, 500)])),
        Err(ThermalError::CorruptMktSum("S-1".to_string()))
    );
}

fn mkt_of(readings: &[(u64, i32)]) -> i32 {
    let mut p = StorageProfile::new();
    p.min_cdeg = -10_000;
    p.max_cdeg = 10_000;
    let (r, _) = run(p, readings);
    mkt_cdeg(&r).unwrap()
}

#[test]
fn mkt_of_constant_five_degrees_is_five_degrees() {
    assert!((mkt_of(&[(0, 500), (30 * 86_400, 500)]) - 500).abs() <= 2);
}

#[test]
fn mkt_of_half_two_half_twenty_five_is_19_47() {
    let m = mkt_of(&[(0, 200), (HOUR, 2_500), (2 * HOUR, 2_500)]);
    assert!((m - 1_947).abs() <= 2, "{m}");
}

#[test]
fn mkt_of_23h_five_and_1h_twenty_five_is_7_76() {
    let m = mkt_of(&[(0, 500), (23 * HOUR, 2_500), (24 * HOUR, 500)]);
    assert!((m - 776).abs() <= 2, "{m}");
}

#[test]
fn mkt_is_unknown_before_any_time_is_weighted() {
    let (r, _) = run(fridge(), &[(0, 500)]);
    assert_eq!(mkt_cdeg(&r), None);
}

fn reading_strategy() -> impl Strategy<Value = Vec<(u64, i32)>> {
    prop::collection::vec((0u64..5_000, -3_000i32..4_000), 1..150).prop_map(|steps| {
        let mut t = 1_700_000_000u64;
        steps
            .into_iter()
            .map(|(dt, c)| {
                t += dt;
                (t, c)
            })
            .collect()
    })
}

fn profile_strategy() -> impl Strategy<Value = StorageProfile> {
    (
        -2_000i32..1_000,
        0i32..3_000,
        0u64..20_000,
        0u64..50_000,
        0u32..30,
        0u64..3_000,
    )
        .prop_map(|(min, width, single, cumulative, warnings, gap)| {
            let mut p = StorageProfile::new();
            p.min_cdeg = min;
            p.max_cdeg = min + width;
            p.max_single_high_s = single;
            p.max_single_low_s = single;
            p.max_cumulative_high_s = cumulative;
            p.max_cumulative_low_s = cumulative;
            p.max_warnings = warnings;
            p.max_gap_s = gap;
            p
        })
}

proptest! {
    #[test]
    fn time_is_fully_accounted(profile in profile_strategy(), readings in reading_strategy()) {
        let (r, _) = run(profile, &readings);
        prop_assert_eq!(
            r.time_in_range_s + r.time_above_s + r.time_below_s + r.time_in_gaps_s,
            r.last_time_s - r.first_time_s
        );
        prop_assert_eq!(r.mkt_weight_s, r.time_in_range_s + r.time_above_s + r.time_below_s);
        prop_assert_eq!(r.reading_count, readings.len() as u64);
        prop_assert!(r.min_cdeg <= r.max_cdeg);
    }

    #[test]
    fn excursion_durations_add_up_to_time_out_of_range(
        profile in profile_strategy(), readings in reading_strategy()
    ) {
        let (r, _) = run(profile, &readings);
        // Only while every closed excursion is still listed.
        prop_assume!(r.closed.len() as u64 == r.excursions_closed_total);
        let closed: u64 = r.closed.iter().map(|e| e.duration_s).sum();
        let open = r.current.as_ref().map_or(0, |e| e.duration_s);
        prop_assert_eq!(closed + open, r.time_above_s + r.time_below_s);
    }

    #[test]
    fn splitting_readings_into_batches_changes_nothing(
        profile in profile_strategy(), readings in reading_strategy(), cut in 0usize..200
    ) {
        let (whole, whole_outcomes) = run(profile.clone(), &readings);
        let cut = cut.min(readings.len());
        let mut split = new_record("S-1", &profile);
        let mut outcomes = apply_readings(&mut split, "D-1", points(&readings[..cut])).unwrap();
        outcomes.extend(apply_readings(&mut split, "D-1", points(&readings[cut..])).unwrap());
        prop_assert_eq!(whole, split);
        prop_assert_eq!(whole_outcomes, outcomes);
    }

    #[test]
    fn mkt_lies_between_the_coldest_and_warmest_weighted_reading(
        readings in reading_strategy()
    ) {
        let mut p = StorageProfile::new();
        p.min_cdeg = -10_000;
        p.max_cdeg = 10_000;
        let (r, _) = run(p, &readings);
        if let Some(m) = mkt_cdeg(&r) {
            prop_assert!(m >= r.min_cdeg - 1 && m <= r.max_cdeg + 1, "{} not in {}..{}", m, r.min_cdeg, r.max_cdeg);
        }
    }

    #[test]
    fn warnings_count_out_of_range_readings(
        profile in profile_strategy(), readings in reading_strategy()
    ) {
        let out = readings
            .iter()
            .filter(|(_, c)| band(&profile, *c) != Band::InRange)
            .count() as u32;
        let (r, _) = run(profile, &readings);
        prop_assert_eq!(r.warnings, out);
    }
}
