//! The client side of the sensor family: the transaction a gateway signs.
use protobuf::Message;

use crate::addressing::{gateway_key, RecordKind, SENSOR_FAMILY, SENSOR_FAMILY_VERSION};
use crate::messages::coldchain::{RecordReadings, SensorPayload, SensorPayload_oneof_action};
use crate::signing::TransactionSpec;

/// The encoded `SensorPayload` carrying `readings`.
pub fn record_readings_payload(readings: &RecordReadings) -> Vec<u8> {
    let mut payload = SensorPayload::new();
    payload.action = Some(SensorPayload_oneof_action::record_readings(
        readings.clone(),
    ));
    // proto3 messages have no required fields, so encoding cannot fail.
    payload.write_to_bytes().unwrap_or_default()
}

/// A readings transaction for a gateway to sign: exact addresses for the device,
/// the shipment, its thermal record and the gateway grant of `device_org_id`;
/// address prefixes for the lots, blood units and their thermal records, whose
/// keys the gateway does not know (Sawtooth accepts prefixes as inputs/outputs).
pub fn record_readings_spec(
    readings: &RecordReadings,
    device_org_id: &str,
    gateway_public_key: &str,
) -> TransactionSpec {
    let device = RecordKind::Device.address(&readings.device_id);
    let shipment = RecordKind::Shipment.address(&readings.shipment_id);
    let shipment_thermal = RecordKind::ShipmentThermal.address(&readings.shipment_id);
    let grant = RecordKind::GatewayGrant.address(&gateway_key(device_org_id, gateway_public_key));
    let goods = [
        RecordKind::Lot.address_prefix(),
        RecordKind::GoodsThermal.address_prefix(),
        RecordKind::BloodUnit.address_prefix(),
    ];
    let mut inputs = vec![device.clone(), shipment, shipment_thermal.clone(), grant];
    inputs.extend(goods.iter().cloned());
    let mut outputs = vec![device, shipment_thermal];
    outputs.extend(goods);
    TransactionSpec {
        family_name: SENSOR_FAMILY.to_string(),
        family_version: SENSOR_FAMILY_VERSION.to_string(),
        inputs,
        outputs,
        dependencies: Vec::new(),
        payload: record_readings_payload(readings),
    }
}
