//! The web page in headless Chromium: a Digital Link opens the page, which
//! shows the verdict, the custody timeline and a temperature chart with the
//! allowed band shaded and the excursion marked (checked on a screenshot);
//! and, when the API cannot verify now (503), a distinct "cannot be checked
//! right now" state with a retry button, on a 390 px wide phone screen.
mod support;

use std::path::Path;
use std::process::Command;

use coldchain_api::chain::ingest;
use coldchain_api::freshness::FreshnessLimits;
use coldchain_api::{Api, ApiConfig};
use support::http::token_for;
use support::scenario::{self, GTIN};
use support::Ledger;

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(CHROMIUM);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=15000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command.args(args);
    command.output().expect("chromium runs")
}

/// Counts pixels close to `rgb` (anti-aliasing tolerance).
fn count_colour(rgba: &[u8], channels: usize, rgb: [u8; 3]) -> usize {
    rgba.chunks(channels)
        .filter(|p| p[..3].iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 6))
        .count()
}

#[tokio::test]
async fn digital_link_page_shows_verdict_timeline_and_chart_with_band_and_excursion() {
    if !Path::new(CHROMIUM).exists() {
        panic!("this test needs Debian's chromium at {CHROMIUM}");
    }
    let mut ledger = Ledger::new();
    let parties = scenario::full_story(&mut ledger);
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(ApiConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        rest_url: "http://127.0.0.1:9".into(),
        component: "tcp://127.0.0.1:9".into(),
        index_url: format!("sqlite://{}", dir.path().join("index.db").display()),
        follow: false,
    })
    .await
    .expect("API starts");
    let lookup = ledger.lookup();
    for block in &ledger.blocks {
        ingest(api.index().as_ref(), &lookup, block.clone())
            .await
            .expect("ingested");
    }
    let token = token_for(&api.url(), &parties.carrier).await;
    let url = format!("{}/01/{GTIN}/10/L-HOT#token={token}", api.url());

    let dom_profile = tempfile::tempdir().expect("profile");
    let dom_url = url.clone();
    let dom = tokio::task::spawn_blocking(move || {
        chromium(dom_profile.path(), &["--dump-dom", &dom_url])
    })
    .await
    .expect("join");
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains("Compromised — do not dispense"),
        "verdict missing from the page: {html}"
    );
    assert!(
        html.contains("maker → carrier"),
        "custody timeline missing: {html}"
    );
    assert!(html.contains("<polyline"), "chart line missing: {html}");

    let shot_profile = tempfile::tempdir().expect("profile");
    let shot = dir.path().join("page.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    let output = tokio::task::spawn_blocking(move || {
        chromium(
            shot_profile.path(),
            &[&shot_arg, "--window-size=1200,2400", &url],
        )
        .status
    })
    .await
    .expect("join");
    assert!(output.success(), "chromium screenshot failed");
    if let Ok(keep) = std::env::var("COLDCHAIN_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("screenshot copied");
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("screenshot written"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("png frame");
    let channels = frame.color_type.samples();
    let pixels = &pixels[..frame.buffer_size()];
    let band = count_colour(pixels, channels, [0xbf, 0xe3, 0xff]);
    let line = count_colour(pixels, channels, [0x12, 0x3c, 0x8c]);
    let excursion = count_colour(pixels, channels, [0xe0, 0x00, 0x1b]);
    assert!(band > 5_000, "allowed band not drawn ({band} px)");
    assert!(line > 200, "temperature line not drawn ({line} px)");
    assert!(excursion > 30, "excursion not marked ({excursion} px)");
    api.stop().await;
}

/// Decodes a PNG screenshot: (pixels, channels, width).
fn screenshot_pixels(path: &Path) -> (Vec<u8>, usize, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("screenshot written"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("png frame");
    pixels.truncate(frame.buffer_size());
    (pixels, frame.color_type.samples(), frame.width)
}

/// The API's index holds the story but its follower cannot reach the node:
/// the page says the ledger cannot be checked right now, that this is not a
/// counterfeit warning, and offers to try again — no verdict, not "unknown".
#[tokio::test]
async fn digital_link_page_says_the_ledger_cannot_be_checked_when_verification_is_refused() {
    if !Path::new(CHROMIUM).exists() {
        panic!("this test needs Debian's chromium at {CHROMIUM}");
    }
    let mut ledger = Ledger::new();
    scenario::full_story(&mut ledger);
    let dir = tempfile::tempdir().expect("tempdir");
    let index_url = format!("sqlite://{}", dir.path().join("index.db").display());
    let index = coldchain_api::index::open(&index_url).await.expect("index");
    let lookup = ledger.lookup();
    for block in &ledger.blocks {
        ingest(index.as_ref(), &lookup, block.clone())
            .await
            .expect("ingested");
    }
    drop(index);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let api = Api::start_with(
        ApiConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            rest_url: format!("http://127.0.0.1:{closed}"),
            component: format!("tcp://127.0.0.1:{closed}"),
            index_url,
            follow: true,
        },
        FreshnessLimits::default(),
    )
    .await
    .expect("API starts");
    let url = format!("{}/01/{GTIN}/10/L-HOT", api.url());

    let dom_profile = tempfile::tempdir().expect("profile");
    let dom_url = url.clone();
    let dom = tokio::task::spawn_blocking(move || {
        chromium(
            dom_profile.path(),
            &["--window-size=390,844", "--dump-dom", &dom_url],
        )
    })
    .await
    .expect("join");
    let html = String::from_utf8_lossy(&dom.stdout);
    for expected in [
        "verdict unavailable",
        "The ledger cannot be checked right now",
        "This is not a counterfeit warning",
        "The service has not reached the ledger yet.",
        "Try again</button>",
    ] {
        assert!(html.contains(expected), "{expected:?} missing: {html}");
    }
    for verdict in ["Compromised", "Unknown", "Authentic", "Cannot verify"] {
        assert!(!html.contains(verdict), "{verdict:?} shown: {html}");
    }

    // On a phone: the state's colour fills its box, and nothing is wider than the screen.
    let shot_profile = tempfile::tempdir().expect("profile");
    let shot = dir.path().join("phone.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    let output = tokio::task::spawn_blocking(move || {
        chromium(
            shot_profile.path(),
            &[&shot_arg, "--window-size=390,844", &url],
        )
        .status
    })
    .await
    .expect("join");
    assert!(output.success(), "chromium screenshot failed");
    if let Ok(keep) = std::env::var("COLDCHAIN_KEEP_SCREENSHOT_UNAVAILABLE") {
        std::fs::copy(&shot, keep).expect("screenshot copied");
    }
    let (pixels, channels, width) = screenshot_pixels(&shot);
    assert_eq!(width, 390);
    let state = count_colour(&pixels, channels, [0x00, 0x50, 0x7a]);
    assert!(
        state > 20_000,
        "the cannot-check state is not shown ({state} px)"
    );
    api.stop().await;
}
