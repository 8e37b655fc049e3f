//! The two journeys the demo's loggers report: deterministic temperature
//! traces at one reading per minute, so the story's outcome is the same on
//! every run (the noise comes from a fixed-seed generator, not the clock).
use coldchain_gateway::protocol::{DeviceReading, Door};

const MINUTE: u64 = 60;

/// A tiny fixed-seed generator for ±noise (xorshift; reproducible).
struct Noise(u64);

impl Noise {
    fn next_cdeg(&mut self, amplitude: i32) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = (2 * amplitude + 1) as u64;
        (self.0 % span) as i32 - amplitude
    }
}

fn reading(device: &str, sequence: u64, time_s: u64, cdeg: i32, door: Door) -> DeviceReading {
    DeviceReading {
        device_id: device.to_string(),
        sequence,
        time_s,
        temperature_cdeg: cdeg,
        humidity_permille: Some(550),
        door: Some(door),
        location: None,
    }
}

/// A reefer at a 5 °C set-point; two hours in, the door is opened for twelve
/// minutes at a stop and the load warms to about 10.5 °C, then recovers. The
/// excursion above 8 °C lasts about ten minutes: well inside the 1 h budget.
pub fn door_opening_journey(device: &str, from_s: u64, to_s: u64) -> Vec<DeviceReading> {
    let mut noise = Noise(0x5eed_0001);
    let door_open_at = 120;
    let door_closed_at = 132;
    let mut out = Vec::new();
    let mut cdeg = 500;
    for (i, time_s) in (from_s..to_s).step_by(MINUTE as usize).enumerate() {
        let minute = i as u64;
        let door = if (door_open_at..door_closed_at).contains(&minute) {
            Door::Open
        } else {
            Door::Closed
        };
        if door == Door::Open {
            cdeg += 50;
        } else if cdeg > 520 {
            cdeg -= 60;
        } else {
            cdeg = 500 + noise.next_cdeg(30);
        }
        out.push(reading(device, minute + 1, time_s, cdeg.max(300), door));
    }
    out
}

/// A shipping box whose reefer compressor fails ninety minutes in: the load
/// warms by 0.1 °C a minute to 16 °C and stays there, a single excursion far
/// beyond the 1 h budget, so the lot it carries becomes compromised.
pub fn compressor_failure_journey(device: &str, from_s: u64, to_s: u64) -> Vec<DeviceReading> {
    let mut noise = Noise(0x5eed_0002);
    let failure_at = 90;
    let mut out = Vec::new();
    for (i, time_s) in (from_s..to_s).step_by(MINUTE as usize).enumerate() {
        let minute = i as u64;
        let cdeg = if minute < failure_at {
            480 + noise.next_cdeg(25)
        } else {
            (480 + 10 * (minute - failure_at) as i32).min(1600) + noise.next_cdeg(10)
        };
        out.push(reading(device, minute + 1, time_s, cdeg, Door::Closed));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_opening_stays_within_the_single_event_budget() {
        let journey = door_opening_journey("D", 0, 6 * 3600);
        assert_eq!(journey.len(), 360);
        let above = journey.iter().filter(|r| r.temperature_cdeg > 800).count();
        assert!(above > 0 && above < 30, "minutes above 8 °C: {above}");
        assert!(journey
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence + 1));
    }

    #[test]
    fn compressor_failure_exceeds_an_hour_above_range() {
        let journey = compressor_failure_journey("D", 0, 6 * 3600);
        let above = journey.iter().filter(|r| r.temperature_cdeg > 800).count();
        assert!(above > 120, "minutes above 8 °C: {above}");
    }
}
