//! The component endpoint: the node's ZeroMQ ROUTER socket speaking the
//! Sawtooth validator-side protocol (default `tcp://127.0.0.1:4004`), so
//! programs written for a Sawtooth validator work unchanged against the node.
//!
//! - **External transaction processors** (any Sawtooth SDK) register a
//!   family/version; while connected, the [`HandlerRegistry`] routes that
//!   family to a [`remote::RemoteProcessor`], which drives TP_PROCESS and
//!   serves the TP's state/receipt/event requests inside the executor's
//!   context. Unregistering or losing the connection falls back to the
//!   in-process handler.
//! - **Event subscriptions**: CLIENT_EVENTS_SUBSCRIBE with
//!   `last_known_block_ids` catch-up, `sawtooth/block-commit`,
//!   `sawtooth/state-delta` and the families' events; CLIENT_EVENTS_GET.
//!
//! ## Layout
//! - [`events`]: which events a block yields for a subscription (pure).
//! - [`remote`]: the executor-side proxy for an external TP.
//! - [`subscriber`]: per-subscriber ordered delivery, catch-up, back-pressure.
//! - [`router`]: the I/O thread owning the socket.
//! - [`wire`]: message framing and the outbox into the I/O thread.
//!
//! It must not execute transactions itself, decide validity, or write state
//! other than through the context the executor hands to `apply`; and it must
//! never block the chain on a slow subscriber.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::chain_feed::ChainFeed;
use crate::handlers::HandlerRegistry;

pub mod events;
pub mod registration;
pub mod remote;
mod router;
pub mod subscriber;
mod wire;

#[cfg(test)]
mod tests;

/// Failure to start the component endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("cannot bind the component endpoint {endpoint}: {source}; pick a free address (e.g. tcp://127.0.0.1:4004) or stop the process using it")]
    Bind {
        endpoint: String,
        source: zmq::Error,
    },
    #[error("ZeroMQ error on the component endpoint: {0}")]
    Zmq(zmq::Error),
    #[error("cannot start a component endpoint thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Timing and buffering of the endpoint; the defaults match a Sawtooth
/// validator's behaviour closely enough for its SDKs.
#[derive(Clone, Debug)]
pub struct ComponentSettings {
    /// A peer silent this long is pinged (a dead peer's route then fails).
    pub heartbeat_interval: Duration,
    /// A registered TP silent this long with no request in flight is dropped.
    pub tp_idle_timeout: Duration,
    /// How long `apply` waits for a TP that stays connected but never answers.
    pub process_timeout: Duration,
    /// Messages queued per peer in ZeroMQ before event deliveries to it are
    /// refused and re-sent later from the store.
    pub send_high_water_mark: i32,
}

impl Default for ComponentSettings {
    fn default() -> Self {
        ComponentSettings {
            heartbeat_interval: Duration::from_secs(10),
            tp_idle_timeout: Duration::from_secs(30),
            process_timeout: Duration::from_secs(300),
            send_high_water_mark: 1000,
        }
    }
}

/// Starts the component endpoint.
pub struct ComponentEndpoint;

impl ComponentEndpoint {
    /// Binds `bind` (a ZeroMQ endpoint; `tcp://127.0.0.1:*` picks a free
    /// port) and serves it on its own thread with default settings.
    pub fn start(
        bind: &str,
        registry: HandlerRegistry,
        feed: Arc<dyn ChainFeed>,
    ) -> Result<ComponentHandle, ComponentError> {
        ComponentEndpoint::start_with(bind, registry, feed, ComponentSettings::default())
    }

    /// As [`ComponentEndpoint::start`], with explicit settings.
    pub fn start_with(
        bind: &str,
        registry: HandlerRegistry,
        feed: Arc<dyn ChainFeed>,
        settings: ComponentSettings,
    ) -> Result<ComponentHandle, ComponentError> {
        let context = zmq::Context::new();
        let router = context.socket(zmq::ROUTER).map_err(ComponentError::Zmq)?;
        router
            .set_router_mandatory(true)
            .map_err(ComponentError::Zmq)?;
        router
            .set_sndhwm(settings.send_high_water_mark)
            .map_err(ComponentError::Zmq)?;
        router.set_linger(0).map_err(ComponentError::Zmq)?;
        router.bind(bind).map_err(|source| ComponentError::Bind {
            endpoint: bind.to_string(),
            source,
        })?;
        let endpoint = match router.get_last_endpoint() {
            Ok(Ok(endpoint)) => endpoint,
            _ => bind.to_string(),
        };

        let instance = wire::fresh_id();
        let inbox_endpoint = format!("inproc://component-outbox-{instance}");
        let inbox = context.socket(zmq::PULL).map_err(ComponentError::Zmq)?;
        inbox.bind(&inbox_endpoint).map_err(ComponentError::Zmq)?;
        let outbox = wire::Outbox::connect(&context, &inbox_endpoint)?;

        let monitor_endpoint = format!("inproc://component-monitor-{instance}");
        router
            .monitor(&monitor_endpoint, zmq::SocketEvent::DISCONNECTED as i32)
            .map_err(ComponentError::Zmq)?;
        let monitor = context.socket(zmq::PAIR).map_err(ComponentError::Zmq)?;
        monitor
            .connect(&monitor_endpoint)
            .map_err(ComponentError::Zmq)?;

        let stop = Arc::new(AtomicBool::new(false));
        let pump = subscriber::Pump::start(&feed, stop.clone())?;
        let router = router::Router::new(
            router,
            inbox,
            monitor,
            registry,
            feed,
            pump,
            outbox,
            settings,
            stop.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("component-endpoint".into())
            .spawn(move || router.run())?;
        tracing::info!(%endpoint, "component endpoint listening");
        Ok(ComponentHandle {
            endpoint,
            stop,
            thread: Some(thread),
        })
    }
}

/// A running component endpoint; dropping it shuts it down too.
pub struct ComponentHandle {
    endpoint: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ComponentHandle {
    /// The endpoint actually bound (with the real port when `*` was given).
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Stops serving: external TPs are unregistered (their families fall back
    /// to the in-process handlers), in-flight remote requests fail with an
    /// internal error, subscribers stop; waits for the I/O thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("component endpoint thread panicked");
            }
        }
    }
}

impl Drop for ComponentHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
