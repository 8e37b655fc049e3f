//! Named storage profiles for the command line (`--profile refrigerated`);
//! the profiles themselves are `coldchain_processors::thermal::presets`.
use clap::ValueEnum;
use coldchain_processors::messages::coldchain::StorageProfile;
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
