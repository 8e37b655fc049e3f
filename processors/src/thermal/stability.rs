//! Stability budget: how much of the time a manufacturer allows outside the
//! label range a logger's readings have used, in parts per billion (10⁹ = all).
//!
//! Two models, from the product's stability data (`docs/families-sensor.md`):
//! - **Bands**: "up to 72 h in total at 8–25 °C, 12 h at 25–30 °C". Each interval
//!   between readings is counted in the first band holding the earlier reading's
//!   temperature; used = Σ_b time_b / allowed_b.
//! - **Arrhenius** (the model behind vaccine vial monitors): one second at T counts
//!   as `exp(Ea/R · (1/T_ref − 1/T))` seconds at `T_ref`; used = Σ tᵢ·F(Tᵢ) /
//!   allowed time at `T_ref`. Factors are integers (scaled by 2^32) computed with
//!   the MKT's integer exponential, one table per (Ea, T_ref).
//!
//! When both are set, the larger fraction counts. Integer arithmetic only; a
//! fraction is rounded down to the ppb, so "used up" means exactly "at least the
//! allowed time" for one band.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::messages::coldchain::{StabilityArrhenius, StorageProfile};

use super::mkt::{self, TABLE_MAX_CDEG, TABLE_MIN_CDEG};

/// The whole budget, in parts per billion.
pub const BUDGET_PPB: u64 = 1_000_000_000;
/// Arrhenius factors are scaled by 2^32.
pub const ARRHENIUS_SCALE_BITS: u32 = 32;
/// Most stability bands a profile may list.
pub const MAX_BANDS: usize = 8;
/// Activation energies accepted for the Arrhenius model, in J/mol.
pub const MIN_ACTIVATION_J_PER_MOL: u32 = 10_000;
pub const MAX_ACTIVATION_J_PER_MOL: u32 = 300_000;

/// True when the profile has a stability budget at all.
#[inline]
pub fn has_budget(profile: &StorageProfile) -> bool {
    !profile.stability_bands.is_empty() || profile.stability_arrhenius.is_some()
}

/// The index of the first band holding `cdeg`.
#[inline]
pub fn band_of(profile: &StorageProfile, cdeg: i32) -> Option<usize> {
    profile
        .stability_bands
        .iter()
        .position(|b| cdeg >= b.min_cdeg && cdeg <= b.max_cdeg)
}

type TableKey = (u32, i32);

/// The factor table of one (Ea, T_ref), over every 0.01 °C from −100 to +100 °C.
pub fn arrhenius_table(model: &StabilityArrhenius) -> Arc<Vec<u64>> {
    static TABLES: OnceLock<Mutex<BTreeMap<TableKey, Arc<Vec<u64>>>>> = OnceLock::new();
    let key = (model.activation_j_per_mol, model.reference_cdeg);
    let tables = TABLES.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut guard = match tables.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    guard
        .entry(key)
        .or_insert_with(|| {
            Arc::new(
                (TABLE_MIN_CDEG..=TABLE_MAX_CDEG)
                    .map(|cdeg| mkt::arrhenius_factor(key.0, key.1, cdeg, ARRHENIUS_SCALE_BITS))
                    .collect(),
            )
        })
        .clone()
}

/// The factor of `cdeg` in `table` (clamped to the table's range).
#[inline]
pub fn factor(table: &[u64], cdeg: i32) -> u64 {
    let index = cdeg.clamp(TABLE_MIN_CDEG, TABLE_MAX_CDEG) - TABLE_MIN_CDEG;
    table.get(index as usize).copied().unwrap_or(u64::MAX)
}

/// `numerator / denominator` in ppb, rounded down, saturating at `u64::MAX`.
fn ppb(numerator: u128, denominator: u128) -> u64 {
    if denominator == 0 {
        return u64::MAX;
    }
    let scaled = match numerator.checked_mul(u128::from(BUDGET_PPB)) {
        Some(scaled) => scaled / denominator,
        // Only a budget used many times over gets here: divide first.
        None => (numerator / denominator).saturating_mul(u128::from(BUDGET_PPB)),
    };
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// The fraction of the bands' budget used, from the seconds per band.
pub fn used_ppb_of_bands(profile: &StorageProfile, band_s: &[u64]) -> u64 {
    profile
        .stability_bands
        .iter()
        .zip(band_s.iter())
        .fold(0u64, |used, (band, seconds)| {
            used.saturating_add(ppb(u128::from(*seconds), u128::from(band.allowed_s)))
        })
}

/// The fraction used, from the seconds per band and the Arrhenius sum.
pub fn used_ppb(profile: &StorageProfile, band_s: &[u64], arrhenius_sum: u128) -> u64 {
    let bands = used_ppb_of_bands(profile, band_s);
    let arrhenius = match profile.stability_arrhenius.as_ref() {
        Some(model) => ppb(
            arrhenius_sum,
            u128::from(model.allowed_s) << ARRHENIUS_SCALE_BITS,
        ),
        None => 0,
    };
    bands.max(arrhenius)
}

/// A fraction in ppb as people read it: "37 %", "0.4 %", "100 %".
pub fn show_used(used_ppb: u64) -> String {
    // Tenths of a percent, rounded down, so 99.96 % never shows as 100 %.
    let tenths = used_ppb / 1_000_000;
    if tenths >= 100 || tenths.is_multiple_of(10) {
        format!("{} %", tenths / 10)
    } else {
        format!("{}.{} %", tenths / 10, tenths % 10)
    }
}

/// Why a profile's stability budget is not usable; `None` when it is.
pub fn profile_problem(profile: &StorageProfile) -> Option<String> {
    if profile.stability_bands.len() > MAX_BANDS {
        return Some(format!(
            "the profile lists {} stability bands; at most {MAX_BANDS} are allowed",
            profile.stability_bands.len()
        ));
    }
    for (i, band) in profile.stability_bands.iter().enumerate() {
        if band.min_cdeg > band.max_cdeg {
            return Some(format!(
                "stability band {} runs from {} to {}: its lower bound is above its upper bound",
                i + 1,
                super::show_cdeg(band.min_cdeg),
                super::show_cdeg(band.max_cdeg)
            ));
        }
        if band.allowed_s == 0 {
            return Some(format!(
                "stability band {} allows 0 s; give the allowed time in seconds (> 0), or \
                 leave the band out",
                i + 1
            ));
        }
        for (j, other) in profile.stability_bands.iter().enumerate().take(i) {
            if band.min_cdeg <= other.max_cdeg && other.min_cdeg <= band.max_cdeg {
                return Some(format!(
                    "stability bands {} and {} overlap; each temperature may belong to one band",
                    j + 1,
                    i + 1
                ));
            }
        }
    }
    if let Some(model) = profile.stability_arrhenius.as_ref() {
        if !(MIN_ACTIVATION_J_PER_MOL..=MAX_ACTIVATION_J_PER_MOL)
            .contains(&model.activation_j_per_mol)
        {
            return Some(format!(
                "the Arrhenius activation energy {} J/mol is outside \
                 {MIN_ACTIVATION_J_PER_MOL}..{MAX_ACTIVATION_J_PER_MOL} J/mol",
                model.activation_j_per_mol
            ));
        }
        if !(TABLE_MIN_CDEG..=TABLE_MAX_CDEG).contains(&model.reference_cdeg) {
            return Some(format!(
                "the Arrhenius reference temperature {} is outside -100..100 °C",
                super::show_cdeg(model.reference_cdeg)
            ));
        }
        if model.allowed_s == 0 {
            return Some(
                "the Arrhenius model allows 0 s at its reference temperature; give the allowed \
                 time in seconds (> 0)"
                    .to_string(),
            );
        }
    }
    None
}
