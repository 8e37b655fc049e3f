//! `coldchain gateway`: run the gateway, or inspect and replay its dead letters.
use crate::config::GatewayConfig;
use crate::dead_letter::ReplayOutcome;
use crate::validation::{Plausibility, Reason};
use std::path::PathBuf;

/// Arguments of `coldchain gateway`.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// Gateway config (TOML). Keys can be overridden by COLDCHAIN_GATEWAY_KEY_FILE,
    /// _REST_URL, _QUEUE_PATH, _QUEUE_DISK_CAP_BYTES, _METRICS_BIND, _CLOCK_SKEW_TOLERANCE_S,
    /// _MQTT_MAX_MESSAGE_BYTES.
    #[arg(long, env = "COLDCHAIN_GATEWAY_CONFIG", default_value = "gateway.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
}

/// What to do; without a subcommand the gateway runs.
#[derive(Debug, clap::Subcommand)]
pub enum GatewayCommand {
    /// Inspect or replay the dead-letter store.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum DeadLetterAction {
    /// Lists dead letters as JSON lines, oldest first.
    List {
        /// Only this reason (e.g. unknown_device, bad_checksum, too_large, ledger_invalid).
        #[arg(long, value_parser = parse_reason)]
        reason: Option<Reason>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Re-judges entries with the current config; queued ones leave the store.
    Replay {
        /// Entry ids; with --all, every entry (optionally of --reason).
        ids: Vec<i64>,
        #[arg(long)]
        all: bool,
        /// With --all: only entries of this reason.
        #[arg(long, value_parser = parse_reason)]
        reason: Option<Reason>,
    },
}

/// `--reason`: a refusal label; an unknown one is refused with the valid ones listed.
fn parse_reason(label: &str) -> Result<Reason, String> {
    Reason::parse(label).map_err(|e| e.to_string())
}

/// Runs `coldchain gateway …`.
pub async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let config = GatewayConfig::load(&args.config)?;
    match args.command {
        None => {
            let handle = crate::Gateway::start(config).await?;
            tokio::signal::ctrl_c().await?;
            tracing::info!("stopping gateway");
            handle.stop().await;
            Ok(())
        }
        Some(GatewayCommand::DeadLetters { action }) => dead_letters(config, action),
    }
}

fn dead_letters(config: GatewayConfig, action: DeadLetterAction) -> anyhow::Result<()> {
    let mut queue = crate::queue::Queue::open(&config.queue_path)?;
    match action {
        DeadLetterAction::List { reason, limit } => {
            for entry in queue.dead_letters(reason.map(Reason::label), limit)? {
                println!("{}", serde_json::to_string(&entry)?);
            }
        }
        DeadLetterAction::Replay { ids, all, reason } => {
            if reason.is_some() && !all {
                anyhow::bail!("--reason selects entries for --all; pass --all too, or name ids");
            }
            let ids: Vec<i64> = if all {
                queue
                    .dead_letters(reason.map(Reason::label), usize::MAX)?
                    .into_iter()
                    .map(|e| e.id)
                    .collect()
            } else {
                ids
            };
            if ids.is_empty() && !all {
                anyhow::bail!("name dead-letter ids to replay, or pass --all");
            }
            let directory = crate::directory::Directory::new(&config, None);
            let limits = Plausibility {
                clock_skew_tolerance_s: config.clock_skew_tolerance_s,
                max_backlog_age_s: config.max_backlog_age_s,
            };
            let mut missing = 0;
            let (mut queued, mut refused, mut kept) = (0, 0, 0);
            for &id in &ids {
                let outcome = queue.replay_dead_letter_with(
                    id,
                    &|d| directory.route(d),
                    &|prefix| {
                        config
                            .mqtt
                            .iter()
                            .find(|b| b.topic_prefix == prefix)
                            .and_then(|b| b.senml.clone())
                    },
                    crate::submission::now_ms(),
                    limits,
                    config.queue_disk_cap_bytes,
                )?;
                match outcome {
                    ReplayOutcome::Queued { .. } => queued += 1,
                    ReplayOutcome::RefusedAgain { .. } => refused += 1,
                    ReplayOutcome::NotReplayable(_) => kept += 1,
                    ReplayOutcome::Missing => missing += 1,
                }
                println!("{id}: {outcome}");
            }
            let entries = if ids.len() == 1 { "entry" } else { "entries" };
            eprintln!(
                "{} {entries} replayed: {queued} queued (the next gateway run sends them), {refused} refused again, {kept} kept, {missing} not found",
                ids.len()
            );
            if missing > 0 {
                anyhow::bail!("{missing} of the ids named are not in the dead-letter store; list them with `dead-letters list`");
            }
        }
    }
    Ok(())
}
