//! Ingestion: arrivals from every source into the queue, in groups.
//!
//! One task owns writing; sources hand it arrivals over a bounded channel
//! (back-pressure instead of unbounded memory) and, for MQTT, a callback that
//! fires only after the group is committed to disk, which is when the broker
//! gets its QoS 1 ack. No parsing or network here.
//!
//! A failed write (database locked, disk full, I/O error) loses nothing: the
//! group is kept and written again with backoff until it is stored. Meanwhile
//! nothing more is taken from the channel, so it fills and the sources wait —
//! a serial reader stops reading its port (the device's bytes wait in the OS
//! buffer) and MQTT messages stay unacknowledged in the broker. Memory stays
//! bounded by one group plus the channel.
use crate::queue::{Admission, Arrival};
use crate::submission::{backoff_delay, now_ms, with_queue};
use crate::validation::Plausibility;
use crate::Shared;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Arrivals to store; `stored` hears `true` once they are on disk.
pub struct Inbound {
    pub arrivals: Vec<Arrival>,
    pub stored: Option<oneshot::Sender<bool>>,
}

/// Most arrivals written in one transaction.
const GROUP_LIMIT: usize = 20_000;

pub(crate) async fn run_ingest(shared: Arc<Shared>, mut inbound: mpsc::Receiver<Inbound>) {
    let limits = Plausibility {
        clock_skew_tolerance_s: shared.config.clock_skew_tolerance_s,
        max_backlog_age_s: shared.config.max_backlog_age_s,
    };
    let cap = shared.config.queue_disk_cap_bytes;
    while let Some(first) = inbound.recv().await {
        let mut arrivals = first.arrivals;
        let mut waiting: Vec<oneshot::Sender<bool>> = first.stored.into_iter().collect();
        while arrivals.len() < GROUP_LIMIT {
            match inbound.try_recv() {
                Ok(more) => {
                    arrivals.extend(more.arrivals);
                    waiting.extend(more.stored);
                }
                Err(_) => break,
            }
        }
        let sources: Vec<String> = arrivals.iter().map(|a| a.source.clone()).collect();
        let admissions = store_until_done(&shared, Arc::new(arrivals), limits, cap).await;
        let mut urgent = false;
        for (admission, source) in admissions.iter().zip(&sources) {
            // Received: readings queued, plus one per refusal (a refused
            // message counts once, as it is one dead letter).
            let (queued, refusal) = match admission {
                Admission::Queued {
                    readings,
                    urgent: u,
                    skipped,
                } => {
                    urgent |= u;
                    (*readings as u64, skipped.as_ref())
                }
                Admission::Refused(r) => (0, Some(r)),
            };
            shared
                .metrics
                .received
                .fetch_add(queued + refusal.is_some() as u64, Relaxed);
            if let Some(r) = refusal {
                shared.metrics.reject(r.reason);
                tracing::info!(reason = r.reason.label(), detail = %r.detail, source = %source, "refused");
            }
        }
        if urgent {
            shared.wake.notify_one();
        }
        for w in waiting {
            let _ = w.send(true);
        }
    }
}

/// First wait after a failed write; doubles up to [`RETRY_MAX`] (with jitter).
const RETRY_INITIAL: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Writes one group, retrying with backoff until the queue takes it. The
/// caller takes nothing new meanwhile, which is the back-pressure on sources.
async fn store_until_done(
    shared: &Arc<Shared>,
    arrivals: Arc<Vec<Arrival>>,
    limits: Plausibility,
    cap: u64,
) -> Vec<Admission> {
    let mut attempt: u32 = 0;
    loop {
        let group = arrivals.clone();
        match with_queue(shared, move |q| q.admit(&group, now_ms(), limits, cap)).await {
            Ok(admissions) => {
                if attempt > 0 {
                    tracing::warn!(
                        readings = arrivals.len(),
                        attempts = attempt + 1,
                        "readings stored after the queue recovered"
                    );
                }
                return admissions;
            }
            Err(e) => {
                attempt += 1;
                shared.metrics.queue_write_retries.fetch_add(1, Relaxed);
                let delay = backoff_delay(
                    attempt,
                    RETRY_INITIAL.as_millis() as u64,
                    RETRY_MAX.as_millis() as u64,
                );
                tracing::error!(error = %e, readings = arrivals.len(), attempt, ?delay,
                    "could not store readings; holding them and retrying (sources wait meanwhile). Check the queue's disk space and that no other process holds its database");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrivals::from_serial_line;
    use crate::protocol::{serial_line, DeviceReading};
    use crate::queue::Queue;
    use crate::GatewayConfig;
    use coldchain_processors::signing::Signer;
    use std::sync::Mutex;

    fn shared(dir: &std::path::Path) -> Arc<Shared> {
        let key = dir.join("gateway.priv");
        std::fs::write(&key, Signer::generate().private_hex()).unwrap();
        let text = format!(
            "key_file = {key:?}\nrest_url = \"http://127.0.0.1:9\"\nqueue_path = {:?}\nmetrics_bind = \"\"\n\
             [devices.SER-1]\norg = \"carrier\"\nshipment = \"S-1\"\n",
            dir.join("queue.sqlite")
        );
        let config = GatewayConfig::from_toml(&text).unwrap();
        let queue = Queue::open(&config.queue_path).unwrap();
        // Fail fast on the lock below instead of after the default 10 s.
        queue.set_busy_timeout(Duration::from_millis(20)).unwrap();
        Arc::new(Shared {
            directory: crate::directory::Directory::new(&config, None),
            ledger: crate::ledger::Ledger::new(&config.rest_url, Duration::from_secs(1)).unwrap(),
            signer: Signer::from_file(&config.key_file).unwrap(),
            config,
            queue: Arc::new(Mutex::new(queue)),
            metrics: Arc::default(),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn serial_arrival(shared: &Shared, sequence: u64) -> Inbound {
        let now_s = now_ms() / 1000;
        let line = serial_line::format_line(&DeviceReading {
            device_id: "SER-1".into(),
            sequence,
            time_s: now_s - 100 + sequence,
            temperature_cdeg: 450,
            humidity_permille: None,
            door: None,
            location: None,
        });
        let arrival = from_serial_line("serial:/dev/test", line.as_bytes(), &[], &|d| {
            shared.directory.route(d)
        });
        Inbound {
            arrivals: vec![arrival],
            stored: None,
        }
    }

    fn queued(shared: &Shared) -> u64 {
        shared.queue.lock().unwrap().stats(now_ms()).unwrap().queued
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serial_readings_wait_out_a_locked_queue_and_sources_are_held_back() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        // Another process's write lock on the real SQLite file: every write of
        // the gateway fails with "database is locked" while it is held.
        let blocker = rusqlite::Connection::open(&shared.config.queue_path).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let (sink, inbound) = mpsc::channel(2);
        let ingest = tokio::spawn(run_ingest(shared.clone(), inbound));

        // Serial lines keep coming; ingestion must stop taking them (the channel
        // fills) rather than take and drop them.
        let mut sent = 0;
        loop {
            match sink.try_send(serial_arrival(&shared, sent + 1)) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => break,
                Err(e) => panic!("ingestion stopped: {e}"),
            }
            assert!(
                sent < 50,
                "ingestion kept taking readings it could not store"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let failing = tokio::time::Instant::now() + Duration::from_secs(5);
        while shared.metrics.queue_write_retries.load(Relaxed) < 3 {
            assert!(
                tokio::time::Instant::now() < failing,
                "no failed writes seen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stored: i64 = blocker
            .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 0, "nothing can be stored while the lock is held");

        blocker.execute_batch("COMMIT").unwrap();
        // Once the queue takes writes again, the held readings and the waiting ones are stored, and more flow.
        sink.send(serial_arrival(&shared, sent + 1)).await.unwrap();
        sent += 1;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while queued(&shared) != sent {
            assert!(
                tokio::time::Instant::now() < deadline,
                "queued {} of {sent} serial readings",
                queued(&shared)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(shared.metrics.received.load(Relaxed), sent);
        ingest.abort();
    }
}
