//! SenML (RFC 8428) packs over MQTT: JSON (`application/senml+json`) and CBOR
//! (`application/senml+cbor`, RFC 8428 §6), on `<prefix>/<org>/<publisher>/senml`
//! and `<prefix>/<org>/<publisher>/senml-cbor`.
//!
//! A pack is resolved as RFC 8428 §4.6 says: base name, time, unit and value
//! carry forward to the records after them; a record's name is `bn + n`, its
//! time `bt + t`, its unit `u` or else `bu`, its value `bv + v`. Then:
//!
//! - **Names → devices** by [`SenmlNaming`]: the longest `devices` key the name
//!   starts with, else the text after `name_prefix` up to the next `:` or `/`.
//!   A pack describes one device (a gateway message's readings are all or
//!   nothing per device); a pack naming two devices is refused.
//! - **Quantities by unit**: `Cel` and `K` are temperature (K converted to
//!   hundredths of °C as `round_half_away(v − 273.15)` in exact decimal
//!   arithmetic on the value's shortest decimal form), `%RH` is humidity (to
//!   per mille), a boolean `vb` is the door contact (`true` = open). Any other
//!   unit, a string or data value, or a sum is refused, naming it.
//! - **Readings**: the records of one time form one reading; it needs exactly
//!   one temperature, and at most one humidity and one door record.
//! - **Times** must be absolute: a resolved time below 2^28 is relative to
//!   "now" in SenML, and is refused — the gateway needs a time that stays the
//!   same when the broker redelivers the message, or exactly-once breaks.
//! - **Sequence numbers**: SenML has none; a reading's sequence is its time in
//!   milliseconds since the Unix epoch. A redelivered or resent pack gives the
//!   same sequences (and is a duplicate), and a device's times must increase,
//!   as its sequences must. Times are rounded to the millisecond.
//!
//! Parsing only; no I/O. See `docs/device-protocols.md`.
use super::{DeviceReading, Door, PARSE_LIMIT_CDEG};
use cbor::Item;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Topic level (last) of SenML JSON packs.
pub const JSON_TOPIC_LEVEL: &str = "senml";
/// Topic level (last) of SenML CBOR packs.
pub const CBOR_TOPIC_LEVEL: &str = "senml-cbor";
/// Most records one pack may hold (the message size limit bounds bytes; this
/// bounds the work one message can cost).
pub const MAX_RECORDS: usize = 10_000;
/// Resolved times below this are relative to now (RFC 8428 §4.5.3).
pub const RELATIVE_TIME_LIMIT_S: f64 = 268_435_456.0;
/// The SenML version this gateway reads (RFC 8428's).
pub const SENML_VERSION: i64 = 10;

/// How SenML names map to device ids, per broker (`[mqtt.senml]`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SenmlNaming {
    /// Name (or name start, e.g. a base name) → device id; the longest key a
    /// resolved name starts with wins.
    #[serde(default)]
    pub devices: BTreeMap<String, String>,
    /// Names starting with this (e.g. `urn:dev:mac:`) name their device by the
    /// text that follows, up to the next `:` or `/` (the measurement part).
    #[serde(default)]
    pub name_prefix: Option<String>,
}

impl SenmlNaming {
    /// The device a resolved record name belongs to.
    pub fn device_of(&self, name: &str) -> Option<String> {
        // Longest key first, by looking up the name's prefixes (cost grows with
        // the name's length, not with the size of the table).
        let mapped = (1..=name.len())
            .rev()
            .filter(|end| name.is_char_boundary(*end))
            .find_map(|end| self.devices.get(&name[..end]));
        if let Some(device) = mapped {
            return Some(device.clone());
        }
        let rest = name.strip_prefix(self.name_prefix.as_deref().filter(|p| !p.is_empty())?)?;
        let device = rest.split([':', '/']).next().unwrap_or_default();
        (!device.is_empty()).then(|| device.to_string())
    }
}

/// The two SenML representations the gateway reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenmlFormat {
    Json,
    Cbor,
}

impl SenmlFormat {
    /// The format a topic's last level names, if it is a SenML topic.
    pub fn of_topic_level(level: &str) -> Option<SenmlFormat> {
        match level {
            JSON_TOPIC_LEVEL => Some(SenmlFormat::Json),
            CBOR_TOPIC_LEVEL => Some(SenmlFormat::Cbor),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            SenmlFormat::Json => "SenML JSON",
            SenmlFormat::Cbor => "SenML CBOR",
        }
    }
}

/// The prefix, `<org>` and format of a SenML topic
/// (`<prefix>/<org>/<publisher>/senml` or `…/senml-cbor`).
pub fn split_senml_topic(topic: &str) -> Option<(&str, &str, SenmlFormat)> {
    let mut levels = topic.rsplitn(4, '/');
    let (last, publisher, org, prefix) = (
        levels.next()?,
        levels.next()?,
        levels.next()?,
        levels.next()?,
    );
    let format = SenmlFormat::of_topic_level(last)?;
    (!org.is_empty() && !publisher.is_empty() && !prefix.is_empty())
        .then_some((prefix, org, format))
}

/// Why a pack gives no readings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SenmlError {
    /// Not SenML, or SenML the gateway cannot turn into readings.
    #[error("{0}")]
    Malformed(String),
    /// A record's name maps to no device.
    #[error("{0}")]
    UnknownName(String),
}

/// One value of a record, as decoded from JSON or CBOR.
#[derive(Clone, Debug, PartialEq)]
enum Field<'a> {
    Number(f64),
    Text(Cow<'a, str>),
    Bool(bool),
    Bytes,
}

impl Field<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Field::Number(_) => "a number",
            Field::Text(_) => "a string",
            Field::Bool(_) => "a boolean",
            Field::Bytes => "a byte string",
        }
    }
}

/// A record's fields by their JSON label (CBOR integer labels translated).
/// JSON text is borrowed from the payload where it holds no escapes: a pack
/// is read without copying its strings (the gateway reads ~50 000 records/s).
type RawRecord<'a> = BTreeMap<Label<'a>, Field<'a>>;

/// A record's label, borrowed from the payload when it can be.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Label<'a>(Cow<'a, str>);

impl Label<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Label<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Accepts a borrowed string where the input allows, else an owned one.
struct TextVisitor;

impl<'de> serde::de::Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Label<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor).map(Label)
    }
}

/// A JSON field value: a number, a string or a boolean (null, arrays and
/// objects are no SenML value).
struct FieldVisitor;

impl<'de> serde::de::Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a SenML value (a number, a string or a boolean)")
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Field::Number(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Field::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Field::Number(v as f64))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Field::Bool(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Owned(v.to_string())))
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

/// RFC 8428 §6 Table 6: CBOR integer labels.
fn cbor_label(label: i128) -> Option<&'static str> {
    Some(match label {
        -1 => "bver",
        -2 => "bn",
        -3 => "bt",
        -4 => "bu",
        -5 => "bv",
        -6 => "bs",
        0 => "n",
        1 => "u",
        2 => "v",
        3 => "vs",
        4 => "vb",
        5 => "s",
        6 => "t",
        7 => "ut",
        8 => "vd",
        _ => return None,
    })
}

const KNOWN_LABELS: [&str; 15] = [
    "bver", "bn", "bt", "bu", "bv", "bs", "n", "u", "v", "vs", "vb", "s", "t", "ut", "vd",
];

/// Parses a pack into one device's readings, in time order.
pub fn parse_pack(
    format: SenmlFormat,
    payload: &[u8],
    naming: &SenmlNaming,
) -> Result<Vec<DeviceReading>, SenmlError> {
    let malformed = |what: String| SenmlError::Malformed(format!("{}: {what}", format.label()));
    let records = match format {
        SenmlFormat::Json => json_records(payload),
        SenmlFormat::Cbor => cbor_records(payload),
    }
    .map_err(malformed)?;
    if records.is_empty() {
        return Err(malformed(
            "the pack holds no records; send at least one".into(),
        ));
    }
    if records.len() > MAX_RECORDS {
        return Err(malformed(format!(
            "the pack holds {} records, more than {MAX_RECORDS}; send fewer per message",
            records.len()
        )));
    }
    let resolved = resolve(&records).map_err(malformed)?;
    to_readings(&resolved, naming).map_err(|e| match e {
        SenmlError::Malformed(m) => malformed(m),
        unknown => unknown,
    })
}

fn json_records(payload: &[u8]) -> Result<Vec<RawRecord<'_>>, String> {
    let records: Vec<RawRecord<'_>> = serde_json::from_slice(payload).map_err(|e| {
        format!("not valid JSON or not SenML ({e}); a SenML pack is an array of record objects whose values are numbers, strings or booleans")
    })?;
    Ok(records)
}

fn cbor_records(payload: &[u8]) -> Result<Vec<RawRecord<'static>>, String> {
    let pack = cbor::read_one(payload)?;
    let Item::Array(items) = pack else {
        return Err("a SenML pack is a CBOR array of records (maps)".into());
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Item::Map(pairs) = item else {
                return Err(format!("record {} is not a CBOR map", i + 1));
            };
            let mut record = RawRecord::new();
            for (key, value) in pairs {
                let label = match key {
                    Item::Int(n) => match cbor_label(n) {
                        Some(label) => Cow::Borrowed(label),
                        None if n < 0 => {
                            // Negative labels not in Table 6 are "must understand" (RFC 8428 §12.2).
                            return Err(format!(
                                "record {}: unknown must-understand label {n}",
                                i + 1
                            ));
                        }
                        None => continue,
                    },
                    Item::Text(text) => text.into(),
                    other => {
                        return Err(format!(
                            "record {}: a map key is {other:?}; labels are integers or text",
                            i + 1
                        ))
                    }
                };
                let field = match value {
                    Item::Int(n) => Field::Number(n as f64),
                    Item::Float(f) => Field::Number(f),
                    Item::Text(t) => Field::Text(Cow::Owned(t)),
                    Item::Bool(b) => Field::Bool(b),
                    Item::Bytes => Field::Bytes,
                    Item::Null | Item::Array(_) | Item::Map(_) => {
                        return Err(format!(
                            "record {}: {label} holds a value no SenML field takes",
                            i + 1
                        ))
                    }
                };
                record.insert(Label(label), field);
            }
            Ok(record)
        })
        .collect()
}

/// A record after base values are applied (RFC 8428 §4.6).
#[derive(Clone, Debug, PartialEq)]
struct Resolved<'a> {
    index: usize,
    name: String,
    time_ms: u64,
    unit: Option<&'a str>,
    value: ResolvedValue,
}

#[derive(Clone, Debug, PartialEq)]
enum ResolvedValue {
    Number(f64),
    Bool(bool),
}

fn resolve<'a>(records: &'a [RawRecord<'_>]) -> Result<Vec<Resolved<'a>>, String> {
    let mut base_name = "";
    let mut base_time = 0.0f64;
    let mut base_unit: Option<&str> = None;
    let mut base_value: Option<f64> = None;
    let mut version: Option<f64> = None;
    let mut resolved = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let at = |what: String| format!("record {}: {what}", i + 1);
        if let Some(label) = record
            .keys()
            .map(Label::as_str)
            .find(|k| !KNOWN_LABELS.contains(k) && k.ends_with('_'))
        {
            return Err(at(format!(
                "unknown must-understand field {label:?}; the gateway reads RFC 8428 fields only"
            )));
        }
        let number = |label: &str| -> Result<Option<f64>, String> {
            match record.get(label) {
                None => Ok(None),
                Some(Field::Number(n)) if n.is_finite() => Ok(Some(*n)),
                Some(Field::Number(n)) => Err(at(format!("{label} is {n}; it must be finite"))),
                Some(other) => Err(at(format!(
                    "{label} is {}, expected a number",
                    other.kind()
                ))),
            }
        };
        let text = |label: &str| -> Result<Option<&str>, String> {
            match record.get(label) {
                None => Ok(None),
                Some(Field::Text(t)) => Ok(Some(t.as_ref())),
                Some(other) => Err(at(format!(
                    "{label} is {}, expected a string",
                    other.kind()
                ))),
            }
        };
        if let Some(v) = number("bver")? {
            if version.is_some_and(|before| before != v) {
                return Err(at(format!(
                    "bver {v} differs from the pack's earlier bver; one pack has one version"
                )));
            }
            version = Some(v);
            if v.fract() != 0.0 || v < 1.0 || v > SENML_VERSION as f64 {
                return Err(at(format!(
                    "bver {v} is not a SenML version this gateway reads (up to {SENML_VERSION})"
                )));
            }
        }
        if let Some(bn) = text("bn")? {
            base_name = bn;
        }
        if let Some(bt) = number("bt")? {
            base_time = bt;
        }
        if let Some(bu) = text("bu")? {
            base_unit = Some(bu);
        }
        if let Some(bv) = number("bv")? {
            base_value = Some(bv);
        }
        if record.contains_key("s") || record.contains_key("bs") {
            return Err(at(
                "sums (s, bs) are not temperature readings; send values (v)".into(),
            ));
        }
        if record.contains_key("vs") || record.contains_key("vd") {
            return Err(at(
                "string and data values (vs, vd) are not readings; send a number (v) in Cel or K, %RH, or a boolean (vb) for the door".into(),
            ));
        }
        let name = format!("{base_name}{}", text("n")?.unwrap_or_default());
        check_name(&name).map_err(at)?;
        let time = base_time + number("t")?.unwrap_or(0.0);
        if !time.is_finite() || time.abs() < RELATIVE_TIME_LIMIT_S {
            return Err(at(format!(
                "time {time} of {name:?} is relative to now (below 2^28 s) or missing; the gateway needs absolute Unix times (bt + t) so a redelivered message keeps its readings' times"
            )));
        }
        if !(0.0..=1.0e13).contains(&time) {
            return Err(at(format!(
                "time {time} of {name:?} is not a Unix time in seconds"
            )));
        }
        let value = match (record.get("vb"), number("v")?) {
            (Some(_), Some(_)) => return Err(at("both v and vb; a record has one value".into())),
            (Some(Field::Bool(b)), None) => ResolvedValue::Bool(*b),
            (Some(other), None) => {
                return Err(at(format!("vb is {}, expected a boolean", other.kind())))
            }
            (None, Some(v)) => ResolvedValue::Number(v + base_value.unwrap_or(0.0)),
            (None, None) => match base_value {
                Some(bv) => ResolvedValue::Number(bv),
                None => return Err(at(format!("{name:?} has no value (v or vb)"))),
            },
        };
        resolved.push(Resolved {
            index: i,
            name,
            time_ms: (time * 1000.0).round() as u64,
            unit: text("u")?.or(base_unit),
            value,
        });
    }
    Ok(resolved)
}

/// RFC 8428 §4.5.1: 1+ characters of A-Z a-z 0-9 - : . / _, starting with a letter or digit.
fn check_name(name: &str) -> Result<(), String> {
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-:./_".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} (bn + n) is not a SenML name: it must start with a letter or digit and hold only A-Z a-z 0-9 - : . / _"
        ))
    }
}

/// What a record measures.
enum Quantity {
    TemperatureCdeg(i32),
    HumidityPermille(u32),
    Door(Door),
}

fn quantity(record: &Resolved) -> Result<Quantity, String> {
    let at = |what: String| format!("record {} ({:?}): {what}", record.index + 1, record.name);
    let value = match record.value {
        ResolvedValue::Bool(open) => {
            return Ok(Quantity::Door(if open { Door::Open } else { Door::Closed }))
        }
        ResolvedValue::Number(v) => v,
    };
    if !value.is_finite() || value.abs() > (PARSE_LIMIT_CDEG / 100) as f64 {
        return Err(at(format!(
            "value {value} is beyond any sensor's range; refused"
        )));
    }
    let converted = match record.unit {
        Some("Cel") => Quantity::TemperatureCdeg(scaled(value, 2) as i32),
        Some("K") => {
            // v − 273.15 exactly, then rounded once to hundredths.
            let celsius = near_whole(value, 2).map(|centi_kelvin| centi_kelvin - 27_315).unwrap_or_else(|| {
                let (mantissa, places) = exact_decimal(value);
                let wide = places.max(2);
                let mantissa = mantissa * 10i128.pow(wide - places);
                let offset = 27_315 * 10i128.pow(wide - 2);
                rescale(mantissa - offset, wide, 2)
            });
            Quantity::TemperatureCdeg(celsius as i32)
        }
        Some("%RH") => {
            let permille = scaled(value, 1);
            Quantity::HumidityPermille(u32::try_from(permille).map_err(|_| {
                at(format!("humidity {value} %RH is negative"))
            })?)
        }
        Some(unit) => {
            return Err(at(format!(
                "unit {unit:?} is not one the gateway reads; send temperatures in Cel or K, humidity in %RH, the door as a boolean (vb)"
            )))
        }
        None => {
            return Err(at(
                "no unit (u or bu); send temperatures in Cel or K, humidity in %RH".into(),
            ))
        }
    };
    Ok(converted)
}

/// `value` × 10^places when that is within 10^-6 of a whole number: then the
/// decimal the value was written as rounds to that number whatever its
/// further digits, and the slower exact path is not needed (most readings).
fn near_whole(value: f64, places: u32) -> Option<i128> {
    let scaled = value * 10f64.powi(places as i32);
    let whole = scaled.round();
    ((scaled - whole).abs() < 1e-6).then_some(whole as i128)
}

/// `value` rounded half away from zero to `places` decimals, as a whole
/// number of 10^-places, on its shortest decimal form.
fn scaled(value: f64, places: u32) -> i128 {
    near_whole(value, places).unwrap_or_else(|| {
        let (mantissa, digits) = exact_decimal(value);
        rescale(mantissa, digits, places)
    })
}

/// The exact decimal that Rust's shortest round-trip form of `value` shows,
/// as (mantissa, fraction digits): 4.8 → (48, 1). At most 24 fraction digits
/// are kept (far below any rounding that matters at hundredths).
fn exact_decimal(value: f64) -> (i128, u32) {
    let text = format!("{}", value.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let fraction = &fraction[..fraction.len().min(24)];
    let digits = format!("{whole}{fraction}");
    let magnitude: i128 = digits.parse().unwrap_or(0);
    let mantissa = if value < 0.0 { -magnitude } else { magnitude };
    (mantissa, fraction.len() as u32)
}

/// `mantissa / 10^places` rounded half away from zero to `to` places.
fn rescale(mantissa: i128, places: u32, to: u32) -> i128 {
    if places <= to {
        return mantissa * 10i128.pow(to - places);
    }
    let divisor = 10i128.pow(places - to);
    let (quotient, remainder) = (mantissa / divisor, mantissa % divisor);
    if remainder.abs() * 2 >= divisor {
        quotient + mantissa.signum()
    } else {
        quotient
    }
}

/// One time's temperature, humidity and door state, as records fill them in.
type Slot = (Option<i32>, Option<u32>, Option<Door>);

fn to_readings(
    records: &[Resolved],
    naming: &SenmlNaming,
) -> Result<Vec<DeviceReading>, SenmlError> {
    let malformed = SenmlError::Malformed;
    let mut device: Option<String> = None;
    let mut by_time: BTreeMap<u64, Slot> = BTreeMap::new();
    for record in records {
        let this = naming.device_of(&record.name).ok_or_else(|| {
            SenmlError::UnknownName(format!(
                "record {}: name {:?} maps to no device; add it (or its base name) under [mqtt.senml.devices], or set [mqtt.senml] name_prefix",
                record.index + 1,
                record.name
            ))
        })?;
        match &device {
            None => device = Some(this),
            Some(first) if *first != this => {
                return Err(malformed(format!(
                    "record {} names device {this:?} but the pack began with {first:?}; send one pack per device",
                    record.index + 1
                )))
            }
            Some(_) => {}
        }
        let slot = by_time.entry(record.time_ms).or_default();
        let twice = |what: &str| {
            malformed(format!(
                "record {}: a second {what} at time {} ms; one reading per time",
                record.index + 1,
                record.time_ms
            ))
        };
        match quantity(record).map_err(malformed)? {
            Quantity::TemperatureCdeg(t) if slot.0.is_none() => slot.0 = Some(t),
            Quantity::TemperatureCdeg(_) => return Err(twice("temperature")),
            Quantity::HumidityPermille(h) if slot.1.is_none() => slot.1 = Some(h),
            Quantity::HumidityPermille(_) => return Err(twice("humidity")),
            Quantity::Door(d) if slot.2.is_none() => slot.2 = Some(d),
            Quantity::Door(_) => return Err(twice("door state")),
        }
    }
    let device_id = device.unwrap_or_default();
    by_time
        .into_iter()
        .map(|(time_ms, (temperature, humidity, door))| {
            let temperature_cdeg = temperature.ok_or_else(|| {
                malformed(format!(
                    "device {device_id:?} has humidity or door records at time {time_ms} ms but no temperature (Cel or K) at that time; a reading needs one"
                ))
            })?;
            Ok(DeviceReading {
                device_id: device_id.clone(),
                sequence: time_ms,
                time_s: time_ms / 1000,
                temperature_cdeg,
                humidity_permille: humidity,
                door,
                location: None,
            })
        })
        .collect()
}

/// Encodes one device's readings as a SenML JSON pack, for simulators and
/// tests: `bn` = `base_name`, `bt` the first reading's time, each record's `t`
/// the offset from it, temperatures in Cel, humidity in %RH, the door as `vb`.
/// As when the gateway reads SenML, a reading's `sequence` is its time in
/// milliseconds: that is the time written (so sub-second readings keep apart).
pub fn encode_json(base_name: &str, readings: &[DeviceReading]) -> Vec<u8> {
    let base_ms = readings.first().map_or(0, |r| r.sequence);
    let seconds =
        |ms: u64| serde_json::Number::from_f64(ms as f64 / 1000.0).unwrap_or_else(|| 0.into());
    let offset = |r: &DeviceReading| {
        let ms = r.sequence as i64 - base_ms as i64;
        serde_json::Number::from_f64(ms as f64 / 1000.0).unwrap_or_else(|| 0.into())
    };
    let mut records = Vec::with_capacity(readings.len() * 2);
    for (i, r) in readings.iter().enumerate() {
        let celsius = serde_json::Number::from_f64(r.temperature_cdeg as f64 / 100.0)
            .unwrap_or_else(|| 0.into());
        let mut record = serde_json::json!({"n": "temp", "u": "Cel", "v": celsius});
        if i == 0 {
            record["bn"] = base_name.into();
            record["bt"] = seconds(base_ms).into();
        } else {
            record["t"] = offset(r).into();
        }
        records.push(record);
        if let Some(h) = r.humidity_permille {
            records.push(
                serde_json::json!({"n": "hum", "u": "%RH", "v": h as f64 / 10.0, "t": offset(r)}),
            );
        }
        if let Some(door) = r.door {
            records
                .push(serde_json::json!({"n": "door", "vb": door == Door::Open, "t": offset(r)}));
        }
    }
    serde_json::Value::Array(records).to_string().into_bytes()
}

mod cbor;
#[cfg(test)]
mod tests;
