//! `coldchain api`: arguments (each overridable by an environment variable)
//! and the runner that starts the API and waits for Ctrl-C.
use std::net::SocketAddr;

use crate::{Api, ApiConfig};

/// Serve the provenance API and web page, following the chain into an index.
#[derive(Clone, Debug, clap::Args)]
pub struct ApiArgs {
    /// Address to listen on.
    #[arg(long, env = "COLDCHAIN_API_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// The node's Sawtooth REST API.
    #[arg(
        long,
        env = "COLDCHAIN_REST_URL",
        default_value = "http://127.0.0.1:8008"
    )]
    pub rest_url: String,
    /// The node's component endpoint (ZeroMQ) for event subscriptions.
    #[arg(
        long,
        env = "COLDCHAIN_COMPONENT",
        default_value = "tcp://127.0.0.1:4004"
    )]
    pub component: String,
    /// Index database: sqlite:///path/index.db or postgres://user@host:port/db[?schema=name].
    #[arg(
        long,
        env = "COLDCHAIN_INDEX",
        default_value = "sqlite://coldchain-index.db"
    )]
    pub index: String,
    /// Serve the index as it is, without following the chain.
    #[arg(long, env = "COLDCHAIN_API_NO_FOLLOW")]
    pub no_follow: bool,
    /// Empty the index's chain tables before starting, so the follower
    /// re-indexes from genesis (e.g. after "index data is corrupt"); API
    /// tokens and the audit log are kept.
    #[arg(long, env = "COLDCHAIN_API_REBUILD_INDEX")]
    pub rebuild_index: bool,
}

impl ApiArgs {
    pub fn config(&self) -> ApiConfig {
        ApiConfig {
            bind: self.bind,
            rest_url: self.rest_url.clone(),
            component: self.component.clone(),
            index_url: self.index.clone(),
            follow: !self.no_follow,
        }
    }
}

/// Starts the API and serves until Ctrl-C.
pub async fn run(args: ApiArgs) -> anyhow::Result<()> {
    if args.rebuild_index {
        crate::index::open(&args.index)
            .await?
            .roll_back_to_nothing()
            .await?;
        tracing::warn!(index = %args.index, "chain tables emptied (--rebuild-index); API tokens and the audit log kept; re-indexing from genesis");
    }
    let handle = Api::start(args.config()).await?;
    println!("coldchain API on {} (index {})", handle.url(), args.index);
    tokio::signal::ctrl_c().await?;
    handle.stop().await;
    Ok(())
}
