//! The block publisher: one thread that takes waiting batches, executes them
//! serially, and commits the valid ones as a signed block.
//!
//! Order of a commit, which is what makes kill -9 safe: execute → compute the
//! new state root → write block + batches + receipts + state leaves in one
//! fsynced SQLite transaction → only then report the batches COMMITTED and
//! announce the block. A crash before the SQLite commit loses the block but
//! no batch was reported committed; after it, restart finds the block.
//!
//! Retry policy: a batch whose handler fails internally (or whose external TP
//! is gone) is retried in later blocks, at most [`MAX_ATTEMPTS`] times, then
//! reported INVALID with the last error. A batch whose dependency is not yet
//! committed waits the same way.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use coldchain_processors::signing::Signer;
use protobuf::Message;
use rusqlite::Connection;
use sawtooth_sdk::messages::block::{Block, BlockHeader};

use crate::chain::Chain;
use crate::chain_feed::CommittedBlock;
use crate::execution::{execute_batch, BatchOutcome, Overlay};
use crate::handlers::HandlerRegistry;
use crate::intake::{Intake, InvalidTransaction, QueuedBatch};
use crate::merkle::StateTree;
use crate::store::{self, BlockRecord, BlockSummary, LeafChange};
use crate::validation::ValidBatch;

/// How often a batch is tried before an internal error makes it INVALID.
pub const MAX_ATTEMPTS: u32 = 10;
/// The consensus field of every block this node publishes.
pub const CONSENSUS: &[u8] = b"Devmode";

/// Block limits.
#[derive(Clone, Copy, Debug)]
pub struct PublishLimits {
    pub max_batches_per_block: usize,
    pub max_block_wait: Duration,
}

/// The publisher's state; owned by its thread.
pub struct Publisher {
    pub conn: Connection,
    pub tree: StateTree,
    pub head: BlockSummary,
    pub signer: Signer,
    pub registry: HandlerRegistry,
    pub intake: Arc<Intake>,
    pub chain: Arc<Chain>,
    pub limits: PublishLimits,
}

struct Assembly<'q> {
    overlay: Overlay,
    txn_ids: HashSet<String>,
    included: Vec<&'q QueuedBatch>,
    receipts: Vec<sawtooth_sdk::messages::transaction_receipt::TransactionReceipt>,
    invalid: Vec<(&'q ValidBatch, InvalidTransaction)>,
    retry: Vec<usize>,
}

impl Publisher {
    /// Publishes blocks until the intake is closed.
    pub fn run(mut self) {
        loop {
            let batches = self.intake.take(
                self.limits.max_batches_per_block,
                self.limits.max_block_wait,
            );
            if batches.is_empty() {
                return;
            }
            self.publish(batches);
        }
    }

    fn committed_txn(&self, id: &str) -> bool {
        match store::has_transaction(&self.conn, id) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!("duplicate check failed, treating {id} as committed: {e}");
                true
            }
        }
    }

    fn assemble<'q>(&self, batches: &'q [QueuedBatch]) -> Assembly<'q> {
        let mut a = Assembly {
            overlay: Overlay::new(),
            txn_ids: HashSet::new(),
            included: Vec::new(),
            receipts: Vec::new(),
            invalid: Vec::new(),
            retry: Vec::new(),
        };
        let context_id = format!("block-{}", self.head.block_num + 1);
        for (index, queued) in batches.iter().enumerate() {
            let batch = &queued.batch;
            if let Some(dup) = batch
                .transactions
                .iter()
                .find(|t| a.txn_ids.contains(&t.id) || self.committed_txn(&t.id))
            {
                a.invalid.push((
                    batch,
                    invalid_txn(
                        &dup.id,
                        "duplicate transaction id: already committed or earlier in this block",
                    ),
                ));
                continue;
            }
            let waiting = batch.transactions.iter().find_map(|t| {
                t.header
                    .get_dependencies()
                    .iter()
                    .find(|d| !a.txn_ids.contains(d.as_str()) && !self.committed_txn(d))
                    .map(|d| (t.id.clone(), d.clone()))
            });
            if let Some((txn, dep)) = waiting {
                if queued.attempts + 1 >= MAX_ATTEMPTS {
                    a.invalid.push((
                        batch,
                        invalid_txn(&txn, &format!("dependency {dep} was never committed")),
                    ));
                } else {
                    a.retry.push(index);
                }
                continue;
            }
            match execute_batch(batch, &self.tree, &a.overlay, &self.registry, &context_id) {
                BatchOutcome::Valid { writes, receipts } => {
                    a.overlay.extend(writes);
                    a.txn_ids
                        .extend(batch.transactions.iter().map(|t| t.id.clone()));
                    a.receipts.extend(receipts);
                    a.included.push(queued);
                }
                BatchOutcome::Invalid {
                    transaction_id,
                    message,
                    extended_data,
                } => a.invalid.push((
                    batch,
                    InvalidTransaction {
                        id: transaction_id,
                        message,
                        extended_data,
                    },
                )),
                BatchOutcome::Internal {
                    transaction_id,
                    message,
                } => {
                    if queued.attempts + 1 >= MAX_ATTEMPTS {
                        let message = format!(
                            "gave up after {MAX_ATTEMPTS} attempts; last internal error: {message}"
                        );
                        a.invalid
                            .push((batch, invalid_txn(&transaction_id, &message)));
                    } else {
                        tracing::warn!("batch {} will be retried: {message}", batch.id);
                        a.retry.push(index);
                    }
                }
            }
        }
        a
    }

    fn publish(&mut self, batches: Vec<QueuedBatch>) {
        let assembly = self.assemble(&batches);
        let retry_indices = assembly.retry.clone();
        let committed = if assembly.included.is_empty() {
            self.intake.settle(&[], assembly.invalid);
            true
        } else {
            self.commit(assembly)
        };
        let backoff = !retry_indices.is_empty();
        let retry: Vec<QueuedBatch> = if committed {
            let wanted: HashSet<usize> = retry_indices.into_iter().collect();
            batches
                .into_iter()
                .enumerate()
                .filter(|(i, _)| wanted.contains(i))
                .map(|(_, mut q)| {
                    q.attempts += 1;
                    q
                })
                .collect()
        } else {
            batches
        };
        self.intake.requeue(retry);
        if backoff || !committed {
            std::thread::sleep(Duration::from_millis(if committed { 20 } else { 500 }));
        }
    }

    /// Makes the block durable, then settles statuses and announces it.
    /// Returns false (nothing settled) when the store refused the block.
    fn commit(&mut self, a: Assembly<'_>) -> bool {
        let changes: Vec<LeafChange> = a.overlay.into_iter().collect();
        let state_root = match self.tree.apply(&changes) {
            Ok(root) => root,
            Err(e) => {
                tracing::error!("state tree refused the block's changes: {e}");
                self.rebuild_tree();
                return false;
            }
        };
        let mut header = BlockHeader::new();
        header.set_block_num(self.head.block_num + 1);
        header.set_previous_block_id(self.head.block_id.clone());
        header.set_signer_public_key(self.signer.public_key().to_string());
        header.set_batch_ids(a.included.iter().map(|q| q.batch.id.clone()).collect());
        header.set_consensus(CONSENSUS.to_vec());
        header.set_state_root_hash(state_root.clone());
        let header_bytes = match header.write_to_bytes() {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!("cannot encode block header: {e}");
                self.rebuild_tree();
                return false;
            }
        };
        let block_id = self.signer.sign(&header_bytes);
        let batches: Vec<_> = a.included.iter().map(|q| q.batch.batch.clone()).collect();
        let record = BlockRecord {
            block_num: header.get_block_num(),
            block_id: &block_id,
            header: &header_bytes,
            previous_block_id: header.get_previous_block_id(),
            state_root_hash: &state_root,
            batches: &batches,
            receipts: &a.receipts,
            state_changes: &changes,
        };
        if let Err(e) = store::write_block(&mut self.conn, &record) {
            tracing::error!(
                "could not store block {}: {e}; batches stay queued",
                record.block_num
            );
            self.rebuild_tree();
            return false;
        }
        self.head = BlockSummary {
            block_num: header.get_block_num(),
            block_id: block_id.clone(),
            previous_block_id: header.get_previous_block_id().to_string(),
            state_root_hash: state_root.clone(),
        };
        let committed: Vec<&ValidBatch> = a.included.iter().map(|q| &q.batch).collect();
        self.intake.settle(&committed, a.invalid);
        let mut block = Block::new();
        block.set_header(header_bytes);
        block.set_header_signature(block_id.clone());
        block.set_batches(batches.into());
        self.chain.announce(CommittedBlock {
            block,
            block_id,
            block_num: self.head.block_num,
            previous_block_id: self.head.previous_block_id.clone(),
            state_root_hash: state_root,
            receipts: a.receipts,
        });
        true
    }

    /// Brings the in-memory tree back in line with the store after a failed commit.
    fn rebuild_tree(&mut self) {
        match store::all_leaves(&self.conn)
            .map_err(|e| e.to_string())
            .and_then(|leaves| StateTree::from_leaves(leaves).map_err(|e| e.to_string()))
        {
            Ok(tree) => self.tree = tree,
            Err(e) => tracing::error!("cannot rebuild state from the store: {e}"),
        }
    }
}

fn invalid_txn(id: &str, message: &str) -> InvalidTransaction {
    InvalidTransaction {
        id: id.to_string(),
        message: message.to_string(),
        extended_data: Vec::new(),
    }
}
