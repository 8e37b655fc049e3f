//! Ingestion: arrivals from every source into the queue, in groups.
//!
//! One task owns writing; sources hand it arrivals over a bounded channel
//! (back-pressure instead of unbounded memory) and, for MQTT, a callback that
//! fires only after the group is committed to disk, which is when the broker
//! gets its QoS 1 ack. A failed write acknowledges nothing, so the broker
//! redelivers. No parsing or network here.
use crate::queue::{Admission, Arrival};
use crate::submission::{now_ms, with_queue};
use crate::validation::Plausibility;
use crate::Shared;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
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
        let count = arrivals.len() as u64;
        let sources: Vec<String> = arrivals.iter().map(|a| a.source.clone()).collect();
        let result = with_queue(&shared, move |q| q.admit(&arrivals, now_ms(), limits, cap)).await;
        match result {
            Ok(admissions) => {
                shared.metrics.received.fetch_add(count, Relaxed);
                let mut urgent = false;
                for (admission, source) in admissions.iter().zip(&sources) {
                    match admission {
                        Admission::Queued { urgent: u } => urgent |= u,
                        Admission::Refused(r) => {
                            shared.metrics.reject(r.reason);
                            tracing::info!(reason = r.reason.label(), detail = %r.detail, source = %source, "reading refused");
                        }
                    }
                }
                if urgent {
                    shared.wake.notify_one();
                }
                for w in waiting {
                    let _ = w.send(true);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, readings = count, "could not store readings; they are not acknowledged and will be redelivered by MQTT (serial readings are lost)");
                for w in waiting {
                    let _ = w.send(false);
                }
            }
        }
    }
}
