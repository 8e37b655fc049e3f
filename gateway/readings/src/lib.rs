//! # coldchain-gateway
//!
//! The sensor gateway: collects temperature readings from loggers on serial
//! ports and MQTT brokers, checks them, stores them durably, batches them into
//! `RecordReadings` transactions signed with the gateway's key and submits them
//! to a Sawtooth REST API — never losing and never duplicating a reading.
//!
//! ## Layout
//! - [`protocol`]: the serial line and MQTT payload formats (parsing only).
//! - [`config`]: the TOML configuration with environment overrides.
//! - [`validation`]: may a reading enter the queue (pure rules, reasons).
//! - [`arrivals`]: a serial line or MQTT message → its routed readings or a refusal (pure).
//! - [`admission`]: judging an arrival and storing it — a message is all or nothing.
//! - [`directory`]: which org/shipment a device reports for (config or ledger state).
//! - [`queue`]: the SQLite store-and-forward queue; [`dead_letter`]: refusals, listed and replayed.
//! - [`batching`]: readings → signed transactions and batches (pure).
//! - [`ledger`]: the Sawtooth REST API client.
//! - [`submission`]: batching loop, sending, following and settling batches.
//! - [`ingest`]: the single writer that stores arrivals in groups.
//! - [`sources`]: serial, MQTT and Modbus RTU adapters.
//! - [`metrics`]: Prometheus counters, `/metrics` and `/health`.
//! - [`cli`]: `coldchain gateway` arguments and entry point.
//!
//! ## Boundaries
//! The gateway never decides whether readings are acceptable to the ledger; the
//! sensor transaction processor does. It only refuses what it can know is
//! broken (syntax, checksum, unknown device, impossible values, clock skew,
//! sequence order) and keeps every refusal in the dead-letter store.
//!
//! ## Exactly once
//! A reading is acknowledged to its device only once on disk; it leaves the
//! queue only when its batch is COMMITTED, or when the ledger reports it
//! already recorded (its sequence ≤ the device's `last_sequence` on chain).
//! Batches are stored before sending and re-sent byte for byte, and a device is
//! in at most one open batch, so the ledger sees its sequences in order.
pub mod admission;
pub mod arrivals;
pub mod batching;
pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod directory;
pub mod ingest;
pub mod ledger;
pub mod metrics;
pub mod protocol;
pub mod queue;
pub mod sources;
pub mod submission;
pub mod validation;

pub use config::GatewayConfig;

use coldchain_processors::signing::Signer;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the sensor processor's message for replayed or out-of-order sequences begins.
pub use coldchain_processors::sensor::ALREADY_RECORDED;

/// What every gateway task shares.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) queue: Arc<Mutex<queue::Queue>>,
    pub(crate) ledger: ledger::Ledger,
    pub(crate) signer: Signer,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) directory: directory::Directory,
    pub(crate) wake: tokio::sync::Notify,
}

/// A running gateway.
pub struct Gateway;

/// Handle to a running gateway: its metrics and a way to stop it.
pub struct GatewayHandle {
    metrics: Arc<metrics::Metrics>,
    metrics_addr: Option<std::net::SocketAddr>,
    public_key: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    queue: Arc<Mutex<queue::Queue>>,
}

impl Gateway {
    /// Starts every source, the ingest writer, the batcher and the metrics
    /// endpoint on the current tokio runtime. Resumes batches a previous run
    /// left open.
    pub async fn start(config: GatewayConfig) -> anyhow::Result<GatewayHandle> {
        config.check()?;
        let signer = Signer::from_file(&config.key_file).map_err(|e| {
            anyhow::anyhow!("{e}; create one with `coldchain keygen` or point key_file / COLDCHAIN_GATEWAY_KEY_FILE at a Sawtooth .priv file")
        })?;
        let queue = Arc::new(Mutex::new(queue::Queue::open(&config.queue_path)?));
        let ledger = ledger::Ledger::new(
            &config.rest_url,
            Duration::from_millis(config.submission.request_timeout_ms),
        )?;
        let lookup_ledger = ledger::Ledger::new(&config.rest_url, Duration::from_secs(2))?;
        let metrics = Arc::new(metrics::Metrics::default());
        let shared = Arc::new(Shared {
            directory: directory::Directory::new(&config, Some(lookup_ledger)),
            config: config.clone(),
            queue: queue.clone(),
            ledger,
            signer: signer.clone(),
            metrics: metrics.clone(),
            wake: tokio::sync::Notify::new(),
        });
        let (shutdown, watch) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        let metrics_addr = if config.metrics_bind.is_empty() {
            None
        } else {
            let (addr, task) = metrics::serve(&config.metrics_bind, metrics.clone()).await?;
            tasks.push(task);
            Some(addr)
        };
        let (sink, inbound) = tokio::sync::mpsc::channel(4096);
        tasks.push(tokio::spawn(ingest::run_ingest(shared.clone(), inbound)));
        tasks.push(tokio::spawn(submission::run_batcher(
            shared.clone(),
            watch.clone(),
        )));
        for port in &config.serial {
            tasks.push(tokio::spawn(sources::serial::run_serial(
                shared.clone(),
                port.clone(),
                sink.clone(),
                watch.clone(),
            )));
        }
        for broker in &config.mqtt {
            tasks.push(tokio::spawn(sources::mqtt::run_mqtt(
                shared.clone(),
                broker.clone(),
                sink.clone(),
                watch.clone(),
            )));
        }
        for line in &config.modbus {
            tasks.push(tokio::spawn(sources::modbus::run_modbus(
                shared.clone(),
                line.clone(),
                sink.clone(),
                watch.clone(),
            )));
        }
        tracing::info!(public_key = signer.public_key(), rest_url = %config.rest_url, serial_ports = config.serial.len(),
            mqtt_brokers = config.mqtt.len(), modbus_lines = config.modbus.len(), ?metrics_addr, "gateway started");
        Ok(GatewayHandle {
            metrics,
            metrics_addr,
            public_key: signer.public_key().to_string(),
            shutdown,
            tasks,
            queue,
        })
    }
}

impl GatewayHandle {
    /// Live counters.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// Where `/metrics` is served, if enabled.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
    }

    /// The gateway's public key (grant it with `AuthorizeGateway`).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Queue counts right now.
    pub fn queue_stats(&self) -> anyhow::Result<queue::QueueStats> {
        let queue = self
            .queue
            .lock()
            .map_err(|_| anyhow::anyhow!("queue lock poisoned"))?;
        Ok(queue.stats(submission::now_ms())?)
    }

    /// Stops sources and loops. Batches in flight stay in the queue and are
    /// resumed by the next start.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}
