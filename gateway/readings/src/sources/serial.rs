//! A serial port carrying `$CCR` lines (see `docs/device-protocols.md`).
//!
//! Reopens the port when it disappears; splits lines itself so random bytes or
//! a missing newline cost one refusal, never unbounded memory.
use crate::arrivals::from_serial_line;
use crate::config::SerialPortConfig;
use crate::ingest::Inbound;
use crate::protocol::serial_line::{parse_line, MAX_LINE_BYTES};
use crate::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// Splits a byte stream into lines of at most [`MAX_LINE_BYTES`]. An
/// overlong line is handed on once, cut to `MAX_LINE_BYTES + 1` bytes (so it
/// is refused as one `malformed` line), as soon as it is known to be too long;
/// the rest of it, up to the next newline, is skipped. Memory stays bounded
/// and a 10 KB burst of noise is one refusal, not forty.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
    /// Inside an overlong line already handed on: skip to the next newline.
    skipping: bool,
}

impl LineSplitter {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.pending);
                if !self.skipping && !line.iter().all(|c| c.is_ascii_whitespace()) {
                    lines.push(line);
                }
                self.skipping = false;
            } else if !self.skipping {
                self.pending.push(b);
                if self.pending.len() > MAX_LINE_BYTES {
                    lines.push(std::mem::take(&mut self.pending));
                    self.skipping = true;
                }
            }
        }
        lines
    }
}

pub(crate) async fn run_serial(
    shared: Arc<Shared>,
    port: SerialPortConfig,
    sink: mpsc::Sender<Inbound>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let source = format!("serial:{}", port.path.display());
    let path = port.path.display().to_string();
    loop {
        let opened = tokio_serial::SerialStream::open(&tokio_serial::new(&path, port.baud));
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(port = %path, error = %e, "cannot open serial port; retrying in 2 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        tracing::info!(port = %path, baud = port.baud, "serial port open");
        let mut splitter = LineSplitter::default();
        let mut buffer = vec![0u8; 4096];
        loop {
            let read = tokio::select! {
                read = stream.read(&mut buffer) => read,
                _ = shutdown.changed() => return,
            };
            let n = match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(port = %path, error = %e, "serial read failed; reopening");
                    break;
                }
            };
            let lines = splitter.push(&buffer[..n]);
            if lines.is_empty() {
                continue;
            }
            let mut arrivals = Vec::with_capacity(lines.len());
            for line in lines {
                if let Ok(reading) = parse_line(&line) {
                    shared.directory.prepare(&reading.device_id).await;
                }
                arrivals.push(from_serial_line(&source, &line, &port.devices, &|d| {
                    shared.directory.route(d)
                }));
            }
            if sink
                .send(Inbound {
                    arrivals,
                    stored: None,
                })
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_and_overlong_runs_are_cut() {
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(b"$CCR,a").is_empty());
        assert_eq!(splitter.push(b"bc\r\n\n$x"), vec![b"$CCR,abc\r".to_vec()]);
        let noise = vec![b'z'; 600];
        let cut = splitter.push(&noise);
        assert_eq!(cut.len(), 1, "one overlong line, handed on at once");
        assert_eq!(cut[0].len(), MAX_LINE_BYTES + 1);
        assert!(
            splitter.push(&noise).is_empty(),
            "the rest of it is skipped"
        );
        assert_eq!(splitter.push(b"zz\n$y\n"), vec![b"$y".to_vec()]);
    }

    #[test]
    fn a_10_kb_line_is_one_overlong_line() {
        let good = "$CCR,D1,1,1790000000,4.50*06\r\n";
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        // Arriving in port-sized chunks, as the reader hands them over.
        let mut stream = vec![b'7'; 10 * 1024];
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(good.as_bytes());
        for chunk in stream.chunks(4096) {
            lines.extend(splitter.push(chunk));
        }
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(matches!(
            parse_line(&lines[0]),
            Err(crate::protocol::ParseError::Malformed(m)) if m.contains("longer than 256")
        ));
        assert_eq!(lines[1], good.trim_end_matches('\n').as_bytes());
    }
}
