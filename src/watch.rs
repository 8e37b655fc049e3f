//! `coldchain verify` and `coldchain watch`: read-only views of the ledger.
//!
//! `verify` reads the lot, pack and thermal records straight from the
//! Sawtooth REST API (no index needed) and applies the same verdict rules as
//! the provenance API. `watch` subscribes to the validator's events over
//! ZeroMQ (the real Sawtooth CLIENT_EVENTS_SUBSCRIBE protocol) and prints them.
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use coldchain_api::identifiers as identifiers_api;
use coldchain_api::verdict::{decide, VerdictInput};
use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::identifiers;
use coldchain_processors::messages::coldchain::{Lot, Pack, ThermalRecord};
use protobuf::Message as _;
use sawtooth_sdk::messages::client_event::{
    ClientEventsSubscribeRequest, ClientEventsSubscribeResponse,
    ClientEventsSubscribeResponse_Status,
};
use sawtooth_sdk::messages::events::{EventList, EventSubscription};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};

use crate::client::{decode_record, LedgerClient};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A GS1 Digital Link (URL or path): /01/{gtin}/10/{lot}/21/{serial}[?17=YYMMDD].
    pub digital_link: Option<String>,
    #[arg(long)]
    pub gtin: Option<String>,
    #[arg(long)]
    pub serial: Option<String>,
    #[arg(long)]
    pub lot: Option<String>,
    /// Sawtooth REST API of the node or network.
    #[arg(long, env = "COLDCHAIN_URL", default_value = "http://127.0.0.1:8008")]
    pub url: String,
    #[arg(long)]
    pub json: bool,
}

/// What a pharmacy scanner gives us.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PackQuery {
    pub gtin: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<u32>,
}

/// Parses a GS1 Digital Link URI or path (`/01/{gtin}/10/{lot}/21/{serial}?17=YYMMDD`)
/// with the provenance API's own rules, so the CLI and the API agree.
pub fn parse_digital_link(link: &str) -> Result<PackQuery> {
    let without_scheme = link.split_once("://").map(|(_, rest)| rest).unwrap_or(link);
    let path_start = if link.contains("://") {
        without_scheme.find('/').unwrap_or(without_scheme.len())
    } else {
        0
    };
    let rest = &without_scheme[path_start..];
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let Some(start) = parts.iter().position(|p| p == "01") else {
        bail!("digital link {link:?} has no /01/{{gtin}} part");
    };
    let parsed = identifiers_api::parse_digital_link(&parts[start + 1..])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut expiry = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if let Some(("17", yymmdd)) = pair.split_once('=') {
            expiry = Some(
                identifiers_api::expiry_from_yymmdd(yymmdd).map_err(|e| anyhow::anyhow!("{e}"))?,
            );
        }
    }
    Ok(PackQuery {
        gtin: parsed.gtin,
        lot: parsed.lot,
        serial: parsed.serial,
        expiry,
    })
}

fn today() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    identifiers::day_of(secs)
}

pub async fn verify(args: VerifyArgs) -> Result<()> {
    let query = match &args.digital_link {
        Some(link) => parse_digital_link(link)?,
        None => {
            let Some(gtin) = &args.gtin else {
                bail!("give a Digital Link, or --gtin with --serial and/or --lot");
            };
            PackQuery {
                gtin: identifiers::normalize_gtin(gtin)?,
                lot: args.lot.clone(),
                serial: args.serial.clone(),
                expiry: None,
            }
        }
    };
    let client = LedgerClient::new(&args.url, Duration::from_secs(10))?;
    let pack: Option<Pack> = match &query.serial {
        Some(serial) => match client
            .state(&RecordKind::Pack.address(&goods_key(&query.gtin, serial)))
            .await?
        {
            Some(bytes) => Some(decode_record(&bytes, "pack")?),
            None => None,
        },
        None => None,
    };
    let lot_number = query
        .lot
        .clone()
        .or_else(|| pack.as_ref().map(|p| p.get_lot().to_string()));
    let (lot, thermal): (Option<Lot>, Option<ThermalRecord>) = match &lot_number {
        Some(number) => {
            let key = goods_key(&query.gtin, number);
            let lot = match client.state(&RecordKind::Lot.address(&key)).await? {
                Some(bytes) => Some(decode_record(&bytes, "lot")?),
                None => None,
            };
            let thermal = match client
                .state(&RecordKind::GoodsThermal.address(&key))
                .await?
            {
                Some(bytes) => Some(decode_record(&bytes, "thermal")?),
                None => None,
            };
            (lot, thermal)
        }
        None => (None, None),
    };
    let verdict = decide(&VerdictInput {
        lot: lot.as_ref(),
        pack: pack.as_ref(),
        requested_serial: query.serial.as_deref(),
        claimed_expiry: query.expiry,
        lot_thermal: thermal.as_ref(),
        today: today(),
    });
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "gtin": query.gtin, "lot": lot_number, "serial": query.serial,
                "verdict": verdict.verdict, "reasons": verdict.reasons,
            })
        );
    } else {
        let word = serde_json::to_value(verdict.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!("{}", word.to_uppercase().replace('_', " "));
        for reason in &verdict.reasons {
            println!("  - {reason}");
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The validator's component endpoint.
    #[arg(
        short = 'C',
        long,
        env = "COLDCHAIN_COMPONENT",
        default_value = "tcp://127.0.0.1:4004"
    )]
    pub connect: String,
    /// Stop after this many blocks (default: run until Ctrl-C).
    #[arg(long)]
    pub blocks: Option<u64>,
    #[arg(long)]
    pub json: bool,
}

/// Event types `watch` subscribes to: block commits and every family event.
pub fn watched_event_types() -> Vec<&'static str> {
    let mut types = vec!["sawtooth/block-commit"];
    types.extend_from_slice(coldchain_processors::EVENT_TYPES);
    types
}

pub fn watch(args: WatchArgs) -> Result<()> {
    let context = zmq::Context::new();
    let socket = context
        .socket(zmq::DEALER)
        .context("cannot create a ZeroMQ socket")?;
    socket.set_linger(0).ok();
    socket
        .connect(&args.connect)
        .with_context(|| format!("{} is not a valid component endpoint", args.connect))?;
    let mut request = ClientEventsSubscribeRequest::new();
    request.set_subscriptions(
        watched_event_types()
            .into_iter()
            .map(|event_type| {
                let mut subscription = EventSubscription::new();
                subscription.set_event_type(event_type.to_string());
                subscription
            })
            .collect::<Vec<_>>()
            .into(),
    );
    send(
        &socket,
        Message_MessageType::CLIENT_EVENTS_SUBSCRIBE_REQUEST,
        "watch-subscribe",
        request.write_to_bytes()?,
    )?;
    let mut blocks_seen = 0u64;
    loop {
        if socket.poll(zmq::POLLIN, 30_000).context("poll failed")? == 0 {
            eprintln!("(no events for 30 s from {})", args.connect);
            continue;
        }
        let frames = socket.recv_multipart(0).context("receive failed")?;
        let Some(frame) = frames.last() else { continue };
        let Ok(message) = Message::parse_from_bytes(frame) else {
            eprintln!("ignoring an undecodable message");
            continue;
        };
        match message.get_message_type() {
            Message_MessageType::CLIENT_EVENTS_SUBSCRIBE_RESPONSE => {
                let response =
                    ClientEventsSubscribeResponse::parse_from_bytes(message.get_content())?;
                if response.get_status() != ClientEventsSubscribeResponse_Status::OK {
                    bail!(
                        "subscription refused: {:?} {}",
                        response.get_status(),
                        response.get_response_message()
                    );
                }
                eprintln!("watching events from {}", args.connect);
            }
            Message_MessageType::CLIENT_EVENTS => {
                let list = EventList::parse_from_bytes(message.get_content())?;
                for event in list.get_events() {
                    let attributes: Vec<(String, String)> = event
                        .get_attributes()
                        .iter()
                        .map(|a| (a.get_key().to_string(), a.get_value().to_string()))
                        .collect();
                    if args.json {
                        let map: serde_json::Map<String, serde_json::Value> = attributes
                            .iter()
                            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                            .collect();
                        println!(
                            "{}",
                            serde_json::json!({"event_type": event.get_event_type(), "attributes": map})
                        );
                    } else {
                        let text: Vec<String> =
                            attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        println!("{:<32} {}", event.get_event_type(), text.join(" "));
                    }
                    if event.get_event_type() == "sawtooth/block-commit" {
                        blocks_seen += 1;
                    }
                }
                if args.blocks.is_some_and(|limit| blocks_seen >= limit) {
                    return Ok(());
                }
            }
            Message_MessageType::PING_REQUEST => {
                let pong = sawtooth_sdk::messages::network::PingResponse::new();
                send(
                    &socket,
                    Message_MessageType::PING_RESPONSE,
                    message.get_correlation_id(),
                    pong.write_to_bytes()?,
                )?;
            }
            _ => {}
        }
    }
}

fn send(
    socket: &zmq::Socket,
    kind: Message_MessageType,
    correlation: &str,
    content: Vec<u8>,
) -> Result<()> {
    let mut message = Message::new();
    message.set_message_type(kind);
    message.set_correlation_id(correlation.to_string());
    message.set_content(content);
    socket
        .send(message.write_to_bytes()?, 0)
        .context("cannot send to the validator")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digital_link_with_host_lot_serial_and_expiry_parses() {
        let q = parse_digital_link(
            "https://id.example.com/01/09501101530003/10/LOT%2D7/21/SN42?17=270131",
        )
        .unwrap();
        assert_eq!(q.gtin, "09501101530003");
        assert_eq!(q.lot.as_deref(), Some("LOT-7"));
        assert_eq!(q.serial.as_deref(), Some("SN42"));
        assert_eq!(q.expiry, Some(20270131));
    }

    #[test]
    fn digital_link_with_bad_check_digit_is_refused() {
        assert!(parse_digital_link("/01/09501101530004/21/X").is_err());
    }

    #[test]
    fn digital_link_without_gtin_is_refused() {
        assert!(parse_digital_link("/10/L1/21/X").is_err());
    }
}
