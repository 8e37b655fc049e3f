//! Prometheus metrics: counters the gateway bumps, a text endpoint
//! (`/metrics`) and a health endpoint (`/health`).
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

/// Connection failures in a row after which `/health` reports a broker as failing.
pub const FAILING_AFTER: u64 = 3;

/// The state of one MQTT broker connection, for `/metrics` and `/health`.
///
/// "In a row" is counted until the connection proves itself by carrying a
/// packet after its CONNACK (a message, the subscription's answer, a
/// keep-alive answer): a connection that is accepted and then dies at once,
/// over and over, keeps counting instead of looking fine at every CONNACK.
pub struct BrokerHealth {
    /// `host:port`.
    pub broker: String,
    connected: AtomicBool,
    failures_total: AtomicU64,
    consecutive_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl BrokerHealth {
    fn new(broker: String) -> BrokerHealth {
        BrokerHealth {
            broker,
            connected: AtomicBool::new(false),
            failures_total: AtomicU64::new(0),
            consecutive_failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The broker accepted the connection (CONNACK).
    pub fn connected(&self) {
        self.connected.store(true, Relaxed);
    }

    /// The connection carried a packet after its CONNACK: it works.
    pub fn proven(&self) {
        self.consecutive_failures.store(0, Relaxed);
    }

    /// The connection failed or could not be made; returns the failures in a row.
    pub fn failed(&self, error: &str) -> u64 {
        self.connected.store(false, Relaxed);
        self.failures_total.fetch_add(1, Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_string());
        }
        self.consecutive_failures.fetch_add(1, Relaxed) + 1
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    pub fn consecutive_failures(&self) -> u64 {
        self.consecutive_failures.load(Relaxed)
    }

    pub fn failures_total(&self) -> u64 {
        self.failures_total.load(Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// What is wrong with this connection, if it keeps failing.
    pub fn problem(&self) -> Option<String> {
        let failures = self.consecutive_failures();
        (failures >= FAILING_AFTER).then(|| {
            format!(
                "MQTT broker {}: {failures} connection failures in a row, last: {}; check that the broker is up and reachable, and the [[mqtt]] credentials and TLS settings",
                self.broker,
                self.last_error().unwrap_or_else(|| "unknown".into())
            )
        })
    }
}

/// A label value in the Prometheus text format.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
    brokers: Mutex<Vec<std::sync::Arc<BrokerHealth>>>,
    /// Polls, readings and gaps of each Modbus device.
    pub modbus: crate::sources::modbus::ModbusCounters,
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
            brokers: Mutex::new(Vec::new()),
            modbus: Default::default(),
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

    /// The health record of MQTT broker `broker` (`host:port`), created on first use.
    pub fn broker(&self, broker: &str) -> std::sync::Arc<BrokerHealth> {
        let mut brokers = self.brokers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = brokers.iter().find(|b| b.broker == broker) {
            return known.clone();
        }
        let health = std::sync::Arc::new(BrokerHealth::new(broker.to_string()));
        brokers.push(health.clone());
        health
    }

    fn brokers(&self) -> Vec<std::sync::Arc<BrokerHealth>> {
        self.brokers.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// `/health`: `ok`, or `failing` with what is wrong (an MQTT broker
    /// connection that failed [`FAILING_AFTER`] times in a row), and each
    /// broker's connection state.
    pub fn health(&self) -> (bool, serde_json::Value) {
        let brokers = self.brokers();
        let problems: Vec<String> = brokers.iter().filter_map(|b| b.problem()).collect();
        let mqtt: Vec<serde_json::Value> = brokers
            .iter()
            .map(|b| {
                serde_json::json!({
                    "broker": b.broker,
                    "connected": b.is_connected(),
                    "consecutive_failures": b.consecutive_failures(),
                    "connection_failures_total": b.failures_total(),
                    "last_error": b.last_error(),
                })
            })
            .collect();
        let ok = problems.is_empty();
        let status = if ok { "ok" } else { "failing" };
        (
            ok,
            serde_json::json!({ "status": status, "problems": problems, "mqtt": mqtt }),
        )
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
        self.render_brokers(&mut out);
        self.modbus.render(&mut out);
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

/// One per-broker series: name, help, type, value.
type BrokerSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&BrokerHealth) -> u64,
);

impl Metrics {
    fn render_brokers(&self, out: &mut String) {
        let brokers = self.brokers();
        let series: [BrokerSeries; 3] = [
            (
                "coldchain_gateway_mqtt_connected",
                "1 while the connection to the MQTT broker is up.",
                "gauge",
                |b| b.is_connected() as u64,
            ),
            (
                "coldchain_gateway_mqtt_connection_failures_total",
                "MQTT connections lost or not made (each is retried with backoff).",
                "counter",
                BrokerHealth::failures_total,
            ),
            (
                "coldchain_gateway_mqtt_consecutive_failures",
                "MQTT connection failures in a row; 0 once a connection carries a packet.",
                "gauge",
                BrokerHealth::consecutive_failures,
            ),
        ];
        for (name, help, kind, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for broker in &brokers {
                let _ = writeln!(
                    out,
                    "{name}{{broker=\"{}\"}} {}",
                    label_value(&broker.broker),
                    value(broker)
                );
            }
        }
    }
}

/// Serves `GET /metrics` and `GET /health` on `bind` until the task is dropped. Returns the bound address.
pub async fn serve(
    bind: &str,
    metrics: std::sync::Arc<Metrics>,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    use warp::Filter;
    let address: std::net::SocketAddr = bind
        .parse()
        .map_err(|e| anyhow::anyhow!("metrics_bind {bind:?} is not host:port: {e}"))?;
    let for_health = metrics.clone();
    let page = warp::path!("metrics").map(move || {
        let mut response = warp::http::Response::new(metrics.render());
        response.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    });
    let health = warp::path!("health").map(move || {
        let (ok, body) = for_health.health();
        let status = if ok {
            warp::http::StatusCode::OK
        } else {
            warp::http::StatusCode::SERVICE_UNAVAILABLE
        };
        warp::reply::with_status(warp::reply::json(&body), status)
    });
    let route = warp::get().and(page.or(health));
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
    fn a_broker_failing_in_a_row_is_unhealthy_until_a_connection_carries_a_packet() {
        let metrics = Metrics::default();
        let broker = metrics.broker("mq.example:1883");
        assert!(metrics.health().0, "no failure yet");
        for _ in 0..FAILING_AFTER {
            // Accepted, then dropped at once: still failing in a row.
            broker.connected();
            broker.failed("I/O: connection reset");
        }
        let (ok, body) = metrics.health();
        assert!(!ok);
        assert_eq!(body["status"], "failing");
        let problem = body["problems"][0].as_str().unwrap();
        assert!(
            problem.contains(
                "mq.example:1883: 3 connection failures in a row, last: I/O: connection reset"
            ),
            "{problem}"
        );
        let text = metrics.render();
        assert!(
            text.contains(
                "coldchain_gateway_mqtt_consecutive_failures{broker=\"mq.example:1883\"} 3"
            ),
            "{text}"
        );
        assert!(text.contains(
            "coldchain_gateway_mqtt_connection_failures_total{broker=\"mq.example:1883\"} 3"
        ));
        broker.connected();
        broker.proven();
        assert!(metrics.health().0);
        assert!(metrics
            .render()
            .contains("coldchain_gateway_mqtt_connected{broker=\"mq.example:1883\"} 1"));
        assert!(std::sync::Arc::ptr_eq(
            &broker,
            &metrics.broker("mq.example:1883")
        ));
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
