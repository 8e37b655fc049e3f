//! An MQTT broker: subscribe QoS 1 with a persistent session, store, then ack.
//!
//! `manual_acks(true)`: a PUBACK is sent only after the message's readings (or
//! its refusal) are committed to the queue, so a gateway killed in between gets
//! the message again from the broker. Reconnects with backoff forever.
//!
//! MQTT 3.1.1 §4.6 requires PUBACKs in the order the PUBLISHes arrived, so
//! one ack task per connection waits for each message's queue commit in
//! arrival order. A message the queue could not store breaks the chain: the
//! connection is dropped so the broker redelivers it and everything after it.
//!
//! Size: the client takes any packet MQTT allows ([`MQTT_MAX_PACKET_BYTES`]).
//! With a smaller client limit, one oversized message kills the connection
//! before it can be acknowledged, the broker redelivers it on reconnect, and
//! every message queued behind it is stuck for good. Instead the gateway reads
//! it, refuses it as `too_large` above `max_message_bytes` (a dead letter with
//! its head and true size), acknowledges it, and goes on. The cost: a message
//! is held in memory once while it is read (the broker's own limit, e.g.
//! Mosquitto's `max_packet_size`, bounds that).
//!
//! SenML: with a `[mqtt.senml]` section the broker's `<prefix>/+/+/senml` and
//! `<prefix>/+/+/senml-cbor` are subscribed too, and their packs are read by
//! [`crate::protocol::senml`]; everything else (ack order, size limit, dead
//! letters) is the same as for the gateway's own payloads.
//!
//! Connection health goes to [`crate::metrics::BrokerHealth`] (`/metrics`,
//! `/health`); the backoff grows with failures in a row, which only a
//! connection that carries a packet after its CONNACK resets.
use crate::arrivals::{from_mqtt_publish, from_senml_parsed};
use crate::config::{MqttBrokerConfig, MQTT_MAX_PACKET_BYTES};
use crate::ingest::Inbound;
use crate::metrics::FAILING_AFTER;
use crate::protocol::mqtt_payload::parse_topic;
use crate::protocol::senml;
use crate::submission::backoff_delay;
use crate::Shared;
use rumqttc::Publish;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A received PUBLISH waiting for its queue commit before it is acked (its
/// payload dropped: the ack needs only the packet id and QoS).
struct PendingAck {
    publish: Publish,
    on_disk: oneshot::Receiver<bool>,
    connection: u64,
}

/// Acks pending messages strictly in arrival order. Messages from an earlier
/// connection are skipped: the broker redelivers them on the new one.
async fn ack_in_order(
    client: AsyncClient,
    connection: Arc<AtomicU64>,
    mut pending: mpsc::UnboundedReceiver<PendingAck>,
) {
    while let Some(message) = pending.recv().await {
        let stored = matches!(message.on_disk.await, Ok(true));
        if message.connection != connection.load(Ordering::Acquire) {
            continue;
        }
        if !stored {
            tracing::warn!(
                topic = %message.publish.topic,
                "MQTT message not stored; reconnecting so the broker redelivers it"
            );
            connection.fetch_add(1, Ordering::AcqRel);
            let _ = client.disconnect().await;
            continue;
        }
        if let Err(e) = client.ack(&message.publish).await {
            tracing::warn!(error = %e, "MQTT ack failed; the broker will redeliver");
        }
    }
}

/// The SenML format of a message on `topic`, when it is a SenML topic of this broker.
fn senml_format(broker: &MqttBrokerConfig, topic: &str) -> Option<senml::SenmlFormat> {
    let (prefix, _, format) = senml::split_senml_topic(topic)?;
    (prefix == broker.topic_prefix && broker.senml.is_some()).then_some(format)
}

pub(crate) async fn run_mqtt(
    shared: Arc<Shared>,
    broker: MqttBrokerConfig,
    sink: mpsc::Sender<Inbound>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut options = MqttOptions::new(broker.client_id.clone(), broker.host.clone(), broker.port);
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_keep_alive(Duration::from_secs(15));
    options.set_max_packet_size(MQTT_MAX_PACKET_BYTES as usize, 1 << 20);
    if let (Some(user), Some(password)) = (&broker.username, &broker.password) {
        options.set_credentials(user.clone(), password.clone());
    }
    match broker.tls_configuration() {
        Ok(Some(tls)) => {
            options.set_transport(rumqttc::Transport::tls_with_config(tls));
        }
        Ok(None) => {}
        Err(e) => {
            // Checked when the config was loaded; a file removed since ends this source.
            tracing::error!(error = %e, "MQTT source not started");
            return;
        }
    }
    let (client, mut events) = AsyncClient::new(options, 1024);
    let filter = format!("{}/+/+/readings", broker.topic_prefix);
    let senml_filters: Vec<String> = match broker.senml {
        Some(_) => [senml::JSON_TOPIC_LEVEL, senml::CBOR_TOPIC_LEVEL]
            .iter()
            .map(|level| format!("{}/+/+/{level}", broker.topic_prefix))
            .collect(),
        None => Vec::new(),
    };
    let health = shared
        .metrics
        .broker(&format!("{}:{}", broker.host, broker.port));
    let connection = Arc::new(AtomicU64::new(0));
    let (ack_sender, ack_receiver) = mpsc::unbounded_channel();
    tokio::spawn(ack_in_order(
        client.clone(),
        connection.clone(),
        ack_receiver,
    ));
    loop {
        let event = tokio::select! {
            event = events.poll() => event,
            _ = shutdown.changed() => {
                let _ = client.disconnect().await;
                return;
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                health.connected();
                connection.fetch_add(1, Ordering::AcqRel);
                tracing::info!(broker = %broker.host, port = broker.port, session_present = ack.session_present, "MQTT connected");
                if !ack.session_present {
                    if let Err(e) = client.subscribe(&filter, QoS::AtLeastOnce).await {
                        tracing::error!(error = %e, "MQTT subscribe failed");
                    }
                }
                // Every time, not only for a new session: a [mqtt.senml] section
                // added to a gateway whose session the broker kept still takes effect.
                for senml_filter in &senml_filters {
                    if let Err(e) = client.subscribe(senml_filter, QoS::AtLeastOnce).await {
                        tracing::error!(error = %e, filter = %senml_filter, "MQTT subscribe failed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                health.proven();
                let topic = publish.topic.clone();
                let limit = broker.max_message_bytes;
                let fits = publish.payload.len() as u64 <= limit;
                let arrival = match (senml_format(&broker, &topic), &broker.senml) {
                    (Some(format), Some(naming)) if fits => {
                        let parsed = senml::parse_pack(format, &publish.payload, naming);
                        if let Some(reading) = parsed.as_ref().ok().and_then(|r| r.first()) {
                            shared.directory.prepare(&reading.device_id).await;
                        }
                        from_senml_parsed(&topic, &publish.payload, parsed, &|d| {
                            shared.directory.route(d)
                        })
                    }
                    _ => {
                        if fits {
                            if let Some((_, device)) = parse_topic(&broker.topic_prefix, &topic) {
                                shared.directory.prepare(device).await;
                            }
                        }
                        from_mqtt_publish(
                            &broker.topic_prefix,
                            &topic,
                            &publish.payload,
                            limit,
                            &|d| shared.directory.route(d),
                        )
                    }
                };
                let (stored, on_disk) = oneshot::channel();
                if sink
                    .send(Inbound {
                        arrivals: vec![arrival],
                        stored: Some(stored),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                let mut ack = Publish::new(topic, publish.qos, Vec::<u8>::new());
                ack.pkid = publish.pkid;
                let pending = PendingAck {
                    publish: ack,
                    on_disk,
                    connection: connection.load(Ordering::Acquire),
                };
                if ack_sender.send(pending).is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(_)) => health.proven(),
            Ok(Event::Outgoing(_)) => {}
            Err(e) => {
                let error = e.to_string();
                let failures = health.failed(&error);
                let delay = backoff_delay(failures.min(20) as u32, 200, 10_000);
                tracing::warn!(broker = %broker.host, port = broker.port, error = %error, failures_in_a_row = failures, ?delay, "MQTT connection lost; reconnecting");
                if let Some(problem) = health.problem().filter(|_| failures == FAILING_AFTER) {
                    tracing::error!("{problem}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}
