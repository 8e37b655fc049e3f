//! Validation: may this reading enter the queue?
//!
//! Pure functions over a reading, the device's progress so far and the clock.
//! They decide only what the gateway can know locally (plausibility, clock,
//! sequence order); whether a reading is acceptable to the ledger stays the
//! sensor transaction processor's decision.
use crate::protocol::DeviceReading;

/// Why a reading (or a message that should have held readings) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Malformed,
    BadChecksum,
    UnknownDevice,
    WrongOrg,
    WrongPort,
    ImpossibleValue,
    ClockSkew,
    TooOld,
    Duplicate,
    OutOfOrder,
    TimeRegressed,
    QueueFull,
    LedgerInvalid,
    TooLarge,
}

impl Reason {
    /// Every reason, for metrics that list zero counts too.
    pub const ALL: [Reason; 14] = [
        Reason::Malformed,
        Reason::BadChecksum,
        Reason::UnknownDevice,
        Reason::WrongOrg,
        Reason::WrongPort,
        Reason::ImpossibleValue,
        Reason::ClockSkew,
        Reason::TooOld,
        Reason::Duplicate,
        Reason::OutOfOrder,
        Reason::TimeRegressed,
        Reason::QueueFull,
        Reason::LedgerInvalid,
        Reason::TooLarge,
    ];

    /// Stable label for metrics, logs and the dead-letter store.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::BadChecksum => "bad_checksum",
            Reason::UnknownDevice => "unknown_device",
            Reason::WrongOrg => "wrong_org",
            Reason::WrongPort => "wrong_port",
            Reason::ImpossibleValue => "impossible_value",
            Reason::ClockSkew => "clock_skew",
            Reason::TooOld => "too_old",
            Reason::Duplicate => "duplicate",
            Reason::OutOfOrder => "out_of_order",
            Reason::TimeRegressed => "time_regressed",
            Reason::QueueFull => "queue_full",
            Reason::LedgerInvalid => "ledger_invalid",
            Reason::TooLarge => "too_large",
        }
    }

    /// Inverse of [`Reason::label`].
    pub fn from_label(label: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.label() == label)
    }

    /// [`Reason::from_label`] for input from people (a `--reason` option):
    /// an unknown label is an error that lists the valid ones.
    pub fn parse(label: &str) -> Result<Reason, UnknownReason> {
        Reason::from_label(label).ok_or_else(|| UnknownReason(label.to_string()))
    }

    /// True for refusals of readings the gateway already holds (a resend): not
    /// a fault of the message that carries them.
    pub fn is_resend(self) -> bool {
        matches!(self, Reason::Duplicate | Reason::OutOfOrder)
    }
}

/// A reason label that does not exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a refusal reason; use one of: {list}", list = Reason::ALL.map(Reason::label).join(", "))]
pub struct UnknownReason(pub String);

/// A refusal with the offending detail, for logs and the dead-letter store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// What the queue remembers about a device: its last accepted reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceProgress {
    pub last_sequence: u64,
    pub last_time_s: u64,
}

/// Limits of what a logger can plausibly report.
#[derive(Clone, Copy, Debug)]
pub struct Plausibility {
    /// Readings dated later than now + this are clock skew.
    pub clock_skew_tolerance_s: u64,
    /// Readings older than now − this are refused.
    pub max_backlog_age_s: u64,
}

/// Coldest and hottest temperature a cold-chain logger can honestly report (°C × 100):
/// below −100 °C or above +100 °C the sensor is broken.
pub const TEMPERATURE_LIMITS_CDEG: (i32, i32) = (-10_000, 10_000);

/// Decides whether `reading` may be queued after `progress`, at wall-clock `now_s`.
pub fn judge_reading(
    reading: &DeviceReading,
    progress: DeviceProgress,
    now_s: u64,
    limits: Plausibility,
) -> Result<(), Rejection> {
    let (coldest, hottest) = TEMPERATURE_LIMITS_CDEG;
    if reading.sequence == 0 {
        return Err(Rejection::new(
            Reason::ImpossibleValue,
            "sequence 0; loggers count from 1",
        ));
    }
    if !(coldest..=hottest).contains(&reading.temperature_cdeg) {
        return Err(Rejection::new(
            Reason::ImpossibleValue,
            format!(
                "temperature {} cdeg is outside -100..100 °C",
                reading.temperature_cdeg
            ),
        ));
    }
    if let Some(h) = reading.humidity_permille.filter(|h| *h > 1000) {
        return Err(Rejection::new(
            Reason::ImpossibleValue,
            format!("humidity {h} per mille is above 1000"),
        ));
    }
    if let Some((lat, lon)) = reading.location {
        if lat.unsigned_abs() > 90_000_000 || lon.unsigned_abs() > 180_000_000 {
            return Err(Rejection::new(
                Reason::ImpossibleValue,
                format!("location {lat};{lon} udeg is off the globe"),
            ));
        }
    }
    if reading.time_s > now_s.saturating_add(limits.clock_skew_tolerance_s) {
        return Err(Rejection::new(
            Reason::ClockSkew,
            format!(
                "reading time {} is {} s ahead of the gateway clock (tolerance {} s)",
                reading.time_s,
                reading.time_s - now_s,
                limits.clock_skew_tolerance_s
            ),
        ));
    }
    if reading.time_s < now_s.saturating_sub(limits.max_backlog_age_s) {
        return Err(Rejection::new(
            Reason::TooOld,
            format!(
                "reading time {} is more than {} s in the past",
                reading.time_s, limits.max_backlog_age_s
            ),
        ));
    }
    if reading.sequence == progress.last_sequence {
        return Err(Rejection::new(
            Reason::Duplicate,
            format!("sequence {} already queued", reading.sequence),
        ));
    }
    if reading.sequence < progress.last_sequence {
        return Err(Rejection::new(
            Reason::OutOfOrder,
            format!(
                "sequence {} after {}",
                reading.sequence, progress.last_sequence
            ),
        ));
    }
    if reading.time_s < progress.last_time_s {
        return Err(Rejection::new(
            Reason::TimeRegressed,
            format!(
                "time {} is before the previous reading's {}",
                reading.time_s, progress.last_time_s
            ),
        ));
    }
    Ok(())
}

/// True when `temperature_cdeg` lies inside the shipment's range (inclusive).
pub fn in_range(temperature_cdeg: i32, range: crate::config::ShipmentRange) -> bool {
    (range.min_cdeg..=range.max_cdeg).contains(&temperature_cdeg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_790_000_000;
    const LIMITS: Plausibility = Plausibility {
        clock_skew_tolerance_s: 300,
        max_backlog_age_s: 86_400,
    };

    fn reading(sequence: u64, time_s: u64, temperature_cdeg: i32) -> DeviceReading {
        DeviceReading {
            device_id: "D1".into(),
            sequence,
            time_s,
            temperature_cdeg,
            humidity_permille: None,
            door: None,
            location: None,
        }
    }

    fn reason(r: &DeviceReading, progress: DeviceProgress) -> Option<Reason> {
        judge_reading(r, progress, NOW, LIMITS)
            .err()
            .map(|e| e.reason)
    }

    #[test]
    fn plausible_next_reading_is_accepted() {
        let progress = DeviceProgress {
            last_sequence: 4,
            last_time_s: NOW - 60,
        };
        assert_eq!(reason(&reading(5, NOW, 450), progress), None);
    }

    #[test]
    fn impossible_values_are_refused() {
        let fresh = DeviceProgress::default();
        assert_eq!(
            reason(&reading(1, NOW, 12_000), fresh),
            Some(Reason::ImpossibleValue)
        );
        assert_eq!(
            reason(&reading(0, NOW, 400), fresh),
            Some(Reason::ImpossibleValue)
        );
        let humid = DeviceReading {
            humidity_permille: Some(1001),
            ..reading(1, NOW, 400)
        };
        assert_eq!(reason(&humid, fresh), Some(Reason::ImpossibleValue));
        let lost = DeviceReading {
            location: Some((91_000_000, 0)),
            ..reading(1, NOW, 400)
        };
        assert_eq!(reason(&lost, fresh), Some(Reason::ImpossibleValue));
    }

    #[test]
    fn future_beyond_tolerance_is_clock_skew_but_backlog_is_fine() {
        let fresh = DeviceProgress::default();
        assert_eq!(
            reason(&reading(1, NOW + 301, 400), fresh),
            Some(Reason::ClockSkew)
        );
        assert_eq!(reason(&reading(1, NOW + 300, 400), fresh), None);
        assert_eq!(reason(&reading(1, NOW - 3600 * 6, 400), fresh), None);
        assert_eq!(
            reason(&reading(1, NOW - 86_401, 400), fresh),
            Some(Reason::TooOld)
        );
    }

    #[test]
    fn repeated_and_earlier_sequences_are_refused() {
        let progress = DeviceProgress {
            last_sequence: 9,
            last_time_s: NOW - 10,
        };
        assert_eq!(
            reason(&reading(9, NOW, 400), progress),
            Some(Reason::Duplicate)
        );
        assert_eq!(
            reason(&reading(3, NOW, 400), progress),
            Some(Reason::OutOfOrder)
        );
        assert_eq!(
            reason(&reading(10, NOW - 11, 400), progress),
            Some(Reason::TimeRegressed)
        );
    }

    #[test]
    fn labels_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_label(r.label()), Some(r));
        }
        let unknown = Reason::parse("bogus").unwrap_err().to_string();
        assert!(unknown.starts_with(
            "\"bogus\" is not a refusal reason; use one of: malformed, bad_checksum,"
        ));
        assert!(unknown.ends_with("ledger_invalid, too_large"), "{unknown}");
    }

    proptest! {
        #[test]
        fn accepted_readings_always_advance_the_sequence(
            last in 0u64..1000, seq in 0u64..1000, temp in -20_000i32..20_000, dt in -1000i64..1000,
        ) {
            let progress = DeviceProgress { last_sequence: last, last_time_s: NOW - 500 };
            let r = reading(seq, (NOW as i64 + dt) as u64, temp);
            if judge_reading(&r, progress, NOW, LIMITS).is_ok() {
                prop_assert!(seq > last);
                prop_assert!((-10_000..=10_000).contains(&temp));
                prop_assert!(r.time_s <= NOW + 300 && r.time_s >= NOW - 500);
            }
        }
    }
}
