//! The verification verdict for a pack or lot: a pure decision over the
//! indexed Lot, Pack and thermal records. Which record proves what (block and
//! transaction ids) is attached by the caller; this module only decides.
use coldchain_processors::messages::coldchain::{Lot, LotStatus, Pack, ThermalRecord};
use serde::Serialize;

/// What a pharmacy should do with the pack, in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    AuthenticInSpec,
    Compromised,
    Recalled,
    Quarantined,
    Expired,
    AlreadyDispensed,
    Unknown,
}

/// A verdict with the reasons a person can read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub verdict: VerdictKind,
    pub reasons: Vec<String>,
}

/// What was asked and what the index holds.
pub struct VerdictInput<'a> {
    pub lot: Option<&'a Lot>,
    /// The pack record when a serial was asked for (None when absent or not asked).
    pub pack: Option<&'a Pack>,
    pub requested_serial: Option<&'a str>,
    /// The expiry printed on the pack (AI 17), as YYYYMMDD.
    pub claimed_expiry: Option<u32>,
    pub lot_thermal: Option<&'a ThermalRecord>,
    /// Today as YYYYMMDD (UTC).
    pub today: u32,
}

fn verdict(kind: VerdictKind, reasons: Vec<String>) -> Verdict {
    Verdict {
        verdict: kind,
        reasons,
    }
}

/// Decides the verdict. Order matters: a pack that is not on the ledger as
/// presented is `unknown`; then the most serious status wins (recalled,
/// compromised, quarantined), then expiry, then dispensing.
pub fn decide(input: &VerdictInput<'_>) -> Verdict {
    use VerdictKind::*;
    let Some(lot) = input.lot else {
        return verdict(
            Unknown,
            vec!["no lot with this GTIN and lot number is registered on the ledger".into()],
        );
    };
    if let Some(serial) = input.requested_serial {
        let listed = lot.get_serials().iter().any(|s| s == serial);
        match input.pack {
            Some(pack) if pack.get_lot() != lot.get_lot() => {
                return verdict(
                    Unknown,
                    vec![format!(
                        "serial {serial} belongs to lot {}, not lot {}",
                        pack.get_lot(),
                        lot.get_lot()
                    )],
                );
            }
            None if !listed => {
                return verdict(
                    Unknown,
                    vec![format!(
                        "serial {serial} is not a registered pack of lot {}",
                        lot.get_lot()
                    )],
                );
            }
            _ => {}
        }
    }
    if let Some(claimed) = input.claimed_expiry {
        if claimed != lot.get_expiry_date() {
            return verdict(
                Unknown,
                vec![format!(
                    "the expiry printed on the pack ({}) differs from the lot's registered expiry ({}): do not dispense; the pack may be counterfeit or relabelled",
                    date_text(claimed),
                    date_text(lot.get_expiry_date())
                )],
            );
        }
    }
    let last_reason = lot
        .get_history()
        .last()
        .map(|c| c.get_reason().to_string())
        .unwrap_or_default();
    let with_reason = |text: &str| {
        if last_reason.is_empty() {
            text.to_string()
        } else {
            format!("{text}: {last_reason}")
        }
    };
    match lot.get_status() {
        LotStatus::RECALLED => {
            return verdict(Recalled, vec![with_reason("the lot has been recalled")])
        }
        LotStatus::COMPROMISED => {
            return verdict(
                Compromised,
                vec![with_reason("the lot is marked compromised")],
            )
        }
        LotStatus::DESTROYED => {
            return verdict(Compromised, vec![with_reason("the lot has been destroyed")])
        }
        _ => {}
    }
    if let Some(thermal) = input.lot_thermal.filter(|t| t.get_compromised()) {
        return verdict(
            Compromised,
            vec![format!(
                "cold chain broken: {}",
                thermal.get_compromised_reason()
            )],
        );
    }
    if lot.get_status() == LotStatus::QUARANTINED {
        return verdict(Quarantined, vec![with_reason("the lot is in quarantine")]);
    }
    if lot.get_expiry_date() < input.today {
        return verdict(
            Expired,
            vec![format!(
                "the lot expired on {}",
                date_text(lot.get_expiry_date())
            )],
        );
    }
    if let Some(pack) = input.pack.filter(|p| p.get_dispensed()) {
        return verdict(
            AlreadyDispensed,
            vec![format!(
                "pack {} was already dispensed at GLN {} on {}",
                pack.get_serial(),
                pack.get_dispensed_at_gln(),
                coldchain_processors::identifiers::utc_time_text(pack.get_dispensed_at_s())
            )],
        );
    }
    if lot.get_status() == LotStatus::DISPENSED && input.requested_serial.is_none() {
        return verdict(
            AlreadyDispensed,
            vec!["every pack of the lot has been dispensed".into()],
        );
    }
    let mut reasons = vec![format!(
        "registered lot {} of {}, status active",
        lot.get_lot(),
        lot.get_product_name()
    )];
    match input.lot_thermal {
        Some(t) => {
            let excursions =
                crate::provenance::closed_excursions_total(t) + u64::from(t.has_current());
            let plural = if excursions == 1 { "" } else { "s" };
            let loggers = t
                .get_tracks()
                .iter()
                .filter(|k| !k.get_device_id().is_empty())
                .count();
            let from = match loggers {
                0 | 1 => String::new(),
                n => format!(" from {n} loggers"),
            };
            reasons.push(format!(
                "cold chain in specification over {} readings{from} ({excursions} excursion{plural} within budget)",
                t.get_reading_count(),
            ))
        }
        None => reasons.push("no cold-chain readings recorded for the lot yet".into()),
    }
    if let Some(used) = stability_budget_used(lot, input.lot_thermal) {
        reasons.push(format!(
            "stability budget used: {}",
            coldchain_processors::thermal::stability::show_used(used)
        ));
    }
    verdict(AuthenticInSpec, reasons)
}

/// The fraction (ppb) of the lot's stability budget used so far, when its
/// profile has one (`None` otherwise: nothing to show).
pub fn stability_budget_used(lot: &Lot, thermal: Option<&ThermalRecord>) -> Option<u64> {
    let profile = lot.profile.as_ref()?;
    coldchain_processors::thermal::stability::has_budget(profile)
        .then(|| thermal.map(|t| t.get_stability_used_ppb()).unwrap_or(0))
}

/// YYYYMMDD as `2027-06-30` (ISO 8601: unambiguous in every country).
pub fn date_text(yyyymmdd: u32) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        yyyymmdd / 10000,
        yyyymmdd / 100 % 100,
        yyyymmdd % 100
    )
}

/// Today's date (UTC) as YYYYMMDD, from unix seconds (the ledger's own rule).
pub fn date_of(unix_s: u64) -> u32 {
    coldchain_processors::identifiers::day_of(unix_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldchain_processors::messages::coldchain::StatusChange;

    fn lot(status: LotStatus) -> Lot {
        let mut lot = Lot::new();
        lot.set_gtin("09501101530003".into());
        lot.set_lot("L1".into());
        lot.set_product_name("Vaccine".into());
        lot.set_expiry_date(20300101);
        lot.set_serials(vec!["S1".to_string(), "S2".to_string()].into());
        lot.set_status(status);
        lot
    }

    fn input<'a>(lot: Option<&'a Lot>) -> VerdictInput<'a> {
        VerdictInput {
            lot,
            pack: None,
            requested_serial: None,
            claimed_expiry: None,
            lot_thermal: None,
            today: 20270101,
        }
    }

    #[test]
    fn a_lot_with_a_stability_budget_shows_how_much_is_used() {
        let mut lot = lot(LotStatus::ACTIVE);
        let mut profile = coldchain_processors::thermal::presets::refrigerated();
        let mut band = coldchain_processors::messages::coldchain::StabilityBand::new();
        band.set_min_cdeg(801);
        band.set_max_cdeg(2500);
        band.set_allowed_s(72 * 3600);
        profile.stability_bands.push(band);
        lot.set_profile(profile);
        let mut thermal = ThermalRecord::new();
        thermal.set_reading_count(10);
        thermal.set_stability_used_ppb(370_000_000);
        let mut asked = input(Some(&lot));
        asked.lot_thermal = Some(&thermal);
        let decided = decide(&asked);
        assert_eq!(decided.verdict, VerdictKind::AuthenticInSpec);
        assert!(
            decided
                .reasons
                .contains(&"stability budget used: 37 %".to_string()),
            "{:?}",
            decided.reasons
        );
        // No budget in the profile: nothing said about it.
        let plain = self::lot(LotStatus::ACTIVE);
        let mut asked = input(Some(&plain));
        asked.lot_thermal = Some(&thermal);
        assert!(!decide(&asked)
            .reasons
            .iter()
            .any(|r| r.contains("stability")));
    }

    #[test]
    fn active_lot_without_excursions_is_authentic_in_spec() {
        let lot = lot(LotStatus::ACTIVE);
        assert_eq!(
            decide(&input(Some(&lot))).verdict,
            VerdictKind::AuthenticInSpec
        );
    }

    #[test]
    fn missing_lot_or_unlisted_serial_is_unknown() {
        assert_eq!(decide(&input(None)).verdict, VerdictKind::Unknown);
        let lot = lot(LotStatus::ACTIVE);
        let mut asked = input(Some(&lot));
        asked.requested_serial = Some("S9");
        assert_eq!(decide(&asked).verdict, VerdictKind::Unknown);
        asked.requested_serial = Some("S1");
        assert_eq!(decide(&asked).verdict, VerdictKind::AuthenticInSpec);
    }

    #[test]
    fn mismatched_printed_expiry_is_unknown() {
        let lot = lot(LotStatus::ACTIVE);
        let mut asked = input(Some(&lot));
        asked.claimed_expiry = Some(20291231);
        let v = decide(&asked);
        assert_eq!(v.verdict, VerdictKind::Unknown);
        assert!(
            v.reasons[0]
                .contains("(2029-12-31) differs from the lot's registered expiry (2030-01-01)"),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn recall_wins_over_quarantine_and_carries_the_reason() {
        let mut recalled = lot(LotStatus::RECALLED);
        let mut change = StatusChange::new();
        change.set_reason("contamination".into());
        recalled.mut_history().push(change);
        let v = decide(&input(Some(&recalled)));
        assert_eq!(v.verdict, VerdictKind::Recalled);
        assert!(v.reasons[0].contains("contamination"));
        assert_eq!(
            decide(&input(Some(&lot(LotStatus::QUARANTINED)))).verdict,
            VerdictKind::Quarantined
        );
        assert_eq!(
            decide(&input(Some(&lot(LotStatus::COMPROMISED)))).verdict,
            VerdictKind::Compromised
        );
    }

    #[test]
    fn compromised_thermal_record_makes_an_active_lot_compromised() {
        let lot = lot(LotStatus::ACTIVE);
        let mut thermal = ThermalRecord::new();
        thermal.set_compromised(true);
        thermal.set_compromised_reason("above 8 C for 3 h".into());
        let mut asked = input(Some(&lot));
        asked.lot_thermal = Some(&thermal);
        let v = decide(&asked);
        assert_eq!(v.verdict, VerdictKind::Compromised);
        assert!(v.reasons[0].contains("above 8 C"));
    }

    #[test]
    fn expired_lot_and_dispensed_pack_are_reported() {
        let lot = lot(LotStatus::ACTIVE);
        let mut asked = input(Some(&lot));
        asked.today = 20300102;
        assert_eq!(decide(&asked).verdict, VerdictKind::Expired);
        let mut pack = Pack::new();
        pack.set_lot("L1".into());
        pack.set_serial("S1".into());
        pack.set_dispensed(true);
        let mut asked = input(Some(&lot));
        asked.requested_serial = Some("S1");
        asked.pack = Some(&pack);
        assert_eq!(decide(&asked).verdict, VerdictKind::AlreadyDispensed);
    }

    #[test]
    fn in_spec_reason_counts_every_excursion_not_only_the_listed_ones() {
        let lot = lot(LotStatus::ACTIVE);
        let mut thermal = ThermalRecord::new();
        thermal.set_reading_count(50_000);
        for _ in 0..crate::provenance::LISTED {
            thermal
                .mut_closed()
                .push(coldchain_processors::messages::coldchain::Excursion::new());
        }
        thermal.set_excursions_closed_total(140);
        let mut asked = input(Some(&lot));
        asked.lot_thermal = Some(&thermal);
        let v = decide(&asked);
        assert_eq!(v.verdict, VerdictKind::AuthenticInSpec);
        assert!(
            v.reasons[1].contains("(140 excursions within budget)"),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn dates_are_computed_from_unix_seconds() {
        assert_eq!(date_of(0), 19700101);
        assert_eq!(date_of(1_700_000_000), 20231114);
        assert_eq!(date_of(951_782_400), 20000229);
    }
}
