//! `coldchain watch`: a live, read-only view of the ledger. It subscribes to
//! the validator's events over ZeroMQ (the real Sawtooth
//! CLIENT_EVENTS_SUBSCRIBE protocol) and prints them. (`coldchain verify`
//! lives in `verify.rs`.)
use anyhow::{bail, Context, Result};
use clap::Args;
use protobuf::Message as _;
use sawtooth_sdk::messages::client_event::{
    ClientEventsSubscribeRequest, ClientEventsSubscribeResponse,
    ClientEventsSubscribeResponse_Status,
};
use sawtooth_sdk::messages::events::{EventList, EventSubscription};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};

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
    /// Give up when the validator has not accepted the subscription within
    /// this many seconds (0: wait forever).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
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
    // ZeroMQ connects lazily and retries forever, so silence is all that
    // nothing (or something that is not a validator) at the endpoint gives:
    // only an answer to the subscription proves a validator is there.
    let deadline = (args.timeout > 0)
        .then(|| std::time::Instant::now() + std::time::Duration::from_secs(args.timeout));
    let mut subscribed = false;
    loop {
        let wait_ms = match deadline.filter(|_| !subscribed) {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    bail!(no_validator(&args.connect, args.timeout));
                }
                i64::try_from(left.as_millis()).unwrap_or(i64::MAX).max(1)
            }
            None => 30_000,
        };
        if socket.poll(zmq::POLLIN, wait_ms).context("poll failed")? == 0 {
            if subscribed || deadline.is_none() {
                eprintln!("(no events for 30 s from {})", args.connect);
            }
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
                subscribed = true;
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

/// Why `watch` gives up: what was tried, and what to check.
fn no_validator(endpoint: &str, timeout_s: u64) -> String {
    format!(
        "no validator answered at {endpoint} within {timeout_s} s. Check that a validator \
         (`coldchain node` or Sawtooth) is running and that {endpoint} is its component \
         endpoint (ZeroMQ, tcp://HOST:4004 by default) and not, say, its REST API \
         (http://HOST:8008); use --timeout to wait longer"
    )
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
