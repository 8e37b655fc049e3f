//! Checks the real-Sawtooth deployment in `validator-config/` without Docker:
//! every validator and REST API TOML uses only the keys Sawtooth 1.2 accepts
//! (the lists in `sawtooth_validator/config/validator.py` and
//! `sawtooth_rest_api/config.py`), the genesis settings choose PBFT with four
//! members and allow exactly the coldchain families, the compose file runs every
//! family and the patched PBFT engine on every node, the gateway accepts its
//! configuration, and `docs/deploy-sawtooth.md` names each command in order.
//!
//! It must not start containers or reach the network: it only reads files.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use coldchain_processors::addressing::{
    CUSTODY_FAMILY, FAMILY_VERSION, REGISTRY_FAMILY, SENSOR_FAMILY, SENSOR_FAMILY_VERSION,
};
use serde_json::{Map, Value};

/// Keys `sawtooth-validator` 1.2 accepts in validator.toml (it refuses others).
const VALIDATOR_KEYS: &str =
    "bind endpoint peering seeds peers network_public_key network_private_key \
    scheduler permissions roles opentsdb_url opentsdb_db opentsdb_username opentsdb_password \
    minimum_peer_connectivity maximum_peer_connectivity state_pruning_block_depth \
    fork_cache_keep_time component_thread_pool_workers network_thread_pool_workers \
    signature_thread_pool_workers";

/// Keys `sawtooth-rest-api` 1.2 accepts in rest_api.toml.
const REST_API_KEYS: &str =
    "bind connect timeout opentsdb_url opentsdb_db opentsdb_username opentsdb_password client_max_size";

const NODES: [&str; 4] = ["validator-0", "validator-1", "validator-2", "validator-3"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn config_dir() -> PathBuf {
    root().join("validator-config")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn toml_table(path: &Path) -> toml::Table {
    read(path)
        .parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()))
}

fn strings(value: &toml::Value, what: &str) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} must be a list"))
        .iter()
        .map(|item| {
            item.as_str()
                .unwrap_or_else(|| panic!("{what} must list strings"))
                .to_string()
        })
        .collect()
}

#[test]
fn validator_tomls_use_only_sawtooth_keys_and_peer_as_a_full_mesh() {
    for node in NODES {
        let path = config_dir().join("nodes").join(node).join("validator.toml");
        let at = path.display();
        let table = toml_table(&path);
        for key in table.keys() {
            assert!(
                VALIDATOR_KEYS.split_whitespace().any(|k| k == key),
                "{at}: sawtooth-validator refuses key {key:?}"
            );
        }
        let binds = strings(&table["bind"], "bind");
        for role in ["network", "component", "consensus"] {
            let bind = binds.iter().find(|b| b.starts_with(&format!("{role}:")));
            let bind = bind.unwrap_or_else(|| panic!("{at}: bind has no {role}: endpoint"));
            assert!(
                bind[role.len() + 1..].starts_with("tcp://"),
                "{at}: {bind} is not a tcp:// endpoint"
            );
        }
        assert!(binds
            .iter()
            .any(|b| b.ends_with(":4004") && b.starts_with("component:")));
        assert!(binds
            .iter()
            .any(|b| b.ends_with(":5050") && b.starts_with("consensus:")));
        let endpoint = table["endpoint"].as_str().expect("endpoint is a string");
        assert_eq!(endpoint, format!("tcp://{node}:8800"), "{at}: endpoint");
        assert_eq!(
            table["peering"].as_str(),
            Some("static"),
            "{at}: PBFT needs static peering"
        );
        let peers: BTreeSet<String> = strings(&table["peers"], "peers").into_iter().collect();
        let others: BTreeSet<String> = NODES
            .iter()
            .filter(|n| **n != node)
            .map(|n| format!("tcp://{n}:8800"))
            .collect();
        assert_eq!(
            peers, others,
            "{at}: a PBFT member must peer with every other member"
        );
        let scheduler = table["scheduler"].as_str().expect("scheduler is a string");
        assert!(
            ["serial", "parallel"].contains(&scheduler),
            "{at}: scheduler {scheduler:?}"
        );
        // The shared Curve key pair is filled in at start: a committed real key would leak it.
        assert_eq!(
            table["network_public_key"].as_str(),
            Some("@NETWORK_PUBLIC_KEY@"),
            "{at}"
        );
        assert_eq!(
            table["network_private_key"].as_str(),
            Some("@NETWORK_PRIVATE_KEY@"),
            "{at}"
        );
    }
}

#[test]
fn rest_api_tomls_use_only_sawtooth_keys_and_connect_to_their_own_validator() {
    for node in NODES {
        let path = config_dir().join("nodes").join(node).join("rest_api.toml");
        let at = path.display();
        let table = toml_table(&path);
        for key in table.keys() {
            assert!(
                REST_API_KEYS.split_whitespace().any(|k| k == key),
                "{at}: sawtooth-rest-api refuses key {key:?}"
            );
        }
        let binds = strings(&table["bind"], "bind");
        assert!(!binds.is_empty(), "{at}: bind is empty");
        for bind in &binds {
            let (host, port) = bind
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("{at}: bind {bind} is not host:port"));
            assert!(
                !host.is_empty() && port.parse::<u16>().is_ok(),
                "{at}: bind {bind} is not host:port"
            );
        }
        assert_eq!(
            table["connect"].as_str(),
            Some(format!("tcp://{node}:4004").as_str()),
            "{at}"
        );
        assert!(
            table["timeout"].as_integer().is_some_and(|t| t > 0),
            "{at}: timeout must be whole seconds"
        );
    }
}

/// `KEY=VALUE` lines of genesis/settings.conf.
fn genesis_settings() -> BTreeMap<String, String> {
    let path = config_dir().join("genesis").join("settings.conf");
    let mut settings = BTreeMap::new();
    for line in read(&path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("settings.conf: {line:?} is not KEY=VALUE"));
        assert!(
            settings
                .insert(key.to_string(), value.to_string())
                .is_none(),
            "settings.conf sets {key} twice"
        );
    }
    settings
}

#[test]
fn genesis_settings_choose_pbft_and_allow_exactly_the_coldchain_families() {
    let settings = genesis_settings();
    let get = |key: &str| settings.get(key).map(String::as_str);
    assert_eq!(get("sawtooth.consensus.algorithm.name"), Some("pbft"));
    assert_eq!(get("sawtooth.consensus.algorithm.version"), Some("1.0"));
    assert_eq!(
        get("sawtooth.consensus.pbft.block_publishing_delay"),
        Some("1000")
    );
    for key in [
        "sawtooth.consensus.pbft.block_publishing_delay",
        "sawtooth.consensus.pbft.commit_timeout",
        "sawtooth.consensus.pbft.idle_timeout",
        "sawtooth.consensus.pbft.view_change_duration",
        "sawtooth.consensus.pbft.forced_view_change_interval",
    ] {
        let value = settings
            .get(key)
            .unwrap_or_else(|| panic!("settings.conf does not set {key}"));
        assert!(
            value.parse::<u64>().is_ok_and(|v| v > 0),
            "{key}={value} must be a positive whole number"
        );
    }
    // Key-dependent settings are computed by the script, never hard-coded.
    for computed in [
        "sawtooth.consensus.pbft.members",
        "coldchain.admins",
        "sawtooth.identity.allowed_keys",
    ] {
        assert!(
            !settings.contains_key(computed),
            "settings.conf must not hard-code {computed}"
        );
    }
    let families: Vec<Value> =
        serde_json::from_str(&settings["sawtooth.validator.transaction_families"])
            .expect("sawtooth.validator.transaction_families is a JSON list");
    let families: BTreeSet<(String, String)> = families
        .iter()
        .map(|f| {
            let field = |name: &str| {
                f[name]
                    .as_str()
                    .unwrap_or_else(|| panic!("family entry {f} lacks {name}"))
                    .to_string()
            };
            (field("family"), field("version"))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        (REGISTRY_FAMILY, FAMILY_VERSION),
        (CUSTODY_FAMILY, FAMILY_VERSION),
        (SENSOR_FAMILY, SENSOR_FAMILY_VERSION),
        ("sawtooth_settings", "1.0"),
        ("sawtooth_identity", "1.0"),
    ]
    .into_iter()
    .map(|(f, v)| (f.to_string(), v.to_string()))
    .collect();
    assert_eq!(families, expected);
}

fn members() -> Vec<(String, String)> {
    let path = config_dir().join("genesis").join("members.conf");
    read(&path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut words = line.split_whitespace();
            let node = words.next().unwrap_or_default().to_string();
            let org = words
                .next()
                .unwrap_or_else(|| panic!("members.conf: {line:?} names no organisation"));
            (node, org.to_string())
        })
        .collect()
}

#[test]
fn pbft_membership_is_the_four_compose_validators_of_four_organisations() {
    let members = members();
    assert_eq!(members.len(), 4, "PBFT members: {members:?}");
    let nodes: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes, NODES);
    let orgs: BTreeSet<&str> = members.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(
        orgs.len(),
        4,
        "each member is a different organisation: {members:?}"
    );
}

#[test]
fn genesis_script_builds_every_batch_and_hands_all_of_them_to_sawadm_genesis_in_order() {
    let script = read(&config_dir().join("genesis").join("create-genesis.sh"));
    let position = |needle: &str| {
        script
            .find(needle)
            .unwrap_or_else(|| panic!("create-genesis.sh never runs {needle:?}"))
    };
    let order = [
        "sawtooth_tool sawset genesis",
        "sawtooth_tool sawset proposal create",
        "sawtooth_tool sawtooth identity policy create",
        "sawtooth_tool sawtooth identity role create",
        "sawtooth_tool sawadm genesis",
    ];
    for pair in order.windows(2) {
        assert!(
            position(pair[0]) < position(pair[1]),
            "{:?} must come before {:?}",
            pair[0],
            pair[1]
        );
    }
    for setting in [
        "\"sawtooth.consensus.pbft.members=$members\"",
        "\"coldchain.admins=$admins\"",
        "\"sawtooth.identity.allowed_keys=$admins\"",
        "\"sawtooth.settings.vote.authorized_keys=$admins\"",
        "\"sawtooth.settings.vote.approval_threshold=$threshold\"",
        "transactor.batch_signer coldchain_transactors",
        "transactor.transaction_signer coldchain_transactors",
    ] {
        assert!(
            script.contains(setting),
            "create-genesis.sh does not set {setting}"
        );
    }
    // Every batch written with -o before `sawadm genesis` goes into it, in the order written.
    let genesis_at = position("sawtooth_tool sawadm genesis");
    let written: Vec<&str> = script[..genesis_at]
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-o")
        .map(|w| w[1])
        .collect();
    assert_eq!(written.len(), 8, "batches written: {written:?}");
    let sawadm: Vec<&str> = script[genesis_at..]
        .split_whitespace()
        .take_while(|w| !w.starts_with("[["))
        .filter(|w| w.ends_with(".batch") && *w != "genesis.batch")
        .collect();
    assert_eq!(
        sawadm, written,
        "sawadm genesis must combine every batch, in order"
    );
}

// ---------------------------------------------------------------- compose

/// Reads the YAML subset docker-compose.yaml is written in (block mappings,
/// block sequences of scalars, double-quoted or plain scalars, flow sequences
/// of double-quoted strings) and refuses anything else, so the checks below
/// never pass on a file they could not read.
fn parse_yaml_subset(source: &str) -> Result<Value, String> {
    let mut lines = Vec::new();
    for (index, raw) in source.lines().enumerate() {
        if raw.contains('\t') {
            return Err(format!(
                "line {}: tab characters are not allowed",
                index + 1
            ));
        }
        let text = raw.trim_end();
        let content = text.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        lines.push((index + 1, text.len() - content.len(), content.to_string()));
    }
    let mut position = 0;
    let value = parse_yaml_block(&lines, &mut position, 0)?;
    match lines.get(position) {
        None => Ok(value),
        Some((number, _, _)) => Err(format!("line {number}: unexpected indentation")),
    }
}

fn parse_yaml_block(
    lines: &[(usize, usize, String)],
    position: &mut usize,
    indent: usize,
) -> Result<Value, String> {
    let is_item = |text: &str| text == "-" || text.starts_with("- ");
    let Some((_, _, first)) = lines.get(*position) else {
        return Ok(Value::Null);
    };
    if is_item(first) {
        let mut items = Vec::new();
        while let Some((number, line_indent, text)) = lines.get(*position) {
            if *line_indent != indent || !is_item(text) {
                break;
            }
            let item = text[1..].trim();
            if item.contains(": ") || item.ends_with(':') {
                return Err(format!(
                    "line {number}: mappings inside sequences are outside the checked subset"
                ));
            }
            items.push(parse_yaml_scalar(item, *number)?);
            *position += 1;
        }
        return Ok(Value::Array(items));
    }
    let mut map = Map::new();
    while let Some((number, line_indent, text)) = lines.get(*position) {
        if *line_indent != indent {
            break;
        }
        if is_item(text) {
            return Err(format!(
                "line {number}: a sequence item where a key was expected"
            ));
        }
        let (key, rest) = match text.split_once(": ") {
            Some((key, rest)) => (key, rest.trim()),
            None => match text.strip_suffix(':') {
                Some(key) => (key, ""),
                None => return Err(format!("line {number}: {text:?} is not `key: value`")),
            },
        };
        if key.is_empty() || key.starts_with(['"', '\'', '?', '&', '*', '<']) {
            return Err(format!(
                "line {number}: key {key:?} is outside the checked subset"
            ));
        }
        *position += 1;
        let value = if !rest.is_empty() {
            parse_yaml_scalar(rest, *number)?
        } else {
            match lines.get(*position) {
                Some((_, deeper, _)) if *deeper > indent => {
                    parse_yaml_block(lines, position, *deeper)?
                }
                _ => Value::Null,
            }
        };
        if map.insert(key.to_string(), value).is_some() {
            return Err(format!("line {number}: key {key:?} appears twice"));
        }
    }
    Ok(Value::Object(map))
}

fn parse_yaml_scalar(text: &str, number: usize) -> Result<Value, String> {
    if text.starts_with('"') {
        return serde_json::from_str::<String>(text)
            .map(Value::String)
            .map_err(|e| format!("line {number}: {e}"));
    }
    if text.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(text)
            .map(|items| Value::Array(items.into_iter().map(Value::String).collect()))
            .map_err(|e| {
                format!("line {number}: flow sequences must hold double-quoted strings ({e})")
            });
    }
    if text.starts_with(['&', '*', '|', '>', '{', '!', '\'', '%', '@', '`']) || text.contains(" #")
    {
        return Err(format!(
            "line {number}: {text:?} is outside the checked subset"
        ));
    }
    Ok(Value::String(text.to_string()))
}

fn compose() -> Map<String, Value> {
    let path = config_dir().join("docker-compose.yaml");
    let value =
        parse_yaml_subset(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let Value::Object(top) = value else {
        panic!("docker-compose.yaml is not a mapping")
    };
    top
}

fn services() -> Map<String, Value> {
    match compose().remove("services") {
        Some(Value::Object(services)) => services,
        other => panic!("docker-compose.yaml has no services mapping: {other:?}"),
    }
}

fn command(service: &Value) -> Vec<String> {
    list(service, "command")
}

fn list(service: &Value, key: &str) -> Vec<String> {
    service[key]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn yaml_subset_reader_reads_mappings_and_refuses_what_it_cannot_check() {
    let value = parse_yaml_subset(
        "a:\n  b: \"x\"\n  c:\n    - one\n    - \"two\"\n  d: [\"p\", \"q\"]\ne:\n",
    )
    .unwrap();
    assert_eq!(value["a"]["b"], "x");
    assert_eq!(value["a"]["c"][1], "two");
    assert_eq!(value["a"]["d"][0], "p");
    assert!(value["e"].is_null());
    for bad in [
        "a: &anchor x\n",
        "a:\n  <<: *anchor\n",
        "a: |\n  text\n",
        "a: x # note\n",
        "a:\n\t- x\n",
        "a: 1\na: 2\n",
        "a:\n  - b: c\n",
    ] {
        assert!(parse_yaml_subset(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn compose_runs_a_complete_node_for_each_member() {
    let services = services();
    let service = |name: &str| {
        services
            .get(name)
            .unwrap_or_else(|| panic!("compose has no service {name}"))
    };
    let mut genesis_nodes = Vec::new();
    for (index, node) in NODES.iter().enumerate() {
        let validator = service(node);
        assert!(validator["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("hyperledger/sawtooth-validator:")));
        let volumes = list(validator, "volumes");
        let mounts = |target: &str| volumes.iter().any(|v| v.split(':').nth(1) == Some(target));
        assert!(
            volumes.contains(&format!(
                "./nodes/{node}/validator.toml:/coldchain/validator.toml.in:ro"
            )),
            "{node}: {volumes:?}"
        );
        assert!(
            volumes.contains(&format!("./secrets/{node}:/etc/sawtooth/keys:ro")),
            "{node} must use its own key: {volumes:?}"
        );
        assert!(
            mounts("/var/lib/sawtooth"),
            "{node} must keep its chain on a volume"
        );
        if validator["environment"]["COLDCHAIN_GENESIS_NODE"] == "yes" {
            assert!(
                mounts("/coldchain/genesis"),
                "{node} is the genesis node but does not mount the genesis batch"
            );
            genesis_nodes.push(*node);
        }
        let component = format!("tcp://{node}:4004");
        let rest = service(&format!("rest-api-{index}"));
        assert!(list(rest, "volumes").contains(&format!(
            "./nodes/{node}/rest_api.toml:/etc/sawtooth/rest_api.toml:ro"
        )));
        assert_eq!(
            command(service(&format!("settings-tp-{index}"))),
            ["settings-tp", "-v", "-C", component.as_str()]
        );
        assert_eq!(
            command(service(&format!("identity-tp-{index}"))),
            ["identity-tp", "-v", "-C", component.as_str()]
        );
        let pbft = command(service(&format!("pbft-{index}")));
        assert_eq!(pbft.first().map(String::as_str), Some("pbft-engine"));
        assert!(
            pbft.contains(&format!("tcp://{node}:5050")),
            "pbft-{index} must drive {node}: {pbft:?}"
        );
        for family in ["registry", "custody", "sensor"] {
            let tp = service(&format!("coldchain-{family}-{index}"));
            assert_eq!(command(tp), ["tp", family, "--connect", component.as_str()]);
            assert_eq!(
                tp["init"], "true",
                "coldchain-{family}-{index} needs an init process for signals"
            );
        }
    }
    assert_eq!(
        genesis_nodes,
        ["validator-0"],
        "exactly one node creates the genesis block"
    );
}

#[test]
fn compose_runs_the_patched_pbft_engine_and_never_the_stock_one() {
    let services = services();
    let engines: Vec<(&String, &Value)> = services
        .iter()
        .filter(|(_, s)| command(s).first().is_some_and(|c| c == "pbft-engine"))
        .collect();
    assert_eq!(
        engines.len(),
        NODES.len(),
        "one consensus engine per validator"
    );
    for (name, engine) in engines {
        let image = engine["image"].as_str().unwrap_or_default();
        assert!(
            !image.starts_with("hyperledger/sawtooth-pbft-engine"),
            "{name} runs the stock engine {image}"
        );
        assert_eq!(
            engine["build"]["context"], "./pbft",
            "{name} must be built from pbft/Dockerfile"
        );
    }
    let dockerfile = read(&config_dir().join("pbft").join("Dockerfile"));
    assert!(
        dockerfile.contains("ARG PBFT_TAG=v1.0.3"),
        "the engine is built from the 1.0.3 release"
    );
    assert!(dockerfile.contains("COPY 0001-prepare-quorum-2f.patch"));
    assert!(
        dockerfile.contains("patch -p1 --forward --fuzz=0 < /build/0001-prepare-quorum-2f.patch")
    );
    let patch = read(
        &config_dir()
            .join("pbft")
            .join("0001-prepare-quorum-2f.patch"),
    );
    let removed: Vec<&str> = patch
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .collect();
    let added: Vec<&str> = patch
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .collect();
    assert!(patch.contains("+++ b/src/node.rs"));
    assert!(
        removed
            .iter()
            .any(|l| l.trim_start_matches('-').trim() == "> 2 * state.f;"),
        "patch removes {removed:?}"
    );
    assert!(
        added
            .iter()
            .any(|l| l.trim_start_matches('+').trim() == ">= 2 * state.f;"),
        "patch adds {added:?}"
    );
    assert!(
        patch.contains("has_required_prepares"),
        "the change is in the Prepare quorum, not the Commit one"
    );
}

#[test]
fn compose_mounts_only_files_that_exist_and_serves_the_gateway_and_api() {
    let services = services();
    for (name, service) in &services {
        for volume in list(service, "volumes") {
            let source = volume.split(':').next().unwrap_or_default();
            if source.starts_with("./") && !source.starts_with("./secrets") {
                assert!(
                    config_dir().join(source).exists(),
                    "{name} mounts missing {source}"
                );
            }
        }
        for dependency in list(service, "depends_on") {
            assert!(
                services.contains_key(&dependency),
                "{name} depends on unknown service {dependency}"
            );
        }
    }
    let gateway = &services["gateway"];
    assert_eq!(
        command(gateway),
        ["gateway", "--config", "/config/gateway.toml"]
    );
    let api = command(&services["api"]);
    assert_eq!(api.first().map(String::as_str), Some("api"));
    for flag in ["--rest-url", "--component", "--index", "--bind"] {
        assert!(api.iter().any(|a| a == flag), "api needs {flag}: {api:?}");
    }
    let config = coldchain_gateway::GatewayConfig::from_toml(&read(
        &config_dir().join("gateway").join("gateway.toml"),
    ))
    .unwrap_or_else(|e| panic!("gateway/gateway.toml: {e}"));
    config
        .check()
        .unwrap_or_else(|e| panic!("gateway/gateway.toml: {e}"));
    let rest_host = config
        .rest_url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        services.contains_key(&rest_host),
        "gateway rest_url {} is not a compose service",
        config.rest_url
    );
    assert!(
        config.mqtt.iter().all(|b| services.contains_key(&b.host)),
        "gateway brokers must be compose services"
    );
}

#[test]
fn deploy_guide_names_each_command_in_order() {
    let guide = read(&root().join("docs").join("deploy-sawtooth.md"));
    let order = [
        "sawadm keygen",
        "sawtooth keygen",
        "sawset genesis",
        "sawset proposal create",
        "sawtooth identity policy create",
        "sawtooth identity role create",
        "sawadm genesis",
        "docker compose build",
        "docker compose up",
        "coldchain org create",
        "coldchain org add-agent",
        "sawset proposal vote",
    ];
    let mut from = 0;
    for command in order {
        let at = guide[from..].find(command).unwrap_or_else(|| {
            panic!("deploy-sawtooth.md does not name {command:?} after the previous step")
        });
        from += at + command.len();
    }
    for needed in [
        "sawtooth.consensus.pbft.members",
        "coldchain.admins",
        "#158",
        "1.0.3",
        "transactor.batch_signer",
        "--url",
    ] {
        assert!(
            guide.contains(needed),
            "deploy-sawtooth.md never mentions {needed}"
        );
    }
}
