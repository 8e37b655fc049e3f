//! Whether the index can be trusted to be current, so that a verdict given
//! now is true now and does not silently come from the past.
//!
//! The follower thread records what it sees in [`FollowerStatus`] (the chain
//! head, when it last had contact with the node, blocks it keeps failing
//! on); [`FollowerStatus::assess`] judges that against [`FreshnessLimits`]
//! without any I/O, because the verification endpoints ask on every request
//! (thousands per second). The index is *fresh* when the follower is
//! subscribed and heard from the node within `max_lag`, is not stuck, and the
//! index is at most `max_lag_blocks` behind the chain head, with the oldest
//! block it misses first seen no more than `max_lag` ago. A quiet chain (no
//! new blocks) is not lag: an index level with the head is fresh however
//! long ago the last block came.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Default for `--max-lag-blocks`.
pub const DEFAULT_MAX_LAG_BLOCKS: u64 = 3;
/// Default for `--max-lag-seconds`.
pub const DEFAULT_MAX_LAG_SECONDS: u64 = 10;
/// Failures in a row on one block after which the follower counts as stuck.
pub const STUCK_AFTER_FAILURES: u32 = 3;
/// Chain-head sightings kept for the lag clock (a lag this deep is far beyond
/// any `max_lag_blocks` anyway).
const MAX_SIGHTINGS: usize = 4096;

/// How far behind the chain the index may be while verdicts are given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreshnessLimits {
    /// Blocks the index may trail the chain head by.
    pub max_lag_blocks: u64,
    /// How long the index may miss a block, and the follower may go without
    /// contact with the node.
    pub max_lag: Duration,
}

impl Default for FreshnessLimits {
    fn default() -> FreshnessLimits {
        FreshnessLimits {
            max_lag_blocks: DEFAULT_MAX_LAG_BLOCKS,
            max_lag: Duration::from_secs(DEFAULT_MAX_LAG_SECONDS),
        }
    }
}

/// A block the follower failed on several times in a row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StuckBlock {
    pub block_num: u64,
    pub block_id: String,
    /// Failures in a row on this block.
    pub failures: u32,
    /// The last failure.
    pub reason: String,
}

/// What the follower reports: chain head, contact, failures; read by the
/// HTTP handlers (status, health, metrics, the verification gate).
#[derive(Debug)]
pub struct FollowerStatus {
    /// Subscribed to the node's events right now.
    pub connected: AtomicBool,
    /// Newest block number the node announced or served as its head (u64::MAX before any).
    pub chain_head_num: AtomicU64,
    pub last_error: Mutex<String>,
    started: Instant,
    /// Milliseconds after `started` of the last successful contact, plus one (0: never).
    last_contact_ms: AtomicU64,
    /// When each chain head beyond the index was first seen, by block number:
    /// the lag clock runs from the oldest sighting the index has not reached.
    sightings: Mutex<BTreeMap<u64, Instant>>,
    /// The block the follower has been failing on, with the count in a row.
    failing: Mutex<Option<StuckBlock>>,
    failures_total: AtomicU64,
    verify_refused_total: AtomicU64,
}

impl Default for FollowerStatus {
    fn default() -> FollowerStatus {
        FollowerStatus::new()
    }
}

/// Why verdicts cannot be given now (`status` of `/health`, `state` of the 503).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stale {
    /// The index holds no block yet (starting, or rebuilding from genesis).
    Empty,
    /// The index trails the chain head by too many blocks or for too long.
    Behind,
    /// The follower failed on the same block [`STUCK_AFTER_FAILURES`] times in a row.
    Stuck,
    /// No successful contact with the node for longer than `max_lag`.
    NoContact,
}

impl Stale {
    pub fn as_str(self) -> &'static str {
        match self {
            Stale::Empty => "empty",
            Stale::Behind => "behind",
            Stale::Stuck => "stuck",
            Stale::NoContact => "no_contact",
        }
    }
}

/// The judgement: how far behind the index is, and whether that is too far.
#[derive(Clone, Debug, PartialEq)]
pub struct Freshness {
    /// False with `--no-follow`: the index is served as it is, never refused.
    pub following: bool,
    /// The newest indexed block number.
    pub index_head: Option<u64>,
    pub chain_head_num: Option<u64>,
    /// Blocks between the index head and the chain head (None: head unknown).
    pub lag_blocks: Option<u64>,
    /// Since the oldest block the index misses was first seen (0 when level).
    pub lag_seconds: f64,
    /// Since the follower last heard from the node (None: never).
    pub seconds_since_contact: Option<f64>,
    pub stuck: Option<StuckBlock>,
    /// Why verdicts cannot be given, for the operator; None when they can.
    pub stale: Option<(Stale, String)>,
}

impl Freshness {
    /// Whether verification may answer with a verdict now.
    pub fn verdicts_allowed(&self) -> bool {
        !self.following || self.stale.is_none()
    }

    /// The index is known to be current (never with `--no-follow`).
    pub fn fresh(&self) -> bool {
        self.following && self.stale.is_none()
    }

    /// For `/api/v1/status`: why the index is not known to be current.
    pub fn stale_reason(&self) -> Option<String> {
        if !self.following {
            return Some(
                "not following the chain (--no-follow): the index is served as it is".into(),
            );
        }
        self.stale.as_ref().map(|(_, reason)| reason.clone())
    }

    /// The message a pharmacist reads instead of a verdict: the ledger cannot
    /// be checked, this is no counterfeit signal, how far behind, what to do.
    pub fn refusal_message(&self) -> String {
        let behind = match (self.lag_blocks, self.lag_seconds) {
            (Some(blocks), seconds) if blocks > 0 => format!(
                "{blocks} block{} / {} behind the ledger",
                if blocks == 1 { "" } else { "s" },
                whole_seconds(seconds)
            ),
            (None, _) => "an unknown amount behind the ledger".into(),
            _ => "up to date with the last ledger block it saw".into(),
        };
        let detail = match self.stale.as_ref().map(|(kind, _)| *kind) {
            Some(Stale::Empty) => {
                "This service has not finished reading the ledger yet (it is starting or rebuilding its copy).".to_string()
            }
            Some(Stale::Stuck) => format!(
                "This service has stopped reading the ledger at block {}; it is {behind}.",
                self.stuck.as_ref().map_or(0, |s| s.block_num)
            ),
            Some(Stale::NoContact) => match self.seconds_since_contact {
                Some(seconds) => format!(
                    "This service has had no contact with the ledger for {}; it was {behind}.",
                    whole_seconds(seconds)
                ),
                None => "This service has not reached the ledger yet.".to_string(),
            },
            Some(Stale::Behind) | None => format!("This service is {behind}."),
        };
        format!(
            "The ledger cannot be checked right now, so no verdict is given. This is NOT a \
             counterfeit warning: it says nothing about this pack. {detail} Try again in a \
             minute; if this keeps happening, tell the operator of this service."
        )
    }
}

fn whole_seconds(seconds: f64) -> String {
    format!("{} s", seconds.round() as u64)
}

impl FollowerStatus {
    pub fn new() -> FollowerStatus {
        FollowerStatus {
            connected: AtomicBool::new(false),
            chain_head_num: AtomicU64::new(u64::MAX),
            last_error: Mutex::new(String::new()),
            started: Instant::now(),
            last_contact_ms: AtomicU64::new(0),
            sightings: Mutex::new(BTreeMap::new()),
            failing: Mutex::new(None),
            failures_total: AtomicU64::new(0),
            verify_refused_total: AtomicU64::new(0),
        }
    }

    /// The chain head, if any was seen.
    pub fn chain_head(&self) -> Option<u64> {
        let head = self.chain_head_num.load(Ordering::Relaxed);
        (head != u64::MAX).then_some(head)
    }

    /// A successful exchange with the node while subscribed (an event, a
    /// subscription answer, a chain-head poll).
    pub fn contact(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.started).as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1;
        self.last_contact_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Seconds since the last contact (None: never).
    pub fn seconds_since_contact(&self, now: Instant) -> Option<f64> {
        let ms = self.last_contact_ms.load(Ordering::Relaxed);
        if ms == 0 {
            return None;
        }
        let at = self.started + Duration::from_millis(ms - 1);
        Some(now.saturating_duration_since(at).as_secs_f64())
    }

    /// The node served `head` as its chain head: it replaces the known head
    /// (a fork may shorten the chain) and feeds the lag clock.
    pub fn chain_head_served(&self, head: u64, index_head: Option<u64>, now: Instant) {
        self.chain_head_num.store(head, Ordering::Relaxed);
        self.observe(head, index_head, now);
    }

    /// A block was announced: raises the known chain head (a catch-up
    /// replays older blocks, which must not lower it).
    pub fn block_announced(&self, block_num: u64) {
        let known = self.chain_head_num.load(Ordering::Relaxed);
        if known == u64::MAX || block_num > known {
            self.chain_head_num.store(block_num, Ordering::Relaxed);
        }
    }

    /// Notes the chain head and the index head seen at `now` for the lag
    /// clock: each head beyond the index is remembered with when it was
    /// first seen; those the index reached, or a fork abandoned, are dropped.
    pub fn observe(&self, chain_head: u64, index_head: Option<u64>, now: Instant) {
        let Ok(mut sightings) = self.sightings.lock() else {
            return;
        };
        if let Some(index) = index_head {
            *sightings = sightings.split_off(&(index + 1));
        }
        sightings.retain(|num, _| *num <= chain_head);
        let behind = index_head.is_none_or(|i| i < chain_head);
        let newest = sightings.keys().next_back().copied();
        if behind && newest.is_none_or(|n| n < chain_head) && sightings.len() < MAX_SIGHTINGS {
            sightings.insert(chain_head, now);
        }
    }

    /// Seconds since the oldest chain head beyond `index_head` was first
    /// seen (0 when the index has every block seen).
    pub fn lag_seconds(&self, index_head: Option<u64>, now: Instant) -> f64 {
        let Ok(sightings) = self.sightings.lock() else {
            return 0.0;
        };
        let first = match index_head {
            Some(index) => sightings.range(index + 1..).next(),
            None => sightings.iter().next(),
        };
        first.map_or(0.0, |(_, seen)| {
            now.saturating_duration_since(*seen).as_millis() as f64 / 1000.0
        })
    }

    /// The follower failed (any failure: it reconnects with backoff).
    pub fn fail(&self, error: &impl std::fmt::Display) {
        tracing::warn!(%error, "chain follower");
        self.connected.store(false, Ordering::Relaxed);
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = error.to_string();
        }
    }

    /// The follower failed on block `block_num`: counts failures in a row on
    /// it, and raises the stuck alarm at [`STUCK_AFTER_FAILURES`].
    pub fn block_failed(&self, block_num: u64, block_id: &str, reason: &str) {
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        let failures = match failing.as_ref() {
            Some(f) if f.block_num == block_num && f.block_id == block_id => f.failures + 1,
            _ => 1,
        };
        *failing = Some(StuckBlock {
            block_num,
            block_id: block_id.to_string(),
            failures,
            reason: reason.to_string(),
        });
        // The alarm, then a reminder about once a minute at the longest backoff.
        if failures >= STUCK_AFTER_FAILURES && (failures - STUCK_AFTER_FAILURES).is_multiple_of(12)
        {
            tracing::error!(
                block_num,
                block_id,
                failures,
                reason,
                "chain follower stuck: block {block_num} ({block_id}) failed {failures} times in a row; \
                 verification answers 503 until it is indexed: {reason}"
            );
        }
    }

    /// A block at `block_num` was indexed: a failing block at or below it
    /// is behind us (indexed at last, or replaced by a fork).
    pub fn block_indexed(&self, block_num: u64) {
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        if let Some(f) = failing.as_ref().filter(|f| f.block_num <= block_num) {
            if f.failures >= STUCK_AFTER_FAILURES {
                tracing::info!(
                    block_num = f.block_num,
                    block_id = %f.block_id,
                    failures = f.failures,
                    "chain follower no longer stuck: the block is indexed"
                );
            }
            *failing = None;
        }
    }

    /// The stuck alarm: the block failed [`STUCK_AFTER_FAILURES`] times or more in a row.
    pub fn stuck(&self) -> Option<StuckBlock> {
        self.failing
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .filter(|f| f.failures >= STUCK_AFTER_FAILURES)
    }

    pub fn failures_total(&self) -> u64 {
        self.failures_total.load(Ordering::Relaxed)
    }

    /// A verification was refused (503) instead of answered.
    pub fn verify_refused(&self) {
        self.verify_refused_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn verify_refused_total(&self) -> u64 {
        self.verify_refused_total.load(Ordering::Relaxed)
    }

    /// Judges whether the index, whose newest block is `index_head`, is
    /// current enough for verdicts. No I/O: cheap enough for every request.
    pub fn assess(
        &self,
        following: bool,
        index_head: Option<u64>,
        limits: &FreshnessLimits,
        now: Instant,
    ) -> Freshness {
        let chain_head_num = self.chain_head();
        let lag_blocks = chain_head_num.map(|chain| match index_head {
            Some(index) => chain.saturating_sub(index),
            None => chain.saturating_add(1),
        });
        let level = lag_blocks == Some(0);
        let lag_seconds = if level {
            0.0
        } else {
            self.lag_seconds(index_head, now)
        };
        let seconds_since_contact = self.seconds_since_contact(now);
        let stuck = self.stuck();
        let max_lag = limits.max_lag.as_secs_f64();
        let stale = if !following {
            // --no-follow: nothing to judge (and nothing to format per request).
            None
        } else if let Some(s) = &stuck {
            Some((
                Stale::Stuck,
                format!(
                    "the chain follower failed {} times in a row on block {} ({}): {}",
                    s.failures, s.block_num, s.block_id, s.reason
                ),
            ))
        } else if seconds_since_contact.is_none_or(|s| s > max_lag) {
            let last_error = self
                .last_error
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default();
            let since = match seconds_since_contact {
                Some(s) => format!("no contact with the node for {s:.1} s"),
                None => "the chain follower has not been subscribed to the node yet".into(),
            };
            let error = if last_error.is_empty() {
                String::new()
            } else {
                format!(" (last error: {last_error})")
            };
            Some((Stale::NoContact, format!("{since}{error}")))
        } else if index_head.is_none() {
            Some((
                Stale::Empty,
                "the index holds no block yet (starting, or re-indexing from genesis)".into(),
            ))
        } else if let Some(lag) = lag_blocks.filter(|lag| *lag > limits.max_lag_blocks) {
            Some((
                Stale::Behind,
                format!(
                    "the index is {lag} blocks behind the chain head (at most {} allowed)",
                    limits.max_lag_blocks
                ),
            ))
        } else if lag_seconds > max_lag {
            Some((
                Stale::Behind,
                format!(
                    "the index has missed a block for {lag_seconds:.1} s (at most {max_lag} s allowed)"
                ),
            ))
        } else if chain_head_num.is_none() {
            Some((
                Stale::NoContact,
                "the node has not served its chain head yet".into(),
            ))
        } else {
            None
        };
        Freshness {
            following,
            index_head,
            chain_head_num,
            lag_blocks,
            lag_seconds,
            seconds_since_contact,
            stuck,
            stale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FreshnessLimits {
        FreshnessLimits {
            max_lag_blocks: 3,
            max_lag: Duration::from_secs(10),
        }
    }

    /// A status that heard from the node at `t` with the chain head at `head`.
    fn contacted(head: u64, index: Option<u64>, t: Instant) -> FollowerStatus {
        let status = FollowerStatus::new();
        status.chain_head_served(head, index, t);
        status.contact(t);
        status
    }

    #[test]
    fn lag_seconds_count_from_when_the_oldest_missing_block_was_first_seen() {
        let status = FollowerStatus::new();
        let t0 = Instant::now();
        status.observe(5, Some(5), t0);
        assert_eq!(
            status.lag_seconds(Some(5), t0 + Duration::from_secs(9)),
            0.0
        );
        // Head 7 seen at t0+1 s, 8 at t0+2 s: the index at 6 misses 7 since t0+1.
        status.observe(7, Some(5), t0 + Duration::from_secs(1));
        status.observe(8, Some(6), t0 + Duration::from_secs(2));
        assert_eq!(
            status.lag_seconds(Some(6), t0 + Duration::from_millis(3_500)),
            2.5
        );
        // At 7 it misses 8, seen at t0+2 s.
        status.observe(8, Some(7), t0 + Duration::from_secs(3));
        assert_eq!(
            status.lag_seconds(Some(7), t0 + Duration::from_secs(4)),
            2.0
        );
        status.observe(8, Some(8), t0 + Duration::from_secs(4));
        assert_eq!(
            status.lag_seconds(Some(8), t0 + Duration::from_secs(5)),
            0.0
        );
        // An empty index is behind any chain.
        status.observe(0, None, t0 + Duration::from_secs(6));
        assert_eq!(status.lag_seconds(None, t0 + Duration::from_secs(7)), 1.0);
    }

    #[test]
    fn an_index_always_one_block_behind_a_busy_chain_is_not_counted_as_old() {
        let status = FollowerStatus::new();
        let t0 = Instant::now();
        for n in 1..=60u64 {
            // Block n+1 appears each second; the index reaches n.
            status.observe(n + 1, Some(n), t0 + Duration::from_secs(n));
        }
        let now = t0 + Duration::from_millis(60_500);
        assert_eq!(status.lag_seconds(Some(60), now), 0.5);
    }

    #[test]
    fn a_quiet_chain_level_with_the_index_stays_fresh() {
        let t0 = Instant::now();
        let status = contacted(40, Some(40), t0);
        // No block for an hour; the follower keeps polling the head.
        let later = t0 + Duration::from_secs(3_600);
        status.chain_head_served(40, Some(40), later);
        status.contact(later);
        let f = status.assess(true, Some(40), &limits(), later + Duration::from_secs(1));
        assert_eq!(f.stale, None, "{f:?}");
        assert!(f.fresh() && f.verdicts_allowed());
        assert_eq!((f.lag_blocks, f.lag_seconds), (Some(0), 0.0));
    }

    #[test]
    fn more_blocks_behind_than_allowed_is_behind() {
        let t0 = Instant::now();
        let status = contacted(12, Some(8), t0);
        let f = status.assess(true, Some(8), &limits(), t0);
        assert_eq!(f.stale.as_ref().map(|s| s.0), Some(Stale::Behind), "{f:?}");
        assert_eq!(f.lag_blocks, Some(4));
        assert!(!f.verdicts_allowed());
        let message = f.refusal_message();
        assert!(message.contains("cannot be checked right now"), "{message}");
        assert!(message.contains("NOT a counterfeit"), "{message}");
        assert!(message.contains("4 blocks / 0 s behind"), "{message}");
        // Within the limit: a verdict.
        let f = status.assess(true, Some(9), &limits(), t0);
        assert_eq!(f.stale, None, "{f:?}");
    }

    #[test]
    fn missing_a_block_for_longer_than_allowed_is_behind() {
        let t0 = Instant::now();
        let status = contacted(9, Some(8), t0);
        let later = t0 + Duration::from_secs(11);
        status.contact(later);
        let f = status.assess(true, Some(8), &limits(), later);
        assert_eq!(f.stale.as_ref().map(|s| s.0), Some(Stale::Behind), "{f:?}");
        assert_eq!(f.lag_seconds, 11.0);
    }

    #[test]
    fn no_contact_for_longer_than_allowed_refuses_even_when_level() {
        let t0 = Instant::now();
        let status = contacted(8, Some(8), t0);
        let f = status.assess(true, Some(8), &limits(), t0 + Duration::from_secs(5));
        assert!(f.fresh(), "{f:?}");
        status.fail(&"connection refused");
        let f = status.assess(true, Some(8), &limits(), t0 + Duration::from_secs(11));
        assert_eq!(
            f.stale.as_ref().map(|s| s.0),
            Some(Stale::NoContact),
            "{f:?}"
        );
        assert!(f
            .stale_reason()
            .unwrap_or_default()
            .contains("connection refused"));
        assert!(f
            .refusal_message()
            .contains("no contact with the ledger for 11 s"));
        // Never subscribed: refused from the start.
        let f = FollowerStatus::new().assess(true, Some(8), &limits(), t0);
        assert_eq!(f.stale.map(|s| s.0), Some(Stale::NoContact));
    }

    #[test]
    fn an_empty_index_is_refused() {
        let t0 = Instant::now();
        let status = contacted(3, None, t0);
        let f = status.assess(true, None, &limits(), t0);
        assert_eq!(f.stale.map(|s| s.0), Some(Stale::Empty));
        assert_eq!(f.lag_blocks, Some(4));
    }

    #[test]
    fn three_failures_in_a_row_on_one_block_raise_the_stuck_alarm_until_it_is_indexed() {
        let t0 = Instant::now();
        let status = contacted(69, Some(67), t0);
        status.block_failed(68, "7043ab", "no receipt");
        status.block_failed(68, "7043ab", "no receipt");
        assert_eq!(status.stuck(), None);
        assert!(status.assess(true, Some(67), &limits(), t0).fresh());
        status.block_failed(68, "7043ab", "no receipt");
        let stuck = status.stuck().expect("stuck");
        assert_eq!((stuck.block_num, stuck.failures), (68, 3));
        let f = status.assess(true, Some(67), &limits(), t0);
        assert_eq!(f.stale.as_ref().map(|s| s.0), Some(Stale::Stuck), "{f:?}");
        assert!(f
            .refusal_message()
            .contains("stopped reading the ledger at block 68"));
        // Another block failing starts a new count.
        status.block_failed(69, "99", "timeout");
        assert_eq!(status.stuck(), None);
        status.block_failed(68, "7043ab", "no receipt");
        status.block_failed(68, "7043ab", "no receipt");
        status.block_failed(68, "7043ab", "no receipt");
        assert!(status.stuck().is_some());
        status.block_indexed(68);
        assert_eq!(status.stuck(), None);
    }

    #[test]
    fn without_following_verdicts_are_given_but_never_called_fresh() {
        let f = FollowerStatus::new().assess(false, Some(3), &limits(), Instant::now());
        assert!(f.verdicts_allowed());
        assert!(!f.fresh());
        assert!(f.stale_reason().unwrap_or_default().contains("--no-follow"));
    }
}
