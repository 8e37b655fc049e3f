//! How simulated loggers reach the gateway: MQTT publishes or lines on a
//! pseudo-terminal serial pair. I/O only; the readings come from [`crate::logger`].
use coldchain_gateway::protocol::{mqtt_payload, senml, serial_line, DeviceReading};
use std::io::Write;

/// Payload encoding on MQTT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    Json,
    Binary,
    /// SenML (RFC 8428) JSON on `<prefix>/<org>/<device>/senml`, names
    /// `urn:dev:mac:<device>:temp` (the gateway's `[mqtt.senml] name_prefix =
    /// "urn:dev:mac:"`), times in milliseconds.
    Senml,
}

/// An MQTT publisher for `<prefix>/<org>/<device>/readings`.
pub struct MqttTransport {
    client: rumqttc::AsyncClient,
    prefix: String,
    org: String,
    encoding: Encoding,
    /// SenML: each device's last time sent (ms), so readings of one second keep apart.
    senml_clock: std::sync::Mutex<std::collections::HashMap<String, u64>>,
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
            senml_clock: Default::default(),
            _events: events,
        }
    }

    /// Publishes one device's readings as one QoS 1 message.
    pub async fn send(&self, readings: &[DeviceReading]) -> anyhow::Result<()> {
        let Some(first) = readings.first() else {
            return Ok(());
        };
        let level = match self.encoding {
            Encoding::Senml => senml::JSON_TOPIC_LEVEL,
            Encoding::Json | Encoding::Binary => "readings",
        };
        let topic = format!("{}/{}/{}/{level}", self.prefix, self.org, first.device_id);
        let payload = match self.encoding {
            Encoding::Json => mqtt_payload::encode_json(readings),
            Encoding::Binary => mqtt_payload::encode_binary(readings),
            Encoding::Senml => {
                let stamped = self.senml_times(readings);
                senml::encode_json(&format!("urn:dev:mac:{}:", first.device_id), &stamped)
            }
        };
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| anyhow::anyhow!("MQTT publish failed: {e}"))
    }
}

impl MqttTransport {
    /// SenML carries no sequence: a reading is known by its time, which the
    /// gateway turns into its sequence (milliseconds). A logger measuring
    /// several times a second stamps each reading at least 1 ms after the last.
    fn senml_times(&self, readings: &[DeviceReading]) -> Vec<DeviceReading> {
        let mut clock = self.senml_clock.lock().unwrap_or_else(|p| p.into_inner());
        readings
            .iter()
            .map(|r| {
                let ms = senml_time_ms(clock.entry(r.device_id.clone()).or_insert(0), r.time_s);
                DeviceReading {
                    sequence: ms,
                    time_s: ms / 1000,
                    ..r.clone()
                }
            })
            .collect()
    }
}

/// The SenML time (ms) of a device's next reading taken in second `time_s`,
/// after the device's `last` one: at least 1 ms later. Advances `last`.
pub fn senml_time_ms(last: &mut u64, time_s: u64) -> u64 {
    let ms = (time_s * 1000).max(*last + 1);
    *last = ms;
    ms
}

/// A pseudo-terminal pair in raw mode: the simulator writes to the master,
/// the gateway opens [`SerialTransport::path`] as its serial port.
pub struct SerialTransport {
    master: std::fs::File,
    /// Our own handle on the gateway's end: it keeps the line up while no
    /// reader has it open (writes are buffered instead of failing).
    slave: Option<std::fs::File>,
    path: String,
}

/// How a wait for the reader of a serial line ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderWait {
    /// Another program opened the line.
    Opened,
    /// Nobody opened it in time.
    TimedOut,
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
            slave: Some(slave),
            path,
        })
    }

    /// The device path to give the gateway (e.g. `/dev/pts/7`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Waits until another program (the gateway) opens the line, for at
    /// most `timeout`. While only the simulator holds the pseudo-terminal its
    /// end reports a hang-up; the hang-up clears as soon as a reader opens
    /// the path. Our own handle is closed for the wait and opened again
    /// after it, so the line stays up if the reader goes away later.
    pub fn wait_for_reader(&mut self, timeout: std::time::Duration) -> anyhow::Result<ReaderWait> {
        use nix::poll::{poll, PollFd, PollFlags};
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        self.slave = None;
        let deadline = std::time::Instant::now() + timeout;
        let outcome = loop {
            let mut fds = [PollFd::new(self.master.as_raw_fd(), PollFlags::POLLOUT)];
            poll(&mut fds, 0).map_err(|e| anyhow::anyhow!("poll on {} failed: {e}", self.path))?;
            let hung_up = fds[0]
                .revents()
                .is_some_and(|events| events.contains(PollFlags::POLLHUP));
            if !hung_up {
                break ReaderWait::Opened;
            }
            if std::time::Instant::now() >= deadline {
                break ReaderWait::TimedOut;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        // Not as our controlling terminal: the line belongs to the logger.
        let reopened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(&self.path)
            .map_err(|e| anyhow::anyhow!("cannot open {} again: {e}", self.path))?;
        self.slave = Some(reopened);
        Ok(outcome)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    #[test]
    fn a_serial_line_nobody_opens_times_out() {
        let mut line = SerialTransport::open().unwrap();
        let waited = line.wait_for_reader(Duration::from_millis(200)).unwrap();
        assert_eq!(waited, ReaderWait::TimedOut);
    }

    #[test]
    fn the_wait_ends_when_a_reader_opens_the_line_and_it_gets_what_is_sent() {
        let mut line = SerialTransport::open().unwrap();
        let path = line.path().to_string();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let mut port = std::fs::File::open(&path).unwrap();
            let mut buffer = [0u8; 6];
            port.read_exact(&mut buffer).unwrap();
            buffer
        });
        let waited = line.wait_for_reader(Duration::from_secs(30)).unwrap();
        assert_eq!(waited, ReaderWait::Opened);
        line.send_raw(b"$CCR\r\n").unwrap();
        assert_eq!(&reader.join().unwrap(), b"$CCR\r\n");
    }
}
