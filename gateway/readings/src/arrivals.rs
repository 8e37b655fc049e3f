//! Turning bytes from a serial line or an MQTT message into an [`Arrival`]:
//! parse, then route its readings to their organisation and shipment. The
//! bytes are kept as received, so a refusal can be replayed from them.
//!
//! Pure: the device directory is passed in as a function, so the same code
//! serves live ingestion and dead-letter replay.
use crate::protocol::senml::{self, SenmlError, SenmlNaming};
use crate::protocol::{mqtt_payload, serial_line, DeviceReading, ParseError};
use crate::queue::{Arrival, RawForm, Route};
use crate::validation::{Reason, Rejection};

fn parse_rejection(error: &ParseError) -> Rejection {
    let reason = match error {
        ParseError::Malformed(_) => Reason::Malformed,
        ParseError::BadChecksum { .. } => Reason::BadChecksum,
    };
    Rejection::new(reason, error.to_string())
}

fn unknown(device: &str) -> Rejection {
    Rejection::new(
        Reason::UnknownDevice,
        format!("device {device:?} is not in the gateway config nor attached to a shipment on the ledger; add it under [devices] or attach it"),
    )
}

/// Bytes of an MQTT payload over the size limit kept in its dead letter:
/// enough to see which logger sent what, not the whole (possibly huge) thing.
pub const TOO_LARGE_KEEP_BYTES: usize = 64 * 1024;

/// One serial line. `allowed` lists the devices wired to this port (empty: any).
pub fn from_serial_line(
    source: &str,
    line: &[u8],
    allowed: &[String],
    directory: &dyn Fn(&str) -> Option<Route>,
) -> Arrival {
    let outcome = serial_line::parse_line(line)
        .map_err(|e| parse_rejection(&e))
        .and_then(|reading| {
            if !allowed.is_empty() && !allowed.contains(&reading.device_id) {
                return Err(Rejection::new(
                    Reason::WrongPort,
                    format!(
                        "device {:?} is not configured on this port",
                        reading.device_id
                    ),
                ));
            }
            let route = directory(&reading.device_id).ok_or_else(|| unknown(&reading.device_id))?;
            Ok((vec![reading], route))
        });
    Arrival {
        source: source.to_string(),
        raw: line.to_vec(),
        form: RawForm::SerialLine,
        size: line.len() as u64,
        outcome,
    }
}

/// The route of `device` for a message on a topic naming `org`.
fn route_on_topic(
    org: &str,
    device: &str,
    directory: &dyn Fn(&str) -> Option<Route>,
) -> Result<Route, Rejection> {
    match directory(device) {
        Some(route) if route.org == org => Ok(route),
        Some(route) => Err(Rejection::new(
            Reason::WrongOrg,
            format!(
                "topic names org {org:?} but device {device:?} belongs to {:?}; publish on the device's organisation's topic",
                route.org
            ),
        )),
        None => Err(unknown(device)),
    }
}

/// One MQTT message: all its readings, or one refusal for the whole message.
/// The payload is kept whole (a dead letter is replayed from it).
pub fn from_mqtt_message(
    prefix: &str,
    topic: &str,
    payload: &[u8],
    directory: &dyn Fn(&str) -> Option<Route>,
) -> Arrival {
    let outcome = match mqtt_payload::parse_topic(prefix, topic) {
        None => Err(Rejection::new(
            Reason::Malformed,
            format!("topic {topic:?} is not {prefix}/<org>/<device>/readings"),
        )),
        Some((org, device)) => mqtt_payload::parse_payload(device, payload)
            .map_err(|e| parse_rejection(&e))
            .and_then(|readings| Ok((readings, route_on_topic(org, device, directory)?))),
    };
    Arrival {
        source: format!("mqtt:{topic}"),
        raw: payload.to_vec(),
        form: RawForm::MqttPayload,
        size: payload.len() as u64,
        outcome,
    }
}

/// One SenML pack on `topic` (`<prefix>/<org>/<publisher>/senml[-cbor]`),
/// read with the broker's `naming` (`None`: the broker takes no SenML).
pub fn from_senml_message(
    topic: &str,
    payload: &[u8],
    naming: Option<&SenmlNaming>,
    directory: &dyn Fn(&str) -> Option<Route>,
) -> Arrival {
    let parsed = match (senml::split_senml_topic(topic), naming) {
        (Some((_, _, format)), Some(naming)) => senml::parse_pack(format, payload, naming),
        (None, _) => Err(SenmlError::Malformed(format!(
            "topic {topic:?} is not <prefix>/<org>/<publisher>/senml or …/senml-cbor"
        ))),
        (Some(_), None) => Err(SenmlError::Malformed(format!(
            "no [mqtt.senml] section for the broker of topic {topic:?}; add one to read SenML"
        ))),
    };
    from_senml_parsed(topic, payload, parsed, directory)
}

/// [`from_senml_message`] for a pack already parsed (the MQTT source parses
/// first, to look its device up on the ledger before routing).
pub fn from_senml_parsed(
    topic: &str,
    payload: &[u8],
    parsed: Result<Vec<DeviceReading>, SenmlError>,
    directory: &dyn Fn(&str) -> Option<Route>,
) -> Arrival {
    let outcome = parsed
        .map_err(|e| match e {
            SenmlError::Malformed(m) => Rejection::new(Reason::Malformed, m),
            SenmlError::UnknownName(m) => Rejection::new(Reason::UnknownDevice, m),
        })
        .and_then(|readings| {
            let org = senml::split_senml_topic(topic).map_or("", |(_, org, _)| org);
            let device = readings.first().map_or("", |r| r.device_id.as_str());
            let route = route_on_topic(org, device, directory)?;
            Ok((readings, route))
        });
    Arrival {
        source: format!("mqtt:{topic}"),
        raw: payload.to_vec(),
        form: RawForm::Senml,
        size: payload.len() as u64,
        outcome,
    }
}

/// One MQTT message as it came off the broker: over `max_message_bytes` it
/// is refused unread as `too_large`, keeping its first
/// [`TOO_LARGE_KEEP_BYTES`] and its true size.
pub fn from_mqtt_publish(
    prefix: &str,
    topic: &str,
    payload: &[u8],
    max_message_bytes: u64,
    directory: &dyn Fn(&str) -> Option<Route>,
) -> Arrival {
    let size = payload.len() as u64;
    if size <= max_message_bytes {
        return from_mqtt_message(prefix, topic, payload, directory);
    }
    let kept = payload.len().min(TOO_LARGE_KEEP_BYTES);
    Arrival {
        source: format!("mqtt:{topic}"),
        raw: payload[..kept].to_vec(),
        form: RawForm::MqttPayloadCut,
        size,
        outcome: Err(Rejection::new(
            Reason::TooLarge,
            format!(
                "message of {size} bytes is over the limit of {max_message_bytes} bytes ([[mqtt]] max_message_bytes); \
                 its first {kept} bytes are kept. Have the logger send fewer readings per message, or raise the limit"
            ),
        )),
    }
}

/// A `$CCR` line the gateway rebuilt from a reading it had parsed (dead
/// letters of older gateways): parsed again and, for an MQTT source, routed
/// with the topic's organisation checked as on arrival.
pub fn from_reading_line(
    source: &str,
    line: &[u8],
    directory: &dyn Fn(&str) -> Option<Route>,
) -> Arrival {
    let topic = source
        .strip_prefix("mqtt:")
        .and_then(mqtt_payload::split_topic);
    let outcome = serial_line::parse_line(line)
        .map_err(|e| parse_rejection(&e))
        .and_then(|reading| {
            let route = match topic {
                Some((_, org, _)) => route_on_topic(org, &reading.device_id, directory)?,
                None => directory(&reading.device_id).ok_or_else(|| unknown(&reading.device_id))?,
            };
            Ok((vec![reading], route))
        });
    Arrival {
        source: source.to_string(),
        raw: line.to_vec(),
        form: RawForm::ReadingLine,
        size: line.len() as u64,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DeviceReading, Door};

    fn directory(device: &str) -> Option<Route> {
        (device == "D1").then(|| Route {
            org: "acme".into(),
            shipment: "S-1".into(),
            range: None,
        })
    }

    fn reading(device: &str) -> DeviceReading {
        DeviceReading {
            device_id: device.into(),
            sequence: 1,
            time_s: 5,
            temperature_cdeg: 1,
            humidity_permille: None,
            door: Some(Door::Closed),
            location: None,
        }
    }

    #[test]
    fn unknown_device_on_serial_is_refused_with_advice() {
        let line = serial_line::format_line(&reading("D9"));
        let arrival = from_serial_line("serial:x", line.as_bytes(), &[], &directory);
        let rejection = arrival.outcome.unwrap_err();
        assert_eq!(rejection.reason, Reason::UnknownDevice);
        assert!(rejection.detail.contains("[devices]"));
    }

    #[test]
    fn device_on_the_wrong_port_is_refused() {
        let line = serial_line::format_line(&reading("D1"));
        let arrival =
            from_serial_line("serial:x", line.as_bytes(), &["D2".to_string()], &directory);
        assert_eq!(arrival.outcome.unwrap_err().reason, Reason::WrongPort);
    }

    #[test]
    fn mqtt_topic_org_must_match_the_device() {
        let payload = mqtt_payload::encode_json(&[reading("D1")]);
        let good = from_mqtt_message(
            "coldchain",
            "coldchain/acme/D1/readings",
            &payload,
            &directory,
        );
        assert!(good.outcome.is_ok());
        let bad = from_mqtt_message(
            "coldchain",
            "coldchain/evil/D1/readings",
            &payload,
            &directory,
        );
        assert_eq!(bad.outcome.as_ref().unwrap_err().reason, Reason::WrongOrg);
    }

    #[test]
    fn malformed_json_is_one_refusal_keeping_the_bytes() {
        let out = from_mqtt_message(
            "coldchain",
            "coldchain/acme/D1/readings",
            b"{nope",
            &directory,
        );
        assert_eq!(out.raw, b"{nope");
        assert_eq!(out.form, RawForm::MqttPayload);
        assert_eq!(out.outcome.as_ref().unwrap_err().reason, Reason::Malformed);
    }

    #[test]
    fn a_message_over_the_limit_is_too_large_and_keeps_its_head_and_size() {
        let topic = "coldchain/acme/D1/readings";
        let payload = vec![b'x'; TOO_LARGE_KEEP_BYTES * 3];
        let out = from_mqtt_publish("coldchain", topic, &payload, 1000, &directory);
        assert_eq!(out.outcome.as_ref().unwrap_err().reason, Reason::TooLarge);
        assert_eq!(
            (out.raw.len(), out.size, out.form),
            (
                TOO_LARGE_KEEP_BYTES,
                payload.len() as u64,
                RawForm::MqttPayloadCut
            )
        );
        let small = mqtt_payload::encode_json(&[reading("D1")]);
        let fits = from_mqtt_publish("coldchain", topic, &small, small.len() as u64, &directory);
        assert!(fits.outcome.is_ok());
    }
}
