//! The simulator's transports deliver parseable device traffic: `$CCR` lines
//! on the pseudo-terminal, JSON/binary messages on a real MQTT broker.
use coldchain_gateway::protocol::{mqtt_payload, serial_line};
use coldchain_sensors::{
    Encoding, MqttTransport, Scenario, SerialTransport, Simulator, SimulatorConfig, Sink,
};
use std::io::{BufRead, BufReader};
use std::time::Duration;

fn simulator(devices: usize, prefix: &str) -> Simulator {
    Simulator::new(SimulatorConfig {
        devices,
        device_prefix: prefix.into(),
        scenario: Scenario::Doors,
        rate_per_device: 200.0,
        readings_per_message: 10,
        set_point_cdeg: 500,
    })
}

#[tokio::test]
async fn serial_simulator_writes_lines_the_gateway_parses() {
    let mut transport = SerialTransport::open().unwrap();
    let reader = std::fs::File::open(transport.path()).unwrap();
    let mut sim = simulator(3, "S");
    let stats = sim
        .run(
            &mut Sink::Serial(&mut transport),
            Duration::from_millis(120),
        )
        .await
        .unwrap();
    assert!(stats.readings >= 30);
    let mut lines = BufReader::new(reader).lines();
    for _ in 0..stats.readings {
        let line = lines.next().unwrap().unwrap();
        let reading = serial_line::parse_line(line.as_bytes()).unwrap();
        assert!(reading.device_id.starts_with('S'));
    }
}

#[tokio::test]
async fn mqtt_simulator_publishes_readings_on_device_topics() {
    if std::net::TcpStream::connect("127.0.0.1:1883").is_err() {
        panic!("these tests need an MQTT broker on 127.0.0.1:1883 (mosquitto)");
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("simtest{}x{}", std::process::id(), nanos % 1_000_000_000);
    let mut options = rumqttc::MqttOptions::new(format!("{prefix}-sub"), "127.0.0.1", 1883);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (subscriber, mut events) = rumqttc::AsyncClient::new(options, 256);
    subscriber
        .subscribe(format!("{prefix}/+/+/readings"), rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let (found, mut received) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = event {
                let _ = found.send((p.topic.clone(), p.payload.to_vec())).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let transport = MqttTransport::connect(
        "127.0.0.1",
        1883,
        &format!("{prefix}-pub"),
        &prefix,
        "carrier",
        Encoding::Binary,
    )
    .await;
    let mut sim = simulator(2, "M");
    let stats = sim
        .run(&mut Sink::Mqtt(&transport), Duration::from_millis(150))
        .await
        .unwrap();
    let mut count = 0;
    while count < stats.readings {
        let (topic, payload) = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .unwrap()
            .unwrap();
        let (org, device) = mqtt_payload::parse_topic(&prefix, &topic).unwrap();
        assert_eq!(org, "carrier");
        count += mqtt_payload::parse_payload(device, &payload).unwrap().len() as u64;
    }
    assert_eq!(count, stats.readings);
}
