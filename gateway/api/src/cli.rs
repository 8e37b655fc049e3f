//! `coldchain api`: arguments (each overridable by an environment variable)
//! and the runner that starts the API and waits for Ctrl-C.
use std::net::SocketAddr;
use std::time::Duration;

use crate::freshness::{FreshnessLimits, DEFAULT_MAX_LAG_BLOCKS, DEFAULT_MAX_LAG_SECONDS};
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
    /// Verification answers 503 (cannot_verify_now) instead of a verdict when
    /// the index is more than this many blocks behind the chain head.
    #[arg(long, env = "COLDCHAIN_API_MAX_LAG_BLOCKS", default_value_t = DEFAULT_MAX_LAG_BLOCKS)]
    pub max_lag_blocks: u64,
    /// Verification answers 503 (cannot_verify_now) instead of a verdict when
    /// the index has missed a block for longer than this many seconds, or the
    /// chain follower has had no contact with the node for that long.
    #[arg(long, env = "COLDCHAIN_API_MAX_LAG_SECONDS", default_value_t = DEFAULT_MAX_LAG_SECONDS as f64, value_parser = positive_seconds)]
    pub max_lag_seconds: f64,
}

/// A number of seconds above 0 (at most a day).
fn positive_seconds(raw: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .ok_or_else(|| format!("{raw:?} is not a number of seconds above 0 and at most 86400"))
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

    /// The freshness limits (`--max-lag-blocks`, `--max-lag-seconds`).
    pub fn limits(&self) -> FreshnessLimits {
        FreshnessLimits {
            max_lag_blocks: self.max_lag_blocks,
            max_lag: Duration::from_secs_f64(self.max_lag_seconds),
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
    let handle = Api::start_with(args.config(), args.limits()).await?;
    println!("coldchain API on {} (index {})", handle.url(), args.index);
    tokio::signal::ctrl_c().await?;
    handle.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiArgs,
    }

    #[test]
    fn freshness_limits_default_parse_and_are_listed_in_help() {
        let cli = Cli::try_parse_from(["api"]).expect("defaults");
        assert_eq!(cli.api.limits(), FreshnessLimits::default());
        let cli = Cli::try_parse_from(["api", "--max-lag-blocks", "5", "--max-lag-seconds", "2.5"])
            .expect("limits");
        assert_eq!(
            cli.api.limits(),
            FreshnessLimits {
                max_lag_blocks: 5,
                max_lag: Duration::from_millis(2_500),
            }
        );
        for bad in ["0", "-1", "soon", "NaN", "100000"] {
            assert!(
                Cli::try_parse_from(["api", "--max-lag-seconds", bad]).is_err(),
                "{bad}"
            );
        }
        let help = Cli::command().render_long_help().to_string();
        for listed in [
            "--max-lag-blocks",
            "COLDCHAIN_API_MAX_LAG_BLOCKS",
            "--max-lag-seconds",
            "COLDCHAIN_API_MAX_LAG_SECONDS",
        ] {
            assert!(
                help.contains(listed),
                "{listed} missing from --help:\n{help}"
            );
        }
    }
}
