//! `coldchain`: the single command-line entry point.
//!
//! Thin by design: parse arguments, build the parts from the library crates,
//! run. Services (`node`, `tp`, `gateway`, `api`, `simulate`, `demo`) and the
//! participant commands (`org`, `device`, `lot`, `shipment`, `dispense`,
//! `blood`, `verify`, `watch`, `token`) all live here so a user learns one tool.
mod client;
mod demo;
mod keys;
mod ledger_commands;
mod lot_import;
mod profiles;
mod readings_import;
mod token;
mod tp;
mod verify;
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
    /// Readings from logger files (a USB/PDF logger's CSV export).
    Readings {
        #[command(subcommand)]
        command: readings_import::ReadingsCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Verify a pack or lot: what the scanner read (GS1 element string or
    /// Digital Link), GTIN + serial, or GTIN + lot
    /// (exit code 0 authentic, 2 cannot verify now, 3 unknown, 4 do not dispense).
    Verify(verify::VerifyArgs),
    /// Follow the ledger's events live.
    Watch(watch::WatchArgs),
    /// Mint a provenance API token for a participant key (partner view, blood board).
    Token(token::TokenArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors exit 1, like every other refused input: exit code 2
        // means "cannot verify now" to scripts calling `coldchain verify`.
        Err(error) if error.use_stderr() => {
            let _ = error.print();
            std::process::exit(1);
        }
        Err(error) => error.exit(),
    };
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
            command: BloodCommand::Label { scans },
            connection,
        } => ledger_commands::print_label(&scans, connection.json),
        Command::Blood {
            command,
            connection,
        } => submit_action(&connection, &command, ledger_commands::blood_spec),
        Command::Readings {
            command,
            connection,
        } => readings_import::run(command, &connection),
        Command::Verify(args) => {
            let code = runtime()?.block_on(verify::verify(args));
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Watch(args) => watch::watch(args),
        Command::Token(args) => token::run(args),
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
        LotCommand::Import { csv } => return lot_import::import_lots(csv, connection),
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
