//! Where each record lives in Sawtooth state.
//!
//! An address is 70 hex characters: the family namespace (first 6 hex of
//! `sha512(family name)`), a 2-hex type prefix, then the first 62 hex of
//! `sha512(natural key)`. Natural keys are documented per record below and in
//! `docs/families.md`. Settings use Sawtooth's own settings-family scheme.
use sha2::{Digest, Sha256, Sha512};

/// Family name of the registry processor (participants, devices, lots, blood units).
pub const REGISTRY_FAMILY: &str = "coldchain-registry";
/// Family name of the custody processor (shipments, hand-offs, dispensing, blood requests).
pub const CUSTODY_FAMILY: &str = "coldchain-custody";
/// Family name of the sensor processor (readings and the thermal records they update).
pub const SENSOR_FAMILY: &str = "coldchain-sensor";
/// The version the registry and custody families speak.
pub const FAMILY_VERSION: &str = "1.0";
/// The version the sensor family speaks: 1.1 keeps one thermal track per logger
/// (1.0 merged all loggers of a shipment into one record; see
/// `docs/families-sensor.md` for the cut-over).
pub const SENSOR_FAMILY_VERSION: &str = "1.1";
/// The sensor family's first version, still served so blocks written with it
/// replay (merged records, no tracks; see `docs/families-sensor.md`).
pub const SENSOR_FAMILY_VERSION_1_0: &str = "1.0";

/// The on-chain setting holding the comma-separated public keys of network admins.
pub const ADMINS_SETTING: &str = "coldchain.admins";

/// First 6 hex characters of `sha512(family)`.
pub fn namespace(family: &str) -> String {
    hex::encode(Sha512::digest(family.as_bytes()))[..6].to_string()
}

/// Record kinds and their 2-hex type prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// key: org id
    Organization,
    /// key: GLN
    Site,
    /// key: public key hex
    Agent,
    /// key: device id
    Device,
    /// key: `org_id/public_key`
    GatewayGrant,
    /// key: `gtin14/lot`
    Lot,
    /// key: `gtin14/serial`
    Pack,
    /// key: donation id
    BloodUnit,
    /// key: shipment id
    Shipment,
    /// key: request id
    EmergencyRequest,
    /// key: offer id
    BloodOffer,
    /// key: shipment id
    ShipmentThermal,
    /// key: `gtin14/lot`, or a donation id for a blood unit
    GoodsThermal,
}

impl RecordKind {
    /// The family whose namespace holds this record.
    pub fn family(self) -> &'static str {
        use RecordKind::*;
        match self {
            Organization | Site | Agent | Device | GatewayGrant | Lot | Pack | BloodUnit => {
                REGISTRY_FAMILY
            }
            Shipment | EmergencyRequest | BloodOffer => CUSTODY_FAMILY,
            ShipmentThermal | GoodsThermal => SENSOR_FAMILY,
        }
    }

    /// The 2-hex type prefix following the namespace.
    pub fn prefix(self) -> &'static str {
        use RecordKind::*;
        match self {
            Organization => "00",
            Site => "01",
            Agent => "02",
            Device => "03",
            GatewayGrant => "04",
            Lot => "05",
            Pack => "06",
            BloodUnit => "07",
            Shipment => "10",
            EmergencyRequest => "11",
            BloodOffer => "12",
            ShipmentThermal => "20",
            GoodsThermal => "21",
        }
    }

    /// Namespace + type prefix: 8 hex characters naming every record of this kind.
    pub fn address_prefix(self) -> String {
        format!("{}{}", namespace(self.family()), self.prefix())
    }

    /// The 70-hex address of the record with natural key `key`.
    pub fn address(self, key: &str) -> String {
        // A hot path (several addresses per readings transaction): the family
        // namespace is hashed once, and only the 31 digest bytes used are encoded.
        static NAMESPACES: std::sync::OnceLock<[String; 3]> = std::sync::OnceLock::new();
        let namespaces = NAMESPACES.get_or_init(|| {
            [
                namespace(REGISTRY_FAMILY),
                namespace(CUSTODY_FAMILY),
                namespace(SENSOR_FAMILY),
            ]
        });
        let family = match self.family() {
            REGISTRY_FAMILY => &namespaces[0],
            CUSTODY_FAMILY => &namespaces[1],
            _ => &namespaces[2],
        };
        let digest = Sha512::digest(key.as_bytes());
        let mut text = [0u8; 62];
        let mut address = String::with_capacity(70);
        address.push_str(family);
        address.push_str(self.prefix());
        if hex::encode_to_slice(&digest[..31], &mut text).is_ok() {
            address.push_str(std::str::from_utf8(&text).unwrap_or_default());
        }
        address
    }
}

/// Natural key of a lot or pack: `gtin14/rest`.
pub fn goods_key(gtin14: &str, rest: &str) -> String {
    format!("{gtin14}/{rest}")
}

/// Natural key of a gateway grant.
pub fn gateway_key(org_id: &str, public_key: &str) -> String {
    format!("{org_id}/{public_key}")
}

/// The address at which the Sawtooth settings family stores setting `key`:
/// `000000` then, for each of up to four dot-separated parts (padded with empty
/// parts), the first 16 hex of its SHA-256.
pub fn setting_address(key: &str) -> String {
    const MAX_PARTS: usize = 4;
    let mut parts: Vec<&str> = key.splitn(MAX_PARTS, '.').collect();
    while parts.len() < MAX_PARTS {
        parts.push("");
    }
    let mut address = String::from("000000");
    for part in parts {
        address.push_str(&hex::encode(Sha256::digest(part.as_bytes()))[..16]);
    }
    address
}

/// True when `address` is a well-formed 70-hex state address.
pub fn is_address(address: &str) -> bool {
    address.len() == 70
        && address
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_70_hex_under_the_family_namespace() {
        let address = RecordKind::Lot.address("09501101530003/L1");
        assert!(is_address(&address));
        assert!(address.starts_with(&namespace(REGISTRY_FAMILY)));
        assert_eq!(&address[6..8], "05");
    }

    #[test]
    fn settings_address_matches_sawtooth_scheme() {
        // sawtooth.settings.vote.authorized_keys, as documented by Sawtooth.
        assert_eq!(
            setting_address("sawtooth.settings.vote.authorized_keys"),
            "000000a87cb5eafdcca6a8cde0fb0dec1400c5ab274474a6aa82c12840f169a04216b7"
        );
        assert_eq!(setting_address(ADMINS_SETTING).len(), 70);
    }

    #[test]
    fn namespaces_differ_per_family() {
        let ns: Vec<String> = [REGISTRY_FAMILY, CUSTODY_FAMILY, SENSOR_FAMILY]
            .iter()
            .map(|f| namespace(f))
            .collect();
        assert_ne!(ns[0], ns[1]);
        assert_ne!(ns[1], ns[2]);
        assert_ne!(ns[0], ns[2]);
    }
}
