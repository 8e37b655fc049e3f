//! MQTT over TLS: a private Mosquitto with a TLS listener whose certificate
//! is signed by a CA made for this test (`openssl`), and a plain listener for
//! the loggers. The gateway connects over TLS, checking the broker against
//! `ca_file`: readings published on the plain side are committed; with a CA
//! that did not sign the broker's certificate, nothing gets through.
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use coldchain_gateway::protocol::{mqtt_payload, DeviceReading, Door};
use coldchain_gateway::{Gateway, GatewayConfig};
use coldchain_processors::signing::Signer;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use support::*;

struct Broker {
    child: Child,
    plain_port: u16,
    tls_port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (install the openssl package)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`name`-ca.pem) and, when `server` is set, a broker certificate for
/// 127.0.0.1 signed by it (server.pem, server.key).
fn make_ca(dir: &Path, name: &str, server: bool) {
    let (key, ca) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &key,
            "-out",
            &ca,
            "-subj",
            "/CN=coldchain test CA",
        ],
    );
    if server {
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                &ca,
                "-CAkey",
                &key,
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                "server.pem",
                "-extfile",
                "san.ext",
            ],
        );
    }
}

fn start_broker(dir: &Path) -> Broker {
    let (plain_port, tls_port) = (free_port(), free_port());
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous true\nuser root\n\
             listener {plain_port} 127.0.0.1\n\
             listener {tls_port} 127.0.0.1\ncafile {0}/good-ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n\
             log_dest stderr\nlog_type error\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .spawn()
        .expect("start mosquitto (install the mosquitto package)");
    processes::wait_for_port(plain_port, "mosquitto (plain listener)");
    processes::wait_for_port(tls_port, "mosquitto (TLS listener)");
    Broker {
        child,
        plain_port,
        tls_port,
    }
}

fn gateway_config(
    dir: &Path,
    ledger_url: &str,
    tls_port: u16,
    ca: &Path,
    prefix: &str,
) -> GatewayConfig {
    let key = dir.join(format!("{prefix}.priv"));
    std::fs::write(&key, Signer::generate().private_hex()).unwrap();
    GatewayConfig::from_toml(&format!(
        "key_file = {key:?}\nrest_url = {ledger_url:?}\nqueue_path = {:?}\nmetrics_bind = \"\"\n\
         [batching]\nmax_readings = 10\nmax_age_ms = 200\ntick_ms = 20\n\
         [submission]\nstatus_wait_s = 0\n\
         [[mqtt]]\nhost = \"127.0.0.1\"\nport = {tls_port}\ntls = true\nca_file = {ca:?}\n\
         client_id = {:?}\ntopic_prefix = {prefix:?}\n\
         [devices.TLS-1]\norg = \"carrier\"\nshipment = \"S-TLS-1\"\n",
        dir.join(format!("{prefix}-queue.sqlite")),
        unique("gw"),
    ))
    .unwrap()
}

fn reading(sequence: u64) -> DeviceReading {
    DeviceReading {
        device_id: "TLS-1".into(),
        sequence,
        time_s: now_s() - 1000 + sequence,
        temperature_cdeg: 450,
        humidity_permille: None,
        door: Some(Door::Closed),
        location: None,
    }
}

async fn publish(port: u16, prefix: &str, sequences: std::ops::RangeInclusive<u64>) {
    let (client, mut events) =
        AsyncClient::new(MqttOptions::new(unique("pub"), "127.0.0.1", port), 64);
    let poller = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let readings: Vec<_> = sequences.map(reading).collect();
    client
        .publish(
            format!("{prefix}/carrier/TLS-1/readings"),
            QoS::AtLeastOnce,
            false,
            mqtt_payload::encode_json(&readings),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    poller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reads_a_tls_broker_it_trusts_and_refuses_one_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "good", true);
    make_ca(dir.path(), "other", false);
    let broker = start_broker(dir.path());
    let ledger = StandInLedger::start().await;

    // A CA that did not sign the broker: the TLS handshake fails, nothing flows.
    let untrusting = Gateway::start(gateway_config(
        dir.path(),
        &ledger.url,
        broker.tls_port,
        &dir.path().join("other-ca.pem"),
        "untrusting",
    ))
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    publish(broker.plain_port, "untrusting", 1..=5).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        ledger.recorded_count(),
        0,
        "no reading crosses an untrusted TLS link"
    );
    assert_eq!(
        untrusting
            .metrics()
            .received
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    untrusting.stop().await;

    // The broker's own CA: readings flow over TLS and are committed.
    let gateway = Gateway::start(gateway_config(
        dir.path(),
        &ledger.url,
        broker.tls_port,
        &dir.path().join("good-ca.pem"),
        "trusting",
    ))
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    publish(broker.plain_port, "trusting", 1..=20).await;
    assert!(
        eventually(20, || ledger.recorded("TLS-1")
            == (1..=20).collect::<Vec<_>>())
        .await,
        "recorded {:?}",
        ledger.recorded("TLS-1")
    );
    gateway.stop().await;
}
