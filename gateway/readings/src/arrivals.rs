//! Turning bytes from a serial line or an MQTT message into [`Arrival`]s:
//! parse, then route each reading to its organisation and shipment.
//!
//! Pure: the device directory is passed in as a function, so the same code
//! serves live ingestion and dead-letter replay.
use crate::protocol::{mqtt_payload, serial_line, ParseError};
use crate::queue::{Arrival, Route};
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
            Ok((reading, route))
        });
    let raw = match &outcome {
        Ok((reading, _)) => serial_line::format_line(reading).into_bytes(),
        Err(_) => line.to_vec(),
    };
    Arrival {
        source: source.to_string(),
        raw,
        outcome,
    }
}

/// One MQTT message: one arrival per reading, or one refusal for the whole message.
pub fn from_mqtt_message(
    prefix: &str,
    topic: &str,
    payload: &[u8],
    directory: &dyn Fn(&str) -> Option<Route>,
) -> Vec<Arrival> {
    let source = format!("mqtt:{topic}");
    let refuse = |rejection: Rejection| {
        vec![Arrival {
            source: source.clone(),
            raw: payload.to_vec(),
            outcome: Err(rejection),
        }]
    };
    let Some((org, device)) = mqtt_payload::parse_topic(prefix, topic) else {
        return refuse(Rejection::new(
            Reason::Malformed,
            format!("topic {topic:?} is not {prefix}/<org>/<device>/readings"),
        ));
    };
    let readings = match mqtt_payload::parse_payload(device, payload) {
        Ok(readings) => readings,
        Err(e) => return refuse(parse_rejection(&e)),
    };
    let route = match directory(device) {
        Some(route) if route.org == org => route,
        Some(route) => {
            return refuse(Rejection::new(
                Reason::WrongOrg,
                format!(
                    "topic names org {org:?} but device {device:?} belongs to {:?}",
                    route.org
                ),
            ))
        }
        None => return refuse(unknown(device)),
    };
    readings
        .into_iter()
        .map(|reading| Arrival {
            source: source.clone(),
            raw: serial_line::format_line(&reading).into_bytes(),
            outcome: Ok((reading, route.clone())),
        })
        .collect()
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
        assert!(good[0].outcome.is_ok());
        let bad = from_mqtt_message(
            "coldchain",
            "coldchain/evil/D1/readings",
            &payload,
            &directory,
        );
        assert_eq!(
            bad[0].outcome.as_ref().unwrap_err().reason,
            Reason::WrongOrg
        );
    }

    #[test]
    fn malformed_json_is_one_refusal_keeping_the_bytes() {
        let out = from_mqtt_message(
            "coldchain",
            "coldchain/acme/D1/readings",
            b"{nope",
            &directory,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].raw, b"{nope");
        assert_eq!(
            out[0].outcome.as_ref().unwrap_err().reason,
            Reason::Malformed
        );
    }
}
