//! `coldchain lot import`: many lots from one CSV file.
//!
//! The file is RFC 4180 CSV (the `csv` crate): a field holding a comma, a
//! quote or a line break is quoted (`"Vaccine X, PFS"`), a quote inside it
//! doubled. Columns: `gtin,lot,expiry,quantity,profile,site_gln,product_name`
//! and optionally `serials` (separated by `;`). A first row starting with
//! `gtin` is the header; when present it fixes the number of columns. Lines
//! starting with `#` and blank lines are skipped.
//!
//! The whole file is checked before anything is signed: one bad row and
//! nothing is submitted, and every bad row is listed with its line number.
//! A mis-split row must never reach the ledger: an unquoted comma in a
//! product name once became a pack serial that verified AUTHENTIC.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use crate::client::Outcome;
use crate::ledger_commands::{self, Connection, LotSpec};
use crate::profiles::ProfilePreset;

/// The columns, in order; the last is optional.
pub const COLUMNS: &str = "gtin,lot,expiry,quantity,profile,site_gln,product_name[,serials]";

/// A row of the file that became a lot, with its line number.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: u64,
    pub lot: LotSpec,
}

/// Parses and checks a whole lot-import file: every row, or every bad row
/// as `line N: what is wrong` (in file order).
pub fn parse_lot_csv(text: &str) -> Result<Vec<Row>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let mut width: Option<usize> = None;
    let mut first_line_of: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (index, record) in reader.records().enumerate() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map(|p| line_at(text, p)).unwrap_or(0);
                bad.push(format!("line {line}: not valid CSV: {error}"));
                continue;
            }
        };
        let line = record.position().map(|p| line_at(text, p)).unwrap_or(0);
        let fields: Vec<&str> = record.iter().collect();
        if index == 0
            && fields
                .first()
                .is_some_and(|f| f.trim().eq_ignore_ascii_case("gtin"))
        {
            width = Some(fields.len());
            if !(7..=8).contains(&fields.len()) {
                bad.push(format!(
                    "line {line}: the header has {} columns; expected {COLUMNS}",
                    fields.len()
                ));
            }
            continue;
        }
        match parse_row(&fields, width) {
            Ok(lot) => {
                let key = (lot.gtin.clone(), lot.lot.clone());
                if let Some(first) = first_line_of.get(&key) {
                    bad.push(format!(
                        "line {line}: lot {} of GTIN {} is already on line {first}",
                        lot.lot, lot.gtin
                    ));
                } else {
                    first_line_of.insert(key, line);
                    rows.push(Row { line, lot });
                }
            }
            Err(error) => bad.push(format!("line {line}: {error:#}")),
        }
    }
    if bad.is_empty() {
        Ok(rows)
    } else {
        Err(bad)
    }
}

/// The 1-based line a record starts on. The reader's position is where it
/// started reading, which may be a `#` comment or blank line it skipped
/// before the record (and its own line count leaves comments out), so count
/// from the byte offset and step over those.
pub(crate) fn line_at(text: &str, position: &csv::Position) -> u64 {
    let offset = usize::try_from(position.byte()).unwrap_or(usize::MAX);
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    let mut line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let rest = text.get(offset.min(text.len())..).unwrap_or("");
    for skipped in rest.split('\n') {
        let trimmed = skipped.trim_end_matches('\r');
        if !(trimmed.is_empty() || trimmed.starts_with('#')) {
            break;
        }
        line += 1;
    }
    line
}

/// One data row; `width` is the header's column count when there is one.
fn parse_row(fields: &[&str], width: Option<usize>) -> Result<LotSpec> {
    let quote_hint = "a field holding a comma must be quoted, e.g. \"Vaccine X, PFS\"";
    if let Some(width) = width.filter(|w| (7..=8).contains(w)) {
        if fields.len() != width {
            bail!(
                "{} fields where the header has {width}; {quote_hint}",
                fields.len()
            );
        }
    }
    if !(7..=8).contains(&fields.len()) {
        bail!("{} fields; expected {COLUMNS}; {quote_hint}", fields.len());
    }
    let field = |i: usize| fields[i].trim();
    let expiry = field(2)
        .parse()
        .with_context(|| format!("expiry {:?} is not YYYYMMDD", field(2)))?;
    let quantity = field(3)
        .parse()
        .with_context(|| format!("quantity {:?} is not a whole number", field(3)))?;
    let profile = ProfilePreset::from_str(field(4), true).map_err(|_| {
        anyhow::anyhow!(
            "profile {:?} is not one of refrigerated, frozen, ultra-cold, controlled-room",
            field(4)
        )
    })?;
    let mut serials = Vec::new();
    if let Some(raw) = fields.get(7) {
        // A space after the comma before the serials is what an unquoted
        // comma in the product name leaves behind ("Vaccine X, PFS").
        if raw.starts_with(char::is_whitespace) && !raw.trim().is_empty() {
            bail!(
                "the serials field {raw:?} starts with a space: is it the rest of the product name {:?}? {quote_hint}; otherwise remove the space",
                field(6)
            );
        }
        for serial in raw.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            coldchain_api::identifiers::check_code("serial", serial)
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            serials.push(serial.to_string());
        }
    }
    if field(6).is_empty() {
        bail!("product_name is empty");
    }
    let lot = LotSpec {
        gtin: field(0).to_string(),
        lot: field(1).to_string(),
        expiry,
        quantity,
        serials,
        profile,
        stability: Default::default(),
        site: field(5).to_string(),
        product: field(6).to_string(),
    };
    // The same checks `lot create` makes (GTIN, GLN, lot code, serials …).
    ledger_commands::create_lot_spec(&lot, 0)?;
    Ok(lot)
}

/// Checks the whole file, then submits one batch per row (so a row the
/// ledger refuses does not sink the others), up to 100 batches per request.
pub fn import_lots(path: &Path, connection: &Connection) -> Result<()> {
    use coldchain_processors::signing::{batch_list_bytes, sign_batch, sign_transaction};
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rows = match parse_lot_csv(&text) {
        Ok(rows) => rows,
        Err(bad) => {
            if connection.json {
                println!(
                    "{}",
                    serde_json::json!({"total": 0, "committed": 0, "bad_rows": bad})
                );
            } else {
                for row in &bad {
                    println!("  bad {row}");
                }
            }
            bail!(
                "{} has {} bad row(s); nothing was submitted. Fix them and import again",
                path.display(),
                bad.len()
            );
        }
    };
    let now = ledger_commands::now_s();
    let specs = rows
        .iter()
        .map(|row| Ok((row.line, ledger_commands::create_lot_spec(&row.lot, now)?)))
        .collect::<Result<Vec<_>>>()?;
    let total = specs.len();
    let client = connection.client()?;
    let signer = connection.signer()?;
    let rt = crate::runtime()?;
    let mut committed = 0usize;
    let mut refused = Vec::new();
    for chunk in specs.chunks(100) {
        let mut batches = Vec::new();
        let mut ids = Vec::new();
        for (line, spec) in chunk {
            let transaction = sign_transaction(spec.clone(), &signer, signer.public_key())?;
            let batch = sign_batch(vec![transaction], &signer)?;
            ids.push((*line, batch.get_header_signature().to_string()));
            batches.push(batch);
        }
        rt.block_on(client.post_batches(batch_list_bytes(batches)?))?;
        for (line, id) in ids {
            match rt.block_on(client.wait_for(&id))? {
                Outcome::Committed { .. } => committed += 1,
                Outcome::Invalid { reason, .. } => refused.push(format!("line {line}: {reason}")),
                Outcome::Pending { .. } => {
                    refused.push(format!("line {line}: still pending (batch {id})"))
                }
            }
            if !connection.json {
                progress(committed + refused.len(), total);
            }
        }
    }
    if connection.json {
        println!(
            "{}",
            serde_json::json!({"total": total, "committed": committed, "refused": refused})
        );
    } else {
        eprintln!();
        println!("imported {committed} of {total} lots");
        for line in &refused {
            println!("  refused {line}");
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        bail!("{} of {total} lots were not imported", refused.len())
    }
}

/// A one-line progress bar on stderr (only when stderr is a terminal).
fn progress(done: usize, total: usize) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || total == 0 {
        return;
    }
    let width = 30;
    let filled = done * width / total;
    eprint!(
        "\r[{}{}] {done}/{total}",
        "#".repeat(filled),
        "-".repeat(width - filled)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const GTIN: &str = "09501101530003";
    const GLN: &str = "9501101000004";

    fn row(product: &str, serials: &str) -> String {
        format!("{GTIN},L1,20271231,10,refrigerated,{GLN},{product}{serials}\n")
    }

    #[test]
    fn quoted_product_name_with_a_comma_stays_one_field() {
        let rows = parse_lot_csv(&row("\"Vaccine X, PFS\"", ",A1;A2")).unwrap();
        assert_eq!(rows[0].lot.product, "Vaccine X, PFS");
        assert_eq!(rows[0].lot.serials, vec!["A1", "A2"]);
    }

    #[test]
    fn unquoted_comma_in_product_name_is_refused_not_turned_into_a_serial() {
        let bad = parse_lot_csv(&row("Vaccine X, PFS", "")).unwrap_err();
        assert!(bad[0].starts_with("line 1:"), "{bad:?}");
        assert!(bad[0].contains("quoted"), "{bad:?}");
    }

    #[test]
    fn header_fixes_the_width_and_every_bad_row_is_listed_by_line() {
        let text = format!(
            "gtin,lot,expiry,quantity,profile,site_gln,product_name\n{}# a comment\n{}{}",
            row("Vaccine X", ""),
            row("Vaccine X", ",PFS").replace("L1", "L2"),
            row("Vaccine Y", "").replace("20271231", "2027-12-31"),
        );
        let bad = parse_lot_csv(&text).unwrap_err();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with("line 4:"), "{bad:?}");
        assert!(bad[1].starts_with("line 5:"), "{bad:?}");
    }

    #[test]
    fn line_numbers_count_comment_and_blank_lines() {
        let text = format!("# lots\n\n{}\n# more\n{}", row("A", ""), row("", ""));
        let bad = parse_lot_csv(&text).unwrap_err();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("line 6:"), "{bad:?}");
    }

    #[test]
    fn a_lot_twice_in_one_file_is_refused() {
        let bad = parse_lot_csv(&format!("{}{}", row("A", ""), row("B", ""))).unwrap_err();
        assert!(bad[0].contains("already on line 1"), "{bad:?}");
    }
}
