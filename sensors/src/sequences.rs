//! What `coldchain simulate` remembers between runs: the last sequence number
//! each simulated logger produced, so a second run goes on where the first
//! stopped instead of starting at 1 again (the gateway refuses a device's
//! sequence at or below the last one it accepted: `out_of_order`).
//!
//! The record is a small text file, one `<device id> <last sequence>` line
//! per logger; `#` lines are comments. [`parse`] and [`render`] are pure; the
//! [`SequenceBook`] reads and writes the file (atomically: a temporary file
//! renamed over the old one).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use coldchain_gateway::protocol::DeviceReading;

/// File name of the record under the user's data folder.
pub const FILE_NAME: &str = "simulate-sequences.txt";

/// The default record: `$XDG_DATA_HOME/coldchain/simulate-sequences.txt`,
/// else `$HOME/.local/share/coldchain/simulate-sequences.txt`; None when
/// neither variable is set.
pub fn default_path() -> Option<PathBuf> {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local/share"))
        })?;
    Some(data_home.join("coldchain").join(FILE_NAME))
}

/// Reads a record's text; an error names the line that is not
/// `<device id> <last sequence>`.
pub fn parse(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut last = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line
            .rsplit_once(char::is_whitespace)
            .and_then(|(device, sequence)| {
                let device = device.trim();
                let sequence = sequence.parse::<u64>().ok()?;
                (!device.is_empty()).then(|| (device.to_string(), sequence))
            });
        let Some((device, sequence)) = parsed else {
            return Err(format!(
                "line {}: {line:?} is not `<device id> <last sequence>`",
                number + 1
            ));
        };
        last.insert(device, sequence);
    }
    Ok(last)
}

/// The text of a record (devices in id order).
pub fn render(last: &BTreeMap<String, u64>) -> String {
    let mut text =
        String::from("# coldchain simulate: last sequence number produced per simulated logger\n");
    for (device, sequence) in last {
        text.push_str(&format!("{device} {sequence}\n"));
    }
    text
}

/// The record of one file, updated as readings go out.
#[derive(Debug)]
pub struct SequenceBook {
    path: PathBuf,
    last: BTreeMap<String, u64>,
}

impl SequenceBook {
    /// Reads `path` (a missing file is an empty record).
    pub fn load(path: &Path) -> anyhow::Result<SequenceBook> {
        let last = match std::fs::read_to_string(path) {
            Ok(text) => parse(&text).map_err(|e| {
                anyhow::anyhow!(
                    "sequence state file {}: {e}; fix or delete it, or pass --start-sequence",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => anyhow::bail!(
                "cannot read the sequence state file {}: {e} (pass another --state FILE or --no-state)",
                path.display()
            ),
        };
        Ok(SequenceBook {
            path: path.to_path_buf(),
            last,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last sequence recorded for `device`.
    pub fn last(&self, device: &str) -> Option<u64> {
        self.last.get(device).copied()
    }

    /// Records a device's sequence (kept only if higher than what is recorded).
    pub fn note(&mut self, device: &str, sequence: u64) {
        let entry = self.last.entry(device.to_string()).or_insert(0);
        *entry = (*entry).max(sequence);
    }

    /// Records the readings of a message about to be sent.
    pub fn note_readings(&mut self, readings: &[DeviceReading]) {
        for reading in readings {
            self.note(&reading.device_id, reading.sequence);
        }
    }

    /// Writes the record (creating its folder).
    pub fn save(&self) -> anyhow::Result<()> {
        let fail = |e: std::io::Error| {
            anyhow::anyhow!(
                "cannot write the sequence state file {}: {e} (pass another --state FILE)",
                self.path.display()
            )
        };
        if let Some(folder) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(fail)?;
        }
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        std::fs::write(&temporary, render(&self.last)).map_err(fail)?;
        std::fs::rename(&temporary, &self.path).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_what_was_written() {
        let mut last = BTreeMap::new();
        last.insert("LOGGER-1".to_string(), 61);
        last.insert("reefer 7".to_string(), 3);
        assert_eq!(parse(&render(&last)), Ok(last));
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = parse("# ok\nLOGGER-1 5\nLOGGER-2 five\n").unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(parse("12\n").is_err());
    }

    #[test]
    fn the_book_keeps_the_highest_sequence_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/state.txt");
        let mut book = SequenceBook::load(&path).unwrap();
        assert_eq!(book.last("D1"), None);
        book.note("D1", 9);
        book.note("D1", 4);
        book.save().unwrap();
        let again = SequenceBook::load(&path).unwrap();
        assert_eq!(again.last("D1"), Some(9));
    }
}
