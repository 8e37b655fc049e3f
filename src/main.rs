//! `coldchain`: the single command-line entry point.
//!
//! Thin by design: parse arguments, build the parts from the library crates,
//! run. Services (`node`, `tp`, `gateway`, `api`, `simulate`, `demo`) and the
//! participant commands (`org`, `device`, `lot`, `shipment`, `dispense`,
//! `blood`, `verify`, `watch`) all live here so a user learns one tool.
mod client;
mod demo;
mod keys;
mod ledger_commands;
mod profiles;
mod tp;
mod watch;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use ledger_commands::{
    BloodCommand, Connection, DeviceCommand, LotCommand, OrgCommand, ShipmentCommand,
};

#[derive(Parser, Debug)]
#[command(
    name = "coldchain",
    version,
    about = "Cold-chain provenance for medicines and blood on Hyperledger Sawtooth",
    long_about = "Cold-chain provenance for medicines and blood on Hyperledger Sawtooth.\n\n\
Start everything with `coldchain demo`, or the parts one by one: `coldchain node`, \
`coldchain tp <family>`, `coldchain gateway`, `coldchain api`, `coldchain simulate`. \
Participants sign ledger actions with `coldchain org|device|lot|shipment|dispense|blood …`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a secp256k1 key pair in Sawtooth's file format.
    Keygen {
        /// Key name: writes <name>.priv and <name>.pub.
        #[arg(default_value = "default")]
        name: String,
        /// Folder for the key files (default ~/.coldchain/keys, or $COLDCHAIN_KEY_DIR).
        #[arg(long)]
        key_dir: Option<PathBuf>,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run the embedded node (a one-node Sawtooth-compatible validator).
    Node(coldchain_node::cli::NodeArgs),
    /// Run one transaction family as an external processor against a validator.
    Tp(tp::TpArgs),
    /// Run the sensor gateway (serial + MQTT loggers into signed batches).
    Gateway(coldchain_gateway::cli::GatewayArgs),
    /// Run the provenance API and web page.
    Api(coldchain_api::cli::ApiArgs),
    /// Simulate temperature loggers over MQTT or serial.
    Simulate(coldchain_sensors::cli::SimulateArgs),
    /// Play the whole cold-chain story on an embedded node.
    Demo(demo::DemoArgs),
    /// Organisations, sites, agents and gateway grants.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Temperature loggers.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Lots of medicine.
    Lot {
        #[command(subcommand)]
        command: LotCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Shipments and custody hand-offs.
    Shipment {
        #[command(subcommand)]
        command: ShipmentCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Record that a pack was dispensed (pharmacies).
    Dispense {
        #[arg(long)]
        gtin: String,
        #[arg(long)]
        serial: String,
        /// The pharmacy site's GLN.
        #[arg(long)]
        site: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Blood units and emergency transfers.
    Blood {
        #[command(subcommand)]
        command: BloodCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Verify a pack or lot: a GS1 Digital Link, GTIN + serial, or GTIN + lot.
    Verify(watch::VerifyArgs),
    /// Follow the ledger's events live.
    Watch(watch::WatchArgs),
}

fn main() {
    let cli = Cli::parse();
    init_logging(&cli.command);
    if let Err(error) = run(cli.command) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn init_logging(command: &Command) {
    let default = match command {
        Command::Node(_)
        | Command::Tp(_)
        | Command::Gateway(_)
        | Command::Api(_)
        | Command::Simulate(_) => "info",
        Command::Demo(_) => "warn",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("COLDCHAIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Keygen {
            name,
            key_dir,
            force,
            json,
        } => {
            let dir = match key_dir {
                Some(dir) => dir,
                None => keys::key_dir()?,
            };
            let (path, signer) = keys::generate(&dir, &name, force)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"private_key_file": path, "public_key": signer.public_key()})
                );
            } else {
                println!(
                    "wrote {} (public key {})",
                    path.display(),
                    signer.public_key()
                );
            }
            Ok(())
        }
        Command::Node(args) => coldchain_node::cli::run(args),
        Command::Tp(args) => tp::run(args),
        Command::Gateway(args) => runtime()?.block_on(coldchain_gateway::cli::run(args)),
        Command::Api(args) => runtime()?.block_on(coldchain_api::cli::run(args)),
        Command::Simulate(args) => runtime()?.block_on(coldchain_sensors::cli::run(args)),
        Command::Demo(args) => demo::run(args),
        Command::Org {
            command,
            connection,
        } => submit_action(&connection, &command, ledger_commands::org_spec),
        Command::Device {
            command,
            connection,
        } => submit_action(&connection, &command, ledger_commands::device_spec),
        Command::Lot {
            command,
            connection,
        } => lot(command, &connection),
        Command::Shipment {
            command,
            connection,
        } => submit_action(&connection, &command, ledger_commands::shipment_spec),
        Command::Dispense {
            gtin,
            serial,
            site,
            connection,
        } => submit(
            &connection,
            ledger_commands::dispense_spec(&gtin, &serial, &site, ledger_commands::now_s())?,
            "dispense",
        ),
        Command::Blood {
            command,
            connection,
        } => submit_action(&connection, &command, ledger_commands::blood_spec),
        Command::Verify(args) => runtime()?.block_on(watch::verify(args)),
        Command::Watch(args) => watch::watch(args),
    }
}

/// "Create { id: .. }" → "create".
fn short_action(debug: &str) -> &str {
    debug.split([' ', '(']).next().unwrap_or(debug)
}

/// Builds an action's transaction (stamped now), submits it and reports it by name.
fn submit_action<C: std::fmt::Debug>(
    connection: &Connection,
    command: &C,
    build: fn(&C, u64) -> Result<coldchain_processors::signing::TransactionSpec>,
) -> Result<()> {
    let what = format!("{command:?}");
    submit(
        connection,
        build(command, ledger_commands::now_s())?,
        short_action(&what),
    )
}

fn submit(
    connection: &Connection,
    spec: coldchain_processors::signing::TransactionSpec,
    what: &str,
) -> Result<()> {
    let client = connection.client()?;
    let signer = connection.signer()?;
    let outcome = runtime()?.block_on(client.submit(spec, &signer))?;
    ledger_commands::report(&outcome, &what.to_lowercase(), connection.json)
}

fn lot(command: LotCommand, connection: &Connection) -> Result<()> {
    use coldchain_processors::messages::coldchain::LotStatus;
    let (spec, what) = match &command {
        LotCommand::Create(spec) => (
            ledger_commands::create_lot_spec(spec, ledger_commands::now_s())?,
            "create lot",
        ),
        LotCommand::Import { csv } => return import_lots(csv, connection),
        LotCommand::Quarantine(a) => (
            ledger_commands::lot_status_spec(a, LotStatus::QUARANTINED, ledger_commands::now_s())?,
            "quarantine",
        ),
        LotCommand::Release(a) => (
            ledger_commands::lot_status_spec(a, LotStatus::ACTIVE, ledger_commands::now_s())?,
            "release",
        ),
        LotCommand::Recall(a) => (
            ledger_commands::lot_status_spec(a, LotStatus::RECALLED, ledger_commands::now_s())?,
            "recall",
        ),
        LotCommand::Destroy(a) => (
            ledger_commands::lot_status_spec(a, LotStatus::DESTROYED, ledger_commands::now_s())?,
            "destroy",
        ),
    };
    submit(connection, spec, what)
}

/// Bulk import: every line becomes one transaction; batches of up to 100 are
/// submitted together, with a progress bar on the terminal.
fn import_lots(path: &std::path::Path, connection: &Connection) -> Result<()> {
    use coldchain_processors::signing::{batch_list_bytes, sign_batch, sign_transaction};
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut specs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (index == 0 && line.starts_with("gtin")) {
            continue;
        }
        let lot = ledger_commands::parse_lot_csv_line(line, index + 1)?;
        specs.push((
            index + 1,
            ledger_commands::create_lot_spec(&lot, ledger_commands::now_s())?,
        ));
    }
    let total = specs.len();
    let client = connection.client()?;
    let signer = connection.signer()?;
    let rt = runtime()?;
    let mut committed = 0usize;
    let mut refused = Vec::new();
    for chunk in specs.chunks(100) {
        // One batch per line so one bad line does not sink the others.
        let mut batches = Vec::new();
        let mut ids = Vec::new();
        for (line, spec) in chunk {
            let transaction = sign_transaction(spec.clone(), &signer, signer.public_key())?;
            let batch = sign_batch(vec![transaction], &signer)?;
            ids.push((*line, batch.get_header_signature().to_string()));
            batches.push(batch);
        }
        rt.block_on(client.post_batches(batch_list_bytes(batches)?))?;
        for (line, id) in ids {
            match rt.block_on(client.wait_for(&id))? {
                client::Outcome::Committed { .. } => committed += 1,
                client::Outcome::Invalid { reason, .. } => {
                    refused.push(format!("line {line}: {reason}"))
                }
                client::Outcome::Pending { .. } => {
                    refused.push(format!("line {line}: still pending (batch {id})"))
                }
            }
            if !connection.json {
                progress(committed + refused.len(), total);
            }
        }
    }
    if connection.json {
        println!(
            "{}",
            serde_json::json!({"total": total, "committed": committed, "refused": refused})
        );
    } else {
        eprintln!();
        println!("imported {committed} of {total} lots");
        for line in &refused {
            println!("  refused {line}");
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} of {total} lots were not imported", refused.len())
    }
}

/// A one-line progress bar on stderr (only when stderr is a terminal).
pub fn progress(done: usize, total: usize) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || total == 0 {
        return;
    }
    let width = 30;
    let filled = done * width / total;
    eprint!(
        "\r[{}{}] {done}/{total}",
        "#".repeat(filled),
        "-".repeat(width - filled)
    );
}
