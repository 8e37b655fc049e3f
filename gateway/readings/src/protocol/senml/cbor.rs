//! A minimal CBOR (RFC 8949) reader for SenML packs: definite and indefinite
//! arrays and maps, integers, floats (half, single, double), text, bytes,
//! booleans. Declared lengths are never trusted for allocation and nesting is
//! bounded, so hostile bytes cost at most their own length. Parsing only.

/// Deepest CBOR nesting taken (pack array, record map, value).
const MAX_CBOR_DEPTH: usize = 4;

/// Reads exactly one item filling `payload`.
pub(super) fn read_one(payload: &[u8]) -> Result<Item, String> {
    let mut reader = Cbor {
        bytes: payload,
        at: 0,
    };
    let item = reader.item(0)?;
    if reader.at != payload.len() {
        return Err(format!(
            "{} bytes follow the pack's CBOR array; send one pack per message",
            payload.len() - reader.at
        ));
    }
    Ok(item)
}

/// A minimal CBOR reader for SenML: definite and indefinite arrays and maps,
/// integers, floats (half, single, double), text, bytes, booleans. Declared
/// lengths are never trusted for allocation (a hostile header claiming 2^64
/// items costs nothing); nesting is bounded.
pub(super) struct Cbor<'a> {
    bytes: &'a [u8],
    at: usize,
}

#[derive(Debug)]
pub(super) enum Item {
    Int(i128),
    Float(f64),
    Text(String),
    Bytes,
    Bool(bool),
    Null,
    Array(Vec<Item>),
    Map(Vec<(Item, Item)>),
}

impl Cbor<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| format!("the CBOR ends early at byte {}", self.at))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "the CBOR at byte {} declares {n} bytes but only {} remain",
                    self.at,
                    self.bytes.len() - self.at
                )
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// The argument of an initial byte; `None` for indefinite length.
    fn argument(&mut self, info: u8) -> Result<Option<u64>, String> {
        let mut wide = |n: u64| -> Result<u64, String> {
            Ok(self
                .take(n)?
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | *b as u64))
        };
        match info {
            0..=23 => Ok(Some(info as u64)),
            24 => wide(1).map(Some),
            25 => wide(2).map(Some),
            26 => wide(4).map(Some),
            27 => wide(8).map(Some),
            31 => Ok(None),
            _ => Err(format!("reserved CBOR additional information {info}")),
        }
    }

    fn item(&mut self, depth: usize) -> Result<Item, String> {
        if depth > MAX_CBOR_DEPTH {
            return Err(format!(
                "the CBOR nests deeper than {MAX_CBOR_DEPTH} levels; a SenML pack is an array of maps"
            ));
        }
        let start = self.at;
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        if major == 7 {
            return match info {
                20 => Ok(Item::Bool(false)),
                21 => Ok(Item::Bool(true)),
                22 | 23 => Ok(Item::Null),
                25 => {
                    let b = self.take(2)?;
                    Ok(Item::Float(half_to_f64(u16::from_be_bytes([b[0], b[1]]))))
                }
                26 => {
                    let b = self.take(4)?;
                    Ok(Item::Float(
                        f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64
                    ))
                }
                27 => {
                    let b = self.take(8)?;
                    let mut raw = [0u8; 8];
                    raw.copy_from_slice(b);
                    Ok(Item::Float(f64::from_be_bytes(raw)))
                }
                31 => Err(format!("unexpected CBOR break at byte {start}")),
                _ => Err(format!(
                    "CBOR simple value {info} at byte {start} is not a SenML value"
                )),
            };
        }
        let argument = self.argument(info)?;
        match (major, argument) {
            (0, Some(n)) => Ok(Item::Int(n as i128)),
            (1, Some(n)) => Ok(Item::Int(-1 - n as i128)),
            (2, Some(n)) => self.take(n).map(|_| Item::Bytes),
            (3, Some(n)) => String::from_utf8(self.take(n)?.to_vec())
                .map(Item::Text)
                .map_err(|_| format!("CBOR text at byte {start} is not UTF-8")),
            (2 | 3, None) => Err(format!(
                "indefinite-length CBOR string at byte {start}; SenML needs none"
            )),
            (4, count) => {
                let mut items = Vec::new();
                self.sequence(count, |me| {
                    items.push(me.item(depth + 1)?);
                    Ok(())
                })?;
                Ok(Item::Array(items))
            }
            (5, count) => {
                let mut pairs = Vec::new();
                self.sequence(count, |me| {
                    let key = me.item(depth + 1)?;
                    let value = me.item(depth + 1)?;
                    pairs.push((key, value));
                    Ok(())
                })?;
                Ok(Item::Map(pairs))
            }
            (6, _) => Err(format!(
                "CBOR tag at byte {start}; SenML values are untagged"
            )),
            _ => Err(format!("CBOR item at byte {start} is not well-formed")),
        }
    }

    /// Runs `each` `count` times, or until a break for indefinite length. A
    /// declared count can never exceed the bytes left (each item takes one).
    fn sequence(
        &mut self,
        count: Option<u64>,
        mut each: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        match count {
            Some(n) => {
                let left = (self.bytes.len() - self.at) as u64;
                if n > left {
                    return Err(format!(
                        "the CBOR declares {n} items but only {left} bytes remain"
                    ));
                }
                for _ in 0..n {
                    each(self)?;
                }
            }
            None => loop {
                if self.bytes.get(self.at) == Some(&0xff) {
                    self.at += 1;
                    break;
                }
                each(self)?;
            },
        }
        Ok(())
    }
}

/// IEEE 754 half precision to f64 (RFC 8949 Appendix D).
fn half_to_f64(half: u16) -> f64 {
    let exponent = (half >> 10) & 0x1f;
    let mantissa = (half & 0x3ff) as f64;
    let value = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (mantissa + 1024.0) * 2f64.powi(e as i32 - 25),
    };
    if half & 0x8000 != 0 {
        -value
    } else {
        value
    }
}
