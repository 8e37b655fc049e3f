//! Named storage profiles for the command line (`--profile refrigerated`),
//! and a product's stability budget typed as flags (`--stability-band`,
//! `--arrhenius`); the profiles themselves are
//! `coldchain_processors::thermal::presets`.
use clap::{Args, ValueEnum};
use coldchain_processors::messages::coldchain::{
    StabilityArrhenius, StabilityBand, StorageProfile,
};
use coldchain_processors::thermal::presets;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfilePreset {
    /// 2–8 °C; one excursion ≤ 1 h, ≤ 10 h above in all, ≤ 1 h below; 50 warnings; MKT ≤ 8 °C.
    Refrigerated,
    /// ≤ −18 °C (kept −25…−18 °C); excursions ≤ 1 h in one go, ≤ 4 h in all.
    Frozen,
    /// ≤ −60 °C (kept −90…−60 °C); excursions ≤ 30 min in one go, ≤ 1 h in all.
    UltraCold,
    /// 20–25 °C, excursions 15–30 °C tolerated up to 24 h; MKT ≤ 25 °C.
    ControlledRoom,
}

impl ProfilePreset {
    pub fn profile(self) -> StorageProfile {
        match self {
            ProfilePreset::Refrigerated => presets::refrigerated(),
            ProfilePreset::Frozen => presets::frozen(),
            ProfilePreset::UltraCold => presets::ultra_cold(),
            ProfilePreset::ControlledRoom => presets::controlled_room(),
        }
    }
}

/// A stability budget typed on the command line, added to a lot's profile:
/// `--stability-band 8..25=72h` (repeat) and `--arrhenius 83144@37=30d`.
#[derive(Args, Debug, Clone, Default)]
pub struct StabilityArgs {
    /// Time the product may spend in total in a temperature band outside its
    /// label range, from the manufacturer's stability data: `MIN..MAX=TIME` in
    /// °C (inclusive, 0.01 °C steps) and `h`, `d` or `min` (repeat for more bands;
    /// bands must not overlap). Example: `--stability-band 8.01..25=72h`.
    #[arg(long = "stability-band", value_name = "MIN..MAX=TIME", value_parser = parse_band)]
    pub bands: Vec<StabilityBand>,
    /// Arrhenius degradation budget (the model of vaccine vial monitors):
    /// `EA@REF=TIME` — activation energy in J/mol, reference temperature in °C,
    /// time allowed at the reference. Example: `--arrhenius 100000@37=30d`.
    #[arg(long = "arrhenius", value_name = "EA@REF=TIME", value_parser = parse_arrhenius)]
    pub arrhenius: Option<StabilityArrhenius>,
}

impl StabilityArgs {
    /// `profile` with this budget added; the registry family checks the result.
    pub fn apply_to(&self, profile: &mut StorageProfile) {
        for band in &self.bands {
            profile.stability_bands.push(band.clone());
        }
        if let Some(model) = &self.arrhenius {
            profile.set_stability_arrhenius(model.clone());
        }
    }
}

/// `8.01..25=72h` → a band.
pub fn parse_band(text: &str) -> Result<StabilityBand, String> {
    let usage = "write MIN..MAX=TIME in °C and h, d or min, for example 8.01..25=72h";
    let (range, time) = text
        .split_once('=')
        .ok_or_else(|| format!("stability band '{text}' has no '=TIME'; {usage}"))?;
    let (min, max) = range
        .split_once("..")
        .ok_or_else(|| format!("stability band '{text}' has no 'MIN..MAX' range; {usage}"))?;
    let mut band = StabilityBand::new();
    band.min_cdeg =
        parse_cdeg(min).map_err(|e| format!("stability band '{text}': {e}; {usage}"))?;
    band.max_cdeg =
        parse_cdeg(max).map_err(|e| format!("stability band '{text}': {e}; {usage}"))?;
    if band.min_cdeg > band.max_cdeg {
        return Err(format!(
            "stability band '{text}' runs from a higher to a lower temperature; {usage}"
        ));
    }
    band.allowed_s =
        parse_duration(time).map_err(|e| format!("stability band '{text}': {e}; {usage}"))?;
    Ok(band)
}

/// `100000@37=30d` → an Arrhenius model.
pub fn parse_arrhenius(text: &str) -> Result<StabilityArrhenius, String> {
    let usage = "write EA@REF=TIME (J/mol, °C, h/d/min), for example 100000@37=30d";
    let (model, time) = text
        .split_once('=')
        .ok_or_else(|| format!("Arrhenius budget '{text}' has no '=TIME'; {usage}"))?;
    let (energy, reference) = model
        .split_once('@')
        .ok_or_else(|| format!("Arrhenius budget '{text}' has no '@REF' temperature; {usage}"))?;
    let mut parsed = StabilityArrhenius::new();
    parsed.activation_j_per_mol = energy.trim().parse().map_err(|_| {
        format!("Arrhenius budget '{text}': activation energy '{energy}' is not a whole number of J/mol; {usage}")
    })?;
    parsed.reference_cdeg =
        parse_cdeg(reference).map_err(|e| format!("Arrhenius budget '{text}': {e}; {usage}"))?;
    parsed.allowed_s =
        parse_duration(time).map_err(|e| format!("Arrhenius budget '{text}': {e}; {usage}"))?;
    Ok(parsed)
}

/// "−0.5", "8", "25.01" °C → hundredths of °C, exactly (no floats).
fn parse_cdeg(text: &str) -> Result<i32, String> {
    let text = text.trim().replace('−', "-");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let bad = || format!("'{text}' is not a temperature in °C with at most two decimals");
    if whole.is_empty()
        || whole.len() > 3
        || fraction.len() > 2
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i32 = whole.parse().map_err(|_| bad())?;
    let fraction: i32 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
    let cdeg = whole * 100 + fraction;
    if cdeg > 10_000 {
        return Err(format!("'{text}' °C is outside -100..100 °C"));
    }
    Ok(if negative { -cdeg } else { cdeg })
}

/// "72h", "30d", "90min" → seconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = if let Some(n) = text.strip_suffix("min") {
        (n, 60)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3_600)
    } else if let Some(n) = text.strip_suffix('d') {
        (n, 86_400)
    } else {
        return Err(format!("time '{text}' needs a unit: h, d or min"));
    };
    let value: u64 = number.trim().parse().map_err(|_| {
        format!(
            "time '{text}' is not a whole number of {}",
            &text[number.len()..]
        )
    })?;
    if value == 0 {
        return Err(format!("time '{text}' must be more than 0"));
    }
    value
        .checked_mul(unit)
        .ok_or_else(|| format!("time '{text}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_arrhenius_parse_exactly() {
        let band = parse_band("8.01..25=72h").unwrap();
        assert_eq!(
            (band.min_cdeg, band.max_cdeg, band.allowed_s),
            (801, 2_500, 259_200)
        );
        let cold = parse_band("-0.5..-0.01=90min").unwrap();
        assert_eq!(
            (cold.min_cdeg, cold.max_cdeg, cold.allowed_s),
            (-50, -1, 5_400)
        );
        let model = parse_arrhenius("100000@37=30d").unwrap();
        assert_eq!(
            (
                model.activation_j_per_mol,
                model.reference_cdeg,
                model.allowed_s
            ),
            (100_000, 3_700, 2_592_000)
        );
    }

    #[test]
    fn bad_budgets_say_what_to_write() {
        for (text, expected) in [
            ("8..25", "has no '=TIME'"),
            ("8-25=72h", "has no 'MIN..MAX' range"),
            ("25..8=72h", "runs from a higher to a lower temperature"),
            ("8..25=72", "needs a unit"),
            ("8..25=0h", "must be more than 0"),
            ("8.001..25=1h", "at most two decimals"),
            ("8..250=1h", "outside -100..100"),
            ("x..25=1h", "is not a temperature"),
        ] {
            let error = parse_band(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(
                error.contains("for example 8.01..25=72h"),
                "{text}: {error}"
            );
        }
        let error = parse_arrhenius("fast@37=1d").unwrap_err();
        assert!(error.contains("not a whole number of J/mol"), "{error}");
        assert!(parse_arrhenius("100000=1d")
            .unwrap_err()
            .contains("no '@REF'"));
    }
}
