//! `coldchain lot import` reads RFC 4180 CSV: a quoted product name keeps its
//! comma; an unquoted one makes the row bad, and one bad row means nothing
//! from the file is submitted, every bad row listed with its line number.
mod support;

use std::process::Command;

use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::messages::coldchain::Lot;
use support::{gln, keygen, start_node, Cli, Families, BIN};

const GTIN: &str = "09501101530003";

#[test]
fn unquoted_comma_aborts_the_file_and_quoted_one_stays_in_the_product_name() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let admin = keygen(&keys, "admin");
    let maker = keygen(&keys, "maker");
    let node = start_node(dir.path(), &admin, Families::InProcess);
    let cli = Cli {
        url: node.url.clone(),
        keys: keys.clone(),
    };
    let site = gln("950110100001");
    cli.onboard("maker", &maker, "pharmaco", "manufacturer", &site);

    let bad_file = dir.path().join("bad.csv");
    std::fs::write(
        &bad_file,
        format!(
            "gtin,lot,expiry,quantity,profile,site_gln,product_name,serials\n\
             {GTIN},L0,20271231,10,refrigerated,{site},Vaccine W,W1\n\
             {GTIN},L1,20271231,10,refrigerated,{site},Vaccine X, PFS\n\
             # a comment line\n\
             {GTIN},L2,2027-12-31,10,refrigerated,{site},Vaccine Y,Y1\n"
        ),
    )
    .unwrap();
    let out = cli.run("maker", &["lot", "import", bad_file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("line 3:"), "{stdout}");
    assert!(stdout.contains("line 5:"), "{stdout}");
    assert!(stderr.contains("nothing was submitted"), "{stderr}");
    // Not even the good row: the file is all or nothing.
    for lot in ["L0", "L1"] {
        let address = RecordKind::Lot.address(&goods_key(GTIN, lot));
        assert!(support::state::<Lot>(&node.url, &address).is_none());
    }
    let verify = Command::new(BIN)
        .args([
            "verify",
            &format!("/01/{GTIN}/10/L1/21/PFS"),
            "--url",
            &node.url,
        ])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(3), "PFS must stay unknown");

    let good_file = dir.path().join("good.csv");
    std::fs::write(
        &good_file,
        format!("{GTIN},L1,20271231,10,refrigerated,{site},\"Vaccine X, PFS\",A1;A2\n"),
    )
    .unwrap();
    cli.ok("maker", &["lot", "import", good_file.to_str().unwrap()]);
    let lot: Lot = support::state(&node.url, &RecordKind::Lot.address(&goods_key(GTIN, "L1")))
        .expect("lot L1 imported");
    assert_eq!(lot.get_product_name(), "Vaccine X, PFS");
    let verify = Command::new(BIN)
        .args([
            "verify",
            &format!("/01/{GTIN}/10/L1/21/A2"),
            "--url",
            &node.url,
        ])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0));
}
