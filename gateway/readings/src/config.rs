//! The gateway's TOML configuration, with environment overrides.
//!
//! Every key has a default that works on one machine; `COLDCHAIN_GATEWAY_*`
//! variables override the most common ones (see [`GatewayConfig::apply_env`]).
//! Loading only: nothing here opens ports or files besides the config itself.
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything the gateway needs to run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// File holding the gateway's secp256k1 private key (64 hex, Sawtooth `.priv`).
    pub key_file: PathBuf,
    /// Base URL of a Sawtooth REST API, e.g. `http://127.0.0.1:8008`.
    #[serde(default = "default_rest_url")]
    pub rest_url: String,
    /// SQLite queue file (created if missing).
    #[serde(default = "default_queue_path")]
    pub queue_path: PathBuf,
    /// Disk cap for the queue in bytes; new readings are refused above it.
    #[serde(default = "default_disk_cap")]
    pub queue_disk_cap_bytes: u64,
    /// Fraction of the cap at which the alarm (log + metric) goes up.
    #[serde(default = "default_alarm_fraction")]
    pub queue_alarm_fraction: f64,
    /// Readings dated further in the future than this are clock skew.
    #[serde(default = "default_skew")]
    pub clock_skew_tolerance_s: u64,
    /// Readings older than this (buffered during a long outage) are still accepted.
    #[serde(default = "default_backlog")]
    pub max_backlog_age_s: u64,
    /// `host:port` of the Prometheus endpoint; empty disables it.
    #[serde(default = "default_metrics_bind")]
    pub metrics_bind: String,
    #[serde(default)]
    pub batching: BatchingConfig,
    #[serde(default)]
    pub submission: SubmissionConfig,
    #[serde(default)]
    pub serial: Vec<SerialPortConfig>,
    #[serde(default)]
    pub mqtt: Vec<MqttBrokerConfig>,
    /// Modbus RTU lines (RS-485) and the transmitters polled on them.
    #[serde(default)]
    pub modbus: Vec<crate::sources::modbus::ModbusLineConfig>,
    /// Known devices by id.
    #[serde(default)]
    pub devices: BTreeMap<String, DeviceConfig>,
    /// Look devices not listed above up in ledger state (their org and attached shipment).
    #[serde(default)]
    pub lookup_unknown_devices: bool,
    /// Temperature ranges per shipment id; others are read from ledger state.
    #[serde(default)]
    pub shipments: BTreeMap<String, ShipmentRange>,
}

/// When a device's queued readings become a transaction.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingConfig {
    /// Flush a device+shipment once this many readings wait.
    pub max_readings: usize,
    /// Flush once the oldest waiting reading is this old (milliseconds).
    pub max_age_ms: u64,
    /// Transactions per Sawtooth batch.
    pub max_transactions_per_batch: usize,
    /// How often the batcher looks for due readings (milliseconds).
    pub tick_ms: u64,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            max_readings: 100,
            max_age_ms: 5_000,
            max_transactions_per_batch: 50,
            tick_ms: 50,
        }
    }
}

/// How batches are sent and followed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmissionConfig {
    /// Batches awaiting their outcome at once.
    pub max_in_flight_batches: usize,
    /// First retry delay; doubles per attempt, with full jitter.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// `wait` seconds passed to `/batch_statuses`.
    pub status_wait_s: u64,
    /// HTTP request timeout.
    pub request_timeout_ms: u64,
}

impl Default for SubmissionConfig {
    fn default() -> Self {
        SubmissionConfig {
            max_in_flight_batches: 8,
            backoff_initial_ms: 100,
            backoff_max_ms: 10_000,
            status_wait_s: 2,
            request_timeout_ms: 15_000,
        }
    }
}

/// One serial port with loggers behind it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialPortConfig {
    pub path: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Devices allowed on this port; empty allows any known device.
    #[serde(default)]
    pub devices: Vec<String>,
}

/// One MQTT broker.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttBrokerConfig {
    #[serde(default = "default_mqtt_host")]
    pub host: String,
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Connect over TLS (port 8883 by convention). The broker's certificate
    /// is checked against `ca_file` when given, else the system trust store.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA that signed the broker's certificate (a private CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate and key as a PKCS#12 (.p12) file, for brokers that
    /// require client authentication; `client_pkcs12_password` unlocks it.
    pub client_pkcs12_file: Option<std::path::PathBuf>,
    pub client_pkcs12_password: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Stable client id: with `clean_session=false` the broker keeps our
    /// subscription and queues QoS 1 messages while the gateway is down.
    pub client_id: String,
    /// First topic level; readings arrive on `<prefix>/<org>/<device>/readings`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Largest message payload taken, in bytes; a larger message is refused as
    /// `too_large` (its head kept as a dead letter), acknowledged, and the
    /// messages behind it flow on. The MQTT client itself accepts any packet
    /// MQTT allows, so an oversized message never costs the connection.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// SenML (RFC 8428) packs on `<prefix>/<org>/<publisher>/senml` (JSON) and
    /// `…/senml-cbor` (CBOR), with how their names map to device ids. Without
    /// this section the gateway does not subscribe to SenML topics.
    #[serde(default)]
    pub senml: Option<crate::protocol::senml::SenmlNaming>,
}

/// Largest packet MQTT 3.1.1 can carry (its remaining-length field's maximum,
/// 256 MiB): the MQTT client's incoming limit, so it never drops a connection
/// over a packet's size and the gateway judges the size itself.
pub const MQTT_MAX_PACKET_BYTES: u64 = 268_435_455;

impl MqttBrokerConfig {
    /// The TLS settings for rumqttc, with the CA and client files read; `None`
    /// for a plain connection. Errors name the file and the key to fix.
    pub fn tls_configuration(&self) -> Result<Option<rumqttc::TlsConfiguration>, ConfigError> {
        let broker = format!("MQTT broker {}:{}", self.host, self.port);
        if !self.tls {
            if self.ca_file.is_some() || self.client_pkcs12_file.is_some() {
                return Err(ConfigError::Invalid(format!(
                    "{broker} has ca_file or client_pkcs12_file but tls = false; set tls = true or remove them"
                )));
            }
            return Ok(None);
        }
        let read = |key: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                ConfigError::Invalid(format!(
                    "{broker}: cannot read {key} {}: {e}; check the path and its permissions",
                    path.display()
                ))
            })
        };
        let client_auth = match (&self.client_pkcs12_file, &self.client_pkcs12_password) {
            (None, None) => None,
            (Some(file), password) => Some((
                read("client_pkcs12_file", file)?,
                password.clone().unwrap_or_default(),
            )),
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(format!(
                    "{broker} has client_pkcs12_password but no client_pkcs12_file"
                )))
            }
        };
        Ok(Some(match &self.ca_file {
            Some(file) => {
                let ca = read("ca_file", file)?;
                if !ca.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(ConfigError::Invalid(format!(
                        "{broker}: ca_file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        file.display()
                    )));
                }
                rumqttc::TlsConfiguration::SimpleNative { ca, client_auth }
            }
            None if client_auth.is_some() => {
                return Err(ConfigError::Invalid(format!(
                    "{broker}: client_pkcs12_file needs ca_file too (the broker's CA, PEM)"
                )))
            }
            None => rumqttc::TlsConfiguration::Native,
        }))
    }
}

/// Where a device's readings go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub org: String,
    pub shipment: String,
}

/// A shipment's allowed range, inclusive, in hundredths of °C.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShipmentRange {
    pub min_cdeg: i32,
    pub max_cdeg: i32,
}

fn default_rest_url() -> String {
    "http://127.0.0.1:8008".into()
}
fn default_queue_path() -> PathBuf {
    "gateway-queue.sqlite".into()
}
fn default_disk_cap() -> u64 {
    1 << 30
}
fn default_alarm_fraction() -> f64 {
    0.9
}
fn default_skew() -> u64 {
    300
}
fn default_backlog() -> u64 {
    30 * 24 * 3600
}
fn default_metrics_bind() -> String {
    "127.0.0.1:9108".into()
}
fn default_baud() -> u32 {
    9600
}
fn default_mqtt_host() -> String {
    "127.0.0.1".into()
}
fn default_mqtt_port() -> u16 {
    1883
}
fn default_topic_prefix() -> String {
    "coldchain".into()
}
fn default_max_message_bytes() -> u64 {
    1 << 20
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read gateway config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("gateway config {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {name}={value:?} is not valid: {message}")]
    Env {
        name: String,
        value: String,
        message: String,
    },
    #[error("gateway config is not usable: {0}")]
    Invalid(String),
}

impl GatewayConfig {
    /// Reads and checks a TOML file, then applies environment overrides.
    pub fn load(path: &std::path::Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = GatewayConfig::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })?;
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check()?;
        Ok(config)
    }

    /// Parses TOML text (no environment, no checks).
    pub fn from_toml(text: &str) -> Result<GatewayConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies `COLDCHAIN_GATEWAY_{KEY_FILE,REST_URL,QUEUE_PATH,QUEUE_DISK_CAP_BYTES,
    /// METRICS_BIND,CLOCK_SKEW_TOLERANCE_S,MQTT_MAX_MESSAGE_BYTES}` from `lookup`
    /// (the last for every `[[mqtt]]` broker).
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let number = |name: &str, value: &str| {
            value.parse::<u64>().map_err(|e| ConfigError::Env {
                name: name.into(),
                value: value.into(),
                message: e.to_string(),
            })
        };
        if let Some(v) = lookup("COLDCHAIN_GATEWAY_KEY_FILE") {
            self.key_file = v.into();
        }
        if let Some(v) = lookup("COLDCHAIN_GATEWAY_REST_URL") {
            self.rest_url = v;
        }
        if let Some(v) = lookup("COLDCHAIN_GATEWAY_QUEUE_PATH") {
            self.queue_path = v.into();
        }
        if let Some(v) = lookup("COLDCHAIN_GATEWAY_METRICS_BIND") {
            self.metrics_bind = v;
        }
        if let Some(v) = lookup("COLDCHAIN_GATEWAY_QUEUE_DISK_CAP_BYTES") {
            self.queue_disk_cap_bytes = number("COLDCHAIN_GATEWAY_QUEUE_DISK_CAP_BYTES", &v)?;
        }
        if let Some(v) = lookup("COLDCHAIN_GATEWAY_CLOCK_SKEW_TOLERANCE_S") {
            self.clock_skew_tolerance_s = number("COLDCHAIN_GATEWAY_CLOCK_SKEW_TOLERANCE_S", &v)?;
        }
        if let Some(v) = lookup("COLDCHAIN_GATEWAY_MQTT_MAX_MESSAGE_BYTES") {
            let limit = number("COLDCHAIN_GATEWAY_MQTT_MAX_MESSAGE_BYTES", &v)?;
            for broker in &mut self.mqtt {
                broker.max_message_bytes = limit;
            }
        }
        Ok(())
    }

    /// Refuses settings the gateway cannot honour.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.batching.max_readings == 0 || self.batching.max_transactions_per_batch == 0 {
            return invalid(
                "batching.max_readings and max_transactions_per_batch must be at least 1".into(),
            );
        }
        if self.submission.max_in_flight_batches == 0 {
            return invalid("submission.max_in_flight_batches must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.queue_alarm_fraction) {
            return invalid(format!(
                "queue_alarm_fraction {} must be between 0 and 1",
                self.queue_alarm_fraction
            ));
        }
        for broker in &self.mqtt {
            broker.tls_configuration()?;
            if broker.client_id.is_empty() {
                return invalid(format!(
                    "MQTT broker {}:{} needs a client_id",
                    broker.host, broker.port
                ));
            }
            if let Some(senml) = &broker.senml {
                if senml.devices.is_empty()
                    && senml.name_prefix.as_deref().unwrap_or_default().is_empty()
                {
                    return invalid(format!(
                        "MQTT broker {}:{}: [mqtt.senml] maps no SenML name to a device; give it devices = {{ \"<name or base name>\" = \"<device id>\" }} or name_prefix = \"urn:dev:mac:\"",
                        broker.host, broker.port
                    ));
                }
            }
            if !(1..=MQTT_MAX_PACKET_BYTES).contains(&broker.max_message_bytes) {
                return invalid(format!(
                    "MQTT broker {}:{}: max_message_bytes {} must be between 1 and {MQTT_MAX_PACKET_BYTES} (MQTT's largest packet); the default is 1048576",
                    broker.host, broker.port, broker.max_message_bytes
                ));
            }
        }
        let mut modbus_devices = std::collections::BTreeSet::new();
        for line in &self.modbus {
            line.check(&mut modbus_devices)
                .map_err(ConfigError::Invalid)?;
        }
        for (id, range) in &self.shipments {
            if range.min_cdeg > range.max_cdeg {
                return invalid(format!("shipment {id}: min_cdeg is above max_cdeg"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
key_file = "gateway.priv"
rest_url = "http://127.0.0.1:8008"
[batching]
max_readings = 10
[[serial]]
path = "/dev/ttyUSB0"
baud = 115200
devices = ["TRK-1"]
[[mqtt]]
client_id = "gw-1"
[devices.TRK-1]
org = "carrier"
shipment = "S-1"
[shipments.S-1]
min_cdeg = 200
max_cdeg = 800
"#;

    #[test]
    fn sample_config_parses_with_defaults() {
        let config = GatewayConfig::from_toml(SAMPLE).unwrap();
        assert_eq!(config.batching.max_readings, 10);
        assert_eq!(config.batching.max_age_ms, 5_000);
        assert_eq!(config.mqtt[0].port, 1883);
        assert_eq!(config.mqtt[0].max_message_bytes, 1 << 20);
        assert_eq!(config.devices["TRK-1"].shipment, "S-1");
        assert!(config.check().is_ok());
    }

    #[test]
    fn environment_overrides_file_values() {
        let mut config = GatewayConfig::from_toml(SAMPLE).unwrap();
        config
            .apply_env(|name| {
                (name == "COLDCHAIN_GATEWAY_REST_URL").then(|| "http://10.0.0.1:8008".into())
            })
            .unwrap();
        assert_eq!(config.rest_url, "http://10.0.0.1:8008");
        let bad = config.apply_env(|name| {
            (name == "COLDCHAIN_GATEWAY_QUEUE_DISK_CAP_BYTES").then(|| "lots".into())
        });
        assert!(matches!(bad, Err(ConfigError::Env { .. })));
        config
            .apply_env(|name| {
                (name == "COLDCHAIN_GATEWAY_MQTT_MAX_MESSAGE_BYTES").then(|| "65536".into())
            })
            .unwrap();
        assert_eq!(config.mqtt[0].max_message_bytes, 65_536);
    }

    #[test]
    fn message_size_limit_is_checked() {
        let mut config = GatewayConfig::from_toml(SAMPLE).unwrap();
        config.mqtt[0].max_message_bytes = 0;
        let message = config.check().unwrap_err().to_string();
        assert!(message.contains("max_message_bytes 0"), "{message}");
        config.mqtt[0].max_message_bytes = MQTT_MAX_PACKET_BYTES + 1;
        assert!(config.check().is_err());
        config.mqtt[0].max_message_bytes = MQTT_MAX_PACKET_BYTES;
        assert!(config.check().is_ok());
    }

    #[test]
    fn senml_naming_parses_and_must_map_something() {
        let text = format!(
            "{SAMPLE}\n[mqtt.senml]\nname_prefix = \"urn:dev:mac:\"\n[mqtt.senml.devices]\n\"urn:dev:ow:10e2\" = \"TRK-1\"\n"
        );
        let mut config = GatewayConfig::from_toml(&text).unwrap();
        let senml = config.mqtt[0].senml.clone().unwrap();
        assert_eq!(
            senml.device_of("urn:dev:ow:10e2:temp").as_deref(),
            Some("TRK-1")
        );
        assert_eq!(
            senml.device_of("urn:dev:mac:00aa:temp").as_deref(),
            Some("00aa")
        );
        assert!(config.check().is_ok());
        config.mqtt[0].senml = Some(Default::default());
        let message = config.check().unwrap_err().to_string();
        assert!(
            message.contains("[mqtt.senml] maps no SenML name"),
            "{message}"
        );
        assert!(GatewayConfig::from_toml(SAMPLE).unwrap().mqtt[0]
            .senml
            .is_none());
    }

    #[test]
    fn tls_settings_are_checked_with_the_file_and_key_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = GatewayConfig::from_toml(SAMPLE).unwrap();
        config.mqtt[0].tls = true;
        assert!(config.check().is_ok(), "TLS with the system trust store");

        config.mqtt[0].ca_file = Some(dir.path().join("missing.pem"));
        let message = config.check().unwrap_err().to_string();
        assert!(
            message.contains("ca_file") && message.contains("missing.pem"),
            "{message}"
        );

        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        config.mqtt[0].ca_file = Some(not_pem);
        let message = config.check().unwrap_err().to_string();
        assert!(message.contains("no PEM certificate"), "{message}");

        config.mqtt[0].tls = false;
        let message = config.check().unwrap_err().to_string();
        assert!(message.contains("tls = false"), "{message}");
    }
}
