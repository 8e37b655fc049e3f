//! `coldchain token`: mints a provenance API token for a participant key, so
//! a partner can open the web page's partner view and blood board without
//! hand-signing requests.
//!
//! The request is `POST /api/v1/tokens?label=…&nonce=…` signed as the API's
//! access rules expect (`coldchain_api::access::signed_message`: method,
//! path, raw query and timestamp, one per line; headers `X-Coldchain-Key`,
//! `X-Coldchain-Timestamp`, `X-Coldchain-Signature`). The key must belong to
//! a registered, unrevoked agent on the ledger.
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use coldchain_api::access::signed_message;
use coldchain_processors::signing::Signer;
use serde_json::Value;

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The provenance API (as `coldchain api` or the demo prints it).
    #[arg(long, env = "COLDCHAIN_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Private key file of a registered agent (default: the default key,
    /// ~/.coldchain/keys/default.priv or $COLDCHAIN_KEY_DIR/default.priv).
    #[arg(long, env = "COLDCHAIN_KEY")]
    pub key: Option<PathBuf>,
    /// A label stored with the token (e.g. who or what uses it).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Print {token, public_key, org_id, page, blood_board} as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A minted token and the page links that carry it.
#[derive(Debug, Clone)]
pub struct Minted {
    pub token: String,
    pub org_id: String,
    pub public_key: String,
}

impl Minted {
    /// The web page with the partner view unlocked (`#token=` is read by the
    /// page, kept in the tab's sessionStorage, never sent as a URL).
    pub fn page_link(&self, api: &str) -> String {
        format!("{}/#token={}", api.trim_end_matches('/'), self.token)
    }

    /// The emergency blood board, unlocked.
    pub fn blood_link(&self, api: &str) -> String {
        format!("{}/blood#token={}", api.trim_end_matches('/'), self.token)
    }
}

pub fn run(args: TokenArgs) -> Result<()> {
    let key_path = match &args.key {
        Some(path) => path.clone(),
        None => crate::keys::default_key_path()?,
    };
    let signer = read_key(&key_path)?;
    let runtime = crate::runtime()?;
    let minted = runtime.block_on(mint(&args.api, &signer, &args.label))?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "token": minted.token, "public_key": minted.public_key, "org_id": minted.org_id,
                "page": minted.page_link(&args.api), "blood_board": minted.blood_link(&args.api),
            })
        );
    } else {
        println!("{}", minted.token);
        eprintln!(
            "token for {} (organisation {}); open the partner view at\n  {}\nor the blood board at\n  {}",
            minted.public_key,
            minted.org_id,
            minted.page_link(&args.api),
            minted.blood_link(&args.api)
        );
    }
    Ok(())
}

/// Reads a Sawtooth private key file, naming it when it is not one.
pub fn read_key(path: &Path) -> Result<Signer> {
    Signer::from_file(path).with_context(|| {
        format!(
            "--key {}: cannot read a Sawtooth private key (64 hex) from it",
            path.display()
        )
    })
}

/// Asks the provenance API at `api` for a token bound to `signer`'s key.
pub async fn mint(api: &str, signer: &Signer, label: &str) -> Result<Minted> {
    let base = api.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("--api must start with http:// or https://, got {api:?}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // The nonce makes each run a new signed request: the API refuses a
    // replayed one, and two runs may fall in the same second.
    let nonce = format!("{}{:09}", now.as_secs(), now.subsec_nanos());
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/tokens"),
        &[("label", label), ("nonce", nonce.as_str())],
    )
    .map_err(|e| anyhow!("--api {api:?} is not a usable URL: {e}"))?;
    let timestamp = now.as_secs().to_string();
    let message = signed_message("POST", url.path(), url.query().unwrap_or(""), &timestamp);
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?
        .post(url.clone())
        .header("X-Coldchain-Key", signer.public_key())
        .header("X-Coldchain-Timestamp", &timestamp)
        .header("X-Coldchain-Signature", signer.sign(message.as_bytes()))
        .send()
        .await
        .with_context(|| {
            format!("nothing answers at {base}; is `coldchain api` (or the demo) running there?")
        })?;
    let status = response.status().as_u16();
    let body: Value =
        serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    if status != 201 {
        let code = body["error"].as_str().unwrap_or("");
        let message = body["message"].as_str().unwrap_or("");
        if code.is_empty() {
            bail!(
                "{base} is not a coldchain provenance API (POST /api/v1/tokens answered {status})"
            );
        }
        bail!("the provenance API refused the token ({status} {code}): {message}");
    }
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_string();
    Ok(Minted {
        token: field("token"),
        org_id: field("org_id"),
        public_key: field("public_key"),
    })
}
