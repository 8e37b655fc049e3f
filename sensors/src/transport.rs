//! How simulated loggers reach the gateway: MQTT publishes or lines on a
//! pseudo-terminal serial pair. I/O only; the readings come from [`crate::logger`].
use coldchain_gateway::protocol::{mqtt_payload, serial_line, DeviceReading};
use std::io::Write;

/// Payload encoding on MQTT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    Json,
    Binary,
}

/// An MQTT publisher for `<prefix>/<org>/<device>/readings`.
pub struct MqttTransport {
    client: rumqttc::AsyncClient,
    prefix: String,
    org: String,
    encoding: Encoding,
    _events: tokio::task::JoinHandle<()>,
}

impl MqttTransport {
    /// Connects with a clean session: messages not yet acknowledged by the
    /// broker when it restarts are dropped by the client (like a cheap logger).
    pub async fn connect(
        host: &str,
        port: u16,
        client_id: &str,
        prefix: &str,
        org: &str,
        encoding: Encoding,
    ) -> MqttTransport {
        Self::connect_with_session(host, port, client_id, prefix, org, encoding, true).await
    }

    /// Connects with a persistent session when `clean_session` is false: after
    /// a broker restart that kept the session (Mosquitto `persistence true`),
    /// every message the broker had not acknowledged is published again, so a
    /// QoS 1 reading is never lost between logger and broker.
    pub async fn connect_with_session(
        host: &str,
        port: u16,
        client_id: &str,
        prefix: &str,
        org: &str,
        encoding: Encoding,
        clean_session: bool,
    ) -> MqttTransport {
        let mut options = rumqttc::MqttOptions::new(client_id, host, port);
        options.set_clean_session(clean_session);
        options.set_keep_alive(std::time::Duration::from_secs(15));
        options.set_max_packet_size(1 << 20, 1 << 20);
        options.set_inflight(200);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 4096);
        let events = tokio::spawn(async move {
            loop {
                if let Err(e) = events.poll().await {
                    tracing::warn!(error = %e, "simulator MQTT connection lost; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        });
        MqttTransport {
            client,
            prefix: prefix.into(),
            org: org.into(),
            encoding,
            _events: events,
        }
    }

    /// Publishes one device's readings as one QoS 1 message.
    pub async fn send(&self, readings: &[DeviceReading]) -> anyhow::Result<()> {
        let Some(first) = readings.first() else {
            return Ok(());
        };
        let topic = format!("{}/{}/{}/readings", self.prefix, self.org, first.device_id);
        let payload = match self.encoding {
            Encoding::Json => mqtt_payload::encode_json(readings),
            Encoding::Binary => mqtt_payload::encode_binary(readings),
        };
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| anyhow::anyhow!("MQTT publish failed: {e}"))
    }
}

/// A pseudo-terminal pair in raw mode: the simulator writes to the master,
/// the gateway opens [`SerialTransport::path`] as its serial port.
pub struct SerialTransport {
    master: std::fs::File,
    _slave: std::fs::File,
    path: String,
}

impl SerialTransport {
    pub fn open() -> anyhow::Result<SerialTransport> {
        use nix::sys::termios;
        use std::os::fd::FromRawFd;
        let pair =
            nix::pty::openpty(None, None).map_err(|e| anyhow::anyhow!("openpty failed: {e}"))?;
        // SAFETY: openpty just returned these descriptors and nothing else owns them.
        let (master, slave) = unsafe {
            (
                std::fs::File::from_raw_fd(pair.master),
                std::fs::File::from_raw_fd(pair.slave),
            )
        };
        let path = nix::unistd::ttyname(pair.slave)
            .map_err(|e| anyhow::anyhow!("ttyname failed: {e}"))?
            .display()
            .to_string();
        let mut attrs =
            termios::tcgetattr(pair.slave).map_err(|e| anyhow::anyhow!("tcgetattr failed: {e}"))?;
        termios::cfmakeraw(&mut attrs);
        termios::tcsetattr(pair.slave, termios::SetArg::TCSANOW, &attrs)
            .map_err(|e| anyhow::anyhow!("tcsetattr failed: {e}"))?;
        Ok(SerialTransport {
            master,
            _slave: slave,
            path,
        })
    }

    /// The device path to give the gateway (e.g. `/dev/pts/7`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Writes the readings as `$CCR` lines.
    pub fn send(&mut self, readings: &[DeviceReading]) -> anyhow::Result<()> {
        let text: String = readings.iter().map(serial_line::format_line).collect();
        self.master
            .write_all(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("serial write failed: {e}"))
    }

    /// Writes raw bytes (for garbage tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.master
            .write_all(bytes)
            .map_err(|e| anyhow::anyhow!("serial write failed: {e}"))
    }
}
