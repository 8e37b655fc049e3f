//! A Modbus RTU slave on a pseudo-terminal: what a cold-room temperature
//! transmitter on an RS-485 line looks like to the gateway.
//!
//! It speaks real RTU frames: a request is the bytes that arrive before a
//! silence of 3.5 character times, checked with CRC-16/MODBUS, and answered
//! for function 0x03 (read holding registers) and 0x04 (read input registers).
//! Other functions get exception 0x01, unmapped registers exception 0x02, and
//! frames with a bad CRC or for another unit id are ignored, as on a real bus.
//!
//! A pty carries bytes instantly, so the slave paces the line itself: an
//! answer is written when its last character would have arrived at the
//! configured baud rate (request + 3.5-character frame gap + response), so a
//! master polling it sees the timing of a real line.
//!
//! Faults for tests, per unit id: stop answering, answer with an exception, or
//! answer with a corrupted CRC ([`SlaveBehaviour`]).
//!
//! Written from the Modbus specifications (Modbus Application Protocol V1.1b3,
//! Modbus over Serial Line V1.02), independently of the gateway's client.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF), sent low byte first.
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

/// `body` followed by its CRC (low byte first).
pub fn with_crc(body: &[u8]) -> Vec<u8> {
    let mut frame = body.to_vec();
    frame.extend_from_slice(&crc16_modbus(body).to_le_bytes());
    frame
}

/// How one unit id answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlaveBehaviour {
    /// Answers requests normally.
    Answer,
    /// Says nothing (a dead transmitter, a cut wire).
    Silent,
    /// Answers every request with this exception code (e.g. 0x04, slave device failure).
    Exception(u8),
    /// Answers normally but with the CRC inverted (noise on the line).
    CorruptCrc,
}

/// Bits a character takes on the line: start + 8 data + parity + stop bits.
pub fn bits_per_char(parity: bool, stop_bits: u32) -> u32 {
    1 + 8 + parity as u32 + stop_bits
}

/// The inter-frame silence (3.5 characters; fixed at 1.75 ms above 19200 baud,
/// as Modbus over Serial Line §2.5.1.1 recommends).
pub fn frame_gap(baud: u32, bits_per_char: u32) -> Duration {
    if baud > 19_200 {
        Duration::from_micros(1_750)
    } else {
        char_time(baud, bits_per_char) * 7 / 2
    }
}

/// Time one character takes on the line.
pub fn char_time(baud: u32, bits_per_char: u32) -> Duration {
    Duration::from_nanos(bits_per_char as u64 * 1_000_000_000 / baud.max(1) as u64)
}

/// A whole 0x03/0x04 request: unit, function, address, quantity and a good CRC.
fn is_complete_read_request(frame: &[u8]) -> bool {
    frame.len() == 8
        && matches!(frame[1], 0x03 | 0x04)
        && crc16_modbus(&frame[..6]).to_le_bytes() == frame[6..]
}

/// The answer to one request frame (CRC already checked), or `None` when the
/// slave stays silent. Pure: the register map and behaviour are passed in.
pub fn answer(
    request: &[u8],
    registers: &BTreeMap<(u8, u16), u16>,
    behaviour: SlaveBehaviour,
) -> Option<Vec<u8>> {
    let (&unit, rest) = request.split_first()?;
    let (&function, data) = rest.split_first()?;
    if unit == 0 || behaviour == SlaveBehaviour::Silent {
        // Broadcasts are never answered.
        return None;
    }
    let exception = |code: u8| Some(with_crc(&[unit, function | 0x80, code]));
    if let SlaveBehaviour::Exception(code) = behaviour {
        return exception(code);
    }
    if function != 0x03 && function != 0x04 {
        return exception(0x01);
    }
    if data.len() != 4 {
        return exception(0x03);
    }
    let start = u16::from_be_bytes([data[0], data[1]]);
    let count = u16::from_be_bytes([data[2], data[3]]);
    if !(1..=125).contains(&count) {
        return exception(0x03);
    }
    let mut body = vec![unit, function, (count * 2) as u8];
    for offset in 0..count {
        let Some(value) = start
            .checked_add(offset)
            .and_then(|a| registers.get(&(unit, a)))
        else {
            return exception(0x02);
        };
        body.extend_from_slice(&value.to_be_bytes());
    }
    let mut frame = with_crc(&body);
    if behaviour == SlaveBehaviour::CorruptCrc {
        let n = frame.len();
        frame[n - 2] ^= 0xFF;
        frame[n - 1] ^= 0xFF;
    }
    Some(frame)
}

struct SlaveState {
    /// (unit id, register address) → value; holding and input registers alike.
    registers: BTreeMap<(u8, u16), u16>,
    behaviour: BTreeMap<u8, SlaveBehaviour>,
}

/// A running slave (any number of unit ids) on a pty; stops when dropped.
pub struct ModbusSlave {
    path: String,
    state: Arc<Mutex<SlaveState>>,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _slave_end: std::fs::File,
}

impl ModbusSlave {
    /// Opens a pty pair and serves it at `baud` (8 data bits, even parity,
    /// one stop bit: 11 bits a character, the Modbus default).
    pub fn open(baud: u32) -> anyhow::Result<ModbusSlave> {
        if baud == 0 {
            anyhow::bail!("baud must be above 0 (e.g. 9600, 19200, 115200)");
        }
        let (master, slave_end, path) = open_pty()?;
        let state = Arc::new(Mutex::new(SlaveState {
            registers: BTreeMap::new(),
            behaviour: BTreeMap::new(),
        }));
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let line = Line {
            master,
            baud,
            bits_per_char: bits_per_char(true, 1),
            state: state.clone(),
            requests: requests.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("modbus-slave".into())
            .spawn(move || line.serve())?;
        Ok(ModbusSlave {
            path,
            state,
            requests,
            stop,
            thread: Some(thread),
            _slave_end: slave_end,
        })
    }

    /// The serial device to give the gateway (e.g. `/dev/pts/7`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sets a register of `unit` (served for both 0x03 and 0x04).
    pub fn set_register(&self, unit: u8, address: u16, value: u16) {
        if let Ok(mut state) = self.state.lock() {
            state.registers.insert((unit, address), value);
        }
    }

    /// Sets a 32-bit float over two registers, high word first.
    pub fn set_float32(&self, unit: u8, address: u16, value: f32) {
        let bits = value.to_bits();
        self.set_register(unit, address, (bits >> 16) as u16);
        self.set_register(unit, address.wrapping_add(1), bits as u16);
    }

    /// How `unit` answers from now on.
    pub fn set_behaviour(&self, unit: u8, behaviour: SlaveBehaviour) {
        if let Ok(mut state) = self.state.lock() {
            state.behaviour.insert(unit, behaviour);
        }
    }

    /// Request frames with a good CRC received so far (answered or not).
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
}

impl Drop for ModbusSlave {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens a raw-mode pty pair: (master, slave end kept open, slave path).
fn open_pty() -> anyhow::Result<(std::fs::File, std::fs::File, String)> {
    use nix::sys::termios;
    use std::os::fd::FromRawFd;
    let pair = nix::pty::openpty(None, None).map_err(|e| anyhow::anyhow!("openpty failed: {e}"))?;
    // SAFETY: openpty just returned these descriptors and nothing else owns them.
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(pair.master),
            std::fs::File::from_raw_fd(pair.slave),
        )
    };
    let path = nix::unistd::ttyname(slave.as_raw_fd())
        .map_err(|e| anyhow::anyhow!("ttyname failed: {e}"))?
        .display()
        .to_string();
    let mut attrs = termios::tcgetattr(slave.as_raw_fd())
        .map_err(|e| anyhow::anyhow!("tcgetattr failed: {e}"))?;
    termios::cfmakeraw(&mut attrs);
    termios::tcsetattr(slave.as_raw_fd(), termios::SetArg::TCSANOW, &attrs)
        .map_err(|e| anyhow::anyhow!("tcsetattr failed: {e}"))?;
    Ok((master, slave, path))
}

struct Line {
    master: std::fs::File,
    baud: u32,
    bits_per_char: u32,
    state: Arc<Mutex<SlaveState>>,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Line {
    /// Waits up to `timeout` for bytes; `Ok(None)` on silence.
    fn read_within(&mut self, timeout: Duration, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        use nix::poll::{poll, PollFd, PollFlags};
        let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(
            self.master.as_fd().as_raw_fd(),
            PollFlags::POLLIN,
        )];
        match poll(&mut fds, millis) {
            Ok(0) => Ok(None),
            Ok(_) => {
                let revents = fds[0].revents().unwrap_or(PollFlags::empty());
                if revents.contains(PollFlags::POLLIN) {
                    self.master.read(buf).map(Some)
                } else {
                    // POLLHUP: no one has the port open; wait and look again.
                    std::thread::sleep(Duration::from_millis(20));
                    Ok(None)
                }
            }
            Err(nix::errno::Errno::EINTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn serve(mut self) {
        let gap = frame_gap(self.baud, self.bits_per_char);
        let char_time = char_time(self.baud, self.bits_per_char);
        let mut buf = [0u8; 512];
        while !self.stop.load(Relaxed) {
            // Wait for the first byte of a frame.
            let first = match self.read_within(Duration::from_millis(50), &mut buf) {
                Ok(Some(n)) if n > 0 => n,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "modbus slave: pty read failed");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let started = Instant::now();
            let mut frame = buf[..first].to_vec();
            // The frame ends at a silence of 3.5 characters. A read request
            // (8 bytes, good CRC) is known complete at once; the answer still
            // waits out that silence through the pacing below.
            while !is_complete_read_request(&frame) {
                let Ok(Some(n)) = self.read_within(gap, &mut buf) else {
                    break;
                };
                if n == 0 || frame.len() > 256 {
                    break;
                }
                frame.extend_from_slice(&buf[..n]);
            }
            if frame.len() < 4 {
                continue;
            }
            let (body, crc) = frame.split_at(frame.len() - 2);
            if crc16_modbus(body).to_le_bytes() != crc {
                continue; // A slave discards a frame with a bad CRC.
            }
            self.requests.fetch_add(1, Relaxed);
            let reply = match self.state.lock() {
                Ok(state) => {
                    let behaviour = state
                        .behaviour
                        .get(&body[0])
                        .copied()
                        .unwrap_or(SlaveBehaviour::Answer);
                    let served = state.registers.keys().any(|(u, _)| *u == body[0]);
                    if served {
                        answer(body, &state.registers, behaviour)
                    } else {
                        None // Not our unit id: another device's frame on the bus.
                    }
                }
                Err(_) => None,
            };
            let Some(reply) = reply else { continue };
            // Pace the line: the answer's last character arrives after the
            // request, the frame gap and the answer itself have been on the wire.
            let on_wire = char_time * (frame.len() + reply.len()) as u32 + gap;
            if let Some(wait) = on_wire.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            if let Err(e) = self.master.write_all(&reply) {
                tracing::warn!(error = %e, "modbus slave: pty write failed");
            }
        }
    }
}

/// `coldchain simulate --transport modbus`: transmitters whose registers follow
/// simulated loggers.
#[derive(Clone, Debug)]
pub struct SimulatedLine {
    /// Transmitters; device n (from 1) is unit id n.
    pub devices: usize,
    pub device_prefix: String,
    pub scenario: crate::Scenario,
    pub set_point_cdeg: i32,
    /// Register updates per second.
    pub rate: f64,
    pub baud: u32,
    pub duration: Duration,
}

/// Register 0 (holding and input) of each unit: the logger's temperature in
/// tenths of °C as int16 — `data_type = "int16"`, `scale = 10` in the gateway.
pub const TEMPERATURE_REGISTER: u16 = 0;

/// Transmitters on a pty whose temperature registers follow simulated loggers.
pub struct SimulatedTransmitters {
    slave: ModbusSlave,
    loggers: Vec<crate::Logger>,
    baud: u32,
}

impl SimulatedTransmitters {
    /// Opens the line with `line.devices` transmitters (unit ids 1…N).
    pub fn open(line: &SimulatedLine) -> anyhow::Result<SimulatedTransmitters> {
        if !(1..=247).contains(&line.devices) {
            anyhow::bail!(
                "--devices {} with --transport modbus: a Modbus line has unit ids 1-247",
                line.devices
            );
        }
        let loggers = (1..=line.devices)
            .map(|n| {
                crate::Logger::new(
                    format!("{}{n}", line.device_prefix),
                    line.scenario,
                    line.set_point_cdeg,
                )
            })
            .collect();
        let mut transmitters = SimulatedTransmitters {
            slave: ModbusSlave::open(line.baud)?,
            loggers,
            baud: line.baud,
        };
        // Registers hold a value before the first poll can come.
        transmitters.step(&mut rand::thread_rng());
        Ok(transmitters)
    }

    /// The serial device to give the gateway.
    pub fn path(&self) -> &str {
        self.slave.path()
    }

    /// The slave itself (faults, request count).
    pub fn slave(&self) -> &ModbusSlave {
        &self.slave
    }

    /// The `[[modbus]]` section of a gateway config that polls every transmitter each second.
    pub fn gateway_config(&self) -> String {
        let mut text = format!(
            "[[modbus]]\npath = {:?}\nbaud = {}\n",
            self.path(),
            self.baud
        );
        for (n, logger) in self.loggers.iter().enumerate() {
            text.push_str(&format!(
                "[[modbus.devices]]\ndevice = {:?}\nunit_id = {}\nregister = {TEMPERATURE_REGISTER}\ndata_type = \"int16\"\nscale = 10\npoll_interval_ms = 1000\n",
                logger.device_id,
                n + 1
            ));
        }
        text
    }

    /// One step of every logger: its temperature, rounded to tenths, into its register.
    /// Returns the registers updated (a logger that buffers, in a power loss, leaves its own).
    fn step(&mut self, rng: &mut impl rand::Rng) -> u64 {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut updated = 0;
        for (n, logger) in self.loggers.iter_mut().enumerate() {
            if let Some(reading) = logger.step(now_s, rng).last() {
                let cdeg = reading.temperature_cdeg;
                let tenths = ((cdeg + if cdeg >= 0 { 5 } else { -5 }) / 10)
                    .clamp(i16::MIN as i32, i16::MAX as i32);
                self.slave
                    .set_register((n + 1) as u8, TEMPERATURE_REGISTER, tenths as i16 as u16);
                updated += 1;
            }
        }
        updated
    }

    /// Steps the loggers `rate` times a second for `duration`; returns the register updates.
    pub async fn run(&mut self, rate: f64, duration: Duration) -> u64 {
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let started = Instant::now();
        let mut updates = 0;
        while started.elapsed() < duration {
            updates += self.step(&mut rand::thread_rng());
            tokio::time::sleep(interval).await;
        }
        updates
    }
}

/// Serves the simulated transmitters for `line.duration`, printing the pty
/// path and the gateway configuration that polls them.
pub async fn simulate(line: &SimulatedLine) -> anyhow::Result<()> {
    let mut transmitters = SimulatedTransmitters::open(line)?;
    println!(
        "Modbus RTU slaves (unit ids 1-{}) on {} at {} baud, 8E1; temperature in register {TEMPERATURE_REGISTER}, int16, °C × 10. Gateway config:",
        line.devices,
        transmitters.path(),
        line.baud
    );
    print!("{}", transmitters.gateway_config());
    let started = Instant::now();
    let updates = transmitters.run(line.rate, line.duration).await;
    println!(
        "served {} requests; {updates} register updates in {:.1} s",
        transmitters.slave().requests(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_specification_example() {
        // The frame often quoted in transmitter manuals: read 1 holding
        // register at 0x0000 of unit 1 is 01 03 00 00 00 01 84 0A.
        assert_eq!(
            with_crc(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x01]),
            vec![0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A]
        );
    }

    #[test]
    fn reads_exceptions_and_corruption() {
        let mut registers = BTreeMap::new();
        registers.insert((1, 10), 0x00E1);
        let request = [0x01, 0x03, 0x00, 0x0A, 0x00, 0x01];
        let reply = answer(&request, &registers, SlaveBehaviour::Answer).unwrap();
        assert_eq!(reply, with_crc(&[0x01, 0x03, 0x02, 0x00, 0xE1]));
        let missing = [0x01, 0x04, 0x00, 0x0A, 0x00, 0x02];
        assert_eq!(
            answer(&missing, &registers, SlaveBehaviour::Answer).unwrap(),
            with_crc(&[0x01, 0x84, 0x02])
        );
        assert_eq!(
            answer(&request, &registers, SlaveBehaviour::Exception(0x04)).unwrap(),
            with_crc(&[0x01, 0x83, 0x04])
        );
        assert_eq!(answer(&request, &registers, SlaveBehaviour::Silent), None);
        let bad = answer(&request, &registers, SlaveBehaviour::CorruptCrc).unwrap();
        assert_eq!(bad[..5], reply[..5]);
        assert_ne!(bad[5..], reply[5..]);
        let write = [0x01, 0x06, 0x00, 0x0A, 0x00, 0x01];
        assert_eq!(
            answer(&write, &registers, SlaveBehaviour::Answer).unwrap(),
            with_crc(&[0x01, 0x86, 0x01])
        );
    }

    #[test]
    fn frame_gap_follows_the_baud_rate() {
        let bits = bits_per_char(true, 1);
        assert_eq!(bits, 11);
        assert_eq!(char_time(9600, bits), Duration::from_nanos(1_145_833));
        assert_eq!(frame_gap(9600, bits), Duration::from_nanos(4_010_415));
        assert_eq!(frame_gap(115_200, bits), Duration::from_micros(1750));
    }
}
