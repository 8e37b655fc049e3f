//! `coldchain node`: command-line flags (each overridable by an environment
//! variable) and the run loop that serves until SIGINT or SIGTERM.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::genesis::GenesisSettings;
use crate::node::{Node, NodeConfig};

/// Flags of `coldchain node`.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Directory holding the chain database (chain.sqlite) and, unless --key is given, the node key.
    #[arg(
        long,
        env = "COLDCHAIN_NODE_DATA_DIR",
        default_value = "coldchain-node-data"
    )]
    pub data_dir: PathBuf,
    /// Address of the Sawtooth-compatible REST API.
    #[arg(
        long,
        env = "COLDCHAIN_NODE_REST_API",
        default_value = "127.0.0.1:8008"
    )]
    pub rest_api: SocketAddr,
    /// ZeroMQ component endpoint for external transaction processors and event subscribers.
    #[arg(
        long,
        env = "COLDCHAIN_NODE_COMPONENT",
        default_value = "tcp://127.0.0.1:4004"
    )]
    pub component: String,
    /// Genesis TOML file with a [settings] table (e.g. "coldchain.admins" = "02ab…"); read only when the chain is created.
    #[arg(long, env = "COLDCHAIN_NODE_GENESIS")]
    pub genesis: Option<PathBuf>,
    /// Node signing key (Sawtooth hex private key file); created if absent. Default: <data-dir>/validator.priv.
    #[arg(long, env = "COLDCHAIN_NODE_KEY")]
    pub key: Option<PathBuf>,
    /// Most batches in one block.
    #[arg(
        long,
        env = "COLDCHAIN_NODE_MAX_BATCHES_PER_BLOCK",
        default_value_t = 500
    )]
    pub max_batches_per_block: usize,
    /// Longest a waiting batch is held back to fill a block, in milliseconds.
    #[arg(long, env = "COLDCHAIN_NODE_MAX_BLOCK_WAIT_MS", default_value_t = 2)]
    pub max_block_wait_ms: u64,
    /// Most batches waiting for a block; beyond it POST /batches answers 429.
    #[arg(long, env = "COLDCHAIN_NODE_QUEUE_CAPACITY", default_value_t = 2000)]
    pub queue_capacity: usize,
    /// Do not run the coldchain families in-process (only external TPs over ZeroMQ execute them).
    #[arg(
        long = "no-in-process-families",
        env = "COLDCHAIN_NODE_NO_IN_PROCESS_FAMILIES"
    )]
    pub no_in_process_families: bool,
}

impl NodeArgs {
    /// The node configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<NodeConfig> {
        let mut config = NodeConfig::new(&self.data_dir);
        config.rest_api = self.rest_api;
        config.component = self.component.clone();
        if let Some(path) = &self.genesis {
            config.genesis = GenesisSettings::load(path)?;
        }
        config.key_file = self.key.clone();
        config.max_batches_per_block = self.max_batches_per_block;
        config.max_block_wait = Duration::from_millis(self.max_block_wait_ms);
        config.queue_capacity = self.queue_capacity;
        if !self.no_in_process_families {
            config.handlers = coldchain_processors::family_handlers();
        }
        Ok(config)
    }
}

/// Runs a node until SIGINT or SIGTERM, then shuts it down cleanly.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let node = Node::start(config).context("the node could not start")?;
    println!(
        "coldchain node running: REST API {} · component endpoint {} · node key {}",
        node.rest_url(),
        node.component_endpoint(),
        node.public_key()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal listener")?;
    runtime.block_on(wait_for_stop_signal())?;
    tracing::info!("stopping the node");
    node.shutdown();
    Ok(())
}

#[cfg(unix)]
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")
}
