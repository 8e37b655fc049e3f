//! Prometheus metrics: counters the gateway bumps and a text endpoint.
//!
//! Lock-free counters on the hot path; the queue gauges are refreshed by the
//! batcher on each tick. Reading only: nothing here changes the queue.
use crate::validation::Reason;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Upper bounds (ms) of the reading-to-commit latency histogram.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000];

/// All the gateway's metrics.
#[derive(Default)]
pub struct Metrics {
    pub received: AtomicU64,
    rejected: [AtomicU64; Reason::ALL.len()],
    pub committed: AtomicU64,
    pub batches_committed: AtomicU64,
    pub batches_invalid: AtomicU64,
    pub submit_retries: AtomicU64,
    pub queued: AtomicU64,
    pub in_flight: AtomicU64,
    pub oldest_unsent_ms: AtomicU64,
    pub dead_letters: AtomicU64,
    pub queue_disk_bytes: AtomicU64,
    pub queue_disk_alarm: AtomicBool,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_ms: AtomicU64,
}

impl Metrics {
    pub fn reject(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    pub fn rejected(&self, reason: Reason) -> u64 {
        Reason::ALL.iter().position(|r| *r == reason).map_or(0, |i| self.rejected[i].load(Relaxed))
    }

    /// Records one committed reading that the gateway received `latency_ms` ago.
    pub fn observe_commit(&self, latency_ms: u64) {
        self.committed.fetch_add(1, Relaxed);
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_ms.fetch_add(latency_ms, Relaxed);
        if let Some(i) = LATENCY_BUCKETS_MS.iter().position(|b| latency_ms <= *b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
    }

    /// Approximate latency quantile (upper bucket bound, ms), e.g. 0.99.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<u64> {
        let count = self.latency_count.load(Relaxed);
        if count == 0 {
            return None;
        }
        let target = (count as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            seen += self.latency_buckets[i].load(Relaxed);
            if seen >= target {
                return Some(*bound);
            }
        }
        Some(u64::MAX)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        counter("coldchain_gateway_readings_received_total", "Readings and messages received from devices.", "counter", self.received.load(Relaxed));
        counter("coldchain_gateway_readings_committed_total", "Readings the ledger committed.", "counter", self.committed.load(Relaxed));
        counter("coldchain_gateway_batches_committed_total", "Batches committed.", "counter", self.batches_committed.load(Relaxed));
        counter("coldchain_gateway_batches_invalid_total", "Batches the ledger refused.", "counter", self.batches_invalid.load(Relaxed));
        counter("coldchain_gateway_submit_retries_total", "Retries of POST /batches or status polls.", "counter", self.submit_retries.load(Relaxed));
        counter("coldchain_gateway_readings_queued", "Readings waiting to be sent.", "gauge", self.queued.load(Relaxed));
        counter("coldchain_gateway_readings_in_flight", "Readings in batches awaiting their outcome.", "gauge", self.in_flight.load(Relaxed));
        counter("coldchain_gateway_oldest_unsent_age_seconds", "Age of the oldest reading not yet committed.", "gauge", self.oldest_unsent_ms.load(Relaxed) / 1000);
        counter("coldchain_gateway_dead_letters", "Entries in the dead-letter store.", "gauge", self.dead_letters.load(Relaxed));
        counter("coldchain_gateway_queue_disk_bytes", "Size of the on-disk queue.", "gauge", self.queue_disk_bytes.load(Relaxed));
        counter("coldchain_gateway_queue_disk_alarm", "1 when the queue is near its disk cap.", "gauge", self.queue_disk_alarm.load(Relaxed) as u64);
        let _ = writeln!(out, "# HELP coldchain_gateway_readings_rejected_total Readings refused, by reason.\n# TYPE coldchain_gateway_readings_rejected_total counter");
        for (i, reason) in Reason::ALL.iter().enumerate() {
            let _ = writeln!(out, "coldchain_gateway_readings_rejected_total{{reason=\"{}\"}} {}", reason.label(), self.rejected[i].load(Relaxed));
        }
        let _ = writeln!(out, "# HELP coldchain_gateway_commit_latency_ms Time from receipt to commit.\n# TYPE coldchain_gateway_commit_latency_ms histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            cumulative += self.latency_buckets[i].load(Relaxed);
            let _ = writeln!(out, "coldchain_gateway_commit_latency_ms_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "coldchain_gateway_commit_latency_ms_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "coldchain_gateway_commit_latency_ms_sum {}", self.latency_sum_ms.load(Relaxed));
        let _ = writeln!(out, "coldchain_gateway_commit_latency_ms_count {count}");
        out
    }
}

/// Serves `GET /metrics` on `bind` until the task is dropped. Returns the bound address.
pub async fn serve(
    bind: &str,
    metrics: std::sync::Arc<Metrics>,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    use warp::Filter;
    let address: std::net::SocketAddr = bind
        .parse()
        .map_err(|e| anyhow::anyhow!("metrics_bind {bind:?} is not host:port: {e}"))?;
    let route = warp::path!("metrics").map(move || {
        let mut response = warp::http::Response::new(metrics.render());
        response.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    });
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {bind}: {e}; pick a free port in metrics_bind"))?;
    let bound = listener.local_addr()?;
    let server = warp::serve(route).incoming(listener);
    Ok((bound, tokio::spawn(async move { server.run().await })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_listed_by_reason() {
        let metrics = Metrics::default();
        metrics.reject(Reason::BadChecksum);
        metrics.reject(Reason::BadChecksum);
        let text = metrics.render();
        assert!(text.contains("coldchain_gateway_readings_rejected_total{reason=\"bad_checksum\"} 2"));
        assert!(text.contains("coldchain_gateway_readings_rejected_total{reason=\"malformed\"} 0"));
    }

    #[test]
    fn latency_quantiles_come_from_buckets() {
        let metrics = Metrics::default();
        for _ in 0..98 {
            metrics.observe_commit(80);
        }
        metrics.observe_commit(1_500);
        metrics.observe_commit(1_500);
        assert_eq!(metrics.latency_quantile_ms(0.5), Some(100));
        assert_eq!(metrics.latency_quantile_ms(0.99), Some(2_000));
    }
}
