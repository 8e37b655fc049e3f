//! `coldchain simulate`: drive simulated loggers at a gateway.
use crate::{Encoding, MqttTransport, Scenario, SerialTransport, Simulator, SimulatorConfig, Sink};
use std::time::Duration;

/// Transport the simulated loggers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Mqtt,
    Serial,
    /// Modbus RTU slaves on a pty whose registers follow the loggers (the gateway polls them).
    Modbus,
}

/// Arguments of `coldchain simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Number of loggers.
    #[arg(long, default_value_t = 10)]
    pub devices: usize,
    /// Device ids are <prefix><n>; list them under [devices] in the gateway config.
    #[arg(long, default_value = "LOGGER-")]
    pub device_prefix: String,
    #[arg(long, value_enum, default_value_t = Transport::Mqtt)]
    pub transport: Transport,
    /// Readings per second per device.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Readings per MQTT message.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Scenario::Steady)]
    pub scenario: Scenario,
    /// Set-point in hundredths of °C (500 = 5 °C).
    #[arg(long, default_value_t = 500)]
    pub set_point_cdeg: i32,
    /// Seconds to run.
    #[arg(long, default_value_t = 60)]
    pub duration_s: u64,
    #[arg(long, env = "COLDCHAIN_MQTT_HOST", default_value = "127.0.0.1")]
    pub mqtt_host: String,
    #[arg(long, env = "COLDCHAIN_MQTT_PORT", default_value_t = 1883)]
    pub mqtt_port: u16,
    #[arg(long, default_value = "coldchain")]
    pub topic_prefix: String,
    /// Organisation named in the topic.
    #[arg(long, default_value = "carrier")]
    pub org: String,
    #[arg(long, value_enum, default_value_t = Encoding::Json)]
    pub encoding: Encoding,
    /// Line speed of --transport modbus (the simulated line is paced to it).
    #[arg(long, default_value_t = 9600)]
    pub baud: u32,
}

/// Runs `coldchain simulate …`; prints what was sent.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    if args.devices == 0 || args.rate.is_nan() || args.rate <= 0.0 {
        anyhow::bail!("--devices must be at least 1 and --rate above 0");
    }
    if args.transport == Transport::Modbus {
        return modbus_slaves(&args).await;
    }
    let mut simulator = Simulator::new(SimulatorConfig {
        devices: args.devices,
        device_prefix: args.device_prefix.clone(),
        scenario: args.scenario,
        rate_per_device: args.rate,
        readings_per_message: args.batch,
        set_point_cdeg: args.set_point_cdeg,
    });
    let duration = Duration::from_secs(args.duration_s);
    let stats = match args.transport {
        Transport::Mqtt => {
            let client_id = format!("coldchain-sim-{}", std::process::id());
            let transport = MqttTransport::connect(
                &args.mqtt_host,
                args.mqtt_port,
                &client_id,
                &args.topic_prefix,
                &args.org,
                args.encoding,
            )
            .await;
            let stats = simulator
                .run_observed(&mut Sink::Mqtt(&transport), duration, progress(duration))
                .await?;
            // Give the client a moment to flush its in-flight publishes.
            tokio::time::sleep(Duration::from_secs(1)).await;
            stats
        }
        Transport::Modbus => return modbus_slaves(&args).await,
        Transport::Serial => {
            let mut transport = SerialTransport::open()?;
            println!(
                "serial loggers on {} (point a [[serial]] path of the gateway at it)",
                transport.path()
            );
            simulator
                .run_observed(
                    &mut Sink::Serial(&mut transport),
                    duration,
                    progress(duration),
                )
                .await?
        }
    };
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    println!(
        "sent {} readings in {} messages from {} devices in {:.1} s ({:.0} readings/s)",
        stats.readings,
        stats.messages,
        args.devices,
        stats.elapsed.as_secs_f64(),
        stats.readings as f64 / stats.elapsed.as_secs_f64().max(0.001)
    );
    Ok(())
}

/// A one-line progress bar on stderr while readings go out, when stderr is a
/// terminal (load generation can run for hours); silent otherwise.
fn progress(duration: Duration) -> impl FnMut(&[crate::DeviceReading]) {
    use std::io::{IsTerminal, Write};
    let on_terminal = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut sent: u64 = 0;
    let mut shown = started;
    move |readings| {
        sent += readings.len() as u64;
        if !on_terminal || shown.elapsed() < Duration::from_millis(500) {
            return;
        }
        shown = std::time::Instant::now();
        let elapsed = started.elapsed().as_secs_f64();
        let total = duration.as_secs_f64().max(0.001);
        let filled = ((elapsed / total).min(1.0) * 30.0) as usize;
        let mut stderr = std::io::stderr();
        let _ = write!(
            stderr,
            "\r[{}{}] {elapsed:.0}/{total:.0} s, {sent} readings ({:.0}/s)",
            "#".repeat(filled),
            " ".repeat(30 - filled),
            sent as f64 / elapsed.max(0.001)
        );
        let _ = stderr.flush();
    }
}

/// `--transport modbus`: transmitters the gateway polls; it numbers their
/// readings itself, so no sequences are kept here.
async fn modbus_slaves(args: &SimulateArgs) -> anyhow::Result<()> {
    crate::modbus::simulate(&crate::modbus::SimulatedLine {
        devices: args.devices,
        device_prefix: args.device_prefix.clone(),
        scenario: args.scenario,
        set_point_cdeg: args.set_point_cdeg,
        rate: args.rate,
        baud: args.baud,
        duration: Duration::from_secs(args.duration_s),
    })
    .await
}
