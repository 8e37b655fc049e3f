use super::*;
use proptest::prelude::*;

/// The definition of ISO/IEC 7064 MOD 37-2 written out directly, to check the
/// recursive form used by [`mod37_2`]: the check value `c` makes
/// `Σ valueᵢ · 2^(n−i+1) + c ≡ 1 (mod 37)` (i = 1 is the leftmost of n characters).
fn by_definition(data: &str) -> u32 {
    let n = data.len() as u32;
    let sum: u64 = data
        .bytes()
        .enumerate()
        .map(|(i, c)| u64::from(char_value(c).unwrap()) * (1u64 << (n - i as u32)) % 37)
        .sum();
    ((1 + 37 * 37 - sum % 37) % 37) as u32
}

#[test]
fn check_character_worked_by_hand() {
    // W000000000000: only W (value 32) counts, at weight 2^13 = 8192.
    // 8192 mod 37 = 15 (37 · 221 = 8177); 32 · 15 = 480; 480 mod 37 = 36;
    // check value (38 − 36) mod 37 = 2, printed "2".
    assert_eq!(mod37_2(b"W000000000000"), Some(2));
    assert_eq!(check_character("W000000000000"), '2');
    // 0000000000001: 1 at weight 2^1 = 2; (38 − 2) mod 37 = 36, printed "*".
    assert_eq!(check_character("0000000000001"), '*');
    // All zeros: (38 − 0) mod 37 = 1.
    assert_eq!(check_character("0000000000000"), '1');
}

#[test]
fn check_characters_of_known_dins() {
    // Computed independently (a short Python script of the definition).
    for (din, k) in [
        ("A999926123456", 'T'),
        ("W123426000123", '3'),
        ("G151703123456", 'P'),
        ("A999914123456", 'N'),
        ("J123426000001", 'X'),
        ("W123426000002", 'L'),
    ] {
        assert_eq!(check_character(din), k, "{din}");
        assert_eq!(
            by_definition(din),
            mod37_2(din.as_bytes()).unwrap(),
            "{din}"
        );
    }
}

#[test]
fn a_scanned_din_gives_the_13_characters_and_the_flags() {
    let scan = parse_donation_number("=A99992612345600").unwrap();
    assert_eq!(scan.din, "A999926123456");
    assert_eq!(scan.flags.as_deref(), Some("00"));
    assert_eq!(scan.check_character(), 'T');
    assert_eq!(scan.label_text(), "A9999 26 123456 00 [T]");
    assert_eq!(
        din_label_text("A999926123456").as_deref(),
        Some("A9999 26 123456 [T]")
    );
    assert_eq!(din_label_text("not a din"), None);
    assert_eq!(din_label_text("a999926123456"), None);
    assert_eq!(
        din_label_text("0XY1226000001").as_deref(),
        Some("0XY12 26 000001 [X]")
    );
}

#[test]
fn type_3_flags_carry_the_check_character_and_must_match_it() {
    // T has value 29: flags 60 + 29 = 89.
    assert!(parse_donation_number("=A99992612345689").is_ok());
    let err = parse_donation_number("=A99992612345688").unwrap_err();
    assert_eq!(
        err,
        Isbt128Error::CheckCharacter {
            din: "A999926123456".into(),
            found: 'S',
            expected: 'T'
        }
    );
    assert!(err.to_string().contains("re-scan"), "{err}");
    // Process-control and local flags carry no check.
    assert!(parse_donation_number("=A99992612345601").is_ok());
    assert!(parse_donation_number("=A99992612345659").is_ok());
    assert!(parse_donation_number("=A999926123456A1").is_ok());
}

#[test]
fn a_typed_din_may_carry_flags_and_the_boxed_check_character() {
    for typed in [
        "A999926123456",
        "A999926123456T",
        "A9999 26 123456 T",
        "A999926123456 00",
        "A9999 26 123456 00 T",
    ] {
        assert_eq!(
            parse_donation_number(typed).unwrap().din,
            "A999926123456",
            "{typed}"
        );
    }
    let err = parse_donation_number("A9999 26 123456 K").unwrap_err();
    assert!(
        err.to_string().contains("check character 'K'") && err.to_string().contains("gives 'T'"),
        "{err}"
    );
}

#[test]
fn malformed_dins_are_refused_with_the_rule() {
    for bad in [
        "O999926123456",    // O is not a facility letter
        "0999926123456",    // nor is 0
        "a999926123456",    // lower case
        "A99992612345",     // 12 characters
        "AB99926123456",    // facility is one letter and 4 digits
        "=A999926123456",   // bar code without flags
        "=A9999261234560",  // bar code with one flag
        "=A9999261234560é", // flag not ASCII
        "A999926123456aé",
        "A999926123456TTTT",
        "",
        "=",
    ] {
        let err = parse_donation_number(bad).unwrap_err();
        assert!(
            matches!(err, Isbt128Error::DonationNumber(_)),
            "{bad}: {err}"
        );
    }
    let long = "A".repeat(10_000);
    let message = parse_donation_number(&long).unwrap_err().to_string();
    assert!(message.len() < 400, "hostile input is not echoed at length");
}

#[test]
fn product_codes_map_to_components() {
    let red = parse_product_code("=<E0398V00").unwrap();
    assert_eq!(red.code, "E0398");
    assert_eq!(red.component, BloodComponent::RED_CELLS);
    assert_eq!(red.collection, 'V');
    assert_eq!(red.division, "00");
    for (scan, component) in [
        ("=<E0009V00", BloodComponent::WHOLE_BLOOD),
        ("=<E0701V00", BloodComponent::FRESH_FROZEN_PLASMA),
        ("=<E2940VA0", BloodComponent::PLATELETS),
        ("=<E7003V00", BloodComponent::PLATELETS),
        ("=<E5165000", BloodComponent::CRYOPRECIPITATE),
        ("E4377V00", BloodComponent::RED_CELLS),
    ] {
        assert_eq!(
            parse_product_code(scan).unwrap().component,
            component,
            "{scan}"
        );
    }
}

#[test]
fn the_product_table_is_sorted_and_unique() {
    assert!(PRODUCTS.windows(2).all(|w| w[0].code < w[1].code));
    for product in PRODUCTS {
        assert!(parse_product_code(&format!("={}{}V00", '<', product.code)).is_ok());
    }
}

#[test]
fn unknown_or_restricted_products_are_refused() {
    let err = parse_product_code("=<E9999V00").unwrap_err();
    assert_eq!(err, Isbt128Error::UnknownProduct("E9999".into()));
    assert!(err.to_string().contains("give the component by name"));
    let err = parse_product_code("=<E0398100").unwrap_err();
    assert!(err.to_string().contains("autologous"), "{err}");
    assert!(parse_product_code("=<E03982A0").is_err()); // directed
    for bad in [
        "=<E039V00",
        "=<e0398V00",
        "=<E0398V0",
        "=<E0398V000",
        "=<E0398#00",
        "=<E0398VA+",
        "=<E0398Vé",
    ] {
        assert!(
            matches!(
                parse_product_code(bad),
                Err(Isbt128Error::ProductCodeFormat(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn the_eight_blood_group_codes_give_abo_and_rhd() {
    use AboGroup::*;
    use RhD::*;
    for (scan, expected) in [
        ("=%9500", (O, NEGATIVE)),
        ("=%5100", (O, POSITIVE)),
        ("=%0600", (A, NEGATIVE)),
        ("=%6200", (A, POSITIVE)),
        ("=%1700", (B, NEGATIVE)),
        ("=%7300", (B, POSITIVE)),
        ("=%2800", (AB, NEGATIVE)),
        ("=%8400", (AB, POSITIVE)),
        ("5130", (O, POSITIVE)), // third character: Rh/Kell phenotype, not used
        ("=%51J0", (O, POSITIVE)),
    ] {
        assert_eq!(parse_blood_group(scan).unwrap(), expected, "{scan}");
    }
}

#[test]
fn restricted_or_incomplete_blood_groups_are_refused() {
    let err = parse_blood_group("=%9700").unwrap_err();
    assert!(
        err.to_string().contains("O-, for autologous use only"),
        "{err}"
    );
    let err = parse_blood_group("=%9200").unwrap_err();
    assert!(err.to_string().contains("emergency use only"), "{err}");
    let err = parse_blood_group("=%5500").unwrap_err();
    assert!(err.to_string().contains("without RhD"), "{err}");
    let err = parse_blood_group("=%Mq00").unwrap_err();
    assert!(err.to_string().contains("quarantine"), "{err}");
    assert!(parse_blood_group("=%0000").is_err());
    assert!(parse_blood_group("=%9900").is_err());
    for bad in [
        "=%510", "=%51000", "=%5101", "=%51a0", "=%5-00", "", "=%é000",
    ] {
        assert!(
            matches!(
                parse_blood_group(bad),
                Err(Isbt128Error::BloodGroupFormat(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn expiry_is_the_last_whole_day_of_use() {
    // 2027, day 123 = 3 May (31 + 28 + 31 + 30 = 120).
    assert_eq!(parse_expiry("&>0271232359").unwrap(), 20270503);
    assert_eq!(parse_expiry("=>027123").unwrap(), 20270503);
    // Expiring at noon on 3 May: usable only until 2 May on the ledger.
    assert_eq!(parse_expiry("&>0271231200").unwrap(), 20270502);
    // Leap years: day 366 exists in 2024, not in 2025; day 060 is 29 Feb 2024.
    assert_eq!(parse_expiry("=>024366").unwrap(), 20241231);
    assert_eq!(parse_expiry("=>024060").unwrap(), 20240229);
    assert_eq!(parse_expiry("=>025060").unwrap(), 20250301);
    assert!(parse_expiry("=>025366").is_err());
    // 2100 is not a leap year.
    assert_eq!(parse_expiry("=>100060").unwrap(), 21000301);
    assert!(parse_expiry("=>100366").is_err());
    // Midnight at the start of 1 January is the end of 31 December.
    assert_eq!(parse_expiry("&>0240010000").unwrap(), 20231231);
    for bad in [
        "&>0271232400",
        "&>0271230060",
        "=>027000",
        "=>027367",
        "&>027123235",
        "=>02712a",
        "027123",
        "&>é",
    ] {
        assert!(parse_expiry(bad).is_err(), "{bad}");
    }
}

#[test]
fn one_bags_scans_read_together_or_apart() {
    let expected = UnitLabel {
        donation: Some(DonationNumber {
            din: "A999926123456".into(),
            flags: Some("00".into()),
        }),
        product: Some(parse_product_code("=<E0398V00").unwrap()),
        group: Some((AboGroup::O, RhD::NEGATIVE)),
        expiry: Some(20270503),
    };
    assert_eq!(
        parse_scans("=A99992612345600 =<E0398V00 =%9500 &>0271232359").unwrap(),
        expected
    );
    assert_eq!(
        parse_scans("=%9500&>0271232359\n=<E0398V00=A99992612345600").unwrap(),
        expected
    );
    assert_eq!(parse_scans("").unwrap(), UnitLabel::default());
}

#[test]
fn repeated_or_unknown_scans_are_refused() {
    assert_eq!(
        parse_scans("=%9500 =%5100").unwrap_err(),
        Isbt128Error::Repeated("blood groups")
    );
    assert!(matches!(
        parse_scans("]C1=A99992612345600"),
        Err(Isbt128Error::UnknownScan(_))
    ));
    assert!(matches!(
        parse_scans("=O99992612345600"),
        Err(Isbt128Error::UnknownScan(_))
    ));
    // A truncated structure at the end is refused by its own parser.
    assert!(parse_scans("=%9500=<E03").is_err());
}

proptest! {
    #[test]
    fn every_single_character_substitution_changes_the_check(
        din in "[A-NP-Z1-9][0-9]{12}", pos in 0usize..13, replacement in "[0-9A-Z]"
    ) {
        let mut bytes = din.clone().into_bytes();
        let new = replacement.as_bytes()[0];
        prop_assume!(bytes[pos] != new);
        bytes[pos] = new;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert_ne!(mod37_2(din.as_bytes()), mod37_2(changed.as_bytes()));
    }

    #[test]
    fn every_adjacent_transposition_changes_the_check(din in "[A-NP-Z1-9][0-9]{12}", pos in 0usize..12) {
        let mut bytes = din.clone().into_bytes();
        prop_assume!(bytes[pos] != bytes[pos + 1]);
        bytes.swap(pos, pos + 1);
        prop_assert_ne!(mod37_2(din.as_bytes()), mod37_2(&bytes));
    }

    #[test]
    fn recursion_agrees_with_the_definition(din in "[A-NP-Z1-9][0-9]{12}") {
        prop_assert_eq!(mod37_2(din.as_bytes()).unwrap(), by_definition(&din));
    }

    #[test]
    fn a_din_with_its_own_check_character_is_accepted(din in "[A-NP-Z1-9][0-9]{12}") {
        let k = check_character(&din);
        let typed = format!("{din}{k}");
        prop_assert_eq!(parse_donation_number(&typed).unwrap().din, din.clone());
        let flags = 60 + mod37_2(din.as_bytes()).unwrap();
        let scan = format!("={din}{flags}");
        prop_assert!(parse_donation_number(&scan).is_ok());
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_text(text in "\\PC{0,40}") {
        let _ = parse_scans(&text);
        let _ = parse_donation_number(&text);
        let _ = parse_product_code(&text);
        let _ = parse_blood_group(&text);
        let _ = parse_expiry(&text);
    }

    #[test]
    fn parsers_never_panic_on_scan_shaped_text(text in "[=&][<%>A-Z1-9][0-9A-Za-zé*]{0,16}") {
        let _ = parse_scans(&text);
        let _ = parse_donation_number(&text);
    }
}
