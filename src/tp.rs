//! `coldchain tp <family>`: one transaction family as an external processor
//! connected to a validator's component endpoint (the embedded node or a real
//! Sawtooth validator). One family per process: the Sawtooth Rust SDK and the
//! validator route by family, and a crash in one family does not stop others.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use coldchain_processors::host;
use sawtooth_sdk::processor::handler::TransactionHandler;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Family {
    /// coldchain-registry: organisations, agents, sites, devices, gateways, lots, blood units.
    Registry,
    /// coldchain-custody: shipments, hand-offs, dispensing, emergency blood transfers.
    Custody,
    /// coldchain-sensor: readings and excursion budgets.
    Sensor,
}

#[derive(Args, Debug)]
pub struct TpArgs {
    /// Which family to process.
    #[arg(value_enum)]
    pub family: Family,
    /// The validator's component endpoint.
    #[arg(
        short = 'C',
        long,
        env = "COLDCHAIN_COMPONENT",
        default_value = "tcp://127.0.0.1:4004"
    )]
    pub connect: String,
}

pub fn handler(family: Family) -> Box<dyn TransactionHandler + Send + Sync> {
    match family {
        Family::Registry => Box::new(coldchain_processors::registry::RegistryHandler::new()),
        Family::Custody => Box::new(coldchain_processors::custody::CustodyHandler::new()),
        Family::Sensor => Box::new(coldchain_processors::sensor::SensorHandler::new()),
    }
}

pub fn run(args: TpArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C/SIGTERM handler")?;
    let handler = handler(args.family);
    tracing::info!(family = %handler.family_name(), endpoint = %args.connect, "starting transaction processor");
    host::run(handler.as_ref(), &args.connect, stop)?;
    tracing::info!("transaction processor stopped");
    Ok(())
}
