//! # coldchain-node
//!
//! A single-machine validator that behaves like a one-node Hyperledger Sawtooth
//! network: it validates signed batches, executes them with the coldchain
//! families in-process (or with external TPs connected over ZeroMQ), keeps
//! Sawtooth-compatible Merkle state, publishes signed blocks, and serves the
//! Sawtooth REST API and event subscriptions.
//!
//! ## Layout
//! - [`node`]: start/stop ([`Node::start`] → [`NodeHandle`]), configuration.
//! - [`cli`]: `coldchain node` flags and run loop.
//! - [`validation`]: batch checks before queueing (signatures, ids, hashes).
//! - [`intake`]: the bounded batch queue and batch statuses.
//! - [`execution`]: serial execution with inputs/outputs enforced.
//! - [`publisher`]: the block publisher thread (execute → root → persist → announce).
//! - [`store`]: SQLite block store and current state leaves (durable, one transaction per block).
//! - [`merkle`]: the seam to `coldchain-state`'s Merkle-radix tree.
//! - [`chain`]: read side of the chain and the live block feed.
//! - [`genesis`]: genesis settings and the node key.
//! - [`rest`]: the Sawtooth-compatible REST API.
//! - [`component`]: the ZeroMQ component endpoint (external TPs, event subscriptions).
//! - [`chain_feed`]: the contract between the chain and its followers.
//! - [`handlers`]: which handler executes which family/version.
//! - [`testing`]: a minimal probe family for tests and benchmarks.
//!
//! It must not contain family rules (those live in `coldchain-processors`).
pub mod chain;
pub mod chain_feed;
pub mod cli;
pub mod component;
pub mod execution;
pub mod genesis;
pub mod handlers;
pub mod intake;
pub mod merkle;
pub mod node;
pub mod publisher;
pub mod rest;
pub mod store;
pub mod testing;
pub mod validation;

pub use node::{Node, NodeConfig, NodeError, NodeHandle};
