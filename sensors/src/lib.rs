//! # coldchain-sensors
//!
//! A temperature-logger simulator that behaves like real loggers in reefers,
//! cold rooms and shipping boxes, driving N devices over MQTT or over a
//! pseudo-terminal serial line — for demos, tests and as the load generator of
//! the gateway benchmark. No hardware needed.
//!
//! ## Layout
//! - [`logger`]: one logger's physics and quirks (pure model).
//! - [`transport`]: MQTT publishing and pty serial lines (I/O only).
//! - [`modbus`]: a Modbus RTU slave on a pty (transmitters on an RS-485 line).
//! - [`Simulator`]: many loggers on a schedule.
//! - [`sequences`]: the last sequence per logger, kept between runs.
//! - [`cli`]: `coldchain simulate`.
//!
//! ## Boundaries
//! The simulator only produces device traffic in the documented protocols
//! (`docs/device-protocols.md`); it never talks to the ledger.
pub mod cli;
pub mod logger;
pub mod modbus;
pub mod sequences;
pub mod transport;

pub use logger::{Logger, Scenario};
pub use transport::{senml_time_ms, Encoding, MqttTransport, ReaderWait, SerialTransport};

use coldchain_gateway::protocol::DeviceReading;
use std::time::{Duration, Instant};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    pub devices: usize,
    /// Device ids are `<prefix><n>` (n from 1).
    pub device_prefix: String,
    pub scenario: Scenario,
    /// Readings per second per device.
    pub rate_per_device: f64,
    /// Readings per MQTT message (serial sends lines regardless).
    pub readings_per_message: usize,
    pub set_point_cdeg: i32,
}

/// Where readings go.
pub enum Sink<'a> {
    Mqtt(&'a MqttTransport),
    Serial(&'a mut SerialTransport),
}

/// What a run sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    pub readings: u64,
    pub messages: u64,
    pub elapsed: Duration,
}

/// Many loggers on one schedule.
pub struct Simulator {
    config: SimulatorConfig,
    loggers: Vec<Logger>,
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Simulator {
        let loggers = (1..=config.devices)
            .map(|n| {
                let scenario = config.scenario;
                Logger::new(
                    format!("{}{n}", config.device_prefix),
                    scenario,
                    config.set_point_cdeg,
                )
            })
            .collect();
        Simulator { config, loggers }
    }

    /// The simulated device ids.
    pub fn device_ids(&self) -> Vec<String> {
        self.loggers.iter().map(|l| l.device_id.clone()).collect()
    }

    /// Makes the first `count` devices follow `scenario` instead of the
    /// configured one, e.g. a few loggers with excursions among steady ones.
    pub fn assign_scenario(&mut self, count: usize, scenario: Scenario) {
        for logger in self.loggers.iter_mut().take(count) {
            logger.scenario = scenario;
        }
    }

    /// Makes every logger's next reading carry sequence `first`.
    pub fn start_sequences_at(&mut self, first: u64) {
        for logger in &mut self.loggers {
            logger.continue_after(first.saturating_sub(1));
        }
    }

    /// Makes each logger go on after the sequence `last_of` gives for its
    /// device id (loggers it gives nothing for start at 1).
    pub fn continue_sequences(&mut self, last_of: impl Fn(&str) -> Option<u64>) {
        for logger in &mut self.loggers {
            if let Some(last) = last_of(&logger.device_id) {
                logger.continue_after(last);
            }
        }
    }

    /// Sequences produced so far per device (including readings still buffered).
    pub fn produced(&self) -> Vec<(String, u64)> {
        self.loggers
            .iter()
            .map(|l| (l.device_id.clone(), l.sequence()))
            .collect()
    }

    /// Runs for `duration`, sending each device's readings in messages of
    /// `readings_per_message` at `rate_per_device`.
    pub async fn run(
        &mut self,
        sink: &mut Sink<'_>,
        duration: Duration,
    ) -> anyhow::Result<RunStats> {
        self.run_observed(sink, duration, |_| {}).await
    }

    /// Like [`Simulator::run`], calling `on_send` with each message's readings
    /// just before the message is handed to the transport (benchmarks use it
    /// to time readings from the device's side).
    pub async fn run_observed(
        &mut self,
        sink: &mut Sink<'_>,
        duration: Duration,
        mut on_send: impl FnMut(&[DeviceReading]),
    ) -> anyhow::Result<RunStats> {
        let per_message = self.config.readings_per_message.max(1);
        let rate = if self.config.rate_per_device > 0.0 {
            self.config.rate_per_device
        } else {
            1.0
        };
        let interval = Duration::from_secs_f64(per_message as f64 / rate);
        let mut rng = rand::thread_rng();
        let started = Instant::now();
        let mut stats = RunStats::default();
        let mut next = tokio::time::Instant::now();
        while started.elapsed() < duration {
            let now_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            for logger in &mut self.loggers {
                let readings: Vec<DeviceReading> = (0..per_message)
                    .flat_map(|_| logger.step(now_s, &mut rng))
                    .collect();
                if readings.is_empty() {
                    continue;
                }
                for chunk in readings.chunks(per_message.max(1000)) {
                    on_send(chunk);
                    match sink {
                        Sink::Mqtt(t) => t.send(chunk).await?,
                        Sink::Serial(t) => t.send(chunk)?,
                    }
                    stats.messages += 1;
                }
                stats.readings += readings.len() as u64;
            }
            next += interval;
            tokio::time::sleep_until(next).await;
        }
        stats.elapsed = started.elapsed();
        Ok(stats)
    }
}
