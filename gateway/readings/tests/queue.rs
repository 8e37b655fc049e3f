//! The on-disk queue: what it keeps, refuses, settles and replays.
use coldchain_gateway::arrivals::from_mqtt_message;
use coldchain_gateway::config::ShipmentRange;
use coldchain_gateway::dead_letter::ReplayOutcome;
use coldchain_gateway::protocol::{mqtt_payload, serial_line, DeviceReading};
use coldchain_gateway::queue::{Admission, Arrival, Queue, RawForm, Route};
use coldchain_gateway::validation::{Plausibility, Reason};

const NOW_MS: u64 = 1_790_000_000_000;
const LIMITS: Plausibility = Plausibility {
    clock_skew_tolerance_s: 300,
    max_backlog_age_s: 86_400,
};
const CAP: u64 = 1 << 30;

fn arrival(
    device: &str,
    sequence: u64,
    temperature_cdeg: i32,
    range: Option<ShipmentRange>,
) -> Arrival {
    let reading = DeviceReading {
        device_id: device.into(),
        sequence,
        time_s: NOW_MS / 1000 - 100 + sequence,
        temperature_cdeg,
        humidity_permille: None,
        door: None,
        location: None,
    };
    let raw = serial_line::format_line(&reading).into_bytes();
    Arrival {
        source: "serial:test".into(),
        size: raw.len() as u64,
        raw,
        form: RawForm::SerialLine,
        outcome: Ok((
            vec![reading],
            Route {
                org: "acme".into(),
                shipment: "S-1".into(),
                range,
            },
        )),
    }
}

fn open() -> (tempfile::TempDir, Queue) {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(&dir.path().join("q.sqlite")).unwrap();
    (dir, queue)
}

#[test]
fn queued_readings_survive_reopening_and_repeats_become_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite");
    let mut queue = Queue::open(&path).unwrap();
    let admissions = queue
        .admit(
            &[
                arrival("D1", 1, 500, None),
                arrival("D1", 2, 500, None),
                arrival("D1", 2, 500, None),
            ],
            NOW_MS,
            LIMITS,
            CAP,
        )
        .unwrap();
    assert!(matches!(admissions[2], Admission::Refused(ref r) if r.reason == Reason::Duplicate));
    drop(queue);
    let queue = Queue::open(&path).unwrap();
    assert_eq!(queue.stats(NOW_MS).unwrap().queued, 2);
    let dead = queue.dead_letters(None, 10).unwrap();
    assert_eq!((dead.len(), dead[0].reason.as_str()), (1, "duplicate"));
}

#[test]
fn excursion_start_and_end_are_urgent() {
    let (_dir, mut queue) = open();
    let range = Some(ShipmentRange {
        min_cdeg: 200,
        max_cdeg: 800,
    });
    let temps = [500, 600, 900, 950, 700, 650];
    let arrivals: Vec<_> = temps
        .iter()
        .enumerate()
        .map(|(i, t)| arrival("D1", i as u64 + 1, *t, range))
        .collect();
    let urgent: Vec<bool> = queue
        .admit(&arrivals, NOW_MS, LIMITS, CAP)
        .unwrap()
        .into_iter()
        .map(|a| matches!(a, Admission::Queued { urgent: true, .. }))
        .collect();
    assert_eq!(urgent, vec![false, false, true, false, true, false]);
    assert_eq!(
        queue.due_devices(NOW_MS, 100, 60_000).unwrap(),
        vec!["D1".to_string()]
    );
}

#[test]
fn device_with_an_open_batch_is_not_due_again() {
    let (_dir, mut queue) = open();
    queue
        .admit(
            &[arrival("D1", 1, 500, None), arrival("D2", 1, 500, None)],
            NOW_MS,
            LIMITS,
            CAP,
        )
        .unwrap();
    let ids: Vec<(i64, String)> = queue
        .unsent_readings("D1", 10)
        .unwrap()
        .iter()
        .map(|q| (q.id, "tx1".to_string()))
        .collect();
    queue.record_batch("b1", b"body", &ids, NOW_MS).unwrap();
    queue
        .admit(&[arrival("D1", 2, 500, None)], NOW_MS, LIMITS, CAP)
        .unwrap();
    assert_eq!(
        queue.due_devices(NOW_MS + 10_000, 100, 1_000).unwrap(),
        vec!["D2".to_string()]
    );
    assert_eq!(queue.open_batches().unwrap().len(), 1);
}

#[test]
fn already_recorded_settles_up_to_the_ledgers_last_sequence_and_requeues_the_rest() {
    let (_dir, mut queue) = open();
    let arrivals: Vec<_> = (1..=5).map(|s| arrival("D1", s, 500, None)).collect();
    queue.admit(&arrivals, NOW_MS, LIMITS, CAP).unwrap();
    let ids: Vec<(i64, String)> = queue
        .unsent_readings("D1", 10)
        .unwrap()
        .iter()
        .map(|q| (q.id, "tx1".to_string()))
        .collect();
    queue.record_batch("b1", b"body", &ids, NOW_MS).unwrap();
    let refused = vec![(
        "tx1".to_string(),
        "readings already recorded: 1 <= 3".to_string(),
    )];
    let (settled, requeued, dead) = queue
        .settle_invalid("b1", &refused, &|_| Some(3), NOW_MS)
        .unwrap();
    assert_eq!((settled, requeued, dead), (3, 2, 0));
    let left: Vec<u64> = queue
        .unsent_readings("D1", 10)
        .unwrap()
        .iter()
        .map(|q| q.reading.sequence)
        .collect();
    assert_eq!(left, vec![4, 5]);
    assert!(queue.open_batches().unwrap().is_empty());
}

#[test]
fn other_ledger_refusals_become_replayable_dead_letters() {
    let (_dir, mut queue) = open();
    queue
        .admit(
            &[arrival("D1", 1, 500, None), arrival("D2", 1, 500, None)],
            NOW_MS,
            LIMITS,
            CAP,
        )
        .unwrap();
    let mut members: Vec<(i64, String)> = queue
        .unsent_readings("D1", 10)
        .unwrap()
        .iter()
        .map(|q| (q.id, "tx1".to_string()))
        .collect();
    members.extend(
        queue
            .unsent_readings("D2", 10)
            .unwrap()
            .iter()
            .map(|q| (q.id, "tx2".to_string())),
    );
    queue.record_batch("b1", b"body", &members, NOW_MS).unwrap();
    let refused = vec![(
        "tx1".to_string(),
        "device D1 is not attached to shipment S-1".to_string(),
    )];
    let (settled, requeued, dead) = queue
        .settle_invalid("b1", &refused, &|_| None, NOW_MS)
        .unwrap();
    assert_eq!((settled, requeued, dead), (0, 1, 1));
    let entry = &queue.dead_letters(Some("ledger_invalid"), 10).unwrap()[0];
    assert!(entry.detail.contains("not attached"));
    let outcome = queue
        .replay_dead_letter(entry.id, &|_| None, NOW_MS, LIMITS, CAP)
        .unwrap();
    assert_eq!(outcome, ReplayOutcome::Queued { readings: 1 });
    assert_eq!(queue.unsent_readings("D1", 10).unwrap().len(), 1);
    assert!(queue.dead_letters(None, 10).unwrap().is_empty());
}

#[test]
fn unknown_device_replays_once_configured() {
    let (_dir, mut queue) = open();
    let line = serial_line::format_line(&DeviceReading {
        device_id: "NEW".into(),
        sequence: 1,
        time_s: NOW_MS / 1000,
        temperature_cdeg: 400,
        humidity_permille: None,
        door: None,
        location: None,
    });
    let refused =
        coldchain_gateway::arrivals::from_serial_line("serial:x", line.as_bytes(), &[], &|_| None);
    queue.admit(&[refused], NOW_MS, LIMITS, CAP).unwrap();
    let id = queue.dead_letters(Some("unknown_device"), 10).unwrap()[0].id;
    let route = |_: &str| {
        Some(Route {
            org: "acme".into(),
            shipment: "S-9".into(),
            range: None,
        })
    };
    let outcome = queue
        .replay_dead_letter(id, &route, NOW_MS, LIMITS, CAP)
        .unwrap();
    assert_eq!(outcome, ReplayOutcome::Queued { readings: 1 });
    assert_eq!(queue.unsent_readings("NEW", 10).unwrap()[0].shipment, "S-9");
}

#[test]
fn full_queue_refuses_new_readings_with_queue_full() {
    let (_dir, mut queue) = open();
    let admissions = queue
        .admit(&[arrival("D1", 1, 500, None)], NOW_MS, LIMITS, 1)
        .unwrap();
    assert!(matches!(admissions[0], Admission::Refused(ref r) if r.reason == Reason::QueueFull));
}

fn route_acme(_: &str) -> Option<Route> {
    Some(Route {
        org: "acme".into(),
        shipment: "S-1".into(),
        range: None,
    })
}

fn mqtt_reading(device: &str, sequence: u64, temperature_cdeg: i32) -> DeviceReading {
    DeviceReading {
        device_id: device.into(),
        sequence,
        time_s: NOW_MS / 1000 - 100 + sequence,
        temperature_cdeg,
        humidity_permille: None,
        door: None,
        location: None,
    }
}

#[test]
fn one_bad_reading_refuses_its_whole_mqtt_message() {
    let (_dir, mut queue) = open();
    let payload = mqtt_payload::encode_json(&[
        mqtt_reading("D1", 1, 450),
        mqtt_reading("D1", 2, 20_000), // 200 °C: a broken sensor
        mqtt_reading("D1", 3, 460),
    ]);
    let arrivals = [from_mqtt_message(
        "coldchain",
        "coldchain/acme/D1/readings",
        &payload,
        &route_acme,
    )];
    queue.admit(&arrivals, NOW_MS, LIMITS, CAP).unwrap();
    assert_eq!(
        queue.stats(NOW_MS).unwrap().queued,
        0,
        "nothing of the message is queued"
    );
    let dead = queue.dead_letters(None, 10).unwrap();
    assert_eq!(dead.len(), 1, "one dead letter for the message: {dead:?}");
    assert_eq!(dead[0].reason, "impossible_value");
    assert_eq!(
        dead[0].raw.as_bytes(),
        &payload[..],
        "the message as received"
    );
    assert!(dead[0].detail.contains("element 2"), "{}", dead[0].detail);
    // The logger is fixed and sends the readings again: all of them are taken.
    let fixed = mqtt_payload::encode_json(&[
        mqtt_reading("D1", 1, 450),
        mqtt_reading("D1", 2, 455),
        mqtt_reading("D1", 3, 460),
    ]);
    let arrivals = [from_mqtt_message(
        "coldchain",
        "coldchain/acme/D1/readings",
        &fixed,
        &route_acme,
    )];
    queue.admit(&arrivals, NOW_MS, LIMITS, CAP).unwrap();
    assert_eq!(queue.stats(NOW_MS).unwrap().queued, 3);
}

#[test]
fn readings_already_received_are_skipped_and_the_rest_of_the_message_is_queued() {
    let (_dir, mut queue) = open();
    let topic = "coldchain/acme/D1/readings";
    let first = mqtt_payload::encode_json(
        &(1..=3)
            .map(|s| mqtt_reading("D1", s, 450))
            .collect::<Vec<_>>(),
    );
    queue
        .admit(
            &[from_mqtt_message("coldchain", topic, &first, &route_acme)],
            NOW_MS,
            LIMITS,
            CAP,
        )
        .unwrap();
    // A logger that resends a window overlapping what it sent before.
    let overlap = mqtt_payload::encode_json(
        &(2..=5)
            .map(|s| mqtt_reading("D1", s, 450))
            .collect::<Vec<_>>(),
    );
    queue
        .admit(
            &[from_mqtt_message("coldchain", topic, &overlap, &route_acme)],
            NOW_MS,
            LIMITS,
            CAP,
        )
        .unwrap();
    let queued: Vec<u64> = queue
        .unsent_readings("D1", 10)
        .unwrap()
        .iter()
        .map(|q| q.reading.sequence)
        .collect();
    assert_eq!(queued, vec![1, 2, 3, 4, 5]);
    let dead = queue.dead_letters(None, 10).unwrap();
    assert_eq!(dead.len(), 1, "one note for the resent part: {dead:?}");
    assert_eq!(dead[0].raw.as_bytes(), &overlap[..]);
}

#[test]
fn mqtt_dead_letters_replay_from_the_message_as_received() {
    let (_dir, mut queue) = open();
    // A backlog of 200 readings (about 10 KB of JSON) from a device the
    // gateway does not know yet.
    let backlog: Vec<DeviceReading> = (1..=200).map(|s| mqtt_reading("NEW", s, 450)).collect();
    let json = mqtt_payload::encode_json(&backlog);
    assert!(json.len() > 8192);
    let arrivals = [from_mqtt_message(
        "coldchain",
        "coldchain/acme/NEW/readings",
        &json,
        &|_| None,
    )];
    queue.admit(&arrivals, NOW_MS, LIMITS, CAP).unwrap();
    // A binary message dated an hour ahead of the gateway's clock.
    let ahead: Vec<DeviceReading> = (1..=2)
        .map(|s| DeviceReading {
            time_s: NOW_MS / 1000 + 3600 + s,
            ..mqtt_reading("BIN", s, 450)
        })
        .collect();
    let binary = mqtt_payload::encode_binary(&ahead);
    let arrivals = [from_mqtt_message(
        "coldchain",
        "coldchain/acme/BIN/readings",
        &binary,
        &route_acme,
    )];
    queue.admit(&arrivals, NOW_MS, LIMITS, CAP).unwrap();
    let dead = queue.dead_letters(None, 10).unwrap();
    assert_eq!(
        dead.iter().map(|d| d.reason.as_str()).collect::<Vec<_>>(),
        vec!["unknown_device", "clock_skew"],
        "{dead:?}"
    );
    assert_eq!(dead[0].raw.as_bytes(), &json[..]);

    // The device is configured; the clock caught up (two hours later).
    let later = NOW_MS + 2 * 3600 * 1000;
    for letter in &dead {
        let outcome = queue
            .replay_dead_letter(letter.id, &route_acme, later, LIMITS, CAP)
            .unwrap();
        assert_eq!(
            outcome,
            ReplayOutcome::Queued {
                readings: if letter.reason == "unknown_device" {
                    200
                } else {
                    2
                }
            },
            "{letter:?}"
        );
    }
    assert_eq!(queue.unsent_readings("NEW", 1000).unwrap().len(), 200);
    assert_eq!(queue.unsent_readings("BIN", 10).unwrap().len(), 2);
    assert!(queue.dead_letters(None, 10).unwrap().is_empty());
}

/// The dead-letter table as gateways before tracker issue 12 created it.
const OLD_DEAD_LETTERS: &str = "
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    received_at_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    device_id TEXT,
    sequence INTEGER,
    org_id TEXT,
    shipment_id TEXT,
    raw BLOB NOT NULL
);";

#[test]
fn a_dead_letter_store_of_an_older_gateway_is_migrated_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite");
    let old_line = serial_line::format_line(&mqtt_reading("D1", 7, 450));
    let payload = mqtt_payload::encode_json(&[mqtt_reading("D2", 1, 450)]);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(OLD_DEAD_LETTERS).unwrap();
        let insert = "INSERT INTO dead_letters (received_at_ms, source, reason, detail, device_id, sequence, org_id, shipment_id, raw)
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
        // An MQTT reading refused after parsing: the old gateway kept a rebuilt line.
        conn.execute(
            insert,
            rusqlite::params![
                1,
                "mqtt:coldchain/acme/D1/readings",
                "queue_full",
                "queue is at its disk cap",
                "D1",
                7,
                "acme",
                "S-1",
                old_line.as_bytes()
            ],
        )
        .unwrap();
        // An MQTT message refused before routing: its payload as received.
        conn.execute(
            insert,
            rusqlite::params![
                2,
                "mqtt:coldchain/acme/D2/readings",
                "unknown_device",
                "device \"D2\" …",
                None::<String>,
                None::<i64>,
                None::<String>,
                None::<String>,
                &payload
            ],
        )
        .unwrap();
        conn.execute(
            insert,
            rusqlite::params![
                3,
                "serial:/dev/ttyUSB0",
                "malformed",
                "malformed: line does not start with '$'",
                None::<String>,
                None::<i64>,
                None::<String>,
                None::<String>,
                b"garbage".as_slice()
            ],
        )
        .unwrap();
    }
    let mut queue = Queue::open(&path).unwrap();
    let letters = queue.dead_letters(None, 10).unwrap();
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert_eq!(letters[2].raw, "garbage");
    for id in [letters[0].id, letters[1].id] {
        let outcome = queue
            .replay_dead_letter(id, &route_acme, NOW_MS, LIMITS, CAP)
            .unwrap();
        assert_eq!(outcome, ReplayOutcome::Queued { readings: 1 });
    }
    assert_eq!(
        queue.unsent_readings("D1", 10).unwrap()[0].reading.sequence,
        7
    );
    assert_eq!(queue.unsent_readings("D2", 10).unwrap().len(), 1);
    drop(queue);
    // Opening again changes nothing.
    let queue = Queue::open(&path).unwrap();
    assert_eq!(queue.dead_letters(None, 10).unwrap().len(), 1);
}

#[test]
fn listing_an_unknown_reason_is_refused_with_the_valid_ones() {
    let (_dir, queue) = open();
    let error = queue
        .dead_letters(Some("bogus"), 10)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("bogus") && error.contains("unknown_device") && error.contains("too_large"),
        "{error}"
    );
}
