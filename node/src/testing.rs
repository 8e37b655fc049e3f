//! A minimal transaction family for tests and benchmarks of the node itself,
//! independent of the coldchain rules (like Sawtooth's intkey). It is not
//! registered by `coldchain node`; tests and `node-bench` add it.
//!
//! Payload: `<name>\n<value bytes>`; the value is written at
//! [`probe_address`]`(name)`. Names with special meaning:
//! `invalid:<message>` is refused with that message, `read:<address>` reads
//! that address (to test declared inputs), `panic` panics.
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext, TransactionHandler};
use sha2::{Digest, Sha512};

/// Family name of the probe family.
pub const PROBE_FAMILY: &str = "coldchain-probe";
/// Its one version.
pub const PROBE_VERSION: &str = "1.0";

/// The namespace of the probe family.
pub fn probe_namespace() -> String {
    hex::encode(Sha512::digest(PROBE_FAMILY.as_bytes()))[..6].to_string()
}

/// Where the probe family writes `name`.
pub fn probe_address(name: &str) -> String {
    format!(
        "{}{}",
        probe_namespace(),
        &hex::encode(Sha512::digest(name.as_bytes()))[..64]
    )
}

/// The payload that writes `value` under `name`.
pub fn probe_payload(name: &str, value: &[u8]) -> Vec<u8> {
    let mut payload = format!("{name}\n").into_bytes();
    payload.extend_from_slice(value);
    payload
}

/// The probe family's handler.
pub struct ProbeHandler;

impl TransactionHandler for ProbeHandler {
    fn family_name(&self) -> String {
        PROBE_FAMILY.to_string()
    }
    fn family_versions(&self) -> Vec<String> {
        vec![PROBE_VERSION.to_string()]
    }
    fn namespaces(&self) -> Vec<String> {
        vec![probe_namespace()]
    }
    fn apply(
        &self,
        request: &TpProcessRequest,
        context: &mut dyn TransactionContext,
    ) -> Result<(), ApplyError> {
        let payload = request.get_payload();
        let split = payload.iter().position(|b| *b == b'\n').ok_or_else(|| {
            ApplyError::InvalidTransaction("probe payload has no name line".into())
        })?;
        let name = std::str::from_utf8(&payload[..split])
            .map_err(|_| ApplyError::InvalidTransaction("probe name is not UTF-8".into()))?;
        let value = &payload[split + 1..];
        if let Some(message) = name.strip_prefix("invalid:") {
            return Err(ApplyError::InvalidTransaction(message.to_string()));
        }
        if let Some(address) = name.strip_prefix("read:") {
            context.get_state_entry(address)?;
            return Ok(());
        }
        if name == "panic" {
            panic!("probe asked to panic");
        }
        context
            .set_state_entry(probe_address(name), value.to_vec())
            .map_err(|e| ApplyError::InvalidTransaction(e.to_string()))?;
        context.add_event(
            "probe/written".to_string(),
            vec![("name".to_string(), name.to_string())],
            b"",
        )?;
        Ok(())
    }
}

/// A minimal blocking HTTP/1.1 client for tests and benchmarks (one request
/// per connection), so they need no async runtime.
pub mod http {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    /// A response: status code and body.
    #[derive(Debug)]
    pub struct Reply {
        pub status: u16,
        pub body: Vec<u8>,
    }

    impl Reply {
        /// The body as JSON (`Value::Null` when it is not JSON).
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
        }
    }

    fn strip_scheme(base: &str) -> &str {
        base.trim_start_matches("http://").trim_end_matches('/')
    }

    /// Sends one request to `base` (`http://host:port`) and reads the reply.
    pub fn request(
        base: &str,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let host = strip_scheme(base);
        let mut stream = TcpStream::connect(host)?;
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        stream.set_nodelay(true)?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(content_type) = content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        parse(&raw)
    }

    /// GET `path`.
    pub fn get(base: &str, path: &str) -> std::io::Result<Reply> {
        request(base, "GET", path, None, &[])
    }

    /// POST a BatchList.
    pub fn post_batches(base: &str, batch_list: &[u8]) -> std::io::Result<Reply> {
        request(
            base,
            "POST",
            "/batches",
            Some("application/octet-stream"),
            batch_list,
        )
    }

    fn bad(what: &str) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
    }

    fn parse(raw: &[u8]) -> std::io::Result<Reply> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| bad("HTTP response has no header end"))?;
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("HTTP response has no status"))?;
        let body = &raw[end + 4..];
        let body = if head.contains("transfer-encoding: chunked") {
            dechunk(body)?
        } else {
            body.to_vec()
        };
        Ok(Reply { status, body })
    }

    fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let line_end = data
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?;
            let size_text = String::from_utf8_lossy(&data[..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            data = &data[line_end + 2..];
            if size == 0 {
                return Ok(out);
            }
            if data.len() < size + 2 {
                return Err(bad("truncated chunk"));
            }
            out.extend_from_slice(&data[..size]);
            data = &data[size + 2..];
        }
    }
}
