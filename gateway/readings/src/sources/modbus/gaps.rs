//! Polls that gave no reading (gaps), why, and the per-device counters behind
//! `/metrics`. A gap is never a reading: the device's next good poll simply
//! carries the next sequence number, and the hole in time stays visible.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Why a poll gave no reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GapKind {
    /// No answer within `response_timeout_ms`.
    Timeout,
    /// An answer arrived but its CRC-16 was wrong.
    CrcError,
    /// The slave answered with a Modbus exception (illegal address, device failure…).
    Exception,
    /// An answer with a good CRC that does not fit the request (wrong unit,
    /// function or length), or bytes that are no frame at all.
    BadFrame,
    /// The registers decoded to no temperature (float NaN or infinity).
    BadValue,
    /// The serial port could not be opened or failed.
    PortError,
}

impl GapKind {
    pub const ALL: [GapKind; 6] = [
        GapKind::Timeout,
        GapKind::CrcError,
        GapKind::Exception,
        GapKind::BadFrame,
        GapKind::BadValue,
        GapKind::PortError,
    ];

    /// Stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            GapKind::Timeout => "timeout",
            GapKind::CrcError => "crc_error",
            GapKind::Exception => "exception",
            GapKind::BadFrame => "bad_frame",
            GapKind::BadValue => "bad_value",
            GapKind::PortError => "port_error",
        }
    }
}

/// What went wrong when a request got no usable answer, judged from the bytes
/// the line carried back: nothing at all is a timeout; a frame whose last two
/// bytes are not its CRC-16/MODBUS is a CRC error; anything else is a bad frame.
pub fn classify_failed_answer(received: &[u8]) -> GapKind {
    if received.is_empty() {
        return GapKind::Timeout;
    }
    if received.len() >= 4 {
        let (body, crc) = received.split_at(received.len() - 2);
        if crc16_modbus(body).to_le_bytes() != crc {
            return GapKind::CrcError;
        }
    }
    GapKind::BadFrame
}

/// CRC-16/MODBUS (reflected polynomial 0xA001, initial 0xFFFF), sent low byte first.
pub fn crc16_modbus(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// One per-device series: name, help, value.
type DeviceSeries = (&'static str, &'static str, fn(&DeviceCounts) -> u64);

#[derive(Clone, Copy, Debug, Default)]
struct DeviceCounts {
    polls: u64,
    readings: u64,
    missed_polls: u64,
    gaps: [u64; GapKind::ALL.len()],
}

/// Counters per Modbus device, rendered into `/metrics`.
#[derive(Default)]
pub struct ModbusCounters {
    devices: Mutex<BTreeMap<String, DeviceCounts>>,
}

impl ModbusCounters {
    fn update(&self, device: &str, change: impl FnOnce(&mut DeviceCounts)) {
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        change(devices.entry(device.to_string()).or_default());
    }

    /// A device is configured (its series show zeros before the first poll).
    pub fn register(&self, device: &str) {
        self.update(device, |_| {});
    }

    /// A poll was sent and gave a reading.
    pub fn reading(&self, device: &str) {
        self.update(device, |c| {
            c.polls += 1;
            c.readings += 1;
        });
    }

    /// A poll was due (or sent) and gave no reading.
    pub fn gap(&self, device: &str, kind: GapKind) {
        self.update(device, |c| {
            c.polls += 1;
            c.gaps[kind as usize] += 1;
        });
    }

    /// Poll slots that passed without a poll (the line was too busy).
    pub fn missed(&self, device: &str, slots: u64) {
        if slots > 0 {
            self.update(device, |c| c.missed_polls += slots);
        }
    }

    fn counts(&self, device: &str) -> DeviceCounts {
        let devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        devices.get(device).copied().unwrap_or_default()
    }

    pub fn gaps(&self, device: &str, kind: GapKind) -> u64 {
        self.counts(device).gaps[kind as usize]
    }

    pub fn readings(&self, device: &str) -> u64 {
        self.counts(device).readings
    }

    pub fn missed_polls(&self, device: &str) -> u64 {
        self.counts(device).missed_polls
    }

    /// The Prometheus series (nothing when no Modbus device is configured).
    pub fn render(&self, out: &mut String) {
        let devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        if devices.is_empty() {
            return;
        }
        let series: [DeviceSeries; 3] = [
            (
                "coldchain_gateway_modbus_polls_total",
                "Modbus polls sent (each gives a reading or a gap).",
                |c| c.polls,
            ),
            (
                "coldchain_gateway_modbus_readings_total",
                "Modbus polls that gave a reading.",
                |c| c.readings,
            ),
            (
                "coldchain_gateway_modbus_missed_polls_total",
                "Modbus poll slots that passed without a poll (line too busy for the configured intervals).",
                |c| c.missed_polls,
            ),
        ];
        for (name, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (device, counts) in devices.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{device=\"{}\"}} {}",
                    label(device),
                    value(counts)
                );
            }
        }
        let name = "coldchain_gateway_modbus_gaps_total";
        let _ = writeln!(
            out,
            "# HELP {name} Modbus polls that gave no reading, by device and kind.\n# TYPE {name} counter"
        );
        for (device, counts) in devices.iter() {
            for kind in GapKind::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{device=\"{}\",kind=\"{}\"}} {}",
                    label(device),
                    kind.label(),
                    counts.gaps[kind as usize]
                );
            }
        }
    }
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_answers_are_told_apart() {
        assert_eq!(classify_failed_answer(&[]), GapKind::Timeout);
        let mut frame = vec![0x01, 0x03, 0x02, 0x00, 0xE1];
        frame.extend_from_slice(&crc16_modbus(&frame).to_le_bytes());
        assert_eq!(classify_failed_answer(&frame), GapKind::BadFrame);
        let n = frame.len();
        frame[n - 1] ^= 0xFF;
        assert_eq!(classify_failed_answer(&frame), GapKind::CrcError);
        assert_eq!(classify_failed_answer(&[0x01, 0x03]), GapKind::BadFrame);
    }

    #[test]
    fn counters_render_per_device_and_kind() {
        let counters = ModbusCounters::default();
        counters.register("CR-2");
        counters.reading("CR-1");
        counters.gap("CR-1", GapKind::Timeout);
        counters.gap("CR-1", GapKind::Timeout);
        counters.missed("CR-1", 3);
        let mut out = String::new();
        counters.render(&mut out);
        assert!(
            out.contains("coldchain_gateway_modbus_polls_total{device=\"CR-1\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("coldchain_gateway_modbus_gaps_total{device=\"CR-1\",kind=\"timeout\"} 2")
        );
        assert!(out
            .contains("coldchain_gateway_modbus_gaps_total{device=\"CR-2\",kind=\"crc_error\"} 0"));
        assert!(out.contains("coldchain_gateway_modbus_missed_polls_total{device=\"CR-1\"} 3"));
        assert_eq!(counters.gaps("CR-1", GapKind::Timeout), 2);
    }
}
