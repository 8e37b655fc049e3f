//! The contract between the chain and whoever follows it (the ZeroMQ event
//! subscription service, tests): every committed block with the receipts of
//! its transactions, in order, readable again after the fact for catch-up.
use std::sync::Arc;

use sawtooth_sdk::messages::block::Block;
use sawtooth_sdk::messages::transaction_receipt::TransactionReceipt;

/// A block as committed, with everything a subscriber needs to build
/// `sawtooth/block-commit`, `sawtooth/state-delta` and the families' events.
#[derive(Clone, Debug)]
pub struct CommittedBlock {
    /// The block exactly as stored (header bytes, header signature, batches).
    pub block: Block,
    pub block_id: String,
    pub block_num: u64,
    pub previous_block_id: String,
    pub state_root_hash: String,
    /// One receipt per transaction, in block order: state changes (values
    /// unwrapped, as TPs wrote them), events the TPs emitted, receipt data.
    pub receipts: Vec<TransactionReceipt>,
}

/// Error reading the chain back.
#[derive(Debug, thiserror::Error)]
#[error("chain store: {0}")]
pub struct ChainFeedError(pub String);

/// Where committed blocks can be followed live and read back.
pub trait ChainFeed: Send + Sync {
    /// The newest committed block (None before genesis).
    fn chain_head(&self) -> Result<Option<Arc<CommittedBlock>>, ChainFeedError>;
    /// A committed block by id.
    fn block_by_id(&self, block_id: &str) -> Result<Option<Arc<CommittedBlock>>, ChainFeedError>;
    /// Committed blocks with `block_num > after`, oldest first, at most `limit`.
    fn blocks_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Arc<CommittedBlock>>, ChainFeedError>;
    /// Live feed of blocks as they commit (a subscriber that lags too far
    /// receives `Lagged` and must catch up with `blocks_after`).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<CommittedBlock>>;
}
