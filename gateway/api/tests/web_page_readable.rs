//! The page as a pharmacist and a blood bank see it, in headless Chromium at a
//! phone's 390 px and a desktop's 1280 px (issue 12, items 11–13):
//! - what a barcode scanner types (GS1 element strings, raw with GS separators
//!   and a symbology identifier, human-readable) verifies in the page, the API
//!   and with a warning when the printed expiry is not the registered one;
//! - the temperature chart has a time axis, °C labels that stay ≥ 11 px on a
//!   phone, one line per logger with a legend, excursions and gaps listed as
//!   text, gaps as breaks in the line; no readings says so, in words;
//! - the blood board fits a phone; the token leaves the address bar but
//!   survives a reload; no raw enum word, YYYYMMDD date or "1 batches" shows;
//!   a favicon and no failed request or console error;
//! - a bag label scanned into the blood board (issue 14 item 5) finds its unit,
//!   shown by its DIN as printed; a wrong check character is refused in words.
//!
//! `COLDCHAIN_KEEP_SCREENSHOTS=<dir>` keeps the screenshots for a human look.
#[path = "support/browser.rs"]
mod browser;
mod support;

use browser::Browser;
use coldchain_api::ApiHandle;
use coldchain_processors::messages::coldchain::CustodyPayload_oneof_action as C;
use coldchain_processors::messages::coldchain::RegistryPayload_oneof_action as R;
use coldchain_processors::messages::coldchain::*;
use coldchain_processors::signing::Signer;
use support::http::{get, token_for};
use support::scenario::{self, Parties, GTIN, T0};
use support::{custody, gln, registry, Chain, Ledger};

/// What the page must never show: enum words, YYYYMMDD dates, bad plurals.
const RAW: &[&str] = &[
    "cancelled_by_proposer",
    "accepted_into_quarantine",
    "in_excursion",
    "in_spec",
    "no_readings",
    "red_cells",
    "offer_accepted",
    "1 batches",
    "1 excursions",
    "1 readings",
    "1 data gaps",
    "over 0 batches",
    "20301231",
    "since 17000",
    "2400 s",
];

struct Story {
    parties: Parties,
    hospital: Signer,
}

/// Two loggers on one shipment of L-HOT (D1 runs warm for an hour, D2 stops
/// reporting for two hours), L-OK in a shipment without readings whose first
/// delivery attempt was cancelled, and a blood bank and hospital with an
/// emergency request.
fn story(ledger: &mut Ledger) -> Story {
    let p = scenario::register(ledger);
    for id in ["D3", "D4"] {
        let mut device = RegisterDevice::new();
        device.set_device_id(id.into());
        device.set_org_id("carrier".into());
        device.set_model("logger".into());
        device.set_calibration_due_date(20301231);
        ledger
            .submit(vec![registry(
                &p.carrier,
                T0 + 20,
                R::register_device(device),
            )])
            .expect("logger registers");
    }
    // Four days of ten-minute readings at 5 °C for L-RECALL.
    scenario::ship_to_carrier(ledger, &p, "SH-LONG", "L-RECALL", "D4", T0 + 100);
    let day: Vec<i32> = (0..144).map(|i| 480 + (i % 7) * 10).collect();
    for d in 0..4u64 {
        scenario::record(
            ledger,
            &p,
            "D4",
            "SH-LONG",
            1 + d * 144,
            T0 + 200 + d * 86_400,
            &day,
        );
    }

    scenario::ship_to_carrier(ledger, &p, "SH-TWO", "L-HOT", "D1", T0 + 100);
    let mut attach = AttachDevice::new();
    attach.set_shipment_id("SH-TWO".into());
    attach.set_device_id("D2".into());
    ledger
        .submit(vec![custody(
            &p.carrier,
            T0 + 170,
            C::attach_device(attach),
        )])
        .expect("second logger attached");
    let start = T0 + 200;
    let warm = [
        500, 510, 1200, 1200, 1200, 1200, 1200, 1200, 1200, 520, 500, 490, 500, 505, 500, 495, 500,
        510,
    ];
    scenario::record(ledger, &p, "D1", "SH-TWO", 1, start, &warm);
    scenario::record(ledger, &p, "D2", "SH-TWO", 1, start, &[450, 455, 460, 450]);
    // Two hours without readings from D2 (the profile allows one).
    scenario::record(
        ledger,
        &p,
        "D2",
        "SH-TWO",
        5,
        start + 3 * 600 + 7_200,
        &[440, 450, 445, 450, 455],
    );

    scenario::ship_to_carrier(ledger, &p, "SH-EMPTY", "L-OK", "D3", T0 + 100);
    let mut propose = ProposeHandoff::new();
    propose.set_shipment_id("SH-EMPTY".into());
    propose.set_to_org_id("pharmacy".into());
    propose.set_at_gln(scenario::site("pharmacy"));
    let mut cancel = CancelHandoff::new();
    cancel.set_shipment_id("SH-EMPTY".into());
    cancel.set_reason("truck full".into());
    ledger
        .submit(vec![custody(
            &p.carrier,
            T0 + 300,
            C::propose_handoff(propose),
        )])
        .expect("proposed");
    ledger
        .submit(vec![custody(
            &p.carrier,
            T0 + 400,
            C::cancel_handoff(cancel),
        )])
        .expect("cancelled");

    let (bank, bank_site) = organisation(ledger, "bank", "950110153006", Role::BLOOD_BANK);
    let (hospital, hospital_site) =
        organisation(ledger, "hospital", "950110153007", Role::HOSPITAL);
    let mut txns = Vec::new();
    for (id, abo, rh) in [
        ("W123427000001", AboGroup::O, RhD::NEGATIVE),
        ("W123427000002", AboGroup::A, RhD::POSITIVE),
    ] {
        let mut unit = RegisterBloodUnit::new();
        unit.set_donation_id(id.into());
        unit.set_component(BloodComponent::RED_CELLS);
        unit.set_abo(abo);
        unit.set_rh(rh);
        unit.set_volume_ml(280);
        unit.set_expiry_date(20301231);
        unit.set_site_gln(bank_site.clone());
        txns.push(registry(&bank, T0 + 20, R::register_blood_unit(unit)));
    }
    let mut request = FileEmergencyRequest::new();
    request.set_request_id("R1".into());
    request.set_component(BloodComponent::RED_CELLS);
    request.set_abo(AboGroup::A);
    request.set_rh(RhD::POSITIVE);
    request.set_units(2);
    request.set_needed_by_s(T0 + 7_200);
    request.set_priority(Priority::EMERGENCY);
    request.set_hospital_gln(hospital_site);
    txns.push(custody(
        &hospital,
        T0 + 20,
        C::file_emergency_request(request),
    ));
    ledger.submit(txns).expect("blood units and request");
    Story {
        parties: p,
        hospital,
    }
}

fn organisation(ledger: &mut Ledger, org: &str, site_body: &str, role: Role) -> (Signer, String) {
    let admin = ledger.admin();
    let key = Signer::generate();
    let site = gln(site_body);
    let mut create = CreateOrganization::new();
    create.set_org_id(org.into());
    create.set_name(org.into());
    create.set_roles(vec![role]);
    let mut add = AddSite::new();
    add.set_org_id(org.into());
    add.set_gln(site.clone());
    add.set_name(format!("{org} site"));
    let mut agent = AddAgent::new();
    agent.set_org_id(org.into());
    agent.set_public_key(key.public_key().into());
    agent.set_name(format!("{org} agent"));
    agent.set_roles(vec![role]);
    ledger
        .submit(vec![
            registry(&admin, T0, R::create_organization(create)),
            registry(&admin, T0, R::add_site(add)),
            registry(&admin, T0, R::add_agent(agent)),
        ])
        .expect("organisation registers");
    (key, site)
}

async fn serve(story_ledger: &Ledger, dir: &std::path::Path) -> ApiHandle {
    let index_url = format!("sqlite://{}", dir.join("index.db").display());
    support::serve_ledger(&index_url, story_ledger).await
}

fn keep(browser: &mut Browser, name: &str) {
    if let Ok(dir) = std::env::var("COLDCHAIN_KEEP_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        browser.screenshot(&std::path::Path::new(&dir).join(format!("{name}.png")));
    }
}

/// Checks shared by every page: fits the window, nothing raw, ran clean.
fn assert_readable(browser: &mut Browser, what: &str) {
    let fits = browser.eval("[document.documentElement.scrollWidth, window.innerWidth]");
    assert!(
        fits[0].as_u64() <= fits[1].as_u64(),
        "{what}: page is {} px wide in a {} px window",
        fits[0],
        fits[1]
    );
    let text = browser.eval("document.body.innerText");
    let text = text.as_str().unwrap_or_default();
    for raw in RAW {
        assert!(!text.contains(raw), "{what}: raw {raw:?} shown in: {text}");
    }
    let problems = browser.problems();
    assert!(problems.is_empty(), "{what}: {problems:#?}");
    let icon = browser.eval(
        "(async () => { const l = document.querySelector('link[rel=icon]'); if (!l) return 'no icon link'; const r = await fetch(l.href); return r.ok ? (await r.blob()).type : 'icon ' + r.status; })()",
    );
    assert_eq!(icon, "image/svg+xml", "{what}: favicon");
}

#[tokio::test]
async fn scanner_input_is_read_the_same_by_the_api_and_the_page() {
    let mut ledger = Ledger::new();
    story(&mut ledger);
    let dir = tempfile::tempdir().expect("tempdir");
    let api = serve(&ledger, dir.path()).await;
    let base = api.url();

    // The API: every form of one pack gives one verdict.
    let forms = [
        "(01)09501101530003(17)301231(10)L-HOT(21)L-HOT-S1",
        "\u{1d}01095011015300031730123110L-HOT\u{1d}21L-HOT-S1",
        "]d201095011015300031730123110L-HOT\u{1d}21L-HOT-S1",
        "]C101095011015300031730123121L-HOT-S1\u{1d}10L-HOT",
        "https://id.example/01/09501101530003/10/L-HOT/21/L-HOT-S1?17=301231",
    ];
    for form in forms {
        let (status, body) = get(&base, &format!("/api/v1/verify?scan={}", percent(form))).await;
        assert_eq!(status, 200, "{form:?}: {body}");
        assert_eq!(body["lot"], "L-HOT", "{form:?}");
        assert_eq!(body["serial"], "L-HOT-S1", "{form:?}");
        assert_eq!(body["expiry_on_pack"], 20301231, "{form:?}");
    }
    let (status, body) = get(
        &base,
        &format!(
            "/api/v1/verify?scan={}",
            percent("(01)09501101530003(99)X(21)A")
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_scan")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("(99)"),
        "{body}"
    );
    let (status, body) = get(
        &base,
        &format!("/api/v1/verify?scan={}&lot=X", percent(forms[0])),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A printed expiry that is not the registered one: unknown, both dates named.
    let (status, body) = get(
        &base,
        &format!(
            "/api/v1/verify?scan={}",
            percent("(01)09501101530003(17)291231(10)L-OK(21)L-OK-S1")
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["verdict"], "unknown");
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap_or_default()
            .contains("(2029-12-31) differs from the lot's registered expiry (2030-12-31)"),
        "{body}"
    );

    // The page, on a phone: a raw scan typed by a keyboard-wedge scanner (FNC1 as Ctrl+]).
    let page = format!("{base}/");
    let seen = tokio::task::spawn_blocking(move || {
        let mut browser = Browser::start(390, 844, true);
        browser.open(&page);
        browser.wait_for("document.readyState === 'complete' && document.getElementById('code')");
        browser.eval("document.getElementById('code').focus()");
        browser.call("Input.insertText", serde_json::json!({"text": "]d201095011015300031730123110L-HOT"}));
        for kind in ["rawKeyDown", "keyUp"] {
            browser.call("Input.dispatchKeyEvent", serde_json::json!({"type": kind, "modifiers": 2, "key": "]", "code": "BracketRight", "windowsVirtualKeyCode": 221}));
        }
        browser.call("Input.insertText", serde_json::json!({"text": "21L-HOT-S1"}));
        let typed = browser.eval("document.getElementById('code').value");
        browser.eval("document.getElementById('verify-form').requestSubmit()");
        browser.wait_for("document.querySelector('#verdict .word')");
        let verdict = browser.eval("document.getElementById('verdict').innerText");
        let address = browser.eval("location.pathname + location.search");
        keep(&mut browser, "scan-phone");
        assert_readable(&mut browser, "scan on a phone");

        // The printed expiry disagrees: a warning the pharmacist cannot miss.
        browser.eval("document.getElementById('code').value = '(01)09501101530003(17)291231(10)L-OK(21)L-OK-S1'");
        browser.eval("document.getElementById('verify-form').requestSubmit()");
        browser.wait_for("document.querySelector('#verdict .mismatch')");
        let mismatch = browser.eval("document.getElementById('verdict').innerText");
        keep(&mut browser, "scan-expiry-mismatch-phone");

        browser.eval("document.getElementById('code').value = '(01)09501101530003(99)X(21)A'");
        browser.eval("document.getElementById('verify-form').requestSubmit()");
        browser.wait_for("document.getElementById('verdict').innerText.includes('Cannot read this scan')");
        let refused = browser.eval("document.getElementById('verdict').innerText");
        (typed, verdict, address, mismatch, refused, browser.problems())
    })
    .await
    .expect("browser");
    let (typed, verdict, address, mismatch, refused, problems) = seen;

    // At a desktop counter: the scanner types and presses Enter, twice, into the
    // same field; the second scan replaces the first instead of being appended.
    let page = format!("{base}/");
    let (first, second) = tokio::task::spawn_blocking(move || {
        let mut browser = Browser::start(1280, 900, false);
        browser.open(&page);
        browser.wait_for("document.readyState === 'complete' && document.getElementById('code')");
        browser.eval("document.getElementById('code').focus()");
        let scan = |browser: &mut Browser, text: &str| {
            browser.call("Input.insertText", serde_json::json!({"text": text}));
            browser.call("Input.dispatchKeyEvent", serde_json::json!({"type": "keyDown", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"}));
            browser.call("Input.dispatchKeyEvent", serde_json::json!({"type": "keyUp", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}));
        };
        scan(&mut browser, "(01)09501101530003(17)301231(10)L-HOT(21)L-HOT-S1");
        browser.wait_for("location.pathname.includes('L-HOT-S1') && document.getElementById('code').selectionEnd > document.getElementById('code').selectionStart");
        let first = browser.eval("document.getElementById('verdict').innerText");
        scan(&mut browser, "(01)09501101530003(17)301231(10)L-OK(21)L-OK-S3");
        browser.wait_for("location.pathname.includes('L-OK-S3')");
        let second = browser.eval("[document.getElementById('code').value, document.getElementById('verdict').innerText]");
        assert_readable(&mut browser, "two scans at a desktop");
        (first, second)
    })
    .await
    .expect("browser");
    assert!(
        first.as_str().unwrap_or_default().contains("Compromised"),
        "{first}"
    );
    assert_eq!(second[0], "(01)09501101530003(17)301231(10)L-OK(21)L-OK-S3");
    assert!(
        second[1].as_str().unwrap_or_default().contains("Authentic"),
        "{second}"
    );
    assert_eq!(typed, "]d201095011015300031730123110L-HOT\u{1d}21L-HOT-S1");
    let verdict = verdict.as_str().unwrap_or_default();
    assert!(verdict.contains("lot L-HOT · serial L-HOT-S1"), "{verdict}");
    assert!(
        verdict.contains("registered expiry December 31, 2030"),
        "{verdict}"
    );
    assert_eq!(
        address,
        format!("/01/{GTIN}/10/L-HOT/21/L-HOT-S1?17=301231")
    );
    let mismatch = mismatch.as_str().unwrap_or_default();
    assert!(mismatch.contains("Unknown"), "{mismatch}");
    assert!(
        mismatch.contains("Warning: the expiry on the pack (December 31, 2029) is not the registered expiry (December 31, 2030)."),
        "{mismatch}"
    );
    assert!(
        refused.as_str().unwrap_or_default().contains("(99)"),
        "{refused}"
    );
    // The refused scan is a 400 the page shows, not an error in the page.
    assert!(
        problems
            .iter()
            .all(|p| p.contains("status of 400") || p.contains("HTTP 400 for")),
        "{problems:#?}"
    );
    api.stop().await;
}

/// Percent-encodes every byte outside the unreserved set.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn temperature_chart_is_readable_on_a_phone_and_a_desktop() {
    let mut ledger = Ledger::new();
    let story = story(&mut ledger);
    let dir = tempfile::tempdir().expect("tempdir");
    let api = serve(&ledger, dir.path()).await;
    let base = api.url();
    let token = token_for(&base, &story.parties.carrier).await;

    // The API: one series per logger on a shared grid.
    let (status, chart) = support::http::signed_get(
        &base,
        "/api/v1/shipments/SH-TWO/readings?points=50",
        &story.parties.carrier,
    )
    .await;
    assert_eq!(status, 200, "{chart}");
    let devices: Vec<&str> = chart["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|s| s["device_id"].as_str())
        .collect();
    assert_eq!(devices, ["D1", "D2"]);
    let counts: Vec<u64> = chart["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| {
            s["buckets"]
                .as_array()
                .map_or(0, |b| b.iter().filter_map(|x| x["count"].as_u64()).sum())
        })
        .collect();
    assert_eq!(counts, [18, 9]);

    for (width, height, mobile, name) in [(390, 844, true, "phone"), (1280, 900, false, "desktop")]
    {
        let url = format!("{base}/01/{GTIN}/10/L-HOT#token={token}");
        let empty_url = format!("{base}/01/{GTIN}/10/L-OK");
        let seen = tokio::task::spawn_blocking(move || {
            let mut browser = Browser::start(width, height, mobile);
            browser.open(&url);
            browser.wait_for("document.querySelector('#provenance .chain')");
            let address = browser.eval("location.href");
            let stored = browser.eval("sessionStorage.getItem('coldchain-token')");
            let text = browser.eval("document.getElementById('provenance').innerText");
            // Every label on the chart: its size on screen, in CSS px.
            let sizes = browser.eval(
                "[...document.querySelectorAll('figure.chart svg text')].map(t => { const svg = t.ownerSVGElement; const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width; return parseFloat(getComputedStyle(t).fontSize) * scale; })",
            );
            let labels = browser.eval("[...document.querySelectorAll('figure.chart svg text')].map(t => t.textContent)");
            let lines = browser.eval("[document.querySelectorAll('figure.chart polyline[stroke=\"#123c8c\"]').length, document.querySelectorAll('figure.chart polyline[stroke=\"#c25e00\"]').length]");
            keep(&mut browser, &format!("chart-{name}"));
            assert_readable(&mut browser, &format!("chart on a {name}"));
            // Reload: the token comes back from this tab's storage.
            browser.call("Page.reload", serde_json::json!({}));
            browser.wait_for("document.readyState === 'complete' && document.querySelector('#provenance .chain')");
            // A shipment without readings says so in words.
            browser.open(&empty_url);
            browser.wait_for("document.querySelector('#provenance .no-readings')");
            let empty = browser.eval("document.getElementById('provenance').innerText");
            keep(&mut browser, &format!("no-readings-{name}"));
            assert_readable(&mut browser, &format!("no readings on a {name}"));
            (address, stored, text, sizes, labels, lines, empty)
        })
        .await
        .expect("browser");
        let (address, stored, text, sizes, labels, lines, empty) = seen;
        assert_eq!(
            address,
            format!("{base}/01/{GTIN}/10/L-HOT"),
            "{name}: token left in the address bar"
        );
        assert_eq!(stored, serde_json::json!(token), "{name}");
        let text = text.as_str().unwrap_or_default();
        for expected in [
            "logger D1",
            "logger D2",
            "allowed 2.0–8.0 °C",
            "Times on the axis are local (Europe/Paris, UTC+01:00)",
            "Too warm",
            ": Nov 14, 2023, 23:36 – Nov 15, 2023, 00:46 (22:36–23:46 UTC); 1 h 10 min; peak 12.00 °C",
            "No data from logger D2: Nov 14, 2023, 23:46 – Nov 15, 2023, 01:46 (22:46–00:46 UTC); 2 h 00 min",
            "Readings hash chain verified over 3 batches.",
            // The lot's record per logger of the shipment (sensor family 1.1).
            "Logger D1: ",
            "Logger D2: ",
        ] {
            assert!(
                text.contains(expected),
                "{name}: {expected:?} missing from: {text}"
            );
        }
        let sizes: Vec<f64> = sizes
            .as_array()
            .expect("sizes")
            .iter()
            .filter_map(|s| s.as_f64())
            .collect();
        assert!(sizes.len() > 6, "{name}: {sizes:?}");
        assert!(
            sizes.iter().all(|s| *s >= 11.0),
            "{name}: chart text too small: {sizes:?}"
        );
        let labels: Vec<&str> = labels
            .as_array()
            .expect("labels")
            .iter()
            .filter_map(|l| l.as_str())
            .collect();
        assert!(
            labels.iter().any(|l| l.ends_with(" °C")),
            "{name}: no °C axis: {labels:?}"
        );
        assert!(
            labels
                .iter()
                .any(|l| l.len() == 5 && l.as_bytes()[2] == b':'),
            "{name}: no time axis: {labels:?}"
        );
        // D1 in one line; D2 broken at its gap into two.
        assert_eq!(lines, serde_json::json!([1, 2]), "{name}");
        let empty = empty.as_str().unwrap_or_default();
        assert!(
            empty.contains("No readings recorded for this shipment yet."),
            "{name}: {empty}"
        );
        assert!(
            empty.contains("cancelled by the requester"),
            "{name}: {empty}"
        );
        // Four days on one axis: ticks a day or more apart, dates only, still ≥ 11 px.
        let long_url = format!("{base}/01/{GTIN}/10/L-RECALL");
        let long_token = token.clone();
        let (long_labels, long_sizes) = tokio::task::spawn_blocking(move || {
            let mut browser = Browser::start(width, height, mobile);
            browser.open(&long_url);
            browser.eval(&format!("sessionStorage.setItem('coldchain-token', {long_token:?})"));
            browser.open(&long_url);
            browser.wait_for("document.querySelector('#provenance .chain')");
            let labels = browser.eval("[...document.querySelectorAll('figure.chart svg text')].map(t => t.textContent)");
            let sizes = browser.eval("[...document.querySelectorAll('figure.chart svg text')].map(t => { const svg = t.ownerSVGElement; return parseFloat(getComputedStyle(t).fontSize) * svg.getBoundingClientRect().width / svg.viewBox.baseVal.width; })");
            keep(&mut browser, &format!("long-chart-{name}"));
            assert_readable(&mut browser, &format!("long chart on a {name}"));
            (labels, sizes)
        })
        .await
        .expect("browser");
        let long_labels: Vec<&str> = long_labels
            .as_array()
            .expect("labels")
            .iter()
            .filter_map(|l| l.as_str())
            .collect();
        assert!(
            long_labels.iter().any(|l| l.starts_with("Nov 1")),
            "{name}: {long_labels:?}"
        );
        assert!(
            !long_labels.contains(&"00:00") || name == "desktop",
            "{name}: midnight ticks: {long_labels:?}"
        );
        assert!(
            long_sizes
                .as_array()
                .expect("sizes")
                .iter()
                .all(|s| s.as_f64().unwrap_or(0.0) >= 11.0),
            "{name}: {long_sizes}"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn blood_board_fits_a_phone_and_shows_words_not_codes() {
    let mut ledger = Ledger::new();
    let story = story(&mut ledger);
    let dir = tempfile::tempdir().expect("tempdir");
    let api = serve(&ledger, dir.path()).await;
    let base = api.url();
    let token = token_for(&base, &story.hospital).await;
    for (width, height, mobile, name) in [(390, 844, true, "phone"), (1280, 900, false, "desktop")]
    {
        let url = format!("{base}/blood#token={token}");
        let seen = tokio::task::spawn_blocking(move || {
            let mut browser = Browser::start(width, height, mobile);
            browser.open(&url);
            browser.wait_for("document.querySelector('#blood-units table')");
            let text = browser.eval("document.getElementById('blood-section').innerText");
            let address = browser.eval("location.href");
            // Each cell's right edge inside the window.
            let widest = browser.eval("Math.max(...[...document.querySelectorAll('#blood-section td')].map(c => c.getBoundingClientRect().right))");
            keep(&mut browser, &format!("blood-{name}"));
            assert_readable(&mut browser, &format!("blood board on a {name}"));
            (text, address, widest)
        })
        .await
        .expect("browser");
        let (text, address, widest) = seen;
        let text = text.as_str().unwrap_or_default();
        assert_eq!(address, format!("{base}/blood"), "{name}");
        assert!(
            widest.as_f64().unwrap_or(f64::MAX) <= f64::from(width),
            "{name}: a cell ends at {widest}"
        );
        for expected in [
            "emergency",
            "red cells",
            "A+",
            "December 31, 2030",
            "Needed by",
            "Hospital",
            "hospital (GLN",
        ] {
            assert!(
                text.contains(expected),
                "{name}: {expected:?} missing from: {text}"
            );
        }
    }
    api.stop().await;
}

/// A blood bank technician scans a bag's ISBT 128 label into the board, the
/// way a keyboard-wedge scanner types it (DIN and product code run together,
/// then Enter): that unit is shown by its DIN as printed on the label; a DIN
/// typed with a wrong check character is refused in words; at 390 px nothing
/// overflows and the page logs nothing but that one refused request.
#[tokio::test]
async fn blood_board_finds_a_scanned_bag_by_its_label() {
    use coldchain_processors::isbt128::{din_check_character, din_label_text};
    let mut ledger = Ledger::new();
    let story = story(&mut ledger);
    let dir = tempfile::tempdir().expect("tempdir");
    let api = serve(&ledger, dir.path()).await;
    let base = api.url();
    let token = token_for(&base, &story.hospital).await;
    let label = din_label_text("W123427000001").expect("label text");
    let other_label = din_label_text("W123427000002").expect("label text");
    let check = din_check_character("W123427000001").expect("check character");
    let wrong = if check == 'K' { 'L' } else { 'K' };
    let mistyped = format!("W123427000001{wrong}");
    for (width, height, mobile, name) in [(390, 844, true, "phone"), (1280, 900, false, "desktop")]
    {
        let url = format!("{base}/blood#token={token}");
        let mistyped = mistyped.clone();
        let seen = tokio::task::spawn_blocking(move || {
            let mut browser = Browser::start(width, height, mobile);
            browser.open(&url);
            browser.wait_for("document.querySelector('#blood-units table')");
            let board = browser.eval("document.getElementById('blood-units').innerText");
            let scan = |browser: &mut Browser, text: &str| {
                browser.eval("document.getElementById('bag').focus()");
                browser.call("Input.insertText", serde_json::json!({"text": text}));
                browser.call("Input.dispatchKeyEvent", serde_json::json!({"type": "keyDown", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"}));
                browser.call("Input.dispatchKeyEvent", serde_json::json!({"type": "keyUp", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}));
            };
            // The bag's DIN bar code (flags 00) and product code, as scanned.
            scan(&mut browser, "=W12342700000100=<E0398V00");
            browser.wait_for("document.querySelector('#bag-found .bag')");
            let found = browser.eval("document.getElementById('bag-found').innerText");
            let cells = browser.eval("[...document.querySelectorAll('#bag-found td.din')].map(c => c.innerText)");
            keep(&mut browser, &format!("blood-scan-{name}"));
            assert_readable(&mut browser, &format!("scanned bag on a {name}"));
            // The same DIN typed from the label with a wrong check character;
            // on a desktop the first scan's text was selected, so this replaces it.
            browser.eval("document.getElementById('bag').value = ''");
            scan(&mut browser, &mistyped);
            browser.wait_for("document.querySelector('#bag-found .error')");
            let refused = browser.eval("document.getElementById('bag-found').innerText");
            // Page, window, rightmost cell or line, and DIN cells whose text
            // (kept on one line, as printed) runs out of its cell.
            let fits = browser.eval("[document.documentElement.scrollWidth, window.innerWidth, Math.max(...[...document.querySelectorAll('#blood-section td, #blood-section p')].map(c => c.getBoundingClientRect().right)), [...document.querySelectorAll('td.din')].filter(c => c.scrollWidth > c.clientWidth).map(c => [c.scrollWidth, c.clientWidth, c.innerText])]");
            keep(&mut browser, &format!("blood-scan-refused-{name}"));
            // Two bags' DINs run together: two answers, one per bag.
            browser.eval("document.getElementById('bag').value = ''");
            scan(&mut browser, "=W12342700000100=W12342700000200");
            browser.wait_for("document.querySelectorAll('#bag-found .bag').length === 2");
            let two = browser.eval("[...document.querySelectorAll('#bag-found td.din')].map(c => c.innerText)");
            let requested = browser.requested();
            (board, found, cells, refused, fits, two, requested, browser.problems())
        })
        .await
        .expect("browser");
        let (board, found, cells, refused, fits, two, requested, problems) = seen;
        assert_eq!(two, serde_json::json!([label, other_label]), "{name}");
        let board = board.as_str().unwrap_or_default();
        // The board lists units as printed on their labels, not as bare ids.
        assert!(board.contains(&label), "{name}: {label:?} not in {board}");
        assert!(board.contains(&other_label), "{name}: {board}");
        assert!(
            !board.contains("W123427000001"),
            "{name}: bare id in {board}"
        );
        // The scanned bag: that unit, with its printed label, and only it.
        let found = found.as_str().unwrap_or_default();
        assert_eq!(cells, serde_json::json!([label]), "{name}: {found}");
        assert!(found.contains(&format!("Found {label}")), "{name}: {found}");
        assert!(
            found.contains("red cells") && found.contains("O-"),
            "{name}: {found}"
        );
        assert!(!found.contains(&other_label), "{name}: {found}");
        // Both scans reached the API percent-encoded as unit= and product=.
        assert!(
            requested.iter().any(|u| u
                .ends_with("/api/v1/blood/units?unit=%3DW12342700000100&product=%3D%3CE0398V00")),
            "{name}: {requested:#?}"
        );
        // The mistyped check character: the API's reason, in words.
        let refused = refused.as_str().unwrap_or_default();
        assert!(
            refused.contains(&format!(
                "has check character '{wrong}', but ISO 7064 MOD 37-2 gives '{check}'"
            )),
            "{name}: {refused}"
        );
        assert!(refused.contains("re-type the number"), "{name}: {refused}");
        assert!(
            fits[0].as_u64() <= fits[1].as_u64()
                && fits[2].as_f64().unwrap_or(f64::MAX) <= f64::from(width)
                && fits[3] == serde_json::json!([]),
            "{name}: {fits} (page width, window width, rightmost cell or line, DIN cells overflowing)"
        );
        // Nothing logged but the refused lookup's 400.
        assert!(
            problems
                .iter()
                .all(|p| p.contains("HTTP 400 for") || p.contains("status of 400")),
            "{name}: {problems:#?}"
        );
        assert!(!problems.is_empty(), "{name}: the refused scan is a 400");
    }
    api.stop().await;
}
