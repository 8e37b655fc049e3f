//! Blood rules: which donor units a patient may receive (ABO/Rh), and the
//! default storage and transport profiles of each blood component.
//!
//! Pure functions over the generated enums; no state, no I/O. The custody
//! family calls [`is_compatible`] when a blood bank offers units and
//! [`transport_profile`] when an accepted offer opens a shipment.
//!
//! Decisions (also in `docs/families.md`):
//! - **Red cells**: the donor's ABO antigens must all be present on the
//!   patient's cells, and an RhD-positive unit only goes to an RhD-positive
//!   patient (O− gives to all, AB+ receives from all).
//! - **Fresh frozen plasma and cryoprecipitate**: the reverse ABO rule (the
//!   patient's antigens must all be present in the donor's group: AB plasma gives
//!   to all, O plasma only to O); RhD is not considered.
//! - **Whole blood**: identical ABO and RhD only.
//! - **Platelets**: ABO by the plasma rule (the concentrate carries donor plasma)
//!   and RhD by the red-cell rule (RhD-negative patients get RhD-negative
//!   platelets, to avoid sensitisation by residual red cells). Stricter than many
//!   hospitals' emergency practice, on purpose: a ledger rule cannot weigh a
//!   clinician's exception.
//! - An unset group, RhD or component is never compatible.
use crate::messages::coldchain::{AboGroup, BloodComponent, RhD, StorageProfile};

/// The ABO antigens carried by a group: (A, B).
fn antigens(group: AboGroup) -> Option<(bool, bool)> {
    match group {
        AboGroup::O => Some((false, false)),
        AboGroup::A => Some((true, false)),
        AboGroup::B => Some((false, true)),
        AboGroup::AB => Some((true, true)),
        AboGroup::ABO_UNSET => None,
    }
}

fn subset(inner: (bool, bool), outer: (bool, bool)) -> bool {
    (!inner.0 || outer.0) && (!inner.1 || outer.1)
}

fn rh_positive(rh: RhD) -> Option<bool> {
    match rh {
        RhD::POSITIVE => Some(true),
        RhD::NEGATIVE => Some(false),
        RhD::RH_UNSET => None,
    }
}

/// A donor's or a patient's blood type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BloodType {
    pub abo: AboGroup,
    pub rh: RhD,
}

impl BloodType {
    pub fn new(abo: AboGroup, rh: RhD) -> BloodType {
        BloodType { abo, rh }
    }
}

impl std::fmt::Display for BloodType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let abo = match self.abo {
            AboGroup::O => "O",
            AboGroup::A => "A",
            AboGroup::B => "B",
            AboGroup::AB => "AB",
            AboGroup::ABO_UNSET => "?",
        };
        let rh = match self.rh {
            RhD::POSITIVE => "+",
            RhD::NEGATIVE => "-",
            RhD::RH_UNSET => "?",
        };
        write!(f, "{abo}{rh}")
    }
}

/// True when a patient of type `patient` may receive `component` from a donor
/// of type `donor` (see the module doc for each component's rule).
pub fn is_compatible(component: BloodComponent, donor: BloodType, patient: BloodType) -> bool {
    let (Some(donor_abo), Some(patient_abo)) = (antigens(donor.abo), antigens(patient.abo)) else {
        return false;
    };
    let (Some(donor_pos), Some(patient_pos)) = (rh_positive(donor.rh), rh_positive(patient.rh))
    else {
        return false;
    };
    let red_cell_rh = !donor_pos || patient_pos;
    match component {
        BloodComponent::RED_CELLS => subset(donor_abo, patient_abo) && red_cell_rh,
        BloodComponent::FRESH_FROZEN_PLASMA | BloodComponent::CRYOPRECIPITATE => {
            subset(patient_abo, donor_abo)
        }
        BloodComponent::WHOLE_BLOOD => donor_abo == patient_abo && donor_pos == patient_pos,
        BloodComponent::PLATELETS => subset(patient_abo, donor_abo) && red_cell_rh,
        BloodComponent::BLOOD_COMPONENT_UNSET => false,
    }
}

struct Limits {
    name: &'static str,
    min_cdeg: i32,
    max_cdeg: i32,
    single_high_s: u64,
    single_low_s: u64,
    cumulative_high_s: u64,
    cumulative_low_s: u64,
    hard: Option<(i32, i32)>,
}

fn profile(limits: Limits) -> StorageProfile {
    let mut profile = StorageProfile::new();
    profile.set_name(limits.name.to_string());
    profile.set_min_cdeg(limits.min_cdeg);
    profile.set_max_cdeg(limits.max_cdeg);
    profile.set_max_single_high_s(limits.single_high_s);
    profile.set_max_single_low_s(limits.single_low_s);
    profile.set_max_cumulative_high_s(limits.cumulative_high_s);
    profile.set_max_cumulative_low_s(limits.cumulative_low_s);
    // One reading a minute is the expected cadence; a silent logger for ten
    // minutes is worth recording as a gap.
    profile.set_max_gap_s(600);
    if let Some((hard_min, hard_max)) = limits.hard {
        profile.set_has_hard_limits(true);
        profile.set_hard_min_cdeg(hard_min);
        profile.set_hard_max_cdeg(hard_max);
    }
    profile
}

/// Half an hour: the red-cell allowance at room temperature per occasion.
const RED_CELL_ROOM_ALLOWANCE_S: u64 = 30 * 60;

/// How `component` must be kept at a blood bank (`None` for an unset component).
pub fn storage_profile(component: BloodComponent) -> Option<StorageProfile> {
    let limits = match component {
        BloodComponent::RED_CELLS | BloodComponent::WHOLE_BLOOD => Limits {
            name: "blood storage 1-6 C",
            min_cdeg: 100,
            max_cdeg: 600,
            single_high_s: RED_CELL_ROOM_ALLOWANCE_S,
            single_low_s: 0,
            cumulative_high_s: RED_CELL_ROOM_ALLOWANCE_S,
            cumulative_low_s: 0,
            // Freezing haemolyses red cells at once.
            hard: Some((0, 3_700)),
        },
        BloodComponent::PLATELETS => platelet_limits("platelets 20-24 C agitated"),
        BloodComponent::FRESH_FROZEN_PLASMA | BloodComponent::CRYOPRECIPITATE => {
            frozen_limits("plasma frozen at or below -18 C")
        }
        BloodComponent::BLOOD_COMPONENT_UNSET => return None,
    };
    Some(profile(limits))
}

/// How `component` must be kept in transport (`None` for an unset component).
pub fn transport_profile(component: BloodComponent) -> Option<StorageProfile> {
    let limits = match component {
        BloodComponent::RED_CELLS | BloodComponent::WHOLE_BLOOD => Limits {
            name: "blood transport 1-10 C",
            min_cdeg: 100,
            max_cdeg: 1_000,
            single_high_s: RED_CELL_ROOM_ALLOWANCE_S,
            single_low_s: 0,
            cumulative_high_s: RED_CELL_ROOM_ALLOWANCE_S,
            cumulative_low_s: 0,
            hard: Some((0, 3_700)),
        },
        BloodComponent::PLATELETS => platelet_limits("platelet transport 20-24 C"),
        BloodComponent::FRESH_FROZEN_PLASMA | BloodComponent::CRYOPRECIPITATE => {
            frozen_limits("plasma transport frozen")
        }
        BloodComponent::BLOOD_COMPONENT_UNSET => return None,
    };
    Some(profile(limits))
}

fn platelet_limits(name: &'static str) -> Limits {
    Limits {
        name,
        min_cdeg: 2_000,
        max_cdeg: 2_400,
        single_high_s: 30 * 60,
        single_low_s: 30 * 60,
        cumulative_high_s: 60 * 60,
        cumulative_low_s: 60 * 60,
        // Refrigerating platelets activates them; below 10 C they are lost.
        hard: Some((1_000, 3_700)),
    }
}

fn frozen_limits(name: &'static str) -> Limits {
    Limits {
        name,
        min_cdeg: -8_000,
        max_cdeg: -1_800,
        single_high_s: 15 * 60,
        single_low_s: 0,
        cumulative_high_s: 15 * 60,
        cumulative_low_s: 0,
        // Thawed plasma cannot be refrozen.
        hard: Some((-20_000, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AboGroup::*;
    use RhD::*;

    const ALL: [BloodType; 8] = [
        BloodType {
            abo: O,
            rh: NEGATIVE,
        },
        BloodType {
            abo: O,
            rh: POSITIVE,
        },
        BloodType {
            abo: A,
            rh: NEGATIVE,
        },
        BloodType {
            abo: A,
            rh: POSITIVE,
        },
        BloodType {
            abo: B,
            rh: NEGATIVE,
        },
        BloodType {
            abo: B,
            rh: POSITIVE,
        },
        BloodType {
            abo: AB,
            rh: NEGATIVE,
        },
        BloodType {
            abo: AB,
            rh: POSITIVE,
        },
    ];

    fn receivers(component: BloodComponent, donor: BloodType) -> Vec<String> {
        ALL.iter()
            .filter(|patient| is_compatible(component, donor, **patient))
            .map(|patient| patient.to_string())
            .collect()
    }

    #[test]
    fn red_cells_follow_the_reference_table() {
        let expected: [(&str, &[&str]); 8] = [
            ("O-", &["O-", "O+", "A-", "A+", "B-", "B+", "AB-", "AB+"]),
            ("O+", &["O+", "A+", "B+", "AB+"]),
            ("A-", &["A-", "A+", "AB-", "AB+"]),
            ("A+", &["A+", "AB+"]),
            ("B-", &["B-", "B+", "AB-", "AB+"]),
            ("B+", &["B+", "AB+"]),
            ("AB-", &["AB-", "AB+"]),
            ("AB+", &["AB+"]),
        ];
        for (donor, (name, patients)) in ALL.iter().zip(expected) {
            assert_eq!(donor.to_string(), name);
            assert_eq!(
                receivers(BloodComponent::RED_CELLS, *donor),
                patients.to_vec()
            );
        }
    }

    #[test]
    fn ab_plasma_gives_to_all_and_o_plasma_only_to_o() {
        let ab = BloodType::new(AB, NEGATIVE);
        assert_eq!(receivers(BloodComponent::FRESH_FROZEN_PLASMA, ab).len(), 8);
        let o = BloodType::new(O, POSITIVE);
        assert_eq!(
            receivers(BloodComponent::FRESH_FROZEN_PLASMA, o),
            vec!["O-", "O+"]
        );
        assert_eq!(
            receivers(BloodComponent::CRYOPRECIPITATE, BloodType::new(A, POSITIVE)),
            vec!["O-", "O+", "A-", "A+"]
        );
    }

    #[test]
    fn whole_blood_goes_only_to_the_identical_type() {
        for donor in ALL {
            assert_eq!(
                receivers(BloodComponent::WHOLE_BLOOD, donor),
                vec![donor.to_string()]
            );
        }
    }

    #[test]
    fn platelets_use_plasma_abo_and_red_cell_rh() {
        assert_eq!(
            receivers(BloodComponent::PLATELETS, BloodType::new(AB, POSITIVE)),
            vec!["O+", "A+", "B+", "AB+"]
        );
        assert_eq!(
            receivers(BloodComponent::PLATELETS, BloodType::new(O, NEGATIVE)),
            vec!["O-", "O+"]
        );
    }

    #[test]
    fn unset_types_and_components_are_never_compatible() {
        let o_neg = BloodType::new(O, NEGATIVE);
        assert!(!is_compatible(
            BloodComponent::BLOOD_COMPONENT_UNSET,
            o_neg,
            o_neg
        ));
        assert!(!is_compatible(
            BloodComponent::RED_CELLS,
            BloodType::new(ABO_UNSET, NEGATIVE),
            o_neg
        ));
        assert!(!is_compatible(
            BloodComponent::RED_CELLS,
            o_neg,
            BloodType::new(AB, RH_UNSET)
        ));
    }

    #[test]
    fn every_component_has_sane_profiles() {
        for component in [
            BloodComponent::RED_CELLS,
            BloodComponent::WHOLE_BLOOD,
            BloodComponent::PLATELETS,
            BloodComponent::FRESH_FROZEN_PLASMA,
            BloodComponent::CRYOPRECIPITATE,
        ] {
            for profile in [
                storage_profile(component).unwrap(),
                transport_profile(component).unwrap(),
            ] {
                assert!(profile.get_min_cdeg() < profile.get_max_cdeg());
                assert!(profile.get_hard_min_cdeg() <= profile.get_min_cdeg());
                assert!(profile.get_hard_max_cdeg() >= profile.get_max_cdeg());
                assert!(!profile.get_name().is_empty());
            }
        }
        assert_eq!(
            transport_profile(BloodComponent::RED_CELLS)
                .unwrap()
                .get_max_cdeg(),
            1_000
        );
        assert!(storage_profile(BloodComponent::BLOOD_COMPONENT_UNSET).is_none());
    }
}
