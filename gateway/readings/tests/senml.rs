//! SenML (RFC 8428) over a real MQTT broker (Mosquitto on 127.0.0.1:1883):
//! JSON and CBOR packs become readings whose sequence is their time in
//! milliseconds, a redelivered pack is recorded once, and hostile packs become
//! dead letters holding the bytes as received, replayable once the config is fixed.
mod support;

use base64::Engine;
use coldchain_gateway::protocol::senml;
use coldchain_gateway::protocol::{DeviceReading, Door};
use coldchain_gateway::queue::Queue;
use coldchain_gateway::validation::{Plausibility, Reason};
use coldchain_gateway::{Gateway, GatewayConfig};
use coldchain_processors::signing::Signer;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::time::Duration;
use support::*;

struct Setup {
    _dir: tempfile::TempDir,
    config: GatewayConfig,
    /// The config as TOML (what `coldchain-gateway --config` would read).
    text: String,
    prefix: String,
    broker_port: u16,
    _broker: Option<std::process::Child>,
}

/// A gateway whose broker reads SenML: `urn:dev:mac:<id>:…` names device
/// `<id>`, and the base name `urn:dev:ow:10e2073a01080063` names FRIDGE-7.
fn setup(ledger_url: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gateway.priv");
    std::fs::write(&key, Signer::generate().private_hex()).unwrap();
    let (broker_port, broker) = mqtt_broker();
    let prefix = unique("senml");
    let text = format!(
        "key_file = {key:?}\nrest_url = {ledger_url:?}\nqueue_path = {:?}\nmetrics_bind = \"\"\n\
         [batching]\nmax_readings = 20\nmax_age_ms = 100\ntick_ms = 20\n\
         [submission]\nbackoff_initial_ms = 20\nbackoff_max_ms = 300\nstatus_wait_s = 0\n\
         [[mqtt]]\nport = {broker_port}\nclient_id = {:?}\ntopic_prefix = {prefix:?}\n\
         [mqtt.senml]\nname_prefix = \"urn:dev:mac:\"\n\
         [mqtt.senml.devices]\n\"urn:dev:ow:10e2073a01080063\" = \"FRIDGE-7\"\n\
         [devices.0024befffe804ff1]\norg = \"pharmacy\"\nshipment = \"S-MAC\"\n\
         [devices.FRIDGE-7]\norg = \"pharmacy\"\nshipment = \"S-FRIDGE\"\n",
        dir.path().join("queue.sqlite"),
        unique("gw"),
    );
    let config = GatewayConfig::from_toml(&text).unwrap();
    config.check().unwrap();
    Setup {
        _dir: dir,
        config,
        text,
        prefix,
        broker_port,
        _broker: broker,
    }
}

async fn publisher(port: u16) -> AsyncClient {
    let mut options = MqttOptions::new(unique("pub"), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(10));
    // The over-long pack is ~600 KB; rumqttc's default limit is 10 KiB.
    options.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut events) = AsyncClient::new(options, 256);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    client
}

async fn publish(client: &AsyncClient, topic: &str, payload: Vec<u8>) {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
}

fn mac_reading(time_s: u64, temperature_cdeg: i32) -> DeviceReading {
    DeviceReading {
        device_id: "0024befffe804ff1".into(),
        sequence: time_s * 1000,
        time_s,
        temperature_cdeg,
        humidity_permille: Some(550),
        door: Some(Door::Closed),
        location: None,
    }
}

/// CBOR for FRIDGE-7 with integer labels (RFC 8428 §6): one temperature in K
/// and the door open, at `time_s`.
fn fridge_cbor(time_s: u64, kelvin: f64) -> Vec<u8> {
    let mut out = vec![0x82]; // array of 2 records
    out.push(0xa5); // map of 5
    out.push(0x21); // -2 bn
    let name = b"urn:dev:ow:10e2073a01080063:";
    out.extend_from_slice(&[0x78, name.len() as u8]); // text, 1-byte length (28)
    out.extend_from_slice(name);
    out.push(0x22); // -3 bt
    out.push(0x1a); // uint32
    out.extend_from_slice(&(time_s as u32).to_be_bytes());
    out.extend_from_slice(&[0x00, 0x64]); // 0 n: "temp"
    out.extend_from_slice(b"temp");
    out.extend_from_slice(&[0x01, 0x61, b'K']); // 1 u: "K"
    out.push(0x02); // 2 v: double
    out.push(0xfb);
    out.extend_from_slice(&kelvin.to_be_bytes());
    out.push(0xa2); // second record: the door, same base name and time
    out.extend_from_slice(&[0x00, 0x64]); // 0 n: "door"
    out.extend_from_slice(b"door");
    out.extend_from_slice(&[0x04, 0xf5]); // 4 vb: true
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senml_json_and_cbor_packs_are_recorded_once_by_their_times() {
    let ledger = StandInLedger::start().await;
    let setup = setup(&ledger.url);
    let gateway = Gateway::start(setup.config.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let client = publisher(setup.broker_port).await;
    let json_topic = format!("{}/pharmacy/cold-room-gw/senml", setup.prefix);
    let cbor_topic = format!("{}/pharmacy/fridge-7/senml-cbor", setup.prefix);
    let t0 = now_s() - 3_600;

    let readings: Vec<_> = (0..30)
        .map(|i| mac_reading(t0 + i * 60, 400 + i as i32))
        .collect();
    for chunk in readings.chunks(10) {
        publish(
            &client,
            &json_topic,
            senml::encode_json("urn:dev:mac:0024befffe804ff1:", chunk),
        )
        .await;
    }
    // The same pack again (a logger resending, or a redelivery): nothing twice.
    publish(
        &client,
        &json_topic,
        senml::encode_json("urn:dev:mac:0024befffe804ff1:", &readings[20..]),
    )
    .await;
    for i in 0..5u64 {
        publish(
            &client,
            &cbor_topic,
            fridge_cbor(t0 + i * 300, 277.15 + i as f64),
        )
        .await;
    }

    assert!(
        eventually(20, || ledger.recorded_count() == 35).await,
        "recorded {}",
        ledger.recorded_count()
    );
    assert_eq!(
        ledger.recorded("0024befffe804ff1"),
        readings.iter().map(|r| r.time_s * 1000).collect::<Vec<_>>(),
        "sequences are the readings' times in milliseconds"
    );
    let fridge = ledger.state.lock().unwrap().recorded["FRIDGE-7"].clone();
    assert_eq!(
        fridge.into_iter().collect::<Vec<_>>(),
        (0..5u64)
            .map(|i| ((t0 + i * 300) * 1000, 400 + 100 * i as i32))
            .collect::<Vec<_>>(),
        "K converted to hundredths of °C"
    );
    // The resent pack is noted once (its first reading is behind the device's last: out_of_order).
    let resends = || {
        gateway.metrics().rejected(Reason::Duplicate)
            + gateway.metrics().rejected(Reason::OutOfOrder)
    };
    assert!(eventually(10, || resends() == 1).await, "{}", resends());
    gateway.stop().await;
    let queue = Queue::open(&setup.config.queue_path).unwrap();
    let resent = queue.dead_letters(None, 10).unwrap();
    assert_eq!(resent.len(), 1, "{resent:#?}");
    assert!(
        resent[0]
            .detail
            .contains("10 of the message's 10 readings were already received"),
        "{}",
        resent[0].detail
    );
    assert_eq!(resent[0].raw_form, "senml_payload");
    assert!(resent[0].source.ends_with("/senml"), "{}", resent[0].source);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_senml_becomes_dead_letters_kept_as_received_and_replayable() {
    let ledger = StandInLedger::start().await;
    let setup = setup(&ledger.url);
    let gateway = Gateway::start(setup.config.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let client = publisher(setup.broker_port).await;
    let json_topic = format!("{}/pharmacy/gw/senml", setup.prefix);
    let cbor_topic = format!("{}/pharmacy/gw/senml-cbor", setup.prefix);
    let t = now_s() - 600;

    let wrong_unit =
        format!(r#"[{{"n":"urn:dev:mac:0024befffe804ff1:t","u":"degF","t":{t},"v":40}}]"#);
    let no_time = r#"[{"n":"urn:dev:mac:0024befffe804ff1:t","u":"Cel","v":4}]"#.to_string();
    let huge = format!(r#"[{{"n":"urn:dev:mac:0024befffe804ff1:t","u":"Cel","t":{t},"v":1e200}}]"#);
    let too_many = format!(
        "[{}]",
        (0..senml::MAX_RECORDS as u64 + 1)
            .map(|i| format!(
                r#"{{"n":"urn:dev:mac:0024befffe804ff1:t","u":"Cel","t":{},"v":4}}"#,
                t + i
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let stranger =
        format!(r#"[{{"n":"urn:dev:imei:4901542032375181:t","u":"Cel","t":{t},"v":4}}]"#);
    let mut nan_cbor = fridge_cbor(t, 0.0);
    let v_at = nan_cbor.len() - 9 - 8; // the K value's 8 bytes come before the 9-byte door record
    nan_cbor[v_at..v_at + 8].copy_from_slice(&f64::NAN.to_be_bytes());
    let mut endless_cbor = vec![0x9b];
    endless_cbor.extend_from_slice(&u64::MAX.to_be_bytes());
    let not_cbor = b"\xff\x00garbage".to_vec();

    for body in [&wrong_unit, &no_time, &huge, &too_many, &stranger] {
        publish(&client, &json_topic, body.clone().into_bytes()).await;
    }
    for body in [&nan_cbor, &endless_cbor, &not_cbor] {
        publish(&client, &cbor_topic, body.clone()).await;
    }
    // A good pack after them still flows.
    let good = senml::encode_json("urn:dev:mac:0024befffe804ff1:", &[mac_reading(t, 410)]);
    publish(&client, &json_topic, good).await;

    assert!(eventually(20, || ledger.recorded("0024befffe804ff1") == vec![t * 1000]).await);
    let refusals = || {
        (
            gateway.metrics().rejected(Reason::Malformed),
            gateway.metrics().rejected(Reason::UnknownDevice),
        )
    };
    assert!(
        eventually(10, || refusals() == (7, 1)).await,
        "{:?}",
        refusals()
    );
    gateway.stop().await;

    let queue = Queue::open(&setup.config.queue_path).unwrap();
    let letters = queue.dead_letters(None, 100).unwrap();
    assert_eq!(letters.len(), 8);
    let find = |needle: &str| {
        letters
            .iter()
            .find(|l| l.detail.contains(needle))
            .unwrap_or_else(|| panic!("no dead letter says {needle:?}: {letters:#?}"))
    };
    assert_eq!(find("\"degF\"").raw, wrong_unit, "bytes as received");
    assert_eq!(find("relative to now").raw, no_time);
    assert_eq!(find("beyond any sensor").raw, huge);
    assert_eq!(find("more than 10000").raw, too_many);
    assert!(find("finite").source.ends_with("/senml-cbor"));
    let endless = find("declares");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(endless.raw_base64.as_ref().unwrap())
            .unwrap(),
        endless_cbor,
        "CBOR kept byte for byte"
    );
    assert_eq!(
        find("unexpected CBOR break").raw_base64.as_deref(),
        Some("/wBnYXJiYWdl")
    );
    let stranger_letter = find("urn:dev:imei:4901542032375181:t");
    assert_eq!(stranger_letter.reason, "unknown_device");
    assert!(stranger_letter.detail.contains("[mqtt.senml"));

    // The operator maps the stranger's name and replays it with the CLI: it is
    // queued from the bytes kept, read with that broker's [mqtt.senml].
    let fixed = setup
        .text
        .replace(
            "\"urn:dev:ow:10e2073a01080063\" = \"FRIDGE-7\"\n",
            "\"urn:dev:ow:10e2073a01080063\" = \"FRIDGE-7\"\n\"urn:dev:imei:4901542032375181\" = \"IMEI-1\"\n",
        )
        + "[devices.IMEI-1]\norg = \"pharmacy\"\nshipment = \"S-IMEI\"\n";
    let config_file = setup._dir.path().join("gateway.toml");
    std::fs::write(&config_file, fixed).unwrap();
    drop(queue);
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_coldchain-gateway"))
        .arg("--config")
        .arg(&config_file)
        .args(["dead-letters", "replay", &stranger_letter.id.to_string()])
        .env("COLDCHAIN_LOG", "warn")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert_eq!(
        printed.trim(),
        format!("{}: queued 1 reading", stranger_letter.id)
    );
    let queue = Queue::open(&setup.config.queue_path).unwrap();
    assert_eq!(queue.stats(0).unwrap().queued, 1);
    let limits = Plausibility {
        clock_skew_tolerance_s: 300,
        max_backlog_age_s: 86_400,
    };
    let route = |_: &str| None;
    // Without a [mqtt.senml] for the prefix, a SenML entry is kept, saying why.
    let wrong_unit_id = find("\"degF\"").id;
    let mut queue = queue;
    let kept = queue
        .replay_dead_letter(wrong_unit_id, &route, now_s() * 1000, limits, 1 << 30)
        .unwrap();
    assert!(kept.to_string().contains("[mqtt.senml]"), "{kept}");
}
