//! `coldchain verify`: one verdict for a pack or lot, with an exit code a
//! script can act on.
//!
//! By default it reads the lot, pack and thermal records straight from a
//! Sawtooth REST API (`--url`; no index needed) and applies the same verdict
//! rules as the provenance API. With `--api` it asks the provenance API
//! instead, which refuses (503 `cannot_verify_now`) while its index is behind.
//! Either way it first makes sure the address it was given is the kind of
//! service it expects, so a wrong address is named, never read as UNKNOWN.
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use coldchain_api::verdict::{decide, VerdictInput, VerdictKind};
use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::identifiers;
use coldchain_processors::messages::coldchain::{Lot, Pack, ThermalRecord};
use serde_json::Value;

use crate::client::{decode_record, LedgerClient};

/// The exit codes, as `--help` and docs/guides/pharmacy.md list them.
pub const EXIT_CODES: &str = "Exit codes:
  0  authentic and in spec: may be dispensed
  1  usage or input error (bad Digital Link or flags, --url/--api is the wrong kind of service)
  2  cannot verify now: nothing answers, the ledger or API failed, or the provenance API
     answered 503 cannot_verify_now (its index is behind); try again, this is no verdict
  3  unknown: the pack or lot is not on the ledger (suspect a counterfeit)
  4  do not dispense: compromised, recalled, quarantined, expired or already dispensed";

pub const EXIT_USAGE: i32 = 1;
pub const EXIT_CANNOT_VERIFY_NOW: i32 = 2;
pub const EXIT_UNKNOWN: i32 = 3;
pub const EXIT_DO_NOT_DISPENSE: i32 = 4;

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct VerifyArgs {
    /// What the barcode scanner read, quoted: a GS1 element string
    /// '(01)09501101530003(17)281231(10)LOT(21)SERIAL', the raw form with GS
    /// (0x1D) separators and a ]d2/]C1/]Q3/]e0 prefix, or a GS1 Digital Link
    /// (URL or path /01/{gtin}/10/{lot}/21/{serial}[?17=YYMMDD]). It needs a
    /// lot and/or a serial. Not together with --gtin/--lot/--serial.
    #[arg(value_name = "SCAN", conflicts_with_all = ["gtin", "lot", "serial"])]
    pub digital_link: Option<String>,
    #[arg(long)]
    pub gtin: Option<String>,
    #[arg(long)]
    pub serial: Option<String>,
    #[arg(long)]
    pub lot: Option<String>,
    /// Sawtooth REST API of the node or network.
    #[arg(long, env = "COLDCHAIN_URL", default_value = "http://127.0.0.1:8008")]
    pub url: String,
    /// Ask this provenance API (e.g. http://127.0.0.1:8080) instead of the
    /// REST API; it gives no verdict while its index is behind (exit 2).
    #[arg(long, env = "COLDCHAIN_API")]
    pub api: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// What a pharmacy scanner gives us.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PackQuery {
    pub gtin: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<u32>,
}

/// Why no verdict was given, and the exit code that says so.
#[derive(Debug)]
pub struct NoVerdict {
    pub code: i32,
    pub error: anyhow::Error,
}

fn usage(error: anyhow::Error) -> NoVerdict {
    NoVerdict {
        code: EXIT_USAGE,
        error,
    }
}

fn not_now(error: anyhow::Error) -> NoVerdict {
    NoVerdict {
        code: EXIT_CANNOT_VERIFY_NOW,
        error,
    }
}

/// The exit code of a verdict.
pub fn exit_code(verdict: VerdictKind) -> i32 {
    match verdict {
        VerdictKind::AuthenticInSpec => 0,
        VerdictKind::Unknown => EXIT_UNKNOWN,
        VerdictKind::Compromised
        | VerdictKind::Recalled
        | VerdictKind::Quarantined
        | VerdictKind::Expired
        | VerdictKind::AlreadyDispensed => EXIT_DO_NOT_DISPENSE,
    }
}

/// Reads what a barcode scanner typed (a GS1 element string, human-readable
/// or raw with FNC1/GS separators and a `]d2`-style symbology identifier, or a
/// GS1 Digital Link URI or path) with the provenance API's own parser
/// (`coldchain_api::scan`), so the CLI, the API and the page agree.
pub fn parse_scan(text: &str) -> anyhow::Result<PackQuery> {
    let scan = coldchain_api::scan::parse_scan(text).map_err(|e| anyhow!("{}", e.message))?;
    Ok(PackQuery {
        gtin: scan.gtin,
        lot: scan.lot,
        serial: scan.serial,
        expiry: scan.expiry,
    })
}

/// The pack or lot asked about; refuses a GTIN alone (it names no pack or
/// lot: the provenance API answers 400 `missing_lot_or_serial` to it).
pub fn pack_query(args: &VerifyArgs) -> anyhow::Result<PackQuery> {
    let query = match &args.digital_link {
        Some(scan) => parse_scan(scan)?,
        None => {
            let Some(gtin) = &args.gtin else {
                anyhow::bail!("give what the scanner read (a GS1 element string or Digital Link), or --gtin with --serial and/or --lot");
            };
            PackQuery {
                gtin: identifiers::normalize_gtin(gtin)?,
                lot: args.lot.clone(),
                serial: args.serial.clone(),
                expiry: None,
            }
        }
    };
    if query.lot.is_none() && query.serial.is_none() {
        anyhow::bail!(
            "GTIN {} alone names no pack or lot: add a lot (/10/{{lot}} or --lot) and/or a serial (/21/{{serial}} or --serial)",
            query.gtin
        );
    }
    Ok(query)
}

fn today() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    identifiers::day_of(secs)
}

/// Runs `coldchain verify`, prints the verdict (or why there is none) and
/// returns the exit code ([`EXIT_CODES`]).
pub async fn verify(args: VerifyArgs) -> i32 {
    match find_verdict(&args).await {
        Ok((verdict, json)) => {
            if args.json {
                println!("{json}");
            } else {
                let word = json["verdict"].as_str().unwrap_or_default();
                println!("{}", word.to_uppercase().replace('_', " "));
                for reason in json["reasons"].as_array().into_iter().flatten() {
                    println!("  - {}", reason.as_str().unwrap_or_default());
                }
            }
            exit_code(verdict)
        }
        Err(no_verdict) => {
            if args.json {
                let kind = if no_verdict.code == EXIT_CANNOT_VERIFY_NOW {
                    "cannot_verify_now"
                } else {
                    "usage"
                };
                println!(
                    "{}",
                    serde_json::json!({"verdict": null, "error": kind, "message": format!("{:#}", no_verdict.error)})
                );
            }
            eprintln!("error: {:#}", no_verdict.error);
            no_verdict.code
        }
    }
}

async fn find_verdict(args: &VerifyArgs) -> Result<(VerdictKind, Value), NoVerdict> {
    let query = pack_query(args).map_err(usage)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| not_now(anyhow!("cannot build an HTTP client: {e}")))?;
    match &args.api {
        Some(api) => from_provenance_api(&http, api, &query).await,
        None => from_ledger(&http, &args.url, &query).await,
    }
}

fn base_url(url: &str, flag: &str) -> Result<String, NoVerdict> {
    let base = url.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(usage(anyhow!(
            "{flag} must start with http:// or https://, got {url:?}"
        )));
    }
    Ok(base)
}

/// GET `url`: its status and body as JSON (Null when not JSON); a failure to
/// get any answer means nothing answers there.
async fn get_json(
    http: &reqwest::Client,
    url: &str,
    base: &str,
) -> Result<(u16, Value), NoVerdict> {
    let response = http.get(url).send().await.map_err(|e| {
        not_now(anyhow!(
            "nothing answers at {base} ({}); is the service running, and is the address right?",
            short_error(&e)
        ))
    })?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn short_error(error: &reqwest::Error) -> String {
    if error.is_connect() {
        "connection refused".into()
    } else if error.is_timeout() {
        "timed out".into()
    } else {
        error.to_string()
    }
}

/// Whether a coldchain provenance API answers at `base`.
async fn is_provenance_api(http: &reqwest::Client, base: &str) -> bool {
    match get_json(http, &format!("{base}/openapi.json"), base).await {
        Ok((200, json)) => json["info"]["title"] == "coldchain provenance API",
        _ => false,
    }
}

/// Checks that `base` is a Sawtooth REST API (`GET /blocks?limit=1` answers
/// a block list) and names what it is otherwise.
async fn check_sawtooth_rest_api(http: &reqwest::Client, base: &str) -> Result<(), NoVerdict> {
    let (status, json) = get_json(http, &format!("{base}/blocks?limit=1"), base).await?;
    if status == 200 && json["data"].is_array() {
        return Ok(());
    }
    if status == 503 && json["error"]["code"].is_number() {
        return Err(not_now(anyhow!(
            "the Sawtooth REST API at {base} cannot reach its validator now (503: {}); try again",
            json["error"]["message"].as_str().unwrap_or("unavailable")
        )));
    }
    if is_provenance_api(http, base).await {
        return Err(usage(anyhow!(
            "{base} is the coldchain provenance API, not a Sawtooth REST API: pass it as --api {base}, or give --url the node's REST API (default http://127.0.0.1:8008)"
        )));
    }
    Err(usage(anyhow!(
        "{base} is not a Sawtooth REST API (GET /blocks answered {status} without a block list); give --url the REST API of a node (default http://127.0.0.1:8008)"
    )))
}

async fn from_ledger(
    http: &reqwest::Client,
    url: &str,
    query: &PackQuery,
) -> Result<(VerdictKind, Value), NoVerdict> {
    let base = base_url(url, "--url")?;
    check_sawtooth_rest_api(http, &base).await?;
    let client = LedgerClient::new(&base, Duration::from_secs(10)).map_err(usage)?;
    let read = |kind: RecordKind, key: String| {
        let client = client.clone();
        async move {
            client
                .state(&kind.address(&key))
                .await
                .map_err(|e| not_now(e.context("cannot read the ledger now")))
        }
    };
    let pack: Option<Pack> = match &query.serial {
        Some(serial) => read(RecordKind::Pack, goods_key(&query.gtin, serial))
            .await?
            .map(|bytes| decode_record(&bytes, "pack"))
            .transpose()
            .map_err(not_now)?,
        None => None,
    };
    let lot_number = query
        .lot
        .clone()
        .or_else(|| pack.as_ref().map(|p| p.get_lot().to_string()));
    let (lot, thermal): (Option<Lot>, Option<ThermalRecord>) = match &lot_number {
        Some(number) => {
            let key = goods_key(&query.gtin, number);
            let lot = read(RecordKind::Lot, key.clone())
                .await?
                .map(|bytes| decode_record(&bytes, "lot"))
                .transpose()
                .map_err(not_now)?;
            let thermal = read(RecordKind::GoodsThermal, key)
                .await?
                .map(|bytes| decode_record(&bytes, "thermal"))
                .transpose()
                .map_err(not_now)?;
            (lot, thermal)
        }
        None => (None, None),
    };
    let verdict = decide(&VerdictInput {
        lot: lot.as_ref(),
        pack: pack.as_ref(),
        requested_serial: query.serial.as_deref(),
        claimed_expiry: query.expiry,
        lot_thermal: thermal.as_ref(),
        today: today(),
    });
    let json = serde_json::json!({
        "gtin": query.gtin, "lot": lot_number, "serial": query.serial,
        "verdict": verdict.verdict, "reasons": verdict.reasons,
    });
    Ok((verdict.verdict, json))
}

async fn from_provenance_api(
    http: &reqwest::Client,
    api: &str,
    query: &PackQuery,
) -> Result<(VerdictKind, Value), NoVerdict> {
    let base = base_url(api, "--api")?;
    let mut params = vec![("gtin", query.gtin.clone())];
    params.extend(query.lot.clone().map(|lot| ("lot", lot)));
    params.extend(query.serial.clone().map(|serial| ("serial", serial)));
    params.extend(
        query
            .expiry
            .map(|e| ("exp", format!("{:06}", e % 1_000_000))),
    );
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/verify"), &params)
        .map_err(|e| usage(anyhow!("--api {api:?} is not a usable URL: {e}")))?;
    let (status, json) = get_json(http, url.as_str(), &base).await?;
    let message = json["message"].as_str().unwrap_or_default().to_string();
    match (status, json["error"].as_str()) {
        (200, _) => {
            let verdict = serde_json::from_value::<String>(json["verdict"].clone())
                .ok()
                .and_then(|word| verdict_kind(&word))
                .ok_or_else(|| {
                    not_now(anyhow!("the provenance API at {base} answered no verdict I know"))
                })?;
            Ok((verdict, json))
        }
        (503, Some("cannot_verify_now")) => Err(not_now(anyhow!(
            "the provenance API at {base} cannot verify now (no verdict): {message}"
        ))),
        (400, Some(code)) => Err(usage(anyhow!("{code}: {message}"))),
        (500..=599, Some(code)) => Err(not_now(anyhow!(
            "the provenance API at {base} failed ({status} {code}: {message}); try again"
        ))),
        _ if is_provenance_api(http, &base).await => Err(not_now(anyhow!(
            "the provenance API at {base} answered {status}: {message}"
        ))),
        _ => Err(usage(anyhow!(
            "{base} is not a coldchain provenance API (GET /api/v1/verify answered {status}); give --api the API's address (e.g. http://127.0.0.1:8080), or --url a Sawtooth REST API"
        ))),
    }
}

fn verdict_kind(word: &str) -> Option<VerdictKind> {
    [
        VerdictKind::AuthenticInSpec,
        VerdictKind::Compromised,
        VerdictKind::Recalled,
        VerdictKind::Quarantined,
        VerdictKind::Expired,
        VerdictKind::AlreadyDispensed,
        VerdictKind::Unknown,
    ]
    .into_iter()
    .find(|kind| {
        serde_json::to_value(kind)
            .ok()
            .as_ref()
            .and_then(Value::as_str)
            == Some(word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digital_link_with_host_lot_serial_and_expiry_parses() {
        let q = parse_scan("https://id.example.com/01/09501101530003/10/LOT%2D7/21/SN42?17=270131")
            .unwrap();
        assert_eq!(q.gtin, "09501101530003");
        assert_eq!(q.lot.as_deref(), Some("LOT-7"));
        assert_eq!(q.serial.as_deref(), Some("SN42"));
        assert_eq!(q.expiry, Some(20270131));
    }

    #[test]
    fn digital_link_with_bad_check_digit_is_refused() {
        assert!(parse_scan("/01/09501101530004/21/X").is_err());
    }

    #[test]
    fn digital_link_without_gtin_is_refused() {
        assert!(parse_scan("/10/L1/21/X").is_err());
    }

    #[test]
    fn every_scanner_form_of_one_pack_gives_the_same_query() {
        let expected = PackQuery {
            gtin: "09501101530003".into(),
            lot: Some("VAX-2026-A".into()),
            serial: Some("A0002".into()),
            expiry: Some(20281231),
        };
        for text in [
            "(01)09501101530003(17)281231(10)VAX-2026-A(21)A0002",
            "\u{1d}01095011015300031728123110VAX-2026-A\u{1d}21A0002",
            "]d201095011015300031728123110VAX-2026-A\u{1d}21A0002",
            "]C101095011015300031728123110VAX-2026-A\u{1d}21A0002",
            "https://id.example/01/09501101530003/10/VAX-2026-A/21/A0002?17=281231",
        ] {
            assert_eq!(parse_scan(text).unwrap(), expected, "{text:?}");
        }
        let error = parse_scan("(01)09501101530003(99)X")
            .unwrap_err()
            .to_string();
        assert!(error.contains("(99)"), "{error}");
    }

    #[test]
    fn every_verdict_word_maps_back_and_only_authentic_exits_zero() {
        for word in [
            "authentic_in_spec",
            "compromised",
            "recalled",
            "quarantined",
            "expired",
            "already_dispensed",
            "unknown",
        ] {
            let kind = verdict_kind(word).unwrap();
            assert_eq!(exit_code(kind) == 0, word == "authentic_in_spec");
        }
        assert_eq!(exit_code(VerdictKind::Unknown), EXIT_UNKNOWN);
        assert_eq!(exit_code(VerdictKind::Recalled), EXIT_DO_NOT_DISPENSE);
    }
}
