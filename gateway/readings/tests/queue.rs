//! The on-disk queue: what it keeps, refuses, settles and replays.
use coldchain_gateway::config::ShipmentRange;
use coldchain_gateway::protocol::{serial_line, DeviceReading};
use coldchain_gateway::queue::{Admission, Arrival, Queue, Route};
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
    Arrival {
        source: "serial:test".into(),
        raw: serial_line::format_line(&reading).into_bytes(),
        outcome: Ok((
            reading,
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
        .map(|a| matches!(a, Admission::Queued { urgent: true }))
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
        .replay_dead_letter(entry.id, &|_| None, "coldchain", NOW_MS, LIMITS, CAP)
        .unwrap();
    assert_eq!(
        outcome,
        coldchain_gateway::dead_letter::ReplayOutcome::Queued
    );
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
        .replay_dead_letter(id, &route, "coldchain", NOW_MS, LIMITS, CAP)
        .unwrap();
    assert_eq!(
        outcome,
        coldchain_gateway::dead_letter::ReplayOutcome::Queued
    );
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
