//! # coldchain-node
//!
//! A single-machine validator that behaves like a one-node Hyperledger Sawtooth
//! network: it validates signed batches, executes them with the coldchain
//! families in-process (or with external TPs connected over ZeroMQ), keeps
//! Sawtooth-compatible Merkle state, publishes signed blocks, and serves the
//! Sawtooth REST API and event subscriptions.
//!
//! ## Layout
//! - [`chain_feed`]: the contract between the chain and its followers (event
//!   subscriptions): committed blocks with their receipts.
//! - [`handlers`]: which handler executes which family/version.
//!
//! It must not contain family rules (those live in `coldchain-processors`).
pub mod chain_feed;
pub mod handlers;
