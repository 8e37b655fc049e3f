//! # coldchain-api
//!
//! The provenance API and web page: pharmacies verify a pack, partners trace a
//! lot, blood banks see emergencies. It answers from an index that a chain
//! follower keeps in step with the ledger, and every answer names the block it
//! is true at. The API never writes state: the only write path is the batch
//! pass-through, which hands signed batches to the node unchanged.
//!
//! ## Layout
//! - [`index`]: the index store trait and its SQLite and PostgreSQL implementations.
//! - [`chain`]: block updates from node data, and fork handling ([`chain::ingest`]).
//! - [`follower`]: the ZeroMQ event subscription (block-commit, state-delta, catch-up).
//! - [`freshness`]: whether the index is current enough to give verdicts
//!   (lag, contact with the node, the stuck-follower alarm).
//! - [`node`]: the node's REST API (blocks, chain head, batches).
//! - [`records`]: typed reads of ledger records with their evidence.
//! - [`verdict`]: the verification verdict (pure).
//! - [`provenance`]: lot provenance and thermal summaries.
//! - [`readings`]: readings hash-chain check, downsampling, CSV.
//! - [`epcis`]: EPCIS 2.0 JSON-LD export.
//! - [`blood`]: the emergency blood board.
//! - [`access`]: partner authentication, visibility rules, audit.
//! - [`identifiers`]: GTIN, lot, serial and GS1 Digital Link parsing.
//! - [`scan`]: what a barcode scanner types (GS1 element strings, with or
//!   without FNC1 and symbology identifier, or a Digital Link), for the API,
//!   the page and `coldchain verify`.
//! - [`routes`]: the HTTP surface (warp), [`openapi`] its description, `web/` the page.
//! - [`server`]: connections and hyper, including JSON bodies for the errors
//!   hyper answers before the router sees a request.
//! - [`cli`]: `coldchain api` arguments and runner.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub mod access;
pub mod blood;
pub mod chain;
pub mod cli;
pub mod epcis;
pub mod error;
pub mod follower;
pub mod freshness;
pub mod identifiers;
pub mod index;
pub mod node;
pub mod openapi;
pub mod provenance;
pub mod readings;
pub mod records;
pub mod routes;
pub mod scan;
pub mod server;
pub mod verdict;

/// How to start the API.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Where to listen (port 0 picks a free port; see [`ApiHandle::url`]).
    pub bind: SocketAddr,
    /// The node's REST API, e.g. `http://127.0.0.1:8008`.
    pub rest_url: String,
    /// The node's component endpoint, e.g. `tcp://127.0.0.1:4004`.
    pub component: String,
    /// `sqlite:///path/index.db` or `postgres://user@host:port/db[?schema=name]`.
    pub index_url: String,
    /// Follow the chain (false: serve the index as it is, e.g. for benchmarks).
    pub follow: bool,
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error("cannot listen on {bind}: {source}; choose another --bind address")]
    Bind {
        bind: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Node(#[from] chain::FollowError),
}

/// A running API: its address, its index, and a way to stop it.
pub struct ApiHandle {
    addr: SocketAddr,
    index: Arc<dyn index::IndexStore>,
    status: Arc<follower::FollowerStatus>,
    stop: Arc<AtomicBool>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    follower: Option<std::thread::JoinHandle<()>>,
}

impl ApiHandle {
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// The index the API serves from.
    pub fn index(&self) -> Arc<dyn index::IndexStore> {
        Arc::clone(&self.index)
    }
    /// The follower's status (connected, chain head, contact, stuck alarm).
    pub fn follower_status(&self) -> Arc<follower::FollowerStatus> {
        Arc::clone(&self.status)
    }
    /// Stops the server and the follower and waits for both.
    pub async fn stop(mut self) {
        self.stop_now().await;
    }
    async fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some(follower) = self.follower.take() {
            let _ = tokio::task::spawn_blocking(move || follower.join()).await;
        }
    }
    /// Waits until the server ends (it ends on [`ApiHandle::stop`] or Ctrl-C in `cli::run`).
    pub async fn wait(mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.stop_now().await;
    }
}

impl Drop for ApiHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The library entry point (the demo starts the API in-process).
pub struct Api;

impl Api {
    /// Opens the index, starts the chain follower (when `config.follow`) and
    /// serves HTTP, with the default [`freshness::FreshnessLimits`].
    pub async fn start(config: ApiConfig) -> Result<ApiHandle, StartError> {
        Api::start_with(config, freshness::FreshnessLimits::default()).await
    }

    /// [`Api::start`] with the freshness limits beyond which verification
    /// answers 503 instead of a verdict (`--max-lag-blocks`, `--max-lag-seconds`).
    pub async fn start_with(
        config: ApiConfig,
        limits: freshness::FreshnessLimits,
    ) -> Result<ApiHandle, StartError> {
        Api::start_with_body_timeout(config, limits, routes::BODY_TIMEOUT).await
    }

    /// [`Api::start_with`], with how long a request body may take to arrive
    /// before the request is answered 408 (default [`routes::BODY_TIMEOUT`];
    /// tests use a shorter one).
    pub async fn start_with_body_timeout(
        config: ApiConfig,
        limits: freshness::FreshnessLimits,
        body_timeout: std::time::Duration,
    ) -> Result<ApiHandle, StartError> {
        let index = index::open(&config.index_url).await?;
        let node = node::NodeClient::new(&config.rest_url)?;
        let status = Arc::new(follower::FollowerStatus::new());
        let stop = Arc::new(AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartError::Bind {
                bind: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            bind: config.bind,
            source,
        })?;
        let follower = if config.follow {
            let follower = follower::Follower {
                component: config.component.clone(),
                node: node.clone(),
                index: Arc::clone(&index),
                status: Arc::clone(&status),
                stop: Arc::clone(&stop),
                runtime: tokio::runtime::Handle::current(),
            };
            Some(
                std::thread::Builder::new()
                    .name("chain-follower".into())
                    .spawn(move || follower.run())
                    .map_err(|source| StartError::Bind {
                        bind: config.bind,
                        source,
                    })?,
            )
        } else {
            None
        };
        let state = Arc::new(routes::AppState {
            index: Arc::clone(&index),
            node,
            status: Arc::clone(&status),
            replay: access::ReplayGuard::default(),
            following: config.follow,
            limits,
            body_timeout,
        });
        let (shutdown, on_shutdown) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(routes::filter(state), listener, async move {
            let _ = on_shutdown.await;
        }));
        tracing::info!(
            %addr,
            index = %config.index_url,
            max_lag_blocks = limits.max_lag_blocks,
            max_lag_seconds = limits.max_lag.as_secs_f64(),
            "API listening"
        );
        Ok(ApiHandle {
            addr,
            index,
            status,
            stop,
            shutdown: Some(shutdown),
            server: Some(server),
            follower,
        })
    }
}
