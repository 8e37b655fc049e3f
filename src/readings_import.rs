//! `coldchain readings import`: a USB/PDF logger's CSV export (read out at the
//! end of a trip) submitted as signed `RecordReadings` transactions.
//!
//! The file is read as CSV (the `csv` crate; `,` or, with `--decimal-comma`,
//! `;` between fields unless `--delimiter` says otherwise). `--columns` names
//! the 1-based columns of `time`, `temperature` (°C) and optionally `humidity`
//! (%RH). Lines starting with `#`, blank lines and `--skip-lines` leading lines
//! are skipped; a first remaining row whose temperature is not a number is the
//! header. Times are `YYYY-MM-DD HH:MM[:SS]` (or with `T`), `DD.MM.YYYY HH:MM[:SS]`,
//! Unix seconds, or `--time-format` (strftime); a time with its own offset
//! (`…Z`, `…+01:00`) keeps it, any other is read in `--time-zone` (an IANA name
//! or a fixed `±HH:MM`; UTC by default). In a DST fold (the repeated hour) the
//! earlier of the two instants not before the previous row is taken, so a
//! logger running through the night of the change reads in order; a time in a
//! DST gap does not exist and is a bad row.
//!
//! **All or nothing, like `lot import`**: every row is checked first, with the
//! gateway's own rules ([`coldchain_gateway::validation::judge_reading`]:
//! plausible values, times strictly increasing, not ahead of this computer's
//! clock); one bad row and nothing is submitted, every bad row listed by line.
//!
//! **Exactly once**: a reading's sequence number is its time in milliseconds
//! since the Unix epoch (as for SenML loggers), so the same file gives the same
//! sequences every time. Rows at or below the device's `last_sequence` on the
//! ledger are already recorded and left out; re-importing a file records
//! nothing twice, and a longer export of the same logger adds only its new rows.
//! The transactions are signed exactly as the gateway signs them
//! ([`coldchain_gateway::batching::ledger_reading`], `record_readings_spec`):
//! the key must be an authorised gateway of the device's organisation
//! (`coldchain org authorize-gateway`).
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use coldchain_gateway::protocol::DeviceReading;
use coldchain_gateway::validation::{judge_reading, DeviceProgress, Plausibility};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

use crate::client::Outcome;
use crate::ledger_commands::Connection;
use crate::lot_import::line_at;

/// Readings per transaction (the sensor TP takes up to 10 000).
const READINGS_PER_TRANSACTION: usize = 1_000;
/// Transactions per batch; every batch is awaited before the next is sent.
const TRANSACTIONS_PER_BATCH: usize = 20;
/// How far ahead of this computer's clock a row may be (as the gateway's default).
const CLOCK_SKEW_TOLERANCE_S: u64 = 300;
/// Oldest row taken: a year (a 30-day logger read out late still fits).
const MAX_AGE_S: u64 = 366 * 24 * 3600;

/// `coldchain readings …`.
#[derive(Debug, clap::Subcommand)]
pub enum ReadingsCommand {
    /// Submit a logger's CSV export as signed readings of one device and shipment.
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The logger's device id (registered on the ledger).
    #[arg(long)]
    pub device: String,
    /// The shipment the readings belong to.
    #[arg(long)]
    pub shipment: String,
    /// 1-based columns: time and temperature (°C) required, humidity (%RH) optional.
    #[arg(long, default_value = "time=1,temperature=2")]
    pub columns: String,
    /// Time zone of times without an offset: an IANA name (Europe/Berlin) or ±HH:MM.
    #[arg(long, default_value = "UTC")]
    pub time_zone: String,
    /// strftime format of the time column (e.g. "%m/%d/%Y %I:%M:%S %p").
    #[arg(long)]
    pub time_format: Option<String>,
    /// Numbers use a decimal comma (4,5); fields are then separated by `;`.
    #[arg(long)]
    pub decimal_comma: bool,
    /// Field separator (default `,`, or `;` with --decimal-comma).
    #[arg(long)]
    pub delimiter: Option<char>,
    /// Leading lines to skip (a logger's preamble before the header).
    #[arg(long, default_value_t = 0)]
    pub skip_lines: usize,
    /// The CSV file.
    pub file: PathBuf,
}

/// Where the values are and how they are written.
#[derive(Clone, Debug)]
pub struct Layout {
    pub time: usize,
    pub temperature: usize,
    pub humidity: Option<usize>,
    pub time_zone: TimeZone,
    pub time_format: Option<String>,
    pub decimal_comma: bool,
    pub delimiter: u8,
    pub skip_lines: usize,
}

impl Layout {
    pub fn from_args(args: &ImportArgs) -> Result<Layout> {
        let (mut time, mut temperature, mut humidity) = (None, None, None);
        for part in args.columns.split(',').map(str::trim) {
            let (name, column) = part.split_once('=').with_context(|| {
                format!("--columns part {part:?} is not name=column, e.g. time=1,temperature=2")
            })?;
            let column: usize = column
                .trim()
                .parse()
                .ok()
                .filter(|c| *c >= 1)
                .with_context(|| {
                    format!("--columns: column {column:?} of {name} is not a number from 1")
                })?;
            match name.trim() {
                "time" => time = Some(column - 1),
                "temperature" => temperature = Some(column - 1),
                "humidity" => humidity = Some(column - 1),
                other => bail!(
                    "--columns names {other:?}; the columns are time, temperature and humidity"
                ),
            }
        }
        let delimiter = args
            .delimiter
            .unwrap_or(if args.decimal_comma { ';' } else { ',' });
        if !delimiter.is_ascii() {
            bail!("--delimiter {delimiter:?} must be one ASCII character");
        }
        if args.decimal_comma && delimiter == ',' {
            bail!("--decimal-comma with ',' between fields cannot be read; use --delimiter ';' (or tab)");
        }
        Ok(Layout {
            time: time.context("--columns must name the time column (time=N)")?,
            temperature: temperature
                .context("--columns must name the temperature column (temperature=N)")?,
            humidity,
            time_zone: time_zone(&args.time_zone)?,
            time_format: args.time_format.clone(),
            decimal_comma: args.decimal_comma,
            delimiter: delimiter as u8,
            skip_lines: args.skip_lines,
        })
    }
}

/// `UTC`, `±HH:MM` or an IANA name from the system's time zone database.
pub fn time_zone(text: &str) -> Result<TimeZone> {
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Ok(TimeZone::UTC);
    }
    if let Some(sign) = text.chars().next().filter(|c| *c == '+' || *c == '-') {
        let (hours, minutes) = text[1..].split_once(':').unwrap_or((&text[1..], "0"));
        let (Ok(h), Ok(m)) = (hours.parse::<i32>(), minutes.parse::<i32>()) else {
            bail!("--time-zone {text:?} is not ±HH:MM");
        };
        if h > 18 || m > 59 {
            bail!("--time-zone {text:?} is beyond ±18:00");
        }
        let seconds = (h * 3600 + m * 60) * if sign == '-' { -1 } else { 1 };
        return Ok(TimeZone::fixed(Offset::from_seconds(seconds)?));
    }
    TimeZone::get(text).with_context(|| {
        format!("--time-zone {text:?} is not UTC, ±HH:MM or a time zone name like Europe/Berlin")
    })
}

/// One good row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub time_s: u64,
    pub temperature_cdeg: i32,
    pub humidity_permille: Option<u32>,
}

/// Civil time formats tried when no `--time-format` is given.
const TIME_FORMATS: [&str; 6] = [
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
];

/// The instant a time field names; `previous` (the row before) picks the
/// instant in a DST fold.
fn instant(field: &str, layout: &Layout, previous: Option<i64>) -> Result<i64, String> {
    if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
        return field
            .parse()
            .map_err(|_| format!("time {field:?} is too large"));
    }
    if let Ok(timestamp) = field.parse::<jiff::Timestamp>() {
        return Ok(timestamp.as_second());
    }
    let civil = match &layout.time_format {
        Some(format) => jiff::civil::DateTime::strptime(format, field)
            .map_err(|e| format!("time {field:?} does not match --time-format {format:?}: {e}"))?,
        None => TIME_FORMATS
            .iter()
            .find_map(|f| jiff::civil::DateTime::strptime(f, field).ok())
            .ok_or_else(|| {
                format!("time {field:?} is not YYYY-MM-DD HH:MM[:SS], DD.MM.YYYY HH:MM[:SS] or Unix seconds; give --time-format")
            })?,
    };
    let at = |offset: Offset| {
        offset
            .to_timestamp(civil)
            .map(|t| t.as_second())
            .map_err(|e| format!("time {field:?}: {e}"))
    };
    match layout.time_zone.to_ambiguous_timestamp(civil).offset() {
        AmbiguousOffset::Unambiguous { offset } => at(offset),
        AmbiguousOffset::Gap { .. } => Err(format!(
            "time {field:?} does not exist in the time zone (clocks skipped it for daylight saving time)"
        )),
        AmbiguousOffset::Fold { before, after } => {
            let (first, second) = (at(before)?, at(after)?);
            Ok(match previous {
                Some(p) if first <= p => second,
                _ => first,
            })
        }
    }
}

/// A decimal (with `,` when `decimal_comma`) scaled by 10^places, rounded
/// half away from zero; no floating point.
fn decimal(field: &str, decimal_comma: bool, places: u32) -> Option<i64> {
    let text = if decimal_comma {
        field.replace(',', ".")
    } else {
        field.to_string()
    };
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && fraction.is_empty())
        || whole.len() > 9
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let kept = &fraction[..fraction.len().min(places as usize)];
    let mut value: i64 = format!("{whole}{kept:0<width$}", width = places as usize)
        .parse()
        .ok()?;
    if fraction
        .as_bytes()
        .get(places as usize)
        .is_some_and(|d| *d >= b'5')
    {
        value += 1;
    }
    Some(sign * value)
}

/// Reads and checks the whole file: every row, or every bad row as
/// `line N: what is wrong`, in file order.
pub fn parse_logger_csv(
    text: &str,
    layout: &Layout,
    device: &str,
    now_s: u64,
) -> Result<Vec<Row>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .delimiter(layout.delimiter)
        .from_reader(text.as_bytes());
    let limits = Plausibility {
        clock_skew_tolerance_s: CLOCK_SKEW_TOLERANCE_S,
        max_backlog_age_s: MAX_AGE_S,
    };
    let (mut rows, mut bad) = (Vec::new(), Vec::new());
    let mut progress = DeviceProgress::default();
    let mut previous: Option<(i64, u64)> = None;
    let mut first_data = true;
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |p| line_at(text, p));
                if line as usize > layout.skip_lines {
                    bad.push(format!("line {line}: not valid CSV: {error}"));
                }
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_at(text, p));
        if (line as usize) <= layout.skip_lines {
            continue;
        }
        let field = |i: usize| record.get(i).map(str::trim);
        let header = first_data
            && field(layout.temperature)
                .is_some_and(|t| decimal(t, layout.decimal_comma, 2).is_none());
        first_data = false;
        if header {
            continue;
        }
        let row = (|| -> Result<Row, String> {
            let column = |i: usize, name: &str| {
                field(i).filter(|f| !f.is_empty()).ok_or_else(|| {
                    format!("no {name} in column {} (the row has {} fields; check --columns and --delimiter)", i + 1, record.len())
                })
            };
            let time = instant(column(layout.time, "time")?, layout, previous.map(|p| p.0))?;
            let time_s = u64::try_from(time).map_err(|_| format!("time {time} is before 1970"))?;
            let raw = column(layout.temperature, "temperature")?;
            let temperature_cdeg = decimal(raw, layout.decimal_comma, 2)
                .and_then(|t| i32::try_from(t).ok())
                .ok_or_else(|| {
                    format!(
                        "temperature {raw:?} is not a number in °C{}",
                        if layout.decimal_comma {
                            ""
                        } else {
                            " (for 4,5 give --decimal-comma)"
                        }
                    )
                })?;
            let humidity_permille = match layout.humidity {
                None => None,
                Some(i) => {
                    let raw = column(i, "humidity")?;
                    Some(
                        decimal(raw, layout.decimal_comma, 1)
                            .and_then(|h| u32::try_from(h).ok())
                            .ok_or_else(|| {
                                format!("humidity {raw:?} is not a number in %RH from 0")
                            })?,
                    )
                }
            };
            let reading = reading_of(
                device,
                &Row {
                    line,
                    time_s,
                    temperature_cdeg,
                    humidity_permille,
                },
            );
            judge_reading(&reading, progress, now_s, limits).map_err(|r| {
                let earlier = previous.map_or(String::new(), |(_, l)| format!(" (line {l})"));
                match r.reason {
                    coldchain_gateway::validation::Reason::Duplicate
                    | coldchain_gateway::validation::Reason::OutOfOrder => format!(
                        "time {time_s} is not after the previous row's{earlier}; a logger's rows must be in time order, each time once"
                    ),
                    _ => r.detail,
                }
            })?;
            progress = DeviceProgress {
                last_sequence: reading.sequence,
                last_time_s: reading.time_s,
            };
            previous = Some((time, line));
            Ok(Row {
                line,
                time_s,
                temperature_cdeg,
                humidity_permille,
            })
        })();
        match row {
            Ok(row) => rows.push(row),
            Err(e) => bad.push(format!("line {line}: {e}")),
        }
    }
    if rows.is_empty() && bad.is_empty() {
        bad.push("the file holds no readings".into());
    }
    if bad.is_empty() {
        Ok(rows)
    } else {
        Err(bad)
    }
}

/// A row as a reading: its sequence is its time in milliseconds.
pub fn reading_of(device: &str, row: &Row) -> DeviceReading {
    DeviceReading {
        device_id: device.to_string(),
        sequence: row.time_s * 1000,
        time_s: row.time_s,
        temperature_cdeg: row.temperature_cdeg,
        humidity_permille: row.humidity_permille,
        door: None,
        location: None,
    }
}

/// Runs `coldchain readings import`.
pub fn run(command: ReadingsCommand, connection: &Connection) -> Result<()> {
    let ReadingsCommand::Import(args) = command;
    let layout = Layout::from_args(&args)?;
    let text = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let text = String::from_utf8_lossy(&text);
    let now_s = crate::ledger_commands::now_s();
    let rows = match parse_logger_csv(&text, &layout, &args.device, now_s) {
        Ok(rows) => rows,
        Err(bad) => {
            if connection.json {
                println!(
                    "{}",
                    serde_json::json!({"rows": 0, "recorded": 0, "bad_rows": bad})
                );
            } else {
                for row in &bad {
                    println!("  bad {row}");
                }
            }
            bail!(
                "{} has {} bad row(s); nothing was submitted. Fix them (or --columns, --time-zone, --decimal-comma) and import again",
                args.file.display(),
                bad.len()
            );
        }
    };
    let rt = crate::runtime()?;
    let ledger = coldchain_gateway::ledger::Ledger::new(
        &connection.url,
        std::time::Duration::from_secs(connection.wait + 30),
    )?;
    let device = rt.block_on(ledger.device(&args.device))?.with_context(|| {
        format!(
            "device {} is not on the ledger; register it first with `coldchain device register`",
            args.device
        )
    })?;
    let last = device.get_last_sequence();
    let new: Vec<DeviceReading> = rows
        .iter()
        .map(|row| reading_of(&args.device, row))
        .filter(|r| r.sequence > last)
        .collect();
    let already = rows.len() - new.len();
    let signer = connection.signer()?;
    let client = connection.client()?;
    let mut recorded = 0usize;
    let transactions = new
        .chunks(READINGS_PER_TRANSACTION)
        .map(|chunk| sign_readings(chunk, &args.shipment, device.get_org_id(), &signer))
        .collect::<Result<Vec<_>>>()?;
    for batch_transactions in transactions.chunks(TRANSACTIONS_PER_BATCH) {
        use coldchain_processors::signing::{batch_list_bytes, sign_batch};
        let count: usize = batch_transactions.iter().map(|(n, _)| n).sum();
        let batch = sign_batch(
            batch_transactions.iter().map(|(_, t)| t.clone()).collect(),
            &signer,
        )?;
        let id = batch.get_header_signature().to_string();
        rt.block_on(client.post_batches(batch_list_bytes(vec![batch])?))?;
        match rt.block_on(client.wait_for(&id))? {
            Outcome::Committed { .. } => recorded += count,
            Outcome::Invalid { reason, .. } => bail!(
                "the ledger refused readings of {}: {reason}; {recorded} of {} new readings were recorded before",
                args.device,
                new.len()
            ),
            Outcome::Pending { .. } => bail!(
                "batch {id} is still pending after {} s; {recorded} readings are recorded. Import the file again later: nothing is recorded twice",
                connection.wait
            ),
        }
    }
    if connection.json {
        println!(
            "{}",
            serde_json::json!({"rows": rows.len(), "recorded": recorded, "already_recorded": already,
                "device": args.device, "shipment": args.shipment})
        );
    } else {
        println!(
            "recorded {recorded} of {} readings of {} for shipment {} ({already} already on the ledger)",
            rows.len(),
            args.device,
            args.shipment
        );
    }
    Ok(())
}

/// One signed `RecordReadings` transaction, built as the gateway builds it.
fn sign_readings(
    readings: &[DeviceReading],
    shipment: &str,
    org: &str,
    signer: &coldchain_processors::signing::Signer,
) -> Result<(usize, sawtooth_sdk::messages::transaction::Transaction)> {
    use coldchain_processors::messages::coldchain::RecordReadings;
    let mut record = RecordReadings::new();
    record.set_device_id(
        readings
            .first()
            .map(|r| r.device_id.clone())
            .unwrap_or_default(),
    );
    record.set_shipment_id(shipment.to_string());
    record.set_readings(
        readings
            .iter()
            .map(coldchain_gateway::batching::ledger_reading)
            .collect::<Vec<_>>()
            .into(),
    );
    let spec =
        coldchain_processors::sensor::record_readings_spec(&record, org, signer.public_key());
    let transaction =
        coldchain_processors::signing::sign_transaction(spec, signer, signer.public_key())?;
    Ok((readings.len(), transaction))
}

#[cfg(test)]
mod tests;
