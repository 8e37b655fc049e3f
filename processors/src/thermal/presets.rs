//! Named storage profiles (the storage classes and WHO shipping-indicator
//! limits of `../shared/REFERENCE.md`) for clients: the CLI's `--profile`,
//! the demo, benchmarks. Data only; the rules that use a profile are in
//! [`super`]. Temperatures in hundredths of °C, times in seconds.
use crate::messages::coldchain::StorageProfile;

const HOUR: u64 = 3600;

/// 2–8 °C; one excursion ≤ 1 h, ≤ 10 h above in all, ≤ 1 h below; 50 warnings; MKT ≤ 8 °C.
pub fn refrigerated() -> StorageProfile {
    let mut p = StorageProfile::new();
    p.set_name("refrigerated 2-8 C".into());
    p.set_min_cdeg(200);
    p.set_max_cdeg(800);
    p.set_max_single_high_s(HOUR);
    p.set_max_single_low_s(HOUR);
    p.set_max_cumulative_high_s(10 * HOUR);
    p.set_max_cumulative_low_s(HOUR);
    p.set_max_warnings(50);
    p.set_has_mkt_limit(true);
    p.set_mkt_limit_cdeg(800);
    p.set_max_gap_s(15 * 60);
    p.set_has_hard_limits(true);
    p.set_hard_min_cdeg(-50);
    p.set_hard_max_cdeg(4500);
    p
}

/// ≤ −18 °C (kept −25…−18 °C); excursions ≤ 1 h in one go, ≤ 4 h in all.
pub fn frozen() -> StorageProfile {
    let mut p = StorageProfile::new();
    p.set_name("frozen -25 to -18 C".into());
    p.set_min_cdeg(-2500);
    p.set_max_cdeg(-1800);
    p.set_max_single_high_s(HOUR);
    p.set_max_single_low_s(24 * HOUR);
    p.set_max_cumulative_high_s(4 * HOUR);
    p.set_max_cumulative_low_s(24 * HOUR);
    p.set_max_gap_s(15 * 60);
    p
}

/// ≤ −60 °C (kept −90…−60 °C); excursions ≤ 30 min in one go, ≤ 1 h in all.
pub fn ultra_cold() -> StorageProfile {
    let mut p = StorageProfile::new();
    p.set_name("ultra-cold -90 to -60 C".into());
    p.set_min_cdeg(-9000);
    p.set_max_cdeg(-6000);
    p.set_max_single_high_s(HOUR / 2);
    p.set_max_single_low_s(HOUR);
    p.set_max_cumulative_high_s(HOUR);
    p.set_max_cumulative_low_s(HOUR);
    p.set_max_gap_s(15 * 60);
    p
}

/// 20–25 °C, excursions 15–30 °C tolerated up to 24 h; MKT ≤ 25 °C.
pub fn controlled_room() -> StorageProfile {
    let mut p = StorageProfile::new();
    p.set_name("controlled room temperature 20-25 C".into());
    p.set_min_cdeg(2000);
    p.set_max_cdeg(2500);
    p.set_max_single_high_s(24 * HOUR);
    p.set_max_single_low_s(24 * HOUR);
    p.set_max_cumulative_high_s(72 * HOUR);
    p.set_max_cumulative_low_s(72 * HOUR);
    p.set_has_mkt_limit(true);
    p.set_mkt_limit_cdeg(2500);
    p.set_max_gap_s(60 * 60);
    p.set_has_hard_limits(true);
    p.set_hard_min_cdeg(1500);
    p.set_hard_max_cdeg(3000);
    p
}
