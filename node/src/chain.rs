//! The committed chain as readers see it: read-only connections to the block
//! store, the live feed of committed blocks, and the [`ChainFeed`] that event
//! subscribers follow. Only the publisher writes blocks; this module reads.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::broadcast;

use crate::chain_feed::{ChainFeed, ChainFeedError, CommittedBlock};
use crate::store::{self, StoreError};

/// Recent blocks kept in memory for subscribers that are only a little behind.
const RECENT_BLOCKS: usize = 64;
/// Live-feed buffer; a subscriber lagging further gets `Lagged` and catches up.
const FEED_CAPACITY: usize = 1024;

/// The committed chain.
pub struct Chain {
    db_path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    recent: Mutex<VecDeque<Arc<CommittedBlock>>>,
    feed: broadcast::Sender<Arc<CommittedBlock>>,
}

impl Chain {
    pub fn new(db_path: PathBuf) -> Chain {
        Chain {
            db_path,
            idle: Mutex::new(Vec::new()),
            recent: Mutex::new(VecDeque::new()),
            feed: broadcast::channel(FEED_CAPACITY).0,
        }
    }

    /// Runs `read` with a pooled read connection.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => store::open(&self.db_path)?,
        };
        let result = read(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < 8 {
            idle.push(conn);
        }
        result
    }

    /// Announces a block the publisher has made durable.
    pub fn announce(&self, block: CommittedBlock) {
        let block = Arc::new(block);
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.push_back(block.clone());
            while recent.len() > RECENT_BLOCKS {
                recent.pop_front();
            }
        }
        // No subscribers is fine: nobody is following right now.
        let _ = self.feed.send(block);
    }

    fn recent_where(&self, pred: impl Fn(&CommittedBlock) -> bool) -> Option<Arc<CommittedBlock>> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().rev().find(|b| pred(b)).cloned()
    }

    fn load(&self, block_num: u64) -> Result<Option<Arc<CommittedBlock>>, StoreError> {
        if let Some(block) = self.recent_where(|b| b.block_num == block_num) {
            return Ok(Some(block));
        }
        let Some((block, receipts)) = self.read(|c| store::block_by_num(c, block_num))? else {
            return Ok(None);
        };
        let header = store::decode_header(&block)?;
        Ok(Some(Arc::new(CommittedBlock {
            block_id: block.get_header_signature().to_string(),
            block_num: header.get_block_num(),
            previous_block_id: header.get_previous_block_id().to_string(),
            state_root_hash: header.get_state_root_hash().to_string(),
            block,
            receipts,
        })))
    }
}

fn feed_error(e: StoreError) -> ChainFeedError {
    ChainFeedError(e.to_string())
}

impl ChainFeed for Chain {
    fn chain_head(&self) -> Result<Option<Arc<CommittedBlock>>, ChainFeedError> {
        let head = self.read(store::head).map_err(feed_error)?;
        match head {
            Some(summary) => self.load(summary.block_num).map_err(feed_error),
            None => Ok(None),
        }
    }

    fn block_by_id(&self, block_id: &str) -> Result<Option<Arc<CommittedBlock>>, ChainFeedError> {
        if let Some(block) = self.recent_where(|b| b.block_id == block_id) {
            return Ok(Some(block));
        }
        let summary = self
            .read(|c| store::block_summary(c, block_id))
            .map_err(feed_error)?;
        match summary {
            Some(summary) => self.load(summary.block_num).map_err(feed_error),
            None => Ok(None),
        }
    }

    fn blocks_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Arc<CommittedBlock>>, ChainFeedError> {
        let mut blocks = Vec::new();
        let mut next = after.saturating_add(1);
        while blocks.len() < limit {
            match self.load(next).map_err(feed_error)? {
                Some(block) => blocks.push(block),
                None => break,
            }
            next += 1;
        }
        Ok(blocks)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedBlock>> {
        self.feed.subscribe()
    }
}
