//! Mean kinetic temperature (USP <1079>) with state kept in exact fixed point.
//!
//! `MKT = (ΔH/R) / −ln( Σ tᵢ·exp(−ΔH/(R·Tᵢ)) / Σ tᵢ )` with ΔH/R = 83 144 / 8.3144
//! = 10 000 K exactly. Dividing every term by `exp(−ΔH/(R·T_ref))` keeps the numbers
//! near one: a record stores `Σ tᵢ` (`mkt_weight_s`) and
//! `Σ tᵢ · F(Tᵢ)` (`mkt_sum`), where
//! `F(T) = round(2^48 · exp(10 000 K · (1/298.15 K − 1/T)))` (T_ref = 25 °C) is read from
//! a table over every 0.01 °C from −100 °C to +100 °C. The table is built with integer
//! arithmetic only (range reduction by ln 2 and a Taylor series in Q60 fixed point,
//! i128), so every validator on every platform writes bit-identical sums.
//! `mkt_sum` is the sum as 16 big-endian bytes of an unsigned 128-bit integer.
//!
//! Limit checks that decide state ([`mkt_exceeds`]) and the MKT a record shows
//! ([`mkt_cdeg`], which the processor writes into a compromise reason) use
//! integers only: no float result can differ between validators.
use std::sync::OnceLock;

use crate::messages::coldchain::ThermalRecord;

/// ΔH/R in kelvin (83 144 J/mol ÷ 8.3144 J/(mol·K)).
pub const ACTIVATION_KELVIN: i64 = 10_000;
/// The reference temperature of the stored factors, in hundredths of °C (25 °C).
pub const REFERENCE_CDEG: i32 = 2_500;
/// Factors are scaled by 2^48.
pub const FACTOR_SCALE_BITS: u32 = 48;
/// Lowest temperature in the factor table (−100 °C); colder readings use this factor.
pub const TABLE_MIN_CDEG: i32 = -10_000;
/// Highest temperature in the factor table (+100 °C); warmer readings use this factor.
pub const TABLE_MAX_CDEG: i32 = 10_000;
/// Length of `mkt_sum` as written by the processor.
pub const MKT_SUM_BYTES: usize = 16;

/// Q60 fixed point: 60 fractional bits.
const FRACTION_BITS: u32 = 60;
const ONE_Q60: i128 = 1 << FRACTION_BITS;
/// round(ln 2 · 2^60).
const LN2_Q60: i128 = 799_144_290_325_165_979;
/// 0 °C in hundredths of a kelvin.
const ZERO_CELSIUS_CK: i128 = 27_315;

/// Division rounded half away from zero (`den` > 0).
fn div_round(num: i128, den: i128) -> i128 {
    if num >= 0 {
        (num + den / 2) / den
    } else {
        (num - den / 2) / den
    }
}

/// `exp(x)` for `x` in Q60 (|x| < 64), returned scaled by 2^48 and rounded.
fn exp_q48(x_q60: i128) -> u64 {
    exp_scaled(x_q60, FACTOR_SCALE_BITS)
}

/// `exp(x)` for `x` in Q60, scaled by 2^`scale_bits` (≤ 60) and rounded;
/// saturates at `u64::MAX`, and is 0 below e^−60.
pub(crate) fn exp_scaled(x_q60: i128, scale_bits: u32) -> u64 {
    if x_q60 > 60 * ONE_Q60 {
        return u64::MAX;
    }
    if x_q60 < -60 * ONE_Q60 {
        return 0;
    }
    // x = n·ln2 + r with |r| ≤ ln2/2, so the series for exp(r) converges fast.
    let n = div_round(x_q60, LN2_Q60);
    let r = x_q60 - n * LN2_Q60;
    let mut term = ONE_Q60;
    let mut sum = ONE_Q60;
    let mut k: i128 = 1;
    while term != 0 && k < 64 {
        term = term * r / (k * ONE_Q60);
        sum += term;
        k += 1;
    }
    // exp(x) · 2^bits = exp(r)·2^60 · 2^(n − (60 − bits)).
    let shift = n - i128::from(FRACTION_BITS - scale_bits);
    if shift > 60 {
        return u64::MAX;
    }
    let scaled = if shift >= 0 {
        sum << shift
    } else if shift < -120 {
        0
    } else {
        let right = (-shift) as u32;
        (sum + (1 << (right - 1))) >> right
    };
    u64::try_from(scaled.max(0)).unwrap_or(u64::MAX)
}

/// `F(T)` for a temperature in hundredths of °C, computed (not from the table).
fn factor_exact(cdeg: i32) -> u64 {
    let t = ZERO_CELSIUS_CK + i128::from(cdeg);
    let t_ref = ZERO_CELSIUS_CK + i128::from(REFERENCE_CDEG);
    // 10 000 K · (1/T_ref − 1/T) with T in hundredths of a kelvin:
    // = 10 000 · 100 · (T − T_ref) / (T · T_ref).
    let num = i128::from(ACTIVATION_KELVIN) * 100 * (t - t_ref) * ONE_Q60;
    exp_q48(div_round(num, t * t_ref))
}

/// R in hundred-thousandths of J/(mol·K): 8.3144 J/(mol·K), the value the MKT uses.
const GAS_CONSTANT_E4: i128 = 83_144;

/// `exp(Ea/R · (1/T_ref − 1/T))` scaled by 2^`scale_bits`, for the Arrhenius
/// stability model: how many seconds at `reference_cdeg` one second at `cdeg`
/// counts as. Integer arithmetic only (as [`factor_q48`]); `Ea` in J/mol.
pub(crate) fn arrhenius_factor(
    activation_j_per_mol: u32,
    reference_cdeg: i32,
    cdeg: i32,
    scale_bits: u32,
) -> u64 {
    let t = ZERO_CELSIUS_CK + i128::from(cdeg.clamp(TABLE_MIN_CDEG, TABLE_MAX_CDEG));
    let t_ref = ZERO_CELSIUS_CK + i128::from(reference_cdeg.clamp(TABLE_MIN_CDEG, TABLE_MAX_CDEG));
    // Ea/R · (1/T_ref − 1/T) with T in hundredths of a kelvin and R = 83 144 / 10 000:
    // = Ea · 10 000 · 100 · (T − T_ref) / (83 144 · T · T_ref).
    let num = i128::from(activation_j_per_mol) * 1_000_000 * (t - t_ref) * ONE_Q60;
    exp_scaled(div_round(num, GAS_CONSTANT_E4 * t * t_ref), scale_bits)
}

fn table() -> &'static [u64] {
    static TABLE: OnceLock<Vec<u64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (TABLE_MIN_CDEG..=TABLE_MAX_CDEG)
            .map(factor_exact)
            .collect()
    })
}

/// `F(T)` (scaled by 2^48) for a temperature in hundredths of °C, clamped to the table.
#[inline]
pub fn factor_q48(cdeg: i32) -> u64 {
    let index = cdeg.clamp(TABLE_MIN_CDEG, TABLE_MAX_CDEG) - TABLE_MIN_CDEG;
    table()[index as usize]
}

/// The stored `mkt_sum` bytes as an integer; `None` when longer than 128 bits.
pub fn decode_sum(bytes: &[u8]) -> Option<u128> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let significant = &bytes[start..];
    if significant.len() > MKT_SUM_BYTES {
        return None;
    }
    Some(
        significant
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b)),
    )
}

/// `mkt_sum` as the processor writes it: 16 big-endian bytes.
pub fn encode_sum(sum: u128) -> Vec<u8> {
    sum.to_be_bytes().to_vec()
}

/// True when the MKT of (`weight_s`, `sum`) is above `limit_cdeg`. Integer-only:
/// MKT > L ⇔ Σ tᵢ·F(Tᵢ) > Σ tᵢ · F(L), because F grows with T.
pub fn mkt_exceeds(weight_s: u64, sum: u128, limit_cdeg: i32) -> bool {
    weight_s > 0 && sum > u128::from(weight_s) * u128::from(factor_q48(limit_cdeg))
}

/// MKT in hundredths of °C from a record's stored sums; `None` before any time
/// has been weighted or when `mkt_sum` is not a valid sum.
pub fn mkt_cdeg(record: &ThermalRecord) -> Option<i32> {
    mkt_cdeg_from_sums(record.mkt_weight_s, &record.mkt_sum)
}

/// [`mkt_cdeg`] from the two stored fields. Integer-only, so the processor may
/// write it (in a compromise reason) and every client computes the same value:
/// the table temperature whose `F` is nearest to the mean factor `Σ tᵢ·F(Tᵢ) / Σ tᵢ`
/// (the tie goes to the colder one), found by binary search, since `F` grows
/// strictly with temperature. Readings are clamped to the table, so the MKT is too.
pub fn mkt_cdeg_from_sums(weight_s: u64, sum_bytes: &[u8]) -> Option<i32> {
    let sum = decode_sum(sum_bytes)?;
    if weight_s == 0 || sum == 0 {
        return None;
    }
    let weight = u128::from(weight_s);
    let weighted = |cdeg: i32| weight.saturating_mul(u128::from(factor_q48(cdeg)));
    // Smallest table temperature whose weighted factor reaches the sum.
    let (mut low, mut high) = (TABLE_MIN_CDEG, TABLE_MAX_CDEG);
    while low < high {
        let middle = low + (high - low) / 2;
        if weighted(middle) >= sum {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    if low > TABLE_MIN_CDEG && sum - weighted(low - 1) <= weighted(low).saturating_sub(sum) {
        return Some(low - 1);
    }
    Some(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_factor(cdeg: i32) -> f64 {
        let t = (27_315.0 + f64::from(cdeg)) / 100.0;
        (10_000.0 * (1.0 / 298.15 - 1.0 / t)).exp() * 2f64.powi(48)
    }

    #[test]
    fn factor_at_reference_temperature_is_exactly_one() {
        assert_eq!(factor_q48(REFERENCE_CDEG), 1u64 << 48);
    }

    #[test]
    fn integer_factors_match_the_exponential_closely() {
        for cdeg in (TABLE_MIN_CDEG..=TABLE_MAX_CDEG).step_by(37) {
            let exact = float_factor(cdeg);
            let ours = factor_q48(cdeg) as f64;
            // Rounding to an integer dominates where factors are small (−100 °C ≈ 8 586).
            let error = (ours - exact).abs();
            assert!(error <= 0.5 + exact * 1e-12, "{cdeg}: {ours} vs {exact}");
        }
    }

    #[test]
    fn factors_grow_strictly_with_temperature() {
        let t = table();
        assert!(t.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn temperatures_outside_the_table_are_clamped() {
        assert_eq!(factor_q48(-30_000), factor_q48(TABLE_MIN_CDEG));
        assert_eq!(factor_q48(i32::MAX), factor_q48(TABLE_MAX_CDEG));
    }

    #[test]
    fn sum_round_trips_through_bytes() {
        for sum in [0u128, 1, 1 << 100, u128::MAX] {
            assert_eq!(decode_sum(&encode_sum(sum)), Some(sum));
        }
        assert_eq!(decode_sum(&[]), Some(0));
        assert_eq!(decode_sum(&[0, 0, 1, 2]), Some(258));
        assert_eq!(decode_sum(&[1; 17]), None);
    }

    fn mkt_of(periods: &[(u64, i32)]) -> Option<i32> {
        let weight: u64 = periods.iter().map(|(s, _)| s).sum();
        let sum: u128 = periods
            .iter()
            .map(|(s, c)| u128::from(*s) * u128::from(factor_q48(*c)))
            .sum();
        mkt_cdeg_from_sums(weight, &encode_sum(sum))
    }

    #[test]
    fn integer_mkt_gives_the_reference_worked_examples() {
        assert_eq!(mkt_of(&[(3_600, 500)]), Some(500));
        assert_eq!(mkt_of(&[(3_600, 200), (3_600, 2_500)]), Some(1_947));
        assert_eq!(mkt_of(&[(23 * 3_600, 500), (3_600, 2_500)]), Some(776));
        assert_eq!(mkt_of(&[(60, -30_000)]), Some(TABLE_MIN_CDEG));
        assert_eq!(mkt_of(&[(60, 30_000)]), Some(TABLE_MAX_CDEG));
        assert_eq!(mkt_cdeg_from_sums(0, &encode_sum(1)), None);
    }

    #[test]
    fn integer_mkt_agrees_with_the_formula_to_a_hundredth_of_a_degree() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let (a, b) = ((state >> 20) as i32 % 6_000, (state >> 40) as i32 % 6_000);
            let (ta, tb) = (1 + (state % 7_200), 1 + ((state >> 8) % 7_200));
            let ours = mkt_of(&[(ta, a - 2_000), (tb, b - 2_000)]).unwrap();
            let mean = (ta as f64 * float_factor(a - 2_000) + tb as f64 * float_factor(b - 2_000))
                / ((ta + tb) as f64 * 2f64.powi(48));
            let celsius = 1.0 / (1.0 / 298.15 - mean.ln() / 10_000.0) - 273.15;
            assert!(
                (f64::from(ours) - celsius * 100.0).abs() <= 1.0,
                "{ta} s at {a}, {tb} s at {b}: {ours} vs {celsius}"
            );
        }
    }

    #[test]
    fn mkt_limit_comparison_is_strict() {
        let weight = 3_600;
        let sum = u128::from(weight) * u128::from(factor_q48(800));
        assert!(!mkt_exceeds(weight, sum, 800));
        assert!(mkt_exceeds(weight, sum, 799));
        assert!(!mkt_exceeds(0, 0, 0));
    }
}
