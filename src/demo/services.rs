//! The demo's process tree: embedded node, MQTT broker, sensor gateway,
//! simulated loggers' transports and the provenance API, all in this process
//! and all talking to each other over their real protocols on 127.0.0.1.
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use coldchain_gateway::protocol::{
    mqtt_payload::encode_json, serial_line::format_line, DeviceReading,
};
use coldchain_node::genesis::GenesisSettings;
use coldchain_node::{Node, NodeConfig, NodeHandle};
use coldchain_processors::addressing::ADMINS_SETTING;
use coldchain_processors::signing::Signer;

use super::story::{self, Cast};
use super::DemoArgs;

/// Everything the demo started.
pub struct World {
    pub rest_url: String,
    /// Playing on an existing network (`--url`), not an embedded node.
    pub remote: bool,
    pub component: String,
    pub mqtt: String,
    pub api_url: String,
    node: Option<NodeHandle>,
    api: Option<coldchain_api::ApiHandle>,
    gateway: Option<coldchain_gateway::GatewayHandle>,
    broker_thread: Option<std::thread::JoinHandle<()>>,
    /// The logger's end of the serial pseudo-terminal (the gateway opens the other end).
    serial_logger: Option<std::fs::File>,
    serial_path: Option<PathBuf>,
    mqtt_addr: (String, u16),
    http: reqwest::Client,
}

/// `preferred` if it is free on 127.0.0.1, else any free port.
fn port(preferred: u16) -> Result<u16> {
    if preferred != 0 && TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return Ok(preferred);
    }
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("no free TCP port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

fn write_key(path: &Path, signer: &Signer) -> Result<()> {
    std::fs::write(path, format!("{}\n", signer.private_hex()))
        .with_context(|| format!("cannot write {}", path.display()))
}

impl World {
    pub async fn start(args: &DemoArgs, data_dir: &Path, admin: &Signer) -> Result<World> {
        let (node, rest_url, component) = match (&args.url, &args.component) {
            (Some(url), Some(component)) => (
                None,
                url.trim_end_matches('/').to_string(),
                component.clone(),
            ),
            _ => {
                let node = start_node(args, data_dir, admin).await?;
                let rest_url = node.rest_url();
                let component = node.component_endpoint().to_string();
                (Some(node), rest_url, component)
            }
        };

        let (mqtt_host, mqtt_port, broker_thread) = match &args.mqtt {
            Some(address) => {
                let (host, port) = address
                    .rsplit_once(':')
                    .ok_or_else(|| anyhow!("--mqtt {address:?} must be host:port"))?;
                let port: u16 = port
                    .parse()
                    .with_context(|| format!("--mqtt port {port:?} is not a number"))?;
                (host.to_string(), port, None)
            }
            None => {
                let port = port(0)?;
                (String::from("127.0.0.1"), port, Some(start_broker(port)?))
            }
        };
        wait_for_broker(&mqtt_host, mqtt_port).await?;

        let api_port = port(args.api_port)?;
        let api_config = coldchain_api::ApiConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], api_port)),
            rest_url: rest_url.clone(),
            component: component.clone(),
            index_url: format!("sqlite://{}", data_dir.join("index.sqlite").display()),
            follow: true,
        };
        let api = coldchain_api::Api::start(api_config)
            .await
            .context("cannot start the provenance API")?;
        let api_url = api.url();
        Ok(World {
            remote: node.is_none(),
            rest_url,
            component,
            mqtt: format!("{mqtt_host}:{mqtt_port}"),
            api_url,
            node,
            api: Some(api),
            gateway: None,
            broker_thread,
            serial_logger: None,
            serial_path: None,
            mqtt_addr: (mqtt_host, mqtt_port),
            http: reqwest::Client::new(),
        })
    }

    /// Starts the sensor gateway for the carrier's two loggers: one over MQTT,
    /// one over a serial pseudo-terminal whose other end the demo writes to.
    pub async fn start_gateway(&mut self, cast: &Cast, data_dir: &Path) -> Result<()> {
        let key_file = data_dir.join("gateway.priv");
        write_key(&key_file, &cast.gateway)?;
        let (logger_end, gateway_path) = open_pty()?;
        let config_text = format!(
            r#"key_file = "{key}"
rest_url = "{rest}"
queue_path = "{queue}"
metrics_bind = "127.0.0.1:0"
max_backlog_age_s = 172800

[batching]
max_readings = 60
max_age_ms = 500

[[serial]]
path = "{serial}"
baud = 115200
devices = ["{box_device}"]

[[mqtt]]
host = "{mqtt_host}"
port = {mqtt_port}
client_id = "coldchain-demo-gateway"

[devices.{reefer}]
org = "{carrier}"
shipment = "{shipment_a}"

[devices.{box_device}]
org = "{carrier}"
shipment = "{shipment_b}"

[shipments.{shipment_a}]
min_cdeg = 200
max_cdeg = 800

[shipments.{shipment_b}]
min_cdeg = 200
max_cdeg = 800
"#,
            key = key_file.display(),
            rest = self.rest_url,
            queue = data_dir.join("gateway-queue.sqlite").display(),
            serial = gateway_path.display(),
            box_device = story::BOX_DEVICE,
            reefer = story::REEFER_DEVICE,
            mqtt_host = self.mqtt_addr.0,
            mqtt_port = self.mqtt_addr.1,
            carrier = story::CARRIER_ORG,
            shipment_a = story::SHIPMENT_A,
            shipment_b = story::SHIPMENT_B,
        );
        std::fs::write(data_dir.join("gateway.toml"), &config_text)?;
        let config = coldchain_gateway::GatewayConfig::from_toml(&config_text)
            .map_err(|e| anyhow!("demo gateway config is wrong: {e}"))?;
        let gateway = coldchain_gateway::Gateway::start(config)
            .await
            .context("cannot start the sensor gateway")?;
        self.gateway = Some(gateway);
        self.serial_logger = Some(logger_end);
        self.serial_path = Some(gateway_path);
        Ok(())
    }

    /// Publishes a logger's readings to `coldchain/<org>/<device>/readings`, a
    /// message per reading at QoS 1, as a connected reefer logger would.
    pub async fn send_mqtt(&self, device: &str, readings: &[DeviceReading]) -> Result<()> {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let mut options = MqttOptions::new(
            format!("demo-logger-{device}"),
            &self.mqtt_addr.0,
            self.mqtt_addr.1,
        );
        options.set_keep_alive(Duration::from_secs(10));
        let (client, mut events) = AsyncClient::new(options, 64);
        let topic = format!("coldchain/{}/{device}/readings", story::CARRIER_ORG);
        let total = readings.len();
        let publisher = {
            let client = client.clone();
            let messages: Vec<Vec<u8>> = readings
                .iter()
                .map(|r| encode_json(std::slice::from_ref(r)))
                .collect();
            tokio::spawn(async move {
                for message in messages {
                    if client
                        .publish(&topic, QoS::AtLeastOnce, false, message)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            })
        };
        let mut acked = 0usize;
        while acked < total {
            match tokio::time::timeout(Duration::from_secs(30), events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("MQTT logger {device} lost the broker: {e}"),
                Err(_) => {
                    bail!("MQTT broker did not acknowledge logger {device}'s readings within 30 s")
                }
            }
        }
        let _ = publisher.await;
        let _ = client.disconnect().await;
        Ok(())
    }

    /// Writes readings as serial lines to the logger's end of the pseudo-terminal.
    pub async fn send_serial(&mut self, readings: &[DeviceReading]) -> Result<()> {
        let Some(port) = self.serial_logger.as_mut() else {
            bail!("the serial logger is not connected (gateway not started)");
        };
        for chunk in readings.chunks(20) {
            let mut text = String::new();
            for reading in chunk {
                text.push_str(&format_line(reading));
                if !text.ends_with('\n') {
                    text.push_str("\r\n");
                }
            }
            port.write_all(text.as_bytes())
                .context("cannot write to the serial pseudo-terminal")?;
            // A real logger at 115200 baud needs ~1 ms per line; pace similarly.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        port.flush().ok();
        Ok(())
    }

    /// Asks the provenance API for a pack's verdict (waits for the index to catch up).
    pub async fn verify(&self, gtin: &str, lot: &str, serial: &str) -> Result<String> {
        let url = format!("{}/01/{gtin}/10/{lot}/21/{serial}", self.api_url);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let response = self
                .http
                .get(&url)
                .header("Accept", "application/json")
                .send()
                .await
                .with_context(|| format!("cannot reach the provenance API at {url}"))?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if status.is_success() {
                let verdict = body["verdict"].as_str().unwrap_or("?").to_string();
                let reasons: Vec<String> = body["reasons"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let complete = body["index_lag_blocks"].as_u64().unwrap_or(0) == 0;
                if complete || tokio::time::Instant::now() >= deadline {
                    return Ok(if reasons.is_empty() {
                        verdict
                    } else {
                        format!("{verdict} ({})", reasons.join("; "))
                    });
                }
            } else if tokio::time::Instant::now() >= deadline {
                bail!("the provenance API answered {status} for {url}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn shutdown(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.stop().await;
        }
        if let Some(api) = self.api.take() {
            api.stop().await;
        }
        if let Some(node) = self.node.take() {
            let _ = tokio::task::spawn_blocking(move || node.shutdown()).await;
        }
        // The embedded broker thread ends with the process.
        drop(self.broker_thread.take());
    }
}

/// The embedded node with the three families; `admin` is the network admin.
async fn start_node(args: &DemoArgs, data_dir: &Path, admin: &Signer) -> Result<NodeHandle> {
    let rest_port = port(args.rest_port)?;
    let component_port = port(args.component_port)?;
    let mut config = NodeConfig::new(data_dir.join("node"));
    config.rest_api = SocketAddr::from(([127, 0, 0, 1], rest_port));
    config.component = format!("tcp://127.0.0.1:{component_port}");
    let mut settings = std::collections::BTreeMap::new();
    settings.insert(ADMINS_SETTING.to_string(), admin.public_key().to_string());
    config.genesis = GenesisSettings(settings);
    config.handlers = coldchain_processors::family_handlers();
    tokio::task::spawn_blocking(move || Node::start(config))
        .await
        .context("node start task failed")?
        .context("cannot start the embedded node")
}

/// Opens a pseudo-terminal pair: (the logger's end, the path the gateway opens).
fn open_pty() -> Result<(std::fs::File, PathBuf)> {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let pty = nix::pty::openpty(None, None).context("cannot open a pseudo-terminal")?;
    // Raw mode on the gateway's end so lines arrive as written.
    if let Ok(mut attributes) = tcgetattr(pty.slave) {
        cfmakeraw(&mut attributes);
        let _ = tcsetattr(pty.slave, SetArg::TCSANOW, &attributes);
    }
    let path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .context("cannot find the pseudo-terminal's device path")?;
    // Keep the slave open in this process so the line stays up between opens.
    std::mem::forget(unsafe { OwnedFd::from_raw_fd(pty.slave) });
    let master = unsafe { std::fs::File::from_raw_fd(pty.master) };
    Ok((master, path))
}

/// Starts rumqttd on 127.0.0.1:`port` on its own thread.
fn start_broker(port: u16) -> Result<std::thread::JoinHandle<()>> {
    let config_text = format!(
        r#"id = 0
[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 262144
    max_inflight_count = 500
    dynamic_filters = true
"#
    );
    let config: rumqttd::Config =
        toml::from_str(&config_text).context("embedded MQTT broker config")?;
    let thread = std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("embedded MQTT broker stopped: {e}");
            }
        })
        .context("cannot start the embedded MQTT broker thread")?;
    Ok(thread)
}

/// Waits until the broker at `host:port` answers an MQTT CONNECT with a
/// CONNACK. A bare TCP probe is not enough and not polite: rumqttd logs a
/// connection that closes before its CONNECT packet as an ERROR ("Error while
/// handling MQTT connect packet"), which the demo printed at every start. The
/// probe then closes its socket without DISCONNECT, which rumqttd takes as a
/// peer that went away (logged at INFO), not as a router error.
async fn wait_for_broker(host: &str, port: u16) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let client_id = format!("coldchain-demo-probe-{}", std::process::id());
    let mut options = rumqttc::MqttOptions::new(client_id, host, port);
    options.set_clean_session(true);
    let (_client, mut events) = rumqttc::AsyncClient::new(options, 1);
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, events.poll()).await {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => bail!("MQTT broker {host}:{port} did not answer an MQTT CONNECT within 10 s"),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("MQTT broker {host}:{port} did not answer an MQTT CONNECT within 10 s");
        }
    }
}
