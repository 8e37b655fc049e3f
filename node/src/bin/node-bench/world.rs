//! The bench world: devices, a gateway grant, shipments and lots seeded in
//! the genesis state (as the sensor family's own benchmark does), and the
//! signed readings transactions a gateway would send for them.
use coldchain_processors::addressing::{gateway_key, goods_key, RecordKind};
use coldchain_processors::messages::coldchain::{
    Device, GatewayGrant, Lot, LotRef, LotStatus, Reading, RecordReadings, Shipment, StorageProfile,
};
use coldchain_processors::sensor::record_readings_spec;
use coldchain_processors::signing::{sign_transaction, Signer, TransactionSpec};
use coldchain_processors::state;
use sawtooth_sdk::messages::transaction::Transaction;

pub const ORG: &str = "carrier-1";
const GTIN: &str = "09501101530003";
pub const READINGS_PER_TX: u64 = 100;

fn profile() -> StorageProfile {
    let mut p = StorageProfile::new();
    p.name = "refrigerated 2-8 C".to_string();
    p.min_cdeg = 200;
    p.max_cdeg = 800;
    p.max_single_high_s = 3_600;
    p.max_single_low_s = 3_600;
    p.max_cumulative_high_s = u64::MAX / 2;
    p.max_cumulative_low_s = u64::MAX / 2;
    p.has_mkt_limit = true;
    p.mkt_limit_cdeg = 800;
    p.max_gap_s = 900;
    p
}

fn encode<M: protobuf::Message>(record: &M) -> anyhow::Result<Vec<u8>> {
    state::encode(record).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Genesis leaves: `devices` devices `D-i` attached to shipments `S-i`, each
/// carrying lots `L-i-a` and `L-i-b`, and the gateway granted for the org.
pub fn seed(gateway: &str, devices: usize) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut leaves = Vec::new();
    let mut grant = GatewayGrant::new();
    grant.org_id = ORG.to_string();
    grant.public_key = gateway.to_string();
    leaves.push((
        RecordKind::GatewayGrant.address(&gateway_key(ORG, gateway)),
        encode(&grant)?,
    ));
    for i in 0..devices {
        let (device_id, shipment_id) = (format!("D-{i}"), format!("S-{i}"));
        let mut device = Device::new();
        device.device_id = device_id.clone();
        device.org_id = ORG.to_string();
        device.attached_shipment_id = shipment_id.clone();
        leaves.push((RecordKind::Device.address(&device_id), encode(&device)?));
        let mut shipment = Shipment::new();
        shipment.shipment_id = shipment_id.clone();
        shipment.set_profile(profile());
        for suffix in ["a", "b"] {
            let name = format!("L-{i}-{suffix}");
            let mut lot_ref = LotRef::new();
            lot_ref.gtin = GTIN.to_string();
            lot_ref.lot = name.clone();
            shipment.lots.push(lot_ref);
            let mut lot = Lot::new();
            lot.gtin = GTIN.to_string();
            lot.lot = name.clone();
            lot.status = LotStatus::ACTIVE;
            lot.set_profile(profile());
            leaves.push((
                RecordKind::Lot.address(&goods_key(GTIN, &name)),
                encode(&lot)?,
            ));
        }
        leaves.push((
            RecordKind::Shipment.address(&shipment_id),
            encode(&shipment)?,
        ));
    }
    Ok(leaves)
}

/// The `n`-th readings transaction (0-based) of device `device`: 100
/// readings a minute apart, in spec, continuing the device's sequence.
pub fn readings_transaction(
    gateway: &Signer,
    device: usize,
    n: u64,
) -> anyhow::Result<Transaction> {
    let mut readings = RecordReadings::new();
    readings.device_id = format!("D-{device}");
    readings.shipment_id = format!("S-{device}");
    for k in 0..READINGS_PER_TX {
        let i = n * READINGS_PER_TX + k;
        let mut reading = Reading::new();
        reading.sequence = i + 1;
        reading.time_s = 1_700_000_000 + i * 60;
        reading.temperature_cdeg = 450 + (i % 7) as i32 * 10;
        readings.readings.push(reading);
    }
    let spec = record_readings_spec(&readings, ORG, gateway.public_key());
    Ok(sign_transaction(spec, gateway, gateway.public_key())?)
}

/// A probe transaction with a ~2 KB payload.
pub fn probe_transaction(signer: &Signer, device: usize, n: u64) -> anyhow::Result<Transaction> {
    use coldchain_node::testing::{probe_address, probe_payload, PROBE_FAMILY, PROBE_VERSION};
    let name = format!("probe-{device}-{n}");
    let spec = TransactionSpec {
        family_name: PROBE_FAMILY.into(),
        family_version: PROBE_VERSION.into(),
        inputs: vec![probe_address(&name)],
        outputs: vec![probe_address(&name)],
        dependencies: vec![],
        payload: probe_payload(&name, &[7u8; 2000]),
    };
    Ok(sign_transaction(spec, signer, signer.public_key())?)
}
