//! A real embedded coldchain node for end-to-end tests, with the sensor
//! family's prerequisites (organisation's device attached to a shipment with a
//! 2–8 °C profile, gateway grant) written as genesis state.
use coldchain_node::{Node, NodeConfig, NodeHandle};
use coldchain_processors::addressing::{gateway_key, RecordKind};
use coldchain_processors::messages::coldchain::{
    Device, GatewayGrant, Shipment, ShipmentStatus, StorageProfile, ThermalRecord,
};
use protobuf::Message;
use std::path::Path;

pub const ORG: &str = "carrier";

pub fn shipment_of(device: &str) -> String {
    format!("S-{device}")
}

fn genesis(devices: &[&str], gateway_public_key: &str) -> Vec<(String, Vec<u8>)> {
    let mut leaves = Vec::new();
    let mut grant = GatewayGrant::new();
    grant.set_org_id(ORG.into());
    grant.set_public_key(gateway_public_key.into());
    leaves.push((
        RecordKind::GatewayGrant.address(&gateway_key(ORG, gateway_public_key)),
        grant.write_to_bytes().unwrap(),
    ));
    for device in devices {
        let mut record = Device::new();
        record.set_device_id(device.to_string());
        record.set_org_id(ORG.into());
        record.set_attached_shipment_id(shipment_of(device));
        leaves.push((
            RecordKind::Device.address(device),
            record.write_to_bytes().unwrap(),
        ));
        let mut profile = StorageProfile::new();
        profile.set_name("refrigerated 2-8 C".into());
        profile.set_min_cdeg(200);
        profile.set_max_cdeg(800);
        let mut shipment = Shipment::new();
        shipment.set_shipment_id(shipment_of(device));
        shipment.set_profile(profile);
        shipment.set_status(ShipmentStatus::IN_TRANSIT);
        shipment.set_custodian_org_id(ORG.into());
        shipment.set_device_ids(vec![device.to_string()].into());
        leaves.push((
            RecordKind::Shipment.address(&shipment_of(device)),
            shipment.write_to_bytes().unwrap(),
        ));
    }
    leaves
}

/// A node config in `data_dir` serving REST on `rest_port` (0 = any), with
/// the coldchain families in-process and the devices' prerequisites as genesis.
pub fn node_config(
    data_dir: &Path,
    rest_port: u16,
    devices: &[&str],
    gateway_public_key: &str,
) -> NodeConfig {
    let mut config = NodeConfig::new(data_dir);
    config.rest_api = std::net::SocketAddr::from(([127, 0, 0, 1], rest_port));
    config.component = format!("tcp://127.0.0.1:{}", super::free_port());
    config.handlers = coldchain_processors::family_handlers();
    config.genesis_leaves = genesis(devices, gateway_public_key);
    config
}

/// Starts a node in `data_dir` serving REST on `rest_port` (0 = any).
pub async fn start_node(
    data_dir: &Path,
    rest_port: u16,
    devices: &[&str],
    gateway_public_key: &str,
) -> NodeHandle {
    let config = node_config(data_dir, rest_port, devices, gateway_public_key);
    tokio::task::spawn_blocking(move || Node::start(config))
        .await
        .unwrap()
        .expect("start the embedded node")
}

/// The device's recorded last sequence and its shipment's thermal reading count.
pub async fn recorded(rest_url: &str, device: &str) -> (u64, u64) {
    let ledger =
        coldchain_gateway::ledger::Ledger::new(rest_url, std::time::Duration::from_secs(5))
            .unwrap();
    let last = ledger
        .device(device)
        .await
        .ok()
        .flatten()
        .map(|d| d.get_last_sequence())
        .unwrap_or(0);
    let thermal = ledger
        .state(&RecordKind::ShipmentThermal.address(&shipment_of(device)))
        .await
        .ok()
        .flatten()
        .and_then(|bytes| ThermalRecord::parse_from_bytes(&bytes).ok())
        .map(|t| t.get_reading_count())
        .unwrap_or(0);
    (last, thermal)
}
