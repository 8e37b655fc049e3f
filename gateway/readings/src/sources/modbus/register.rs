//! What the gateway polls on a Modbus RTU line and how a register's value
//! becomes a temperature: the `[[modbus]]` configuration, its checks, and the
//! decoding of register words into hundredths of °C. Pure: no I/O.
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Shortest poll interval: below it a line with a few devices is all polls.
pub const MIN_POLL_INTERVAL_MS: u64 = 100;
/// Longest poll interval (one hour).
pub const MAX_POLL_INTERVAL_MS: u64 = 3_600_000;
/// Largest `scale` (register = °C × scale).
pub const MAX_SCALE: u32 = 10_000;

/// One RS-485 line (serial port) and the transmitters on it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusLineConfig {
    /// Serial device, e.g. `/dev/ttyUSB0`.
    pub path: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// `none`, `even` (the Modbus default) or `odd`.
    #[serde(default)]
    pub parity: Parity,
    /// 1 or 2; default 1 with parity, 2 without (Modbus over Serial Line §2.5.1).
    pub stop_bits: Option<u8>,
    /// How long to wait for an answer before the poll is a `timeout` gap.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// Devices of one unit id with adjacent registers (same function and
    /// interval) are read with one request of up to this many registers;
    /// 1 reads every device on its own. At most 125 (Modbus' limit for 0x03/0x04).
    #[serde(default = "default_max_registers_per_request")]
    pub max_registers_per_request: u16,
    /// The registers polled on this line, one per device.
    pub devices: Vec<ModbusDeviceConfig>,
}

/// One transmitter (one temperature register) on a line.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusDeviceConfig {
    /// Our device id (route it under `[devices]` or attach it on the ledger).
    pub device: String,
    /// Modbus slave address, 1-247.
    pub unit_id: u8,
    /// Register address as sent on the wire (0-based: register 40001 is `0`).
    pub register: u16,
    /// `holding` (function 0x03) or `input` (function 0x04).
    #[serde(default)]
    pub function: RegisterFunction,
    /// `int16`, `uint16` or `float32` (two registers).
    pub data_type: DataType,
    /// For `float32`: `high_word_first` (the Modbus convention, default) or `low_word_first`.
    #[serde(default)]
    pub word_order: WordOrder,
    /// The register holds °C × `scale` (10: tenths of a degree), 1-10000.
    #[serde(default = "default_scale")]
    pub scale: u32,
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    #[default]
    Even,
    Odd,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RegisterFunction {
    /// Read holding registers, 0x03.
    #[default]
    Holding,
    /// Read input registers, 0x04.
    Input,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Int16,
    Uint16,
    /// IEEE 754 single precision over two registers.
    Float32,
}

impl DataType {
    /// Registers one value takes.
    pub fn registers(self) -> u16 {
        match self {
            DataType::Int16 | DataType::Uint16 => 1,
            DataType::Float32 => 2,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    #[default]
    HighWordFirst,
    LowWordFirst,
}

fn default_baud() -> u32 {
    9600
}
fn default_response_timeout_ms() -> u64 {
    500
}
fn default_max_registers_per_request() -> u16 {
    125
}
fn default_scale() -> u32 {
    1
}
fn default_poll_interval_ms() -> u64 {
    10_000
}

impl ModbusLineConfig {
    /// Stop bits actually used.
    pub fn stop_bits(&self) -> u8 {
        self.stop_bits
            .unwrap_or(if self.parity == Parity::None { 2 } else { 1 })
    }

    /// Bits one character takes on the line (start, 8 data, parity, stop).
    pub fn bits_per_char(&self) -> u32 {
        1 + 8 + (self.parity != Parity::None) as u32 + self.stop_bits() as u32
    }

    /// Refuses what cannot be polled, naming the line, the device and the key.
    /// `seen` collects device ids across lines (a device is polled once).
    pub fn check(&self, seen: &mut BTreeSet<String>) -> Result<(), String> {
        let line = format!("[[modbus]] {}", self.path.display());
        if !(300..=1_000_000).contains(&self.baud) {
            return Err(format!(
                "{line}: baud {} is not a serial speed; use e.g. 9600, 19200 or 115200",
                self.baud
            ));
        }
        if !matches!(self.stop_bits(), 1 | 2) {
            return Err(format!(
                "{line}: stop_bits {} must be 1 or 2",
                self.stop_bits()
            ));
        }
        if !(10..=10_000).contains(&self.response_timeout_ms) {
            return Err(format!(
                "{line}: response_timeout_ms {} must be between 10 and 10000",
                self.response_timeout_ms
            ));
        }
        if !(1..=125).contains(&self.max_registers_per_request) {
            return Err(format!(
                "{line}: max_registers_per_request {} must be between 1 and 125",
                self.max_registers_per_request
            ));
        }
        if self.devices.is_empty() {
            return Err(format!(
                "{line} lists no devices; add [[modbus.devices]] entries or remove the line"
            ));
        }
        for device in &self.devices {
            device.check(&line)?;
            if !seen.insert(device.device.clone()) {
                return Err(format!(
                    "{line}: device {:?} is configured twice; each device has one register",
                    device.device
                ));
            }
        }
        Ok(())
    }
}

impl ModbusDeviceConfig {
    fn check(&self, line: &str) -> Result<(), String> {
        let at = format!("{line} device {:?}", self.device);
        if self.device.is_empty() {
            return Err(format!("{line}: a device has an empty `device` id"));
        }
        if !(1..=247).contains(&self.unit_id) {
            return Err(format!(
                "{at}: unit_id {} must be between 1 and 247 (0 is broadcast, 248-255 are reserved)",
                self.unit_id
            ));
        }
        let last = self.register as u32 + self.data_type.registers() as u32 - 1;
        if last > u16::MAX as u32 {
            return Err(format!(
                "{at}: register {} with data_type {:?} runs past register 65535",
                self.register, self.data_type
            ));
        }
        if !(1..=MAX_SCALE).contains(&self.scale) {
            return Err(format!(
                "{at}: scale {} must be between 1 and {MAX_SCALE} (the register holds °C × scale)",
                self.scale
            ));
        }
        if !(MIN_POLL_INTERVAL_MS..=MAX_POLL_INTERVAL_MS).contains(&self.poll_interval_ms) {
            return Err(format!(
                "{at}: poll_interval_ms {} must be between {MIN_POLL_INTERVAL_MS} and {MAX_POLL_INTERVAL_MS}",
                self.poll_interval_ms
            ));
        }
        Ok(())
    }
}

/// Registers read with one request, and the devices they hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollGroup {
    pub unit_id: u8,
    pub function: RegisterFunction,
    pub start: u16,
    pub count: u16,
    pub interval_ms: u64,
    /// (index into the line's devices, offset of its first register from `start`).
    pub members: Vec<(usize, u16)>,
}

/// Groups a line's devices into requests: devices of one unit id, function
/// and poll interval whose registers follow each other without a hole (a
/// hole could be an unmapped address, answered with exception 0x02) share a
/// request of at most `max_registers` registers. Ordered by unit id, then
/// function, interval and address.
pub fn group_polls(devices: &[ModbusDeviceConfig], max_registers: u16) -> Vec<PollGroup> {
    let mut order: Vec<usize> = (0..devices.len()).collect();
    order.sort_by_key(|&i| {
        let d = &devices[i];
        (
            d.unit_id,
            d.function == RegisterFunction::Input,
            d.poll_interval_ms,
            d.register,
        )
    });
    let mut groups: Vec<PollGroup> = Vec::new();
    for i in order {
        let d = &devices[i];
        let n = d.data_type.registers();
        if let Some(group) = groups.last_mut() {
            let end = group.start as u32 + group.count as u32;
            if group.unit_id == d.unit_id
                && group.function == d.function
                && group.interval_ms == d.poll_interval_ms
                && d.register as u32 == end
                && group.count as u32 + n as u32 <= max_registers as u32
            {
                group.members.push((i, group.count));
                group.count += n;
                continue;
            }
        }
        groups.push(PollGroup {
            unit_id: d.unit_id,
            function: d.function,
            start: d.register,
            count: n,
            interval_ms: d.poll_interval_ms,
            members: vec![(i, 0)],
        });
    }
    groups
}

/// Converts the register words read for `device` to hundredths of °C.
///
/// Integers: `raw × 100 / scale` in integer arithmetic, rounded half away
/// from zero (scale 10: 0.1 °C steps become exact centi-degrees; scale 3:
/// 1/3 °C = 33.33… → 33). Float32: the IEEE value × 100 / scale computed in
/// f64 (exact for every f32 and scale ≤ 10000 to well below 0.01), then
/// rounded half away from zero; NaN, infinities and values outside i32 are
/// refused (a sensor fault, never a reading).
pub fn to_cdeg(device: &ModbusDeviceConfig, words: &[u16]) -> Result<i32, String> {
    if words.len() != device.data_type.registers() as usize {
        return Err(format!(
            "expected {} register(s), got {}",
            device.data_type.registers(),
            words.len()
        ));
    }
    let scale = device.scale as i64;
    match device.data_type {
        DataType::Int16 => Ok(divide_rounded(words[0] as i16 as i64 * 100, scale) as i32),
        DataType::Uint16 => Ok(divide_rounded(words[0] as i64 * 100, scale) as i32),
        DataType::Float32 => {
            let (high, low) = match device.word_order {
                WordOrder::HighWordFirst => (words[0], words[1]),
                WordOrder::LowWordFirst => (words[1], words[0]),
            };
            let value = f32::from_bits(((high as u32) << 16) | low as u32);
            let cdeg = (value as f64 * 100.0 / scale as f64).round();
            if !cdeg.is_finite() || cdeg < i32::MIN as f64 || cdeg > i32::MAX as f64 {
                return Err(format!("float32 value {value} is not a temperature"));
            }
            Ok(cdeg as i32)
        }
    }
}

/// `numerator / denominator` rounded half away from zero (`denominator` > 0).
fn divide_rounded(numerator: i64, denominator: i64) -> i64 {
    let half = denominator / 2;
    if numerator >= 0 {
        (numerator + half) / denominator
    } else {
        (numerator - half) / denominator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(data_type: DataType, scale: u32) -> ModbusDeviceConfig {
        ModbusDeviceConfig {
            device: "CR-1".into(),
            unit_id: 1,
            register: 0,
            function: RegisterFunction::Holding,
            data_type,
            word_order: WordOrder::HighWordFirst,
            scale,
            poll_interval_ms: 1000,
        }
    }

    #[test]
    fn integer_registers_become_centi_degrees() {
        let tenths = device(DataType::Int16, 10);
        assert_eq!(to_cdeg(&tenths, &[45]), Ok(450));
        assert_eq!(to_cdeg(&tenths, &[(-183i16) as u16]), Ok(-1830));
        let unsigned = device(DataType::Uint16, 10);
        assert_eq!(to_cdeg(&unsigned, &[(-183i16) as u16]), Ok(653_530));
        let thirds = device(DataType::Int16, 3);
        assert_eq!(to_cdeg(&thirds, &[1]), Ok(33));
        assert_eq!(to_cdeg(&thirds, &[2]), Ok(67));
        assert_eq!(to_cdeg(&thirds, &[(-2i16) as u16]), Ok(-67));
        let whole = device(DataType::Int16, 1);
        assert_eq!(to_cdeg(&whole, &[i16::MIN as u16]), Ok(-3_276_800));
    }

    #[test]
    fn float_registers_in_either_word_order() {
        let bits = 4.56f32.to_bits();
        let (high, low) = ((bits >> 16) as u16, bits as u16);
        let mut float = device(DataType::Float32, 1);
        assert_eq!(to_cdeg(&float, &[high, low]), Ok(456));
        float.word_order = WordOrder::LowWordFirst;
        assert_eq!(to_cdeg(&float, &[low, high]), Ok(456));
        // The float's own value is rounded: 4.555 as f32 is 4.55499982…
        let halfway = 4.555f32.to_bits();
        let mut whole = device(DataType::Float32, 1);
        whole.word_order = WordOrder::HighWordFirst;
        assert_eq!(
            to_cdeg(&whole, &[(halfway >> 16) as u16, halfway as u16]),
            Ok(455)
        );
        let nan = f32::NAN.to_bits();
        assert!(to_cdeg(&float, &[nan as u16, (nan >> 16) as u16]).is_err());
        assert!(to_cdeg(&float, &[1]).is_err());
    }

    fn line(devices: Vec<ModbusDeviceConfig>) -> ModbusLineConfig {
        ModbusLineConfig {
            path: "/dev/ttyUSB0".into(),
            baud: 9600,
            parity: Parity::Even,
            stop_bits: None,
            response_timeout_ms: 500,
            max_registers_per_request: 125,
            devices,
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let check = |d: ModbusDeviceConfig| line(vec![d]).check(&mut BTreeSet::new());
        let mut d = device(DataType::Int16, 10);
        assert!(check(d.clone()).is_ok());
        d.unit_id = 0;
        assert!(check(d.clone())
            .unwrap_err()
            .contains("unit_id 0 must be between 1 and 247"));
        d.unit_id = 248;
        assert!(check(d.clone()).is_err());
        d.unit_id = 7;
        d.data_type = DataType::Float32;
        d.register = 65535;
        assert!(check(d.clone())
            .unwrap_err()
            .contains("runs past register 65535"));
        d.register = 65534;
        assert!(check(d.clone()).is_ok());
        d.poll_interval_ms = 50;
        assert!(check(d.clone())
            .unwrap_err()
            .contains("poll_interval_ms 50"));
        d.poll_interval_ms = 1000;
        d.scale = 0;
        assert!(check(d.clone()).unwrap_err().contains("scale 0"));
        let twice = line(vec![device(DataType::Int16, 1), device(DataType::Int16, 1)]);
        assert!(twice
            .check(&mut BTreeSet::new())
            .unwrap_err()
            .contains("configured twice"));
    }

    #[test]
    fn adjacent_registers_of_one_unit_share_a_request() {
        let at = |unit_id, register, data_type| ModbusDeviceConfig {
            unit_id,
            register,
            ..device(data_type, 10)
        };
        let devices = vec![
            at(2, 0, DataType::Int16),
            at(1, 1, DataType::Float32),
            at(1, 0, DataType::Int16),
            at(1, 4, DataType::Int16), // a hole at 3: its own request
            at(2, 1, DataType::Uint16),
        ];
        let groups = group_polls(&devices, 125);
        let spans = groups
            .iter()
            .map(|g| (g.unit_id, g.start, g.count, g.members.clone()));
        assert_eq!(
            spans.collect::<Vec<_>>(),
            vec![
                (1, 0, 3, vec![(2, 0), (1, 1)]),
                (1, 4, 1, vec![(3, 0)]),
                (2, 0, 2, vec![(0, 0), (4, 1)]),
            ]
        );
        assert_eq!(
            group_polls(&devices, 1).len(),
            5,
            "1 reads each device alone"
        );
        assert_eq!(
            group_polls(&devices, 2).len(),
            4,
            "a float does not fit after an int16"
        );
    }

    #[test]
    fn stop_bits_follow_parity() {
        let mut l = line(vec![]);
        assert_eq!((l.stop_bits(), l.bits_per_char()), (1, 11));
        l.parity = Parity::None;
        assert_eq!((l.stop_bits(), l.bits_per_char()), (2, 11));
        l.stop_bits = Some(1);
        assert_eq!(l.bits_per_char(), 10);
    }
}
