//! `coldchain simulate`: drive simulated loggers at a gateway.
use crate::sequences::SequenceBook;
use crate::{
    Encoding, MqttTransport, ReaderWait, Scenario, SerialTransport, Simulator, SimulatorConfig,
    Sink,
};
use std::time::Duration;

/// Transport the simulated loggers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Mqtt,
    Serial,
    /// Modbus RTU slaves on a pty whose registers follow the loggers (the gateway polls them).
    Modbus,
}

/// What `coldchain simulate` waits for before it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitFor {
    /// A program (the gateway) opens the serial line (serial only).
    Reader,
    /// Enter on standard input.
    Enter,
    /// Nothing: send at once.
    None,
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
    /// Sequence number of every logger's first reading; wins over the state
    /// file for this run (which is still updated at the end).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub start_sequence: Option<u64>,
    /// File keeping each logger's last sequence between runs, so a second run
    /// goes on where the first stopped [default:
    /// $XDG_DATA_HOME/coldchain/simulate-sequences.txt, else
    /// ~/.local/share/coldchain/simulate-sequences.txt].
    #[arg(long, env = "COLDCHAIN_SIMULATE_STATE")]
    pub state: Option<std::path::PathBuf>,
    /// Keep no state: sequences start at 1 (or --start-sequence) every run.
    #[arg(long, conflicts_with = "state")]
    pub no_state: bool,
    /// What to wait for before sending [default: `reader` with --transport
    /// serial (the pty path is printed first), `none` with MQTT].
    #[arg(long, value_enum)]
    pub wait: Option<WaitFor>,
    /// Give up (exit 1) when the wait lasts longer than this many seconds.
    #[arg(long, default_value_t = 600)]
    pub wait_timeout_s: u64,
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
    let wait = args.wait.unwrap_or(match args.transport {
        Transport::Serial => WaitFor::Reader,
        _ => WaitFor::None,
    });
    if wait == WaitFor::Reader && args.transport != Transport::Serial {
        anyhow::bail!("--wait reader needs --transport serial; use --wait enter or --wait none");
    }
    let mut book = sequence_book(&args)?;
    start_sequences(&mut simulator, &args, book.as_ref());
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
            wait_for_start(wait, None, args.wait_timeout_s).await?;
            let stats = run_noting(
                &mut simulator,
                &mut Sink::Mqtt(&transport),
                duration,
                book.as_mut(),
            )
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
            wait_for_start(wait, Some(&mut transport), args.wait_timeout_s).await?;
            run_noting(
                &mut simulator,
                &mut Sink::Serial(&mut transport),
                duration,
                book.as_mut(),
            )
            .await?
        }
    };
    if let Some(book) = book.as_mut() {
        for (device, sequence) in simulator.produced() {
            book.note(&device, sequence);
        }
        book.save()?;
        println!("last sequences saved to {}", book.path().display());
    }
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

/// The state file of this run: `--no-state` none, `--state FILE` that file,
/// else the default under the user's data folder.
fn sequence_book(args: &SimulateArgs) -> anyhow::Result<Option<SequenceBook>> {
    if args.no_state {
        return Ok(None);
    }
    let Some(path) = args.state.clone().or_else(crate::sequences::default_path) else {
        println!(
            "sequences are not kept between runs: neither XDG_DATA_HOME nor HOME is set (pass --state FILE)"
        );
        return Ok(None);
    };
    SequenceBook::load(&path).map(Some)
}

/// Sets where the loggers' sequences start and says so: `--start-sequence`
/// wins, else each logger goes on after what the state file recorded.
fn start_sequences(simulator: &mut Simulator, args: &SimulateArgs, book: Option<&SequenceBook>) {
    if let Some(first) = args.start_sequence {
        simulator.start_sequences_at(first);
        println!("sequences start at {first} (--start-sequence)");
        return;
    }
    let Some(book) = book else {
        println!("sequences start at 1 (--no-state)");
        return;
    };
    let devices = simulator.device_ids();
    let known = devices.iter().filter(|d| book.last(d).is_some()).count();
    simulator.continue_sequences(|device| book.last(device));
    match devices.first().and_then(|d| book.last(d)) {
        Some(last) if known > 0 => println!(
            "sequences go on from the last run ({known} of {} loggers recorded in {}; {} from {})",
            devices.len(),
            book.path().display(),
            devices[0],
            last + 1
        ),
        _ if known > 0 => println!(
            "sequences go on from the last run ({known} of {} loggers recorded in {})",
            devices.len(),
            book.path().display()
        ),
        _ => println!(
            "sequences start at 1 (no earlier run recorded in {})",
            book.path().display()
        ),
    }
}

/// Waits for what `--wait` names, saying on stdout what it waits for.
async fn wait_for_start(
    wait: WaitFor,
    serial: Option<&mut SerialTransport>,
    timeout_s: u64,
) -> anyhow::Result<()> {
    use std::io::Write;
    let timeout = Duration::from_secs(timeout_s);
    match (wait, serial) {
        (WaitFor::None, _) => Ok(()),
        (WaitFor::Reader, Some(transport)) => {
            println!(
                "waiting for a reader to open {} (up to {timeout_s} s; --wait none sends at once) …",
                transport.path()
            );
            let _ = std::io::stdout().flush();
            // A blocking poll loop; the runtime's other workers go on meanwhile.
            let waited = tokio::task::block_in_place(|| transport.wait_for_reader(timeout))?;
            match waited {
                ReaderWait::Opened => {
                    println!("{} is open; sending", transport.path());
                    // The reader sets up the line (raw mode, speed) right after opening it.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok(())
                }
                ReaderWait::TimedOut => anyhow::bail!(
                    "nobody opened {} within {timeout_s} s; start the gateway with a [[serial]] \
                     path = {:?} (or pass --wait none to send anyway, --wait-timeout-s to wait longer)",
                    transport.path(),
                    transport.path()
                ),
            }
        }
        (WaitFor::Reader, None) => {
            anyhow::bail!("--wait reader needs --transport serial; use --wait enter or --wait none")
        }
        (WaitFor::Enter, _) => {
            println!("press Enter to start sending (up to {timeout_s} s) …");
            let _ = std::io::stdout().flush();
            let line = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|n| n > 0)
            });
            match tokio::time::timeout(timeout, line).await {
                Ok(Ok(Ok(true))) => Ok(()),
                Ok(Ok(Ok(false))) => anyhow::bail!(
                    "standard input closed before Enter was pressed (--wait enter needs a terminal; use --wait none in scripts)"
                ),
                Ok(Ok(Err(e))) => anyhow::bail!("cannot read standard input: {e}"),
                Ok(Err(e)) => anyhow::bail!("waiting for Enter failed: {e}"),
                Err(_) => anyhow::bail!("no Enter within {timeout_s} s (--wait-timeout-s)"),
            }
        }
    }
}

/// Runs the simulator with the progress bar, noting each message's
/// sequences in the state file (written every few seconds, so a killed run
/// loses little); Ctrl-C ends the run early, like its duration.
async fn run_noting(
    simulator: &mut Simulator,
    sink: &mut Sink<'_>,
    duration: Duration,
    mut book: Option<&mut SequenceBook>,
) -> anyhow::Result<crate::RunStats> {
    let mut bar = progress(duration);
    let started = std::time::Instant::now();
    let mut stats = crate::RunStats::default();
    let mut saved = std::time::Instant::now();
    let on_send = |readings: &[crate::DeviceReading]| {
        bar(readings);
        stats.readings += readings.len() as u64;
        stats.messages += 1;
        if let Some(book) = book.as_deref_mut() {
            book.note_readings(readings);
            if saved.elapsed() >= Duration::from_secs(2) {
                saved = std::time::Instant::now();
                if let Err(e) = book.save() {
                    tracing::warn!(error = %e, "sequence state not saved");
                }
            }
        }
    };
    tokio::select! {
        finished = simulator.run_observed(sink, duration, on_send) => return finished,
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("interrupted (Ctrl-C)");
    stats.elapsed = started.elapsed();
    Ok(stats)
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
