//! A simulated temperature logger: what it measures and when it reports.
//!
//! Pure model (time and randomness are passed in): a reefer holding a
//! set-point with sensor noise, door openings that warm it briefly, a
//! compressor failure that lets it drift up towards ambient, an uplink power
//! loss during which readings are buffered and then sent in one catch-up,
//! short excursions out of a chilled range and back, and a clock that drifts
//! away from true time. No I/O.
use coldchain_gateway::protocol::{DeviceReading, Door};
use rand::Rng;

/// What happens to the loggers during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Set-point and noise only.
    Steady,
    /// Doors open now and then (short warm spikes).
    Doors,
    /// The compressor fails after a while: temperature climbs out of range.
    CompressorFailure,
    /// The uplink is lost for a while; buffered readings follow in one burst.
    PowerLoss,
    /// The logger's clock runs fast.
    ClockDrift,
    /// Short excursions now and then: the cargo warms well above its set-point
    /// (past a 2–8 °C range around a 5 °C set-point) and is pulled back.
    Excursions,
    /// A bit of everything, device by device.
    Mixed,
}

/// Chance per step that an `Excursions` logger starts warming: with the
/// warming and the return to the set-point, about one excursion every 70 steps.
const EXCURSION_START_CHANCE: f64 = 0.02;

/// One logger's state.
#[derive(Clone, Debug)]
pub struct Logger {
    pub device_id: String,
    pub scenario: Scenario,
    /// Reefer set-point, hundredths of °C.
    pub set_point_cdeg: i32,
    /// Ambient temperature the cargo drifts to without cooling.
    pub ambient_cdeg: i32,
    temperature_cdeg: f64,
    sequence: u64,
    door_open_left: u32,
    /// Steps of an excursion's warming still to come.
    warming_left: u32,
    compressor_failed: bool,
    /// Readings held while the uplink is down.
    buffered: Vec<DeviceReading>,
    /// Clock error in seconds (grows with drift).
    clock_error_s: f64,
    steps: u64,
}

impl Logger {
    pub fn new(device_id: String, scenario: Scenario, set_point_cdeg: i32) -> Logger {
        Logger {
            device_id,
            scenario,
            set_point_cdeg,
            ambient_cdeg: 2_500,
            temperature_cdeg: set_point_cdeg as f64,
            sequence: 0,
            door_open_left: 0,
            warming_left: 0,
            compressor_failed: false,
            buffered: Vec::new(),
            clock_error_s: 0.0,
            steps: 0,
        }
    }

    /// The last sequence number produced.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Makes the next reading carry `last_sequence + 1` (a logger that was
    /// switched off keeps counting where it stopped).
    pub fn continue_after(&mut self, last_sequence: u64) {
        self.sequence = last_sequence;
    }

    /// Readings still held back by a power loss.
    pub fn buffered(&self) -> usize {
        self.buffered.len()
    }

    /// Measures once at true time `now_s`; returns what the logger transmits now
    /// (nothing while its uplink is down, the whole backlog when it returns).
    pub fn step(&mut self, now_s: u64, rng: &mut impl Rng) -> Vec<DeviceReading> {
        self.steps += 1;
        let scenario = self.scenario;
        let mixed = scenario == Scenario::Mixed;
        if (scenario == Scenario::Doors || mixed) && self.door_open_left == 0 && rng.gen_bool(0.01)
        {
            self.door_open_left = rng.gen_range(3..15);
        }
        if scenario == Scenario::Excursions
            && self.warming_left == 0
            && rng.gen_bool(EXCURSION_START_CHANCE)
        {
            self.warming_left = rng.gen_range(5..20);
        }
        if (scenario == Scenario::CompressorFailure || (mixed && rng.gen_bool(0.0005)))
            && self.steps > 50
        {
            self.compressor_failed = true;
        }
        let target = if self.compressor_failed {
            self.ambient_cdeg
        } else {
            self.set_point_cdeg
        } as f64;
        let pull = if self.compressor_failed { 0.02 } else { 0.15 };
        self.temperature_cdeg += (target - self.temperature_cdeg) * pull;
        if self.door_open_left > 0 {
            self.door_open_left -= 1;
            self.temperature_cdeg += 40.0;
        }
        if self.warming_left > 0 {
            // Settles near set-point + 10 °C while it lasts; out of range within a few steps.
            self.warming_left -= 1;
            self.temperature_cdeg += 150.0;
        }
        self.temperature_cdeg += rng.gen_range(-8.0..8.0);
        if scenario == Scenario::ClockDrift {
            // 2 % fast: a 300 s skew tolerance is crossed after ~4 hours of steps.
            self.clock_error_s += 0.02;
        }
        self.sequence += 1;
        let reading = DeviceReading {
            device_id: self.device_id.clone(),
            sequence: self.sequence,
            time_s: now_s.saturating_add(self.clock_error_s as u64),
            temperature_cdeg: self.temperature_cdeg.round() as i32,
            humidity_permille: Some(rng.gen_range(550..750)),
            door: Some(if self.door_open_left > 0 {
                Door::Open
            } else {
                Door::Closed
            }),
            location: None,
        };
        let uplink_down = (scenario == Scenario::PowerLoss || mixed) && (self.steps % 400) >= 300;
        if uplink_down {
            self.buffered.push(reading);
            return Vec::new();
        }
        let mut out = std::mem::take(&mut self.buffered);
        out.push(reading);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn steady_logger_stays_near_its_set_point_with_increasing_sequences() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut logger = Logger::new("D1".into(), Scenario::Steady, 500);
        let readings: Vec<_> = (0..500)
            .flat_map(|i| logger.step(1_790_000_000 + i, &mut rng))
            .collect();
        assert_eq!(readings.len(), 500);
        assert!(readings
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence + 1));
        assert!(readings
            .iter()
            .all(|r| (400..=600).contains(&r.temperature_cdeg)));
    }

    #[test]
    fn compressor_failure_warms_the_cargo_out_of_range() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut logger = Logger::new("D1".into(), Scenario::CompressorFailure, 500);
        let last = (0..400)
            .flat_map(|i| logger.step(1_790_000_000 + i, &mut rng))
            .last()
            .unwrap();
        assert!(last.temperature_cdeg > 1_500, "{}", last.temperature_cdeg);
    }

    #[test]
    fn power_loss_buffers_then_catches_up_without_gaps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut logger = Logger::new("D1".into(), Scenario::PowerLoss, 500);
        let mut burst = 0;
        let mut all = Vec::new();
        for i in 0..800 {
            let out = logger.step(1_790_000_000 + i, &mut rng);
            burst = burst.max(out.len());
            all.extend(out);
        }
        assert_eq!(burst, 101);
        assert_eq!(all.len(), 800 - logger.buffered());
        assert!(all.windows(2).all(|w| w[1].sequence == w[0].sequence + 1));
    }

    #[test]
    fn excursions_leave_the_range_and_come_back() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut logger = Logger::new("D1".into(), Scenario::Excursions, 500);
        let in_range: Vec<bool> = (0..2_000)
            .flat_map(|i| logger.step(1_790_000_000 + i, &mut rng))
            .map(|r| (200..=800).contains(&r.temperature_cdeg))
            .collect();
        let edges = in_range.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(in_range[0]);
        assert!((20..=120).contains(&edges), "{edges} edges");
    }

    #[test]
    fn drifting_clock_runs_ahead_of_true_time() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut logger = Logger::new("D1".into(), Scenario::ClockDrift, 500);
        let last = (0..1000)
            .flat_map(|i| logger.step(1_790_000_000 + i, &mut rng))
            .last()
            .unwrap();
        assert!(last.time_s >= 1_790_000_000 + 999 + 19);
    }
}
