//! `node-bench`: end-to-end benchmark of the embedded node over its REST API.
//!
//! `node-bench run` starts a node as a separate process (`node-bench serve`)
//! on a free port with a temporary data directory, then, from a pool of
//! client threads in this process:
//! 1. peak: submits pre-signed batches of signed readings transactions (100
//!    readings each, sensor family; or `--workload probe` with ~2 KB payloads)
//!    as fast as the node accepts them, and waits until all are COMMITTED;
//! 2. latency: submits at half the peak rate and measures each batch's time
//!    from POST to COMMITTED (p50/p99);
//!
//! and reports peak RSS of the node process and disk bytes per reading.
//! It prints figures; it asserts nothing about speed.
//!
//! `node-bench serve` is also what the crash tests kill -9.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use coldchain_node::genesis::GenesisSettings;
use coldchain_node::testing::ProbeHandler;
use coldchain_node::{Node, NodeConfig};

mod load;
mod world;

#[derive(Parser)]
#[command(
    name = "node-bench",
    about = "End-to-end benchmark of the coldchain node over its REST API"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node with the coldchain families, the probe family and the bench world seeded.
    Serve(ServeArgs),
    /// Start `serve` as a child process and measure it.
    Run(load::RunArgs),
    /// Run the sensor family as an external TP process (ZeroMQ) against `--endpoint`.
    Tp {
        #[arg(long)]
        endpoint: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:0")]
    rest_api: std::net::SocketAddr,
    #[arg(long, default_value = "tcp://127.0.0.1:*")]
    component: String,
    /// Public key of the bench gateway (granted for every seeded device).
    #[arg(long)]
    gateway_key: Option<String>,
    /// Devices (each with its own shipment and two lots) to seed.
    #[arg(long, default_value_t = 64)]
    devices: usize,
    #[arg(long, default_value_t = 500)]
    max_batches_per_block: usize,
    #[arg(long, default_value_t = 2000)]
    queue_capacity: usize,
    /// Leave the sensor family to an external TP (`node-bench tp`).
    #[arg(long)]
    external_sensor: bool,
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = NodeConfig::new(&args.data_dir);
    config.rest_api = args.rest_api;
    config.component = args.component;
    config.max_batches_per_block = args.max_batches_per_block;
    config.queue_capacity = args.queue_capacity;
    config.handlers = coldchain_processors::family_handlers();
    if args.external_sensor {
        config
            .handlers
            .retain(|h| h.family_name() != coldchain_processors::addressing::SENSOR_FAMILY);
    }
    config.handlers.push(Arc::new(ProbeHandler));
    config.genesis = GenesisSettings::parse(
        "[settings]\n\"sawtooth.consensus.algorithm.name\" = \"Devmode\"\n",
        "bench",
    )?;
    if let Some(gateway) = &args.gateway_key {
        config.genesis_leaves = world::seed(gateway, args.devices)?;
    }
    let node = Node::start(config)?;
    println!("READY {} {}", node.rest_url(), node.component_endpoint());
    use std::io::Write;
    std::io::stdout().flush()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await?;
        Ok::<(), std::io::Error>(())
    })?;
    node.shutdown();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Serve(args) => serve(args),
        Command::Tp { endpoint } => {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let handler = coldchain_processors::sensor::SensorHandler::new();
            coldchain_processors::host::run(&handler, &endpoint, stop)?;
            Ok(())
        }
        Command::Run(args) => {
            if args.clients == 0 {
                bail!("--clients must be at least 1");
            }
            load::run(args).context("benchmark failed")
        }
    }
}
