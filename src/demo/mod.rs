//! `coldchain demo`: the main job. Starts, in one process tree, the embedded
//! node with the three families, an embedded MQTT broker (unless `--mqtt` names
//! one), the sensor gateway, two simulated loggers (one over MQTT, one over a
//! serial pseudo-terminal) and the provenance API with its web page; then plays
//! the story in `story.rs` and keeps everything running until Ctrl-C (or stops
//! when the story ends with `--exit`).
//!
//! With `--url`, `--component` and `--admin-key` it starts no node and plays
//! the same story on an existing Sawtooth network (a real validator with the
//! three `coldchain tp` processes registered, whose `coldchain.admins` names
//! the admin key): the way a partner rehearses on a test network.
mod loggers;
mod services;
mod story;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use coldchain_processors::signing::Signer;

use crate::client::LedgerClient;
use story::{Cast, Narrator, HOUR, MINUTE};

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Folder for the node's chain, the gateway queue, the index and keys
    /// (default: a fresh folder under the system temp dir).
    #[arg(long, env = "COLDCHAIN_DEMO_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Stop when the story ends instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Use this MQTT broker (host:port) instead of the embedded one.
    #[arg(long, env = "COLDCHAIN_DEMO_MQTT")]
    pub mqtt: Option<String>,
    /// REST API port of the embedded node (0 = any free port; busy → a free one).
    #[arg(long, default_value_t = 8008)]
    pub rest_port: u16,
    /// Component endpoint port of the embedded node.
    #[arg(long, default_value_t = 4004)]
    pub component_port: u16,
    /// Port of the provenance API and web page.
    #[arg(long, default_value_t = 8080)]
    pub api_port: u16,
    /// Print a JSON summary of the outcome at the end.
    #[arg(long)]
    pub json: bool,
    /// Play on an existing Sawtooth network through this REST API instead of
    /// an embedded node (needs --component and --admin-key).
    #[arg(long, env = "COLDCHAIN_DEMO_URL", requires_all = ["component", "admin_key"])]
    pub url: Option<String>,
    /// The existing network's component endpoint (tcp://host:4004), for the
    /// provenance API's event subscription (with --url).
    #[arg(long, env = "COLDCHAIN_DEMO_COMPONENT", requires = "url")]
    pub component: Option<String>,
    /// A key named in the network's `coldchain.admins` setting (with --url):
    /// it onboards the story's organisations.
    #[arg(long, env = "COLDCHAIN_DEMO_ADMIN_KEY", requires = "url")]
    pub admin_key: Option<PathBuf>,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(play(args))
}

async fn play(args: DemoArgs) -> Result<()> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("coldchain-demo-{}", std::process::id())),
    };
    if data_dir.join("node").exists() {
        bail!(
            "{} already holds a demo chain; pass another --data-dir or remove it",
            data_dir.display()
        );
    }
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    println!("coldchain demo — data in {}", data_dir.display());

    let admin = match &args.admin_key {
        Some(path) => Signer::from_file(path).with_context(|| {
            format!(
                "--admin-key {}: cannot read a Sawtooth private key (64 hex) from it",
                path.display()
            )
        })?,
        None => Signer::generate(),
    };
    let gateway_key = Signer::generate();
    let cast = Cast::new(admin.clone(), gateway_key.clone());
    let key_dir = write_cast_keys(&cast, &data_dir, args.admin_key.is_none())?;
    let mut world = services::World::start(&args, &data_dir, &admin).await?;
    let where_ = if args.url.is_some() {
        "network"
    } else {
        "node"
    };
    println!("  {where_} REST API   {}", world.rest_url);
    println!("  component endpoint {}", world.component);
    println!("  MQTT broker        {}", world.mqtt);
    println!("  provenance API     {}", world.api_url);

    let outcome = tell(&mut world, &cast, &data_dir).await;
    match &outcome {
        Ok(summary) => {
            println!("\nThe story is told. Open {} to verify packs, trace lot {} and see the blood board.", world.api_url, story::LOT_A);
            println!(
                "Try: {}/01/{}/10/{}/21/A0002",
                world.api_url,
                story::VACCINE_GTIN,
                story::LOT_A
            );
            let links = partner_links(&world.api_url, &cast, &key_dir).await;
            if args.json {
                let mut summary = summary.clone();
                summary["partner_links"] = links;
                summary["key_dir"] = serde_json::json!(key_dir);
                println!("{summary}");
            }
        }
        Err(error) => eprintln!("\nthe demo stopped: {error:#}"),
    }
    if outcome.is_ok() && !args.exit {
        println!("Serving until Ctrl-C …");
        let _ = tokio::signal::ctrl_c().await;
    }
    world.shutdown().await;
    outcome.map(|_| ())
}

async fn tell(
    world: &mut services::World,
    cast: &Cast,
    data_dir: &std::path::Path,
) -> Result<serde_json::Value> {
    let client = LedgerClient::new(&world.rest_url, Duration::from_secs(30))?;
    if world.remote {
        story::check_fresh_network(&client).await?;
    }
    let start = crate::ledger_commands::now_s().saturating_sub(20 * HOUR);
    let mut n = Narrator {
        client,
        clock: start,
        step: 0,
    };

    story::onboard(&mut n, cast).await?;
    world.start_gateway(cast, data_dir).await?;
    story::ship_lots(&mut n, cast).await?;

    let departure = n.at(n.clock + 2 * MINUTE);
    let arrival = departure + 6 * HOUR;
    n.say("On the road for six hours: the reefer logger reports over MQTT, the box logger over a serial line");
    println!("    (story time runs fast: one reading per simulated minute)");
    let reefer = loggers::door_opening_journey(story::REEFER_DEVICE, departure, arrival);
    let boxed = loggers::compressor_failure_journey(story::BOX_DEVICE, departure, arrival);
    let expected = [
        (story::SHIPMENT_A, reefer.len() as u64),
        (story::SHIPMENT_B, boxed.len() as u64),
    ];
    world.send_mqtt(story::REEFER_DEVICE, &reefer).await?;
    world.send_serial(&boxed).await?;
    for (shipment, count) in expected {
        let record = wait_for_readings(&n, shipment, count).await?;
        println!("    {shipment}: {}", story::describe_thermal(&record));
    }

    story::deliver_to_distributor(&mut n, cast, arrival + MINUTE).await?;
    story::pharmacy(&mut n, cast).await?;
    story::recall(&mut n, cast).await?;
    story::emergency_blood(&mut n, cast).await?;

    n.say("What a pharmacist sees when scanning packs (verdicts from the provenance API)");
    let mut verdicts = serde_json::Map::new();
    for (serial, lot) in [
        ("A0001", story::LOT_A),
        ("A0002", story::LOT_A),
        ("B0001", story::LOT_B),
        ("C0001", story::LOT_C),
    ] {
        let verdict = world.verify(story::VACCINE_GTIN, lot, serial).await?;
        println!("    pack {serial} of lot {lot}: {verdict}");
        verdicts.insert(serial.to_string(), serde_json::Value::String(verdict));
    }
    Ok(
        serde_json::json!({ "verdicts": verdicts, "rest_url": world.rest_url, "api_url": world.api_url }),
    )
}

/// Writes every participant's key to `<data-dir>/keys/<org>.priv` and
/// `.pub` (and the admin's, when the demo made it), so a person can act as
/// any of them after the story: mint an API token, sign a command.
fn write_cast_keys(
    cast: &Cast,
    data_dir: &std::path::Path,
    with_admin: bool,
) -> Result<std::path::PathBuf> {
    let dir = data_dir.join("keys");
    for party in cast.parties() {
        crate::keys::write(&dir, party.org, &party.key)?;
    }
    if with_admin {
        crate::keys::write(&dir, "admin", &cast.admin)?;
    }
    Ok(dir)
}

/// Mints API tokens for two partners and prints ready links to the page's
/// partner view (MedDist, the distributor) and blood board (the blood bank),
/// with the command that mints one for any other participant.
async fn partner_links(api_url: &str, cast: &Cast, key_dir: &std::path::Path) -> serde_json::Value {
    println!(
        "
Partner view (participants' keys are in {}):",
        key_dir.display()
    );
    let mut links = serde_json::Map::new();
    for (party, page) in [(&cast.distributor, "page"), (&cast.blood_bank, "blood")] {
        match crate::token::mint(api_url, &party.key, "demo").await {
            Ok(minted) => {
                let link = if page == "blood" {
                    minted.blood_link(api_url)
                } else {
                    minted.page_link(api_url)
                };
                let what = if page == "blood" {
                    "blood board"
                } else {
                    "custody and temperatures"
                };
                println!("  {:<20} {what}: {link}", party.name);
                links.insert(party.org.to_string(), serde_json::Value::String(link));
            }
            Err(error) => println!("  {:<20} no token: {error:#}", party.name),
        }
    }
    println!(
        "  Any other participant: coldchain token --api {api_url} --key {}",
        key_dir
            .join(format!("{}.priv", cast.pharmacy.org))
            .display()
    );
    serde_json::Value::Object(links)
}

/// Waits until the sensor family has recorded `count` readings for a shipment.
async fn wait_for_readings(
    n: &Narrator,
    shipment: &str,
    count: u64,
) -> Result<coldchain_processors::messages::coldchain::ThermalRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(record) = story::shipment_thermal(n, shipment).await? {
            if record.get_reading_count() >= count {
                return Ok(record);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the gateway did not get all {count} readings of {shipment} committed within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
