//! Submission: due readings into batches, batches to the ledger, outcomes back
//! into the queue.
//!
//! Each batch is stored before it is sent and followed by its own task until
//! the ledger gives a final answer; a device is in at most one open batch, so
//! its sequence numbers reach the ledger in order. After a restart the stored
//! batches are asked about first and re-sent (same bytes, same id) only when
//! the ledger does not know them. This module decides nothing about validity:
//! the ledger's verdict is final, and "readings already recorded" is checked
//! against the device's `last_sequence` on the ledger.
use crate::batching::{runs, sign_readings_batch};
use crate::ledger::{BatchStatus, PostOutcome};
use crate::metrics::ExcursionCommit;
use crate::Shared;
use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Full-jitter exponential backoff: uniform in [0, min(max, initial·2^attempt)].
pub fn backoff_delay(attempt: u32, initial_ms: u64, max_ms: u64) -> Duration {
    let ceiling = initial_ms
        .saturating_mul(1u64 << attempt.min(20))
        .min(max_ms)
        .max(1);
    Duration::from_millis(rand::thread_rng().gen_range(ceiling / 2..=ceiling))
}

/// How long to wait after a 429. The server's `Retry-After` hint is capped at
/// `max_ms` (a misconfigured or hostile API must not park the gateway for
/// hours) and gets up to a quarter on top as jitter, so gateways told the same
/// hint do not all come back at once. Without a hint: [`backoff_delay`].
pub fn busy_delay(hint: Option<Duration>, attempt: u32, initial_ms: u64, max_ms: u64) -> Duration {
    match hint {
        None => backoff_delay(attempt, initial_ms, max_ms),
        Some(hint) => {
            let capped = (hint.as_millis().min(u128::from(max_ms)) as u64).max(1);
            Duration::from_millis(capped + rand::thread_rng().gen_range(0..=capped / 4))
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs `work` on the queue in a blocking thread.
pub(crate) async fn with_queue<T: Send + 'static>(
    shared: &Arc<Shared>,
    work: impl FnOnce(&mut crate::queue::Queue) -> Result<T, crate::queue::QueueError> + Send + 'static,
) -> anyhow::Result<T> {
    let queue = shared.queue.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut guard = queue
            .lock()
            .map_err(|_| anyhow::anyhow!("queue lock poisoned by an earlier failure"))?;
        work(&mut guard).map_err(anyhow::Error::from)
    })
    .await
    .map_err(|e| anyhow::anyhow!("queue task failed: {e}"))?;
    result
}

/// The batcher: every tick (or when an excursion edge arrives) turns due
/// devices' readings into batches while in-flight capacity allows.
pub(crate) async fn run_batcher(
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(
        shared.config.submission.max_in_flight_batches,
    ));
    match with_queue(&shared, |q| q.open_batches()).await {
        Ok(open) => {
            for (batch_id, body) in open {
                tracing::info!(batch_id = %short(&batch_id), "resuming a batch left open by the last run");
                let permit = permits.clone().acquire_owned().await;
                if let Ok(permit) = permit {
                    tokio::spawn(follow_batch(shared.clone(), batch_id, body, true, permit));
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read open batches; they will be retried on the next start")
        }
    }
    let tick = Duration::from_millis(shared.config.batching.tick_ms.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shared.wake.notified() => {}
            _ = shutdown.changed() => return,
        }
        refresh_gauges(&shared).await;
        while let Ok(permit) = permits.clone().try_acquire_owned() {
            match build_batch(&shared).await {
                Ok(Some((batch_id, body))) => {
                    tokio::spawn(follow_batch(shared.clone(), batch_id, body, false, permit));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "could not build a batch; retrying next tick");
                    break;
                }
            }
        }
    }
}

async fn refresh_gauges(shared: &Arc<Shared>) {
    let now = now_ms();
    match with_queue(shared, move |q| q.stats(now)).await {
        Ok(stats) => {
            let m = &shared.metrics;
            m.queued.store(stats.queued, Relaxed);
            m.in_flight.store(stats.in_flight, Relaxed);
            m.oldest_unsent_ms
                .store(stats.oldest_unsent_ms.unwrap_or(0), Relaxed);
            m.dead_letters.store(stats.dead_letters, Relaxed);
            m.queue_disk_bytes.store(stats.disk_bytes, Relaxed);
            let cap = shared.config.queue_disk_cap_bytes;
            let alarm = stats.disk_bytes as f64 >= cap as f64 * shared.config.queue_alarm_fraction;
            if alarm && !m.queue_disk_alarm.swap(true, Relaxed) {
                tracing::error!(disk_bytes = stats.disk_bytes, cap_bytes = cap,
                    "queue is near its disk cap; readings will be refused at the cap. Restore the ledger connection or raise queue_disk_cap_bytes");
            } else if !alarm && m.queue_disk_alarm.swap(false, Relaxed) {
                tracing::info!(
                    disk_bytes = stats.disk_bytes,
                    "queue is below its disk alarm again"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read queue statistics"),
    }
}

/// Largest BatchList body the gateway sends: below the 10 MiB request limit
/// of the Sawtooth REST API (and the embedded node), which answers a larger
/// one with 413 — after a backlog, `max_transactions_per_batch` full
/// transactions of `max_readings` readings can exceed it.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Signs and stores the next batch of due readings, if any. A batch whose
/// body would exceed [`MAX_BATCH_BYTES`] is built again with half as many
/// transactions (the readings left out go in the next batches).
async fn build_batch(shared: &Arc<Shared>) -> anyhow::Result<Option<(String, Vec<u8>)>> {
    let batching = shared.config.batching.clone();
    let signer = shared.signer.clone();
    with_queue(shared, move |q| {
        let now = now_ms();
        let mut max_transactions = batching.max_transactions_per_batch;
        loop {
            let due = q.due_devices(now, batching.max_readings, batching.max_age_ms)?;
            let mut per_device = Vec::new();
            let mut transactions = 0;
            for device in due {
                if transactions >= max_transactions {
                    break;
                }
                // Cap each device's share so one chatty logger cannot starve the others.
                let readings = q.unsent_readings(&device, batching.max_readings * 4)?;
                transactions += runs(&readings, batching.max_readings).len();
                per_device.push(readings);
            }
            // A device's runs are in sequence order: a prefix of them keeps its
            // readings in order, the rest follow in a later batch.
            let groups: Vec<_> = per_device
                .iter()
                .flat_map(|r| runs(r, batching.max_readings))
                .take(max_transactions.max(1))
                .collect();
            if groups.is_empty() {
                return Ok(None);
            }
            let batch = sign_readings_batch(&groups, &signer)
                .map_err(|e| crate::queue::QueueError::Signing(e.to_string()))?;
            if batch.body.len() > MAX_BATCH_BYTES && groups.len() > 1 {
                max_transactions = groups.len() / 2;
                continue;
            }
            q.record_batch(&batch.batch_id, &batch.body, &batch.members, now)?;
            return Ok(Some((batch.batch_id, batch.body)));
        }
    })
    .await
}

fn short(id: &str) -> &str {
    &id[..id.len().min(16)]
}

/// Sends one batch (unless `resumed`, when the ledger is asked first) and
/// follows it to a final answer, then settles its readings in the queue.
async fn follow_batch(
    shared: Arc<Shared>,
    batch_id: String,
    body: Vec<u8>,
    resumed: bool,
    _permit: OwnedSemaphorePermit,
) {
    let cfg = shared.config.submission.clone();
    let mut posted = resumed;
    let mut attempt: u32 = 0;
    let pause = |attempt: &mut u32| {
        *attempt += 1;
        shared.metrics.submit_retries.fetch_add(1, Relaxed);
        backoff_delay(*attempt, cfg.backoff_initial_ms, cfg.backoff_max_ms)
    };
    loop {
        if !posted {
            match shared.ledger.post_batches(body.clone()).await {
                Ok(PostOutcome::Accepted) => {
                    posted = true;
                    attempt = 0;
                }
                Ok(PostOutcome::Busy(hint)) => {
                    attempt += 1;
                    shared.metrics.submit_retries.fetch_add(1, Relaxed);
                    let delay =
                        busy_delay(hint, attempt, cfg.backoff_initial_ms, cfg.backoff_max_ms);
                    tracing::debug!(batch_id = %short(&batch_id), ?hint, ?delay, "validator busy (429); waiting");
                    tokio::time::sleep(delay).await;
                }
                Ok(PostOutcome::Refused(message)) => {
                    // The batch as a whole was refused; unless the ledger already has it, its readings are dead letters.
                    match shared.ledger.batch_status(&batch_id, 0).await {
                        Ok(BatchStatus::Unknown) | Ok(BatchStatus::Invalid(_)) => {
                            tracing::error!(batch_id = %short(&batch_id), %message, "REST API refused the batch");
                            settle_refused_batch(&shared, &batch_id, &message).await;
                            return;
                        }
                        _ => posted = true,
                    }
                }
                Err(e) => {
                    let delay = pause(&mut attempt);
                    tracing::warn!(batch_id = %short(&batch_id), error = %e, ?delay, "could not submit batch; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
            continue;
        }
        match shared
            .ledger
            .batch_status(&batch_id, cfg.status_wait_s)
            .await
        {
            Ok(BatchStatus::Committed) => {
                let id = batch_id.clone();
                match with_queue(&shared, move |q| q.settle_committed(&id)).await {
                    Ok(committed) => {
                        let now = now_ms();
                        for r in &committed.received_at_ms {
                            shared.metrics.observe_commit(now.saturating_sub(*r));
                        }
                        for edge in committed.excursion_edges {
                            shared.metrics.observe_excursion_commit(ExcursionCommit {
                                device_id: edge.device_id,
                                sequence: edge.sequence,
                                received_at_ms: edge.received_at_ms,
                                committed_at_ms: now,
                            });
                        }
                        shared.metrics.batches_committed.fetch_add(1, Relaxed);
                        tracing::debug!(batch_id = %short(&batch_id), readings = committed.received_at_ms.len(), "batch committed");
                        shared.wake.notify_one();
                        return;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not mark a committed batch; retrying");
                        tokio::time::sleep(pause(&mut attempt)).await;
                    }
                }
            }
            Ok(BatchStatus::Invalid(refused)) => {
                if settle_invalid_batch(&shared, &batch_id, refused).await {
                    shared.metrics.batches_invalid.fetch_add(1, Relaxed);
                    shared.wake.notify_one();
                    return;
                }
                tokio::time::sleep(pause(&mut attempt)).await;
            }
            Ok(BatchStatus::Pending) => attempt = 0,
            Ok(BatchStatus::Unknown) => {
                // Never received, or lost by a restarted validator: send the same bytes again.
                posted = false;
                tokio::time::sleep(pause(&mut attempt)).await;
            }
            Err(e) => {
                let delay = pause(&mut attempt);
                tracing::warn!(batch_id = %short(&batch_id), error = %e, ?delay, "could not read batch status; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Settles an INVALID batch. Returns false when it must be retried (ledger
/// state needed for "already recorded" could not be read).
async fn settle_invalid_batch(
    shared: &Arc<Shared>,
    batch_id: &str,
    refused: Vec<(String, String)>,
) -> bool {
    let id = batch_id.to_string();
    let transactions = match with_queue(shared, move |q| q.batch_transactions(&id)).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot read batch members");
            return false;
        }
    };
    let mut recorded: HashMap<String, u64> = HashMap::new();
    for (transaction_id, message) in &refused {
        let Some((_, device)) = transactions.iter().find(|(t, _)| t == transaction_id) else {
            continue;
        };
        if message.starts_with(crate::ALREADY_RECORDED) {
            match shared.ledger.device(device).await {
                Ok(Some(record)) => {
                    recorded.insert(device.clone(), record.get_last_sequence());
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, device = %device, "cannot read the device's recorded sequence; retrying");
                    return false;
                }
            }
        } else {
            tracing::warn!(batch_id = %short(batch_id), device = %device, %message, "ledger refused readings; moved to dead letters");
        }
    }
    let id = batch_id.to_string();
    let now = now_ms();
    match with_queue(shared, move |q| {
        q.settle_invalid(&id, &refused, &|d: &str| recorded.get(d).copied(), now)
    })
    .await
    {
        Ok((settled, requeued, dead)) => {
            for _ in 0..settled {
                shared.metrics.observe_commit(0);
            }
            for _ in 0..dead {
                shared
                    .metrics
                    .reject(crate::validation::Reason::LedgerInvalid);
            }
            tracing::info!(batch_id = %short(batch_id), settled, requeued, dead, "batch invalid; readings settled");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "could not settle an invalid batch");
            false
        }
    }
}

async fn settle_refused_batch(shared: &Arc<Shared>, batch_id: &str, message: &str) {
    let id = batch_id.to_string();
    let message = format!("REST API refused the batch: {message}");
    let now = now_ms();
    let result = with_queue(shared, move |q| {
        let refused: Vec<(String, String)> = q
            .batch_transactions(&id)?
            .into_iter()
            .map(|(t, _)| (t, message.clone()))
            .collect();
        q.settle_invalid(&id, &refused, &|_: &str| None, now)
    })
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not settle a refused batch");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..30 {
            let d = backoff_delay(attempt, 100, 5_000);
            assert!(d <= Duration::from_millis(5_000));
        }
        assert!(backoff_delay(6, 100, 60_000) >= Duration::from_millis(3_200));
    }

    #[test]
    fn retry_after_is_capped_and_jittered() {
        let delays: Vec<Duration> = (0..200)
            .map(|_| busy_delay(Some(Duration::from_secs(3600)), 1, 100, 2_000))
            .collect();
        assert!(delays
            .iter()
            .all(|d| (Duration::from_millis(2_000)..=Duration::from_millis(2_500)).contains(d)));
        assert!(delays.iter().any(|d| *d != delays[0]), "no jitter");
        let short = busy_delay(Some(Duration::from_secs(1)), 1, 100, 10_000);
        assert!((Duration::from_secs(1)..=Duration::from_millis(1_250)).contains(&short));
        assert!(busy_delay(None, 3, 100, 10_000) <= Duration::from_millis(800));
    }
}
