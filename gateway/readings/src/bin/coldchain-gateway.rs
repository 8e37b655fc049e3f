//! Stand-alone gateway process (`coldchain gateway` does the same inside the
//! main binary). Thin: parse arguments, set up logs, run.
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "coldchain-gateway",
    about = "Temperature loggers over serial and MQTT into Sawtooth readings batches"
)]
struct Cli {
    #[command(flatten)]
    args: coldchain_gateway::cli::GatewayArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Same as `coldchain gateway`: COLDCHAIN_LOG sets the filter, logs go to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COLDCHAIN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    coldchain_gateway::cli::run(Cli::parse().args).await
}
