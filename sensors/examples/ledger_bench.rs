//! Ledger benchmark: simulated loggers → Mosquitto → sensor gateway → a ledger,
//! measured END TO END on the ledger itself.
//!
//! The ledger is the embedded node (`--embedded`, in this process, families
//! in-process) or any Sawtooth REST API with its component endpoint (`--url`,
//! `--component`): a real single validator with devmode, or a real PBFT network
//! with the three `coldchain tp` processes registered (see
//! `scripts/bench-ledgers.sh`, which starts and stops everything).
//!
//! 1. Onboarding by transactions, never genesis state: the admin creates two
//!    organisations and their agents; the maker adds a site and one lot per
//!    logger; the carrier adds a site, authorises the gateway and registers
//!    the loggers; the maker ships each lot to the carrier (create + propose);
//!    the carrier attaches one logger per shipment and accepts it (in transit).
//!    Many transactions per batch, every phase's batches submitted together.
//! 2. The gateway (library, in this process) subscribes to Mosquitto at
//!    127.0.0.1:1883; the simulator publishes each logger's readings there
//!    (QoS 1); the time each message is handed to MQTT is noted.
//! 3. The validator's `sawtooth/block-commit` events are received on the
//!    component endpoint (ZeroMQ) and timed as they arrive.
//! 4. After the run (and a drain), every block committed since the start is
//!    read back over REST and every readings transaction decoded: each reading
//!    published is looked up on the chain. Reported: readings committed per
//!    second, publish → block-commit latency of every reading (exact, nearest
//!    rank), readings missing or duplicated, and a cross-check against the
//!    shipments' thermal records (`reading_count`) and the devices'
//!    `last_sequence` in state.
//!
//! ```text
//! ledger_bench keys --dir DIR
//!     Creates admin/maker/carrier/gateway keys in DIR (kept if present) and
//!     prints "NAME PUBLIC_KEY" lines (PBFT needs them as --transactor).
//! ledger_bench run (--embedded | --url REST --component EP --admin-key FILE) --keys DIR
//!     [--devices N] [--rate READINGS/S/DEVICE] [--seconds S] [--per-message M]
//!     [--max-readings R] [--max-age-ms MS] [--max-tx-per-batch T] [--max-in-flight B]
//!     [--tick-ms MS] [--status-wait-s S] [--drain-s S] [--cpu-pids DIR ...] [--json FILE]
//! ```
//!
//! No wall-clock figure is asserted anywhere: the numbers are printed.
#![recursion_limit = "256"]
use clap::{Args, Parser, Subcommand};
use coldchain_gateway::ledger::{BatchStatus, Ledger, PostOutcome};
use coldchain_gateway::{Gateway, GatewayConfig};
use coldchain_node::testing::http;
use coldchain_node::{Node, NodeConfig};
use coldchain_processors::addressing::{gateway_key, RecordKind, ADMINS_SETTING};
use coldchain_processors::identifiers::with_check_digit;
use coldchain_processors::messages::coldchain as pb;
use coldchain_processors::signing::{
    batch_list_bytes, sign_batch, sign_transaction, Signer, TransactionSpec,
};
use coldchain_processors::{custody, registry};
use coldchain_sensors::{Encoding, MqttTransport, Scenario, Simulator, SimulatorConfig, Sink};
use protobuf::Message as _;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAKER_ORG: &str = "bench-maker";
const CARRIER_ORG: &str = "bench-carrier";
const GTIN: &str = "09501101530003";
/// Transactions per onboarding batch.
const ONBOARD_BATCH: usize = 50;

#[derive(Parser)]
#[command(about = "Readings committed end to end: loggers → Mosquitto → gateway → ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Create (or keep) admin, maker, carrier and gateway keys; print their public keys.
    Keys {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Onboard, run the loggers, measure. A repeated option takes its last value.
    #[command(args_override_self = true)]
    Run(RunArgs),
}

#[derive(Args, Clone, Debug)]
struct RunArgs {
    /// Start an embedded node in this process (families in-process) instead of --url.
    #[arg(long, conflicts_with_all = ["url", "component"])]
    embedded: bool,
    /// Sawtooth REST API the gateway and the onboarding use.
    #[arg(long, required_unless_present = "embedded")]
    url: Option<String>,
    /// Component endpoint of the same validator (block-commit events).
    #[arg(long, required_unless_present = "embedded")]
    component: Option<String>,
    /// A key in `coldchain.admins` (default: KEYS/admin.priv).
    #[arg(long)]
    admin_key: Option<PathBuf>,
    /// Folder of maker.priv, carrier.priv, gateway.priv (see `keys`).
    #[arg(long)]
    keys: PathBuf,
    /// Simulated loggers (one shipment each).
    #[arg(long, default_value_t = 20)]
    devices: usize,
    /// Readings per second per logger.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Readings per MQTT message.
    #[arg(long, default_value_t = 100)]
    per_message: usize,
    /// Gateway `[batching] max_readings` (readings per transaction; the family allows 10 000).
    #[arg(long, default_value_t = 5_000)]
    max_readings: usize,
    /// Gateway `[batching] max_age_ms`.
    #[arg(long, default_value_t = 500)]
    max_age_ms: u64,
    /// Gateway `[batching] max_transactions_per_batch`.
    #[arg(long, default_value_t = 50)]
    max_tx_per_batch: usize,
    /// Gateway `[submission] max_in_flight_batches`.
    #[arg(long, default_value_t = 8)]
    max_in_flight: usize,
    /// Gateway `[batching] tick_ms`.
    #[arg(long, default_value_t = 50)]
    tick_ms: u64,
    /// Gateway `[submission] status_wait_s`.
    #[arg(long, default_value_t = 2)]
    status_wait_s: u64,
    /// Longest wait for the last readings to commit after publishing stops.
    #[arg(long, default_value_t = 120)]
    drain_s: u64,
    /// Folders of `NAME.pid` files ("PID [START]") whose processes' CPU time is reported.
    #[arg(long = "cpu-pids")]
    cpu_pids: Vec<PathBuf>,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Free text stored with the JSON result (e.g. the ledger's name).
    #[arg(long, default_value = "")]
    label: String,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_s() -> u64 {
    now_ms() / 1000
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// keys
// ---------------------------------------------------------------------------

const KEY_NAMES: [&str; 4] = ["admin", "maker", "carrier", "gateway"];

fn load_or_create_key(dir: &Path, name: &str) -> anyhow::Result<Signer> {
    let path = dir.join(format!("{name}.priv"));
    if path.exists() {
        return Ok(Signer::from_file(&path)?);
    }
    std::fs::create_dir_all(dir)?;
    let signer = Signer::generate();
    std::fs::write(&path, format!("{}\n", signer.private_hex()))?;
    std::fs::write(
        dir.join(format!("{name}.pub")),
        format!("{}\n", signer.public_key()),
    )?;
    Ok(signer)
}

fn load_key(dir: &Path, name: &str) -> anyhow::Result<Signer> {
    let path = dir.join(format!("{name}.priv"));
    Signer::from_file(&path).map_err(|e| {
        anyhow::anyhow!(
            "{e}; create the bench keys first with `ledger_bench keys --dir {}`",
            dir.display()
        )
    })
}

// ---------------------------------------------------------------------------
// onboarding by transactions
// ---------------------------------------------------------------------------

fn registry_tx(
    action: pb::RegistryPayload_oneof_action,
    at_s: u64,
) -> anyhow::Result<TransactionSpec> {
    let mut payload = pb::RegistryPayload::new();
    payload.set_timestamp_s(at_s);
    payload.action = Some(action);
    Ok(registry::transaction_spec(&payload)?)
}

fn custody_tx(
    action: pb::CustodyPayload_oneof_action,
    at_s: u64,
) -> anyhow::Result<TransactionSpec> {
    let mut payload = pb::CustodyPayload::new();
    payload.set_timestamp_s(at_s);
    payload.action = Some(action);
    Ok(custody::transaction_spec(&payload)?)
}

/// Transactions one key signs (and batches) in one onboarding phase, in order.
struct Work<'a> {
    signer: &'a Signer,
    specs: Vec<TransactionSpec>,
}

/// Signs every phase's transactions into batches of [`ONBOARD_BATCH`], posts
/// them all, then waits until each is committed; a refusal ends the bench.
async fn submit_phase(ledger: &Ledger, name: &str, work: Vec<Work<'_>>) -> anyhow::Result<usize> {
    let mut batch_ids = Vec::new();
    let mut count = 0;
    for item in work {
        for chunk in item.specs.chunks(ONBOARD_BATCH) {
            let transactions = chunk
                .iter()
                .map(|spec| sign_transaction(spec.clone(), item.signer, item.signer.public_key()))
                .collect::<Result<Vec<_>, _>>()?;
            count += transactions.len();
            let batch = sign_batch(transactions, item.signer)?;
            let id = batch.get_header_signature().to_string();
            let body = batch_list_bytes(vec![batch])?;
            let mut delay = Duration::from_millis(100);
            loop {
                match ledger.post_batches(body.clone()).await? {
                    PostOutcome::Accepted => break,
                    PostOutcome::Busy(_) => {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    PostOutcome::Refused(text) => {
                        anyhow::bail!(
                            "onboarding phase {name}: the REST API refused a batch: {text}"
                        )
                    }
                }
            }
            batch_ids.push(id);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    for id in &batch_ids {
        loop {
            match ledger.batch_status(id, 5).await? {
                BatchStatus::Committed => break,
                BatchStatus::Invalid(refused) => anyhow::bail!(
                    "onboarding phase {name}: batch {} refused by the ledger: {refused:?}",
                    &id[..16]
                ),
                BatchStatus::Pending | BatchStatus::Unknown => {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "onboarding phase {name}: batch {} not committed within 10 minutes",
                        &id[..16]
                    );
                }
            }
        }
    }
    Ok(count)
}

struct Parties {
    admin: Signer,
    maker: Signer,
    carrier: Signer,
    gateway: Signer,
}

/// Everything the loggers need on the ledger, by transactions. Organisations,
/// agents, sites and the gateway grant are created only when missing, so
/// several runs can share one ledger; devices, lots and shipments are new
/// per run (`prefix`). Returns the number of transactions committed.
async fn onboard(
    ledger: &Ledger,
    parties: &Parties,
    devices: &[String],
    prefix: &str,
) -> anyhow::Result<usize> {
    use pb::CustodyPayload_oneof_action as C;
    use pb::RegistryPayload_oneof_action as R;
    let missing = |address: String| async move {
        ledger
            .state(&address)
            .await
            .map(|found| found.is_none())
            .map_err(anyhow::Error::from)
    };
    let maker_gln = with_check_digit("950110109001").expect("digits");
    let carrier_gln = with_check_digit("950110109002").expect("digits");
    let mut total = 0;

    // 1. organisations and their agents (network admin)
    let t = now_s();
    let mut specs = Vec::new();
    for (org, role, agent) in [
        (MAKER_ORG, pb::Role::MANUFACTURER, &parties.maker),
        (CARRIER_ORG, pb::Role::CARRIER, &parties.carrier),
    ] {
        if missing(RecordKind::Organization.address(org)).await? {
            let mut a = pb::CreateOrganization::new();
            a.set_org_id(org.into());
            a.set_name(org.into());
            a.set_roles(vec![role]);
            specs.push(registry_tx(R::create_organization(a), t)?);
        }
        if missing(RecordKind::Agent.address(agent.public_key())).await? {
            let mut a = pb::AddAgent::new();
            a.set_org_id(org.into());
            a.set_public_key(agent.public_key().into());
            a.set_name(format!("{org} agent"));
            a.set_roles(vec![role, pb::Role::ADMIN]);
            specs.push(registry_tx(R::add_agent(a), t)?);
        }
    }
    total += submit_phase(
        ledger,
        "organisations",
        vec![Work {
            signer: &parties.admin,
            specs,
        }],
    )
    .await?;

    // 2. sites, gateway grant, loggers (carrier); lots (maker)
    let t = now_s();
    let mut maker = Vec::new();
    let mut carrier = Vec::new();
    for (org, gln, list) in [
        (MAKER_ORG, &maker_gln, &mut maker),
        (CARRIER_ORG, &carrier_gln, &mut carrier),
    ] {
        if missing(RecordKind::Site.address(gln)).await? {
            let mut a = pb::AddSite::new();
            a.set_org_id(org.into());
            a.set_gln(gln.clone());
            a.set_name(format!("{org} depot"));
            list.push(registry_tx(R::add_site(a), t)?);
        }
    }
    if missing(
        RecordKind::GatewayGrant.address(&gateway_key(CARRIER_ORG, parties.gateway.public_key())),
    )
    .await?
    {
        let mut a = pb::AuthorizeGateway::new();
        a.set_org_id(CARRIER_ORG.into());
        a.set_public_key(parties.gateway.public_key().into());
        a.set_name("bench gateway".into());
        carrier.push(registry_tx(R::authorize_gateway(a), t)?);
    }
    for (n, device) in devices.iter().enumerate() {
        let mut a = pb::RegisterDevice::new();
        a.set_device_id(device.clone());
        a.set_org_id(CARRIER_ORG.into());
        a.set_model("bench logger".into());
        a.set_calibration_due_date(20_991_231);
        carrier.push(registry_tx(R::register_device(a), t)?);
        let mut a = pb::CreateLot::new();
        a.set_gtin(GTIN.into());
        a.set_lot(lot_of(prefix, n));
        a.set_expiry_date(20_991_231);
        a.set_quantity(100);
        a.set_profile(coldchain_processors::thermal::presets::refrigerated());
        a.set_site_gln(maker_gln.clone());
        a.set_product_name("bench vaccine".into());
        maker.push(registry_tx(R::create_lot(a), t)?);
    }
    total += submit_phase(
        ledger,
        "sites, gateway, loggers, lots",
        vec![
            Work {
                signer: &parties.maker,
                specs: maker,
            },
            Work {
                signer: &parties.carrier,
                specs: carrier,
            },
        ],
    )
    .await?;

    // 3. shipments created and proposed to the carrier (maker)
    let t = now_s();
    let mut maker = Vec::new();
    for (n, device) in devices.iter().enumerate() {
        let mut lot = pb::LotRef::new();
        lot.set_gtin(GTIN.into());
        lot.set_lot(lot_of(prefix, n));
        let mut a = pb::CreateShipment::new();
        a.set_shipment_id(shipment_of(device));
        a.set_from_gln(maker_gln.clone());
        a.set_to_gln(carrier_gln.clone());
        a.set_lots(vec![lot].into());
        maker.push(custody_tx(C::create_shipment(a), t)?);
        let mut a = pb::ProposeHandoff::new();
        a.set_shipment_id(shipment_of(device));
        a.set_to_org_id(CARRIER_ORG.into());
        a.set_at_gln(maker_gln.clone());
        maker.push(custody_tx(C::propose_handoff(a), t)?);
    }
    total += submit_phase(
        ledger,
        "shipments",
        vec![Work {
            signer: &parties.maker,
            specs: maker,
        }],
    )
    .await?;

    // 4. each logger attached to its shipment, hand-off accepted: in transit (carrier)
    let t = now_s();
    let mut carrier = Vec::new();
    for device in devices {
        let mut a = pb::AttachDevice::new();
        a.set_shipment_id(shipment_of(device));
        a.set_device_id(device.clone());
        carrier.push(custody_tx(C::attach_device(a), t)?);
        let mut a = pb::AcceptHandoff::new();
        a.set_shipment_id(shipment_of(device));
        carrier.push(custody_tx(C::accept_handoff(a), t)?);
    }
    total += submit_phase(
        ledger,
        "attach and accept",
        vec![Work {
            signer: &parties.carrier,
            specs: carrier,
        }],
    )
    .await?;

    // check: every shipment in transit with its logger
    for device in devices {
        let bytes = ledger
            .state(&RecordKind::Shipment.address(&shipment_of(device)))
            .await?
            .ok_or_else(|| anyhow::anyhow!("shipment of {device} missing after onboarding"))?;
        let shipment = pb::Shipment::parse_from_bytes(&bytes)?;
        anyhow::ensure!(
            shipment.get_status() == pb::ShipmentStatus::IN_TRANSIT
                && shipment.get_device_ids().contains(device),
            "shipment {} is {:?} with loggers {:?} after onboarding",
            shipment.get_shipment_id(),
            shipment.get_status(),
            shipment.get_device_ids()
        );
    }
    Ok(total)
}

fn lot_of(prefix: &str, n: usize) -> String {
    format!("{prefix}L{}", n + 1)
}

fn shipment_of(device: &str) -> String {
    format!("S-{device}")
}

// ---------------------------------------------------------------------------
// block-commit events (ZeroMQ, the Sawtooth client events protocol)
// ---------------------------------------------------------------------------

/// Arrival time (ms since the epoch) of each block-commit event, by block id.
#[derive(Default)]
struct CommitClock {
    seen: Mutex<HashMap<String, (u64, u64)>>,
    subscribed: AtomicBool,
}

fn send_zmq(
    socket: &zmq::Socket,
    kind: sawtooth_sdk::messages::validator::Message_MessageType,
    correlation: &str,
    content: Vec<u8>,
) -> anyhow::Result<()> {
    let mut message = sawtooth_sdk::messages::validator::Message::new();
    message.set_message_type(kind);
    message.set_correlation_id(correlation.to_string());
    message.set_content(content);
    socket.send(message.write_to_bytes()?, 0)?;
    Ok(())
}

fn watch_commits(endpoint: String, clock: Arc<CommitClock>, stop: Arc<AtomicBool>) {
    use sawtooth_sdk::messages::client_event::{
        ClientEventsSubscribeRequest, ClientEventsSubscribeResponse,
        ClientEventsSubscribeResponse_Status,
    };
    use sawtooth_sdk::messages::events::{EventList, EventSubscription};
    use sawtooth_sdk::messages::validator::{Message, Message_MessageType as T};
    let run = || -> anyhow::Result<()> {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::DEALER)?;
        socket.set_linger(0)?;
        socket.connect(&endpoint)?;
        let mut request = ClientEventsSubscribeRequest::new();
        let mut subscription = EventSubscription::new();
        subscription.set_event_type("sawtooth/block-commit".into());
        request.set_subscriptions(vec![subscription].into());
        send_zmq(
            &socket,
            T::CLIENT_EVENTS_SUBSCRIBE_REQUEST,
            "ledger-bench",
            request.write_to_bytes()?,
        )?;
        while !stop.load(Relaxed) {
            if socket.poll(zmq::POLLIN, 200)? == 0 {
                continue;
            }
            let frames = socket.recv_multipart(0)?;
            let at = now_ms();
            let Some(frame) = frames.last() else { continue };
            let Ok(message) = Message::parse_from_bytes(frame) else {
                continue;
            };
            match message.get_message_type() {
                T::CLIENT_EVENTS_SUBSCRIBE_RESPONSE => {
                    let response =
                        ClientEventsSubscribeResponse::parse_from_bytes(message.get_content())?;
                    anyhow::ensure!(
                        response.get_status() == ClientEventsSubscribeResponse_Status::OK,
                        "block-commit subscription refused: {:?} {}",
                        response.get_status(),
                        response.get_response_message()
                    );
                    clock.subscribed.store(true, Relaxed);
                }
                T::CLIENT_EVENTS => {
                    let list = EventList::parse_from_bytes(message.get_content())?;
                    for event in list.get_events() {
                        if event.get_event_type() != "sawtooth/block-commit" {
                            continue;
                        }
                        let attribute = |key: &str| {
                            event
                                .get_attributes()
                                .iter()
                                .find(|a| a.get_key() == key)
                                .map(|a| a.get_value().to_string())
                        };
                        if let (Some(id), Some(num)) =
                            (attribute("block_id"), attribute("block_num"))
                        {
                            let num = num.parse().unwrap_or(0);
                            if let Ok(mut seen) = clock.seen.lock() {
                                seen.entry(id).or_insert((num, at));
                            }
                        }
                    }
                }
                T::PING_REQUEST => {
                    let pong = sawtooth_sdk::messages::network::PingResponse::new();
                    send_zmq(
                        &socket,
                        T::PING_RESPONSE,
                        message.get_correlation_id(),
                        pong.write_to_bytes()?,
                    )?;
                }
                _ => {}
            }
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("block-commit events from {endpoint} stopped: {e}");
    }
}

// ---------------------------------------------------------------------------
// reading the chain back
// ---------------------------------------------------------------------------

/// When each published reading was handed to MQTT, per device: (first
/// sequence of the message, ms since the epoch), in sequence order.
#[derive(Default)]
struct PublishLog {
    by_device: HashMap<String, Vec<(u64, u64)>>,
}

impl PublishLog {
    fn note(&mut self, readings: &[coldchain_gateway::protocol::DeviceReading]) {
        let Some(first) = readings.first() else {
            return;
        };
        self.by_device
            .entry(first.device_id.clone())
            .or_default()
            .push((first.sequence, now_ms()));
    }

    fn published_at(&self, device: &str, sequence: u64) -> Option<u64> {
        let list = self.by_device.get(device)?;
        let i = list.partition_point(|(first, _)| *first <= sequence);
        (i > 0).then(|| list[i - 1].1)
    }
}

/// A committed block as the bench sees it.
struct BlockSeen {
    num: u64,
    id: String,
    transactions: usize,
    readings_transactions: usize,
    /// (device, sequences) of every readings transaction of this run's devices.
    readings: Vec<(String, Vec<u64>)>,
}

fn b64(text: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
}

/// Blocks from the head down to (excluding) `after_num`, via `GET /blocks`.
fn read_blocks(rest: &str, after_num: u64, prefix: &str) -> anyhow::Result<Vec<BlockSeen>> {
    let mut out = Vec::new();
    let mut path = "/blocks?limit=5".to_string();
    loop {
        let reply = http::get(rest, &path)?;
        anyhow::ensure!(
            reply.status == 200,
            "GET {path} answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
        );
        let page: Value = serde_json::from_slice(&reply.body)?;
        let blocks = page["data"].as_array().cloned().unwrap_or_default();
        let mut done = blocks.is_empty();
        for block in &blocks {
            let num: u64 = block["header"]["block_num"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .or_else(|| block["header"]["block_num"].as_u64())
                .unwrap_or(0);
            if num <= after_num {
                done = true;
                break;
            }
            let mut seen = BlockSeen {
                num,
                id: block["header_signature"].as_str().unwrap_or("").to_string(),
                transactions: 0,
                readings_transactions: 0,
                readings: Vec::new(),
            };
            for batch in block["batches"].as_array().into_iter().flatten() {
                for tx in batch["transactions"].as_array().into_iter().flatten() {
                    seen.transactions += 1;
                    if tx["header"]["family_name"].as_str() != Some("coldchain-sensor") {
                        continue;
                    }
                    let payload = b64(tx["payload"].as_str().unwrap_or(""))?;
                    let decoded = pb::SensorPayload::parse_from_bytes(&payload)?;
                    let Some(pb::SensorPayload_oneof_action::record_readings(r)) = decoded.action
                    else {
                        continue;
                    };
                    if !r.get_device_id().starts_with(prefix) {
                        continue;
                    }
                    seen.readings_transactions += 1;
                    seen.readings.push((
                        r.get_device_id().to_string(),
                        r.get_readings().iter().map(|x| x.get_sequence()).collect(),
                    ));
                }
            }
            out.push(seen);
        }
        if done {
            break;
        }
        let next = page["paging"]["next"].as_str().unwrap_or("");
        match next.find("/blocks") {
            Some(at) if !next.is_empty() => path = next[at..].to_string(),
            _ => break,
        }
    }
    out.sort_by_key(|b| b.num);
    Ok(out)
}

/// Head block number seen by the REST API.
fn head_num(rest: &str) -> anyhow::Result<u64> {
    let reply = http::get(rest, "/blocks?limit=1")?;
    let page: Value = serde_json::from_slice(&reply.body)?;
    let header = &page["data"][0]["header"];
    header["block_num"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .or_else(|| header["block_num"].as_u64())
        .ok_or_else(|| anyhow::anyhow!("no head block at {rest}"))
}

/// Nearest-rank quantile of sorted values.
fn rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------
// CPU time of the ledger's processes
// ---------------------------------------------------------------------------

/// (name, pid) for every `NAME.pid` file ("PID [START]") in the folders.
fn watched_pids(dirs: &[PathBuf]) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pid") {
                continue;
            }
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            if let Some(pid) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.split_whitespace().next()?.parse().ok())
            {
                out.push((name, pid));
            }
        }
    }
    out
}

/// The group of a process name: without a trailing `-N` (validator-0 → validator).
fn group_of(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((head, tail)) if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit()) => head,
        _ => name,
    }
}

/// utime + stime of a process and all its threads, in seconds.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// (busy, total) CPU seconds of the whole machine so far, from `/proc/stat`.
fn machine_cpu() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    ((total - idle) / 100.0, total / 100.0)
}

/// CPU seconds so far of each watched process, this process and Mosquitto.
fn cpu_snapshot(pids: &[(String, u32)]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (name, pid) in pids {
        if let Some(s) = cpu_seconds(&pid.to_string()) {
            out.insert(name.clone(), s);
        }
    }
    if let Some(s) = cpu_seconds("self") {
        out.insert("bench".into(), s);
    }
    if let Some(pid) = std::fs::read_to_string("/run/mosquitto/mosquitto.pid")
        .ok()
        .map(|t| t.trim().to_string())
    {
        if let Some(s) = cpu_seconds(&pid) {
            out.insert("mosquitto".into(), s);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let parties = Parties {
        admin: match &args.admin_key {
            Some(path) => Signer::from_file(path)?,
            None => load_key(&args.keys, "admin")?,
        },
        maker: load_key(&args.keys, "maker")?,
        carrier: load_key(&args.keys, "carrier")?,
        gateway: load_key(&args.keys, "gateway")?,
    };
    anyhow::ensure!(args.devices > 0, "--devices must be at least 1");
    anyhow::ensure!(
        (1..=10_000).contains(&args.max_readings),
        "--max-readings must be 1..=10000 (the sensor family's limit per transaction)"
    );
    let work = tempfile::tempdir()?;
    // A run prefix keeps devices, lots and shipments of several runs on one ledger apart.
    let prefix = format!(
        "R{:06x}-",
        (now_ms() ^ u64::from(std::process::id())) & 0xff_ffff
    );

    // the ledger
    let mut node = None;
    let (rest, component) = if args.embedded {
        let mut config = NodeConfig::new(work.path().join("node"));
        config.rest_api = "127.0.0.1:0".parse()?;
        config.component = "tcp://127.0.0.1:0".into();
        config.handlers = coldchain_processors::family_handlers();
        config
            .genesis
            .0
            .insert(ADMINS_SETTING.into(), parties.admin.public_key().into());
        let started = tokio::task::spawn_blocking(move || Node::start(config)).await??;
        let endpoints = (started.rest_url(), started.component_endpoint().to_string());
        node = Some(started);
        endpoints
    } else {
        (
            args.url.clone().unwrap_or_default(),
            args.component.clone().unwrap_or_default(),
        )
    };
    let rest = rest.trim_end_matches('/').to_string();
    let ledger = Ledger::new(&rest, Duration::from_secs(60))?;

    // onboarding
    let mut simulator = Simulator::new(SimulatorConfig {
        devices: args.devices,
        device_prefix: format!("{prefix}D"),
        scenario: Scenario::Steady,
        rate_per_device: args.rate,
        readings_per_message: args.per_message,
        set_point_cdeg: 500,
    });
    let devices = simulator.device_ids();
    let onboard_started = Instant::now();
    let onboard_transactions = onboard(&ledger, &parties, &devices, &prefix).await?;
    let onboard_s = onboard_started.elapsed().as_secs_f64();
    println!(
        "onboarded {} loggers with {onboard_transactions} transactions in {onboard_s:.1} s ({:.0} tx/s) on {rest}",
        devices.len(),
        onboard_transactions as f64 / onboard_s
    );

    // block-commit events
    let clock = Arc::new(CommitClock::default());
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (clock, stop, endpoint) = (clock.clone(), stop.clone(), component.clone());
        std::thread::spawn(move || watch_commits(endpoint, clock, stop))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !clock.subscribed.load(Relaxed) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no block-commit subscription on {component} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // the gateway
    let key_file = work.path().join("gateway.priv");
    std::fs::write(&key_file, parties.gateway.private_hex())?;
    let topic = format!("ledgerbench{}", std::process::id());
    let mut text = format!(
        "key_file = {key_file:?}\nrest_url = {rest:?}\nqueue_path = {:?}\nmetrics_bind = \"\"\n\
         [batching]\nmax_readings = {}\nmax_age_ms = {}\nmax_transactions_per_batch = {}\ntick_ms = {}\n\
         [submission]\nmax_in_flight_batches = {}\nstatus_wait_s = {}\n\
         [[mqtt]]\nclient_id = \"{topic}-gw\"\ntopic_prefix = {topic:?}\n",
        work.path().join("queue.sqlite"),
        args.max_readings,
        args.max_age_ms,
        args.max_tx_per_batch,
        args.tick_ms,
        args.max_in_flight,
        args.status_wait_s,
    );
    for id in &devices {
        text.push_str(&format!(
            "[devices.{id:?}]\norg = {CARRIER_ORG:?}\nshipment = {:?}\n[shipments.{:?}]\nmin_cdeg = 200\nmax_cdeg = 800\n",
            shipment_of(id),
            shipment_of(id)
        ));
    }
    let gateway =
        Gateway::start(GatewayConfig::from_toml(&text).map_err(anyhow::Error::msg)?).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let transport = MqttTransport::connect(
        "127.0.0.1",
        1883,
        &format!("{topic}-sim"),
        &topic,
        CARRIER_ORG,
        Encoding::Binary,
    )
    .await;

    // the run
    let start_head = tokio::task::spawn_blocking({
        let rest = rest.clone();
        move || head_num(&rest)
    })
    .await??;
    let pids = watched_pids(&args.cpu_pids);
    let cpu_before = cpu_snapshot(&pids);
    let machine_before = machine_cpu();
    let load_before = loadavg();
    let mut log = PublishLog::default();
    let t0 = now_ms();
    let started = Instant::now();
    let sent = simulator
        .run_observed(
            &mut Sink::Mqtt(&transport),
            Duration::from_secs(args.seconds),
            |readings| log.note(readings),
        )
        .await?;
    let t1 = now_ms();
    let send_s = started.elapsed().as_secs_f64();
    let load_at_send_end = loadavg();
    let committed_at_send_end = gateway.metrics().committed.load(Relaxed);
    // Wait until everything published is committed, or until the gateway's
    // queue is empty and nothing arrived for 5 s (the broker dropped messages:
    // they will never come), or --drain-s.
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain_s);
    let mut last_received = (gateway.metrics().received.load(Relaxed), Instant::now());
    loop {
        let m = gateway.metrics();
        let (received, committed) = (m.received.load(Relaxed), m.committed.load(Relaxed));
        if received != last_received.0 {
            last_received = (received, Instant::now());
        }
        if committed >= sent.readings || Instant::now() >= drain_deadline {
            break;
        }
        if last_received.1.elapsed() > Duration::from_secs(5)
            && gateway
                .queue_stats()
                .is_ok_and(|q| q.queued == 0 && q.in_flight == 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gateway_done_ms = now_ms();
    let cpu_after = cpu_snapshot(&pids);
    let machine_after = machine_cpu();
    let load_after = loadavg();
    // let the last block-commit events arrive
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = gateway.metrics();
    let gw_committed = metrics.committed.load(Relaxed);
    let gw_p50 = metrics.latency_quantile_ms(0.5);
    let gw_p99 = metrics.latency_quantile_ms(0.99);
    let gw_batches = metrics.batches_committed.load(Relaxed);
    let gw_invalid = metrics.batches_invalid.load(Relaxed);
    let gw_retries = metrics.submit_retries.load(Relaxed);
    let gw_received = metrics.received.load(Relaxed);
    let gw_rejected: u64 = coldchain_gateway::validation::Reason::ALL
        .iter()
        .map(|r| metrics.rejected(*r))
        .sum();
    let queue = gateway.queue_stats().ok().map(|s| (s.queued, s.in_flight));
    gateway.stop().await;
    drop(transport);

    // the chain
    let blocks = tokio::task::spawn_blocking({
        let (rest, prefix) = (rest.clone(), prefix.clone());
        move || read_blocks(&rest, start_head, &prefix)
    })
    .await??;
    stop.store(true, Relaxed);
    let _ = watcher.join();
    let commit_times: HashMap<String, (u64, u64)> = clock
        .seen
        .lock()
        .map(|seen| seen.clone())
        .unwrap_or_default();
    // A block whose event was missed is dated by the first later block seen.
    let mut commit_at: Vec<Option<u64>> = blocks
        .iter()
        .map(|b| commit_times.get(&b.id).map(|(_, at)| *at))
        .collect();
    let mut later: Option<u64> = None;
    let mut undated = 0;
    for at in commit_at.iter_mut().rev() {
        match at {
            Some(t) => later = Some(later.map_or(*t, |l: u64| l.min(*t))),
            None => {
                undated += 1;
                *at = later;
            }
        }
    }
    let mut count: HashMap<&str, HashMap<u64, u32>> = HashMap::new();
    let mut latencies: Vec<u64> = Vec::new();
    let mut unpublished = 0u64;
    let mut readings_committed = 0u64;
    let mut committed_by_t1 = 0u64;
    let mut readings_transactions = 0usize;
    let mut last_commit = t0;
    let mut per_tx: Vec<u64> = Vec::new();
    // Steady state: blocks committed in the last three quarters of the
    // publishing window (no ramp-up); readings of the blocks after the first
    // of them over the time from the first to the last (no boundary error).
    let steady_from = t0 + (t1 - t0) / 4;
    let mut steady_blocks: Vec<(u64, u64)> = Vec::new();
    let mut block_times: Vec<u64> = Vec::new();
    for (block, at) in blocks.iter().zip(&commit_at) {
        readings_transactions += block.readings_transactions;
        let at = at.unwrap_or(gateway_done_ms);
        if block.readings_transactions > 0 {
            block_times.push(at);
            if at >= steady_from && at <= t1 {
                let readings: usize = block.readings.iter().map(|(_, s)| s.len()).sum();
                steady_blocks.push((at, readings as u64));
            }
        }
        for (device, sequences) in &block.readings {
            per_tx.push(sequences.len() as u64);
            let seen = count.entry(device.as_str()).or_default();
            for s in sequences {
                *seen.entry(*s).or_insert(0) += 1;
                readings_committed += 1;
                if at <= t1 {
                    committed_by_t1 += 1;
                }
                last_commit = last_commit.max(at);
                match log.published_at(device, *s) {
                    Some(p) => latencies.push(at.saturating_sub(p)),
                    None => unpublished += 1,
                }
            }
        }
    }
    latencies.sort_unstable();
    per_tx.sort_unstable();
    let mut intervals: Vec<u64> = block_times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    intervals.sort_unstable();
    let produced = simulator.produced();
    let mut missing = 0u64;
    let mut duplicated = 0u64;
    for (device, last) in &produced {
        let seen = count.get(device.as_str());
        for s in 1..=*last {
            match seen.and_then(|m| m.get(&s)).copied().unwrap_or(0) {
                0 => missing += 1,
                1 => {}
                n => duplicated += u64::from(n - 1),
            }
        }
    }

    // state cross-check: thermal records and devices
    let mut thermal_total = 0u64;
    let mut last_sequence_ok = 0usize;
    for (device, last) in &produced {
        if let Some(bytes) = ledger
            .state(&RecordKind::ShipmentThermal.address(&shipment_of(device)))
            .await?
        {
            thermal_total += pb::ThermalRecord::parse_from_bytes(&bytes)?.get_reading_count();
        }
        if let Some(record) = ledger.device(device).await? {
            if record.get_last_sequence() == *last {
                last_sequence_ok += 1;
            }
        }
    }
    if let Some(node) = node.take() {
        tokio::task::spawn_blocking(move || node.shutdown()).await?;
    }

    // report
    let offered = args.devices as f64 * args.rate;
    let window_s = (t1 - t0) as f64 / 1000.0;
    let span_s = (last_commit.max(t1) - t0) as f64 / 1000.0;
    let end_to_end = readings_committed as f64 / span_s;
    let in_window = committed_by_t1 as f64 / window_s;
    steady_blocks.sort_unstable();
    let steady = match (steady_blocks.first(), steady_blocks.last()) {
        (Some(first), Some(last)) if last.0 > first.0 => {
            let readings: u64 = steady_blocks[1..].iter().map(|(_, n)| n).sum();
            readings as f64 / ((last.0 - first.0) as f64 / 1000.0)
        }
        _ => 0.0,
    };
    let drain_s = last_commit.saturating_sub(t1) as f64 / 1000.0;
    let (p50, p90, p99, max) = (
        rank(&latencies, 0.5),
        rank(&latencies, 0.9),
        rank(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0),
    );
    let exactly_once = missing == 0 && duplicated == 0 && readings_committed == sent.readings;
    let cpu: BTreeMap<String, f64> = cpu_after
        .iter()
        .map(|(k, v)| (k.clone(), v - cpu_before.get(k).copied().unwrap_or(0.0)))
        .collect();
    let mut cpu_groups: BTreeMap<String, f64> = BTreeMap::new();
    for (name, seconds) in &cpu {
        *cpu_groups.entry(group_of(name).to_string()).or_insert(0.0) += seconds;
    }
    let cpu_span_s = (gateway_done_ms - t0) as f64 / 1000.0;
    let block_count = blocks.len();
    let tx_total: usize = blocks.iter().map(|b| b.transactions).sum();
    println!(
        "ledger {rest} ({})",
        if args.embedded {
            "embedded node"
        } else {
            "REST"
        }
    );
    println!(
        "settings: devices {} × {} readings/s = {offered:.0} offered, {} readings/message, {} s; \
         gateway max_readings {}, max_age_ms {}, max_transactions_per_batch {}, max_in_flight_batches {}, tick_ms {}, status_wait_s {}",
        args.devices, args.rate, args.per_message, args.seconds, args.max_readings, args.max_age_ms,
        args.max_tx_per_batch, args.max_in_flight, args.tick_ms, args.status_wait_s
    );
    println!(
        "published {} readings in {send_s:.1} s ({:.0}/s); gateway received {gw_received} readings, refused {gw_rejected}, committed {gw_committed}, still queued/in flight {queue:?}",
        sent.readings,
        sent.readings as f64 / send_s
    );
    println!(
        "on the chain: {readings_committed} readings in {readings_transactions} readings transactions ({} readings/tx median, {} max) in {block_count} blocks ({tx_total} transactions, {:.1} tx/block); {undated} blocks dated by a later block",
        rank(&per_tx, 0.5),
        per_tx.last().copied().unwrap_or(0),
        tx_total as f64 / block_count.max(1) as f64
    );
    println!(
        "committed: {steady:.0} readings/s steady (blocks of the last 3/4 of the publishing window), {in_window:.0} readings/s over the whole \
         window ({committed_by_t1} by the end of publishing), {end_to_end:.0} readings/s end to end (first publish to last \
         commit; last commit {drain_s:.1} s after publishing stopped)"
    );
    println!(
        "blocks with readings: {} , interval between them median {} ms, max {} ms",
        block_times.len(),
        rank(&intervals, 0.5),
        intervals.last().copied().unwrap_or(0)
    );
    println!(
        "publish → block-commit latency (every reading, exact): p50 {p50} ms, p90 {p90} ms, p99 {p99} ms, max {max} ms; \
         gateway receipt → commit histogram p50 ≤ {gw_p50:?} ms, p99 ≤ {gw_p99:?} ms"
    );
    println!(
        "exactly once: {} (missing {missing} — of which still in the gateway's queue, not lost: {} —, duplicated {duplicated}, on chain but never published {unpublished}); \
         state: thermal reading_count total {thermal_total}, {last_sequence_ok}/{} devices at their last sequence; \
         gateway batches committed {gw_batches}, invalid {gw_invalid}, retries {gw_retries}",
        if exactly_once { "yes" } else { "NO" },
        queue.map(|(queued, in_flight)| queued + in_flight).unwrap_or(0),
        produced.len()
    );
    let cpu_text: Vec<String> = cpu_groups
        .iter()
        .map(|(k, v)| format!("{k} {v:.1} s ({:.0} %)", 100.0 * v / cpu_span_s))
        .collect();
    println!(
        "CPU seconds over {cpu_span_s:.1} s (% of one core; bench = simulator + gateway + embedded node): {}",
        cpu_text.join(", ")
    );
    let validators: Vec<String> = cpu
        .iter()
        .filter(|(k, _)| group_of(k) == "validator")
        .map(|(k, v)| format!("{k} {:.0} %", 100.0 * v / cpu_span_s))
        .collect();
    if !validators.is_empty() {
        println!("per validator: {}", validators.join(", "));
    }
    let machine_busy = machine_after.0 - machine_before.0;
    let machine_total = machine_after.1 - machine_before.1;
    let ours: f64 = cpu.values().sum();
    let others = (machine_busy - ours).max(0.0);
    println!(
        "machine: {:.0} % of all cores busy ({machine_busy:.1} of {machine_total:.1} CPU-seconds); processes of this run {ours:.1} s, everything else on the box {others:.1} s ({:.2} cores)",
        100.0 * machine_busy / machine_total.max(0.001),
        others / cpu_span_s
    );
    if let Some(validator) = cpu_groups.get("validator") {
        println!(
            "validator CPU per committed transaction: {:.1} ms (all validators together), per readings transaction {:.1} ms",
            1000.0 * validator / tx_total.max(1) as f64,
            1000.0 * validator / readings_transactions.max(1) as f64
        );
    }
    println!("load average: before {load_before}; end of publishing {load_at_send_end}; end {load_after}");
    println!("committed by the gateway when publishing stopped: {committed_at_send_end}");
    if gw_received < sent.readings {
        println!(
            "the gateway never received {} published readings: the broker dropped them (Mosquitto logs \
             \"Outgoing messages are being dropped\" when a subscriber falls more than max_queued_messages behind)",
            sent.readings - gw_received
        );
    }
    if let Some(path) = &args.json {
        let result = serde_json::json!({
            "label": args.label,
            "date_ms": t0,
            "ledger": if args.embedded { "embedded".to_string() } else { rest.clone() },
            "devices": args.devices, "rate_per_device": args.rate, "per_message": args.per_message,
            "seconds": args.seconds, "max_readings": args.max_readings, "max_age_ms": args.max_age_ms,
            "max_tx_per_batch": args.max_tx_per_batch, "max_in_flight": args.max_in_flight,
            "tick_ms": args.tick_ms, "status_wait_s": args.status_wait_s,
            "onboard_transactions": onboard_transactions, "onboard_s": onboard_s,
            "offered": offered, "sent": sent.readings, "gateway_received": gw_received, "committed": readings_committed,
            "committed_per_s_steady": steady, "committed_per_s_while_publishing": in_window,
            "block_interval_median_ms": rank(&intervals, 0.5), "block_interval_max_ms": intervals.last().copied().unwrap_or(0), "committed_per_s_end_to_end": end_to_end,
            "drain_s": drain_s, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
            "gateway_p50_le_ms": gw_p50, "gateway_p99_le_ms": gw_p99,
            "missing": missing, "duplicated": duplicated, "exactly_once": exactly_once,
            "thermal_reading_count": thermal_total, "blocks": block_count, "transactions": tx_total,
            "readings_transactions": readings_transactions,
            "readings_per_tx_median": rank(&per_tx, 0.5),
            "gateway_batches": gw_batches, "gateway_invalid": gw_invalid, "gateway_retries": gw_retries,
            "cpu_s": cpu, "cpu_groups_s": cpu_groups, "cpu_span_s": cpu_span_s,
            "machine_busy_s": machine_busy, "machine_total_s": machine_total, "other_processes_cpu_s": others,
            "load_before": load_before, "load_send_end": load_at_send_end, "load_after": load_after,
        });
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{result}")?;
    }
    if !exactly_once {
        anyhow::bail!(
            "not every published reading was committed exactly once (missing {missing}, duplicated {duplicated})"
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,warp::server=off".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Keys { dir } => {
            for name in KEY_NAMES {
                let signer = load_or_create_key(&dir, name)?;
                println!("{name} {}", signer.public_key());
            }
            Ok(())
        }
        Command::Run(args) => run(args).await,
    }
}
