//! # coldchain-processors
//!
//! The shared rules of the cold chain, as Hyperledger Sawtooth transaction
//! families. Every rule a participant must not be able to bypass lives here
//! and runs inside a transaction processor (TP).
//!
//! ## Layout
//! - [`messages`]: generated protobuf payloads and state (`proto/coldchain.proto`).
//! - [`addressing`]: namespaces, type prefixes and natural keys of every record.
//! - [`identifiers`]: GTIN, GLN, serial and ISBT 128 validation.
//! - [`state`]: typed load/store of records and on-chain settings.
//! - [`registry`]: the registry family (organisations, agents, sites, devices, gateways, lots, blood units).
//! - [`custody`]: the custody family (shipments, hand-offs, dispensing, emergency blood transfers).
//! - [`blood`]: ABO/Rh compatibility and blood-component profiles (pure rules).
//! - [`isbt128`]: ISBT 128 label scans (DIN with flags and MOD 37-2 check character,
//!   product codes, blood group codes, expiry) for the clients; pure parsing.
//! - [`thermal`]: excursions, budgets, gaps, MKT and the readings hash chain (pure rules).
//! - [`sensor`]: the sensor family (readings batches from gateways).
//! - [`host`]: the ZeroMQ host that runs one family as an external TP process.
//! - [`signing`]: keys, signed transactions and batches (used by clients, tests, benches).
//! - [`memory_context`]: an in-memory `TransactionContext` for tests and benches.
//!
//! ## Boundaries
//! Handlers are deterministic: no clocks, no randomness, no floating point and no
//! hash-map iteration in anything written to state; time comes from payloads.
//! Handlers never do I/O besides the `TransactionContext` they are given, so the
//! same code runs in an external TP process and inside the embedded node.
pub mod addressing;
pub mod blood;
pub mod custody;
pub mod host;
pub mod identifiers;
pub mod isbt128;
pub mod memory_context;
#[allow(warnings, clippy::all)]
pub mod messages;
pub mod registry;
pub mod sensor;
pub mod signing;
pub mod state;
pub mod thermal;

use std::sync::Arc;

use sawtooth_sdk::processor::handler::TransactionHandler;

/// The three coldchain families, ready to run in-process (the embedded node)
/// or one per external TP process (`coldchain tp <family>`).
pub fn family_handlers() -> Vec<Arc<dyn TransactionHandler + Send + Sync>> {
    vec![
        Arc::new(registry::RegistryHandler::new()),
        Arc::new(custody::CustodyHandler::new()),
        Arc::new(sensor::SensorHandler::new()),
    ]
}

/// Every event type the coldchain families emit (Sawtooth subscriptions
/// match event types exactly, so subscribers list them). Keep in step with
/// `docs/families.md` and `docs/families-sensor.md`.
pub const EVENT_TYPES: &[&str] = &[
    "coldchain/lot-status",
    "coldchain/shipment-created",
    "coldchain/shipment-cancelled",
    "coldchain/handoff-proposed",
    "coldchain/handoff-accepted",
    "coldchain/handoff-rejected",
    "coldchain/handoff-cancelled",
    "coldchain/pack-dispensed",
    "coldchain/blood-request-filed",
    "coldchain/blood-offer",
    "coldchain/blood-offer-accepted",
    "coldchain/blood-delivered",
    sensor::EVENT_EXCURSION_STARTED,
    sensor::EVENT_EXCURSION_ENDED,
    sensor::EVENT_COMPROMISED,
];
