//! Prometheus metrics: counters the gateway bumps and a text endpoint.
//!
//! Lock-free counters on the hot path; the queue gauges are refreshed by the
//! batcher on each tick. Reading only: nothing here changes the queue.
use crate::validation::Reason;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Upper bounds (ms) of the reading-to-commit latency histogram.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [
    50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
];

/// Upper bounds (ms) of the excursion-edge latency histogram: finer below a
/// second, where the target for excursion readings (500 ms) lies.
pub const EXCURSION_LATENCY_BUCKETS_MS: [u64; 16] = [
    25, 50, 100, 150, 200, 250, 300, 400, 500, 750, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
];

/// Most excursion commits kept by [`Metrics::keep_excursion_commits`].
pub const EXCURSION_LOG_LIMIT: usize = 100_000;

/// One committed excursion-edge reading (a reading queued as urgent because
/// its shipment's in-range state changed), with its receive and commit times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExcursionCommit {
    pub device_id: String,
    pub sequence: u64,
    /// When the gateway stored it (ms since the Unix epoch).
    pub received_at_ms: u64,
    /// When the gateway learnt its batch was COMMITTED (ms since the Unix epoch).
    pub committed_at_ms: u64,
}

impl ExcursionCommit {
    pub fn latency_ms(&self) -> u64 {
        self.committed_at_ms.saturating_sub(self.received_at_ms)
    }
}

/// A latency histogram with fixed upper bounds (ms), Prometheus style.
struct LatencyHistogram<const N: usize> {
    bounds: [u64; N],
    buckets: [AtomicU64; N],
    count: AtomicU64,
    sum_ms: AtomicU64,
}

impl<const N: usize> LatencyHistogram<N> {
    fn new(bounds: [u64; N]) -> Self {
        LatencyHistogram {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ms: AtomicU64::new(0),
        }
    }

    fn observe(&self, latency_ms: u64) {
        self.count.fetch_add(1, Relaxed);
        self.sum_ms.fetch_add(latency_ms, Relaxed);
        if let Some(i) = self.bounds.iter().position(|b| latency_ms <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
    }

    /// Upper bound (ms) of the bucket holding quantile `q`; `u64::MAX` past the last bound.
    fn quantile_ms(&self, q: f64) -> Option<u64> {
        let count = self.count.load(Relaxed);
        if count == 0 {
            return None;
        }
        let target = (count as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            seen += self.buckets[i].load(Relaxed);
            if seen >= target {
                return Some(*bound);
            }
        }
        Some(u64::MAX)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_ms.load(Relaxed));
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// All the gateway's metrics.
pub struct Metrics {
    pub received: AtomicU64,
    rejected: [AtomicU64; Reason::ALL.len()],
    pub committed: AtomicU64,
    pub batches_committed: AtomicU64,
    pub batches_invalid: AtomicU64,
    pub submit_retries: AtomicU64,
    /// Failed queue writes of arrivals, each retried (nothing dropped).
    pub queue_write_retries: AtomicU64,
    pub queued: AtomicU64,
    pub in_flight: AtomicU64,
    pub oldest_unsent_ms: AtomicU64,
    pub dead_letters: AtomicU64,
    pub queue_disk_bytes: AtomicU64,
    pub queue_disk_alarm: AtomicBool,
    latency: LatencyHistogram<{ LATENCY_BUCKETS_MS.len() }>,
    excursion_latency: LatencyHistogram<{ EXCURSION_LATENCY_BUCKETS_MS.len() }>,
    keep_excursion_log: AtomicBool,
    excursion_log: Mutex<Vec<ExcursionCommit>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            received: AtomicU64::new(0),
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            committed: AtomicU64::new(0),
            batches_committed: AtomicU64::new(0),
            batches_invalid: AtomicU64::new(0),
            submit_retries: AtomicU64::new(0),
            queue_write_retries: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            oldest_unsent_ms: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            queue_disk_bytes: AtomicU64::new(0),
            queue_disk_alarm: AtomicBool::new(false),
            latency: LatencyHistogram::new(LATENCY_BUCKETS_MS),
            excursion_latency: LatencyHistogram::new(EXCURSION_LATENCY_BUCKETS_MS),
            keep_excursion_log: AtomicBool::new(false),
            excursion_log: Mutex::new(Vec::new()),
        }
    }
}

impl Metrics {
    pub fn reject(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    pub fn rejected(&self, reason: Reason) -> u64 {
        Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.rejected[i].load(Relaxed))
    }

    /// Records one committed reading that the gateway received `latency_ms` ago.
    pub fn observe_commit(&self, latency_ms: u64) {
        self.committed.fetch_add(1, Relaxed);
        self.latency.observe(latency_ms);
    }

    /// Records the commit of an excursion-edge reading, in addition to
    /// [`Metrics::observe_commit`] (which counts every reading).
    pub fn observe_excursion_commit(&self, commit: ExcursionCommit) {
        self.excursion_latency.observe(commit.latency_ms());
        if self.keep_excursion_log.load(Relaxed) {
            if let Ok(mut log) = self.excursion_log.lock() {
                if log.len() < EXCURSION_LOG_LIMIT {
                    log.push(commit);
                }
            }
        }
    }

    /// Approximate latency quantile (upper bucket bound, ms), e.g. 0.99.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<u64> {
        self.latency.quantile_ms(q)
    }

    /// Approximate excursion-edge latency quantile (upper bucket bound, ms).
    pub fn excursion_latency_quantile_ms(&self, q: f64) -> Option<u64> {
        self.excursion_latency.quantile_ms(q)
    }

    /// Excursion-edge readings committed so far.
    pub fn excursion_commits(&self) -> u64 {
        self.excursion_latency.count.load(Relaxed)
    }

    /// From now on, keeps each excursion-edge commit (up to
    /// [`EXCURSION_LOG_LIMIT`]) for [`Metrics::take_excursion_commits`]: exact
    /// latencies for benchmarks, which the histogram only bounds.
    pub fn keep_excursion_commits(&self) {
        self.keep_excursion_log.store(true, Relaxed);
    }

    /// The excursion commits kept so far (emptying the log).
    pub fn take_excursion_commits(&self) -> Vec<ExcursionCommit> {
        self.excursion_log
            .lock()
            .map(|mut log| std::mem::take(&mut *log))
            .unwrap_or_default()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        counter(
            "coldchain_gateway_readings_received_total",
            "Readings and messages received from devices.",
            "counter",
            self.received.load(Relaxed),
        );
        counter(
            "coldchain_gateway_readings_committed_total",
            "Readings the ledger committed.",
            "counter",
            self.committed.load(Relaxed),
        );
        counter(
            "coldchain_gateway_batches_committed_total",
            "Batches committed.",
            "counter",
            self.batches_committed.load(Relaxed),
        );
        counter(
            "coldchain_gateway_batches_invalid_total",
            "Batches the ledger refused.",
            "counter",
            self.batches_invalid.load(Relaxed),
        );
        counter(
            "coldchain_gateway_submit_retries_total",
            "Retries of POST /batches or status polls.",
            "counter",
            self.submit_retries.load(Relaxed),
        );
        counter(
            "coldchain_gateway_queue_write_retries_total",
            "Failed writes of arrivals to the queue, retried until stored.",
            "counter",
            self.queue_write_retries.load(Relaxed),
        );
        counter(
            "coldchain_gateway_readings_queued",
            "Readings waiting to be sent.",
            "gauge",
            self.queued.load(Relaxed),
        );
        counter(
            "coldchain_gateway_readings_in_flight",
            "Readings in batches awaiting their outcome.",
            "gauge",
            self.in_flight.load(Relaxed),
        );
        counter(
            "coldchain_gateway_oldest_unsent_age_seconds",
            "Age of the oldest reading not yet committed.",
            "gauge",
            self.oldest_unsent_ms.load(Relaxed) / 1000,
        );
        counter(
            "coldchain_gateway_dead_letters",
            "Entries in the dead-letter store.",
            "gauge",
            self.dead_letters.load(Relaxed),
        );
        counter(
            "coldchain_gateway_queue_disk_bytes",
            "Size of the on-disk queue.",
            "gauge",
            self.queue_disk_bytes.load(Relaxed),
        );
        counter(
            "coldchain_gateway_queue_disk_alarm",
            "1 when the queue is near its disk cap.",
            "gauge",
            self.queue_disk_alarm.load(Relaxed) as u64,
        );
        let _ = writeln!(out, "# HELP coldchain_gateway_readings_rejected_total Readings refused, by reason.\n# TYPE coldchain_gateway_readings_rejected_total counter");
        for (i, reason) in Reason::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "coldchain_gateway_readings_rejected_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.rejected[i].load(Relaxed)
            );
        }
        self.latency.render(
            &mut out,
            "coldchain_gateway_commit_latency_ms",
            "Time from receipt to commit.",
        );
        self.excursion_latency.render(
            &mut out,
            "coldchain_gateway_excursion_commit_latency_ms",
            "Time from receipt to commit of excursion edges (readings whose in-range state changed).",
        );
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
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for metrics on {bind}: {e}; pick a free port in metrics_bind"
        )
    })?;
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
        assert!(
            text.contains("coldchain_gateway_readings_rejected_total{reason=\"bad_checksum\"} 2")
        );
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

    fn edge(sequence: u64, latency_ms: u64) -> ExcursionCommit {
        ExcursionCommit {
            device_id: "D1".into(),
            sequence,
            received_at_ms: 1_000,
            committed_at_ms: 1_000 + latency_ms,
        }
    }

    #[test]
    fn excursion_edges_have_their_own_finer_histogram() {
        let metrics = Metrics::default();
        metrics.observe_excursion_commit(edge(1, 120));
        metrics.observe_excursion_commit(edge(2, 420));
        assert_eq!(metrics.excursion_commits(), 2);
        assert_eq!(metrics.excursion_latency_quantile_ms(0.5), Some(150));
        assert_eq!(metrics.excursion_latency_quantile_ms(1.0), Some(500));
        let text = metrics.render();
        assert!(text.contains("coldchain_gateway_excursion_commit_latency_ms_bucket{le=\"150\"} 1"));
        assert!(
            text.contains("coldchain_gateway_excursion_commit_latency_ms_bucket{le=\"+Inf\"} 2")
        );
        assert!(text.contains("coldchain_gateway_excursion_commit_latency_ms_sum 540"));
        assert!(text.contains("coldchain_gateway_commit_latency_ms_count 0"));
    }

    #[test]
    fn excursion_commits_are_kept_only_when_asked() {
        let metrics = Metrics::default();
        metrics.observe_excursion_commit(edge(1, 120));
        assert!(metrics.take_excursion_commits().is_empty());
        metrics.keep_excursion_commits();
        metrics.observe_excursion_commit(edge(2, 80));
        assert_eq!(metrics.take_excursion_commits(), vec![edge(2, 80)]);
        assert!(metrics.take_excursion_commits().is_empty());
    }
}
