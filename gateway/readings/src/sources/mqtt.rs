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
use crate::arrivals::from_mqtt_message;
use crate::config::MqttBrokerConfig;
use crate::ingest::Inbound;
use crate::protocol::mqtt_payload::parse_topic;
use crate::submission::backoff_delay;
use crate::Shared;
use rumqttc::Publish;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A received PUBLISH waiting for its queue commit before it is acked.
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
    options.set_max_packet_size(1 << 20, 1 << 20);
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
    let mut failures: u32 = 0;
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
                failures = 0;
                connection.fetch_add(1, Ordering::AcqRel);
                tracing::info!(broker = %broker.host, port = broker.port, session_present = ack.session_present, "MQTT connected");
                if !ack.session_present {
                    if let Err(e) = client.subscribe(&filter, QoS::AtLeastOnce).await {
                        tracing::error!(error = %e, "MQTT subscribe failed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let topic = publish.topic.clone();
                if let Some((_, device)) = parse_topic(&broker.topic_prefix, &topic) {
                    shared.directory.prepare(device).await;
                }
                let arrivals =
                    from_mqtt_message(&broker.topic_prefix, &topic, &publish.payload, &|d| {
                        shared.directory.route(d)
                    });
                let (stored, on_disk) = oneshot::channel();
                if sink
                    .send(Inbound {
                        arrivals,
                        stored: Some(stored),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                let pending = PendingAck {
                    publish,
                    on_disk,
                    connection: connection.load(Ordering::Acquire),
                };
                if ack_sender.send(pending).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                let delay = backoff_delay(failures, 200, 10_000);
                tracing::warn!(broker = %broker.host, port = broker.port, error = %e, ?delay, "MQTT connection lost; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}
