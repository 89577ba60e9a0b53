//! The gallery with `store = "vectorize"` against the stand-in: the outbox
//! keeps every write through outages and restarts, searches see writes the
//! index has not applied yet, and the token file is guarded.

mod standin;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use doorman::embed::Embedding;
use doorman::gallery::{Gallery, StoreSpec};
use doorman::vectorize::client::MetadataIndex;
use doorman::vectorize::{Client, Retry, Store, Token};
use standin::{Apply, Fault, FaultKind, Options, Standin, Target};

const INDEX: &str = "faces";
const EMBEDDER: &str = "test-embedder";

fn client(s: &Standin, token: &str) -> Client {
    Client::new(
        &s.base_url(),
        &s.account(),
        INDEX,
        Token::new(token).unwrap(),
        Duration::from_secs(2),
    )
}

/// A stand-in with the index and its metadata index, applying writes
/// as `apply` says.
fn server(apply: Apply) -> Standin {
    let s = Standin::start(Options::default());
    let c = client(&s, &s.token());
    c.create_index(3, "", Retry::Once).unwrap();
    c.create_metadata_index(
        &MetadataIndex {
            property_name: "embedder".into(),
            index_type: "string".into(),
        },
        Retry::Once,
    )
    .unwrap();
    s.set_apply(apply);
    s
}

fn open(dir: &Path, s: &Standin, token: &str) -> anyhow::Result<Gallery> {
    let store = Store::new(client(s, token), EMBEDDER, Duration::from_secs(2));
    Gallery::open_with(
        &dir.join("gallery.sqlite"),
        EMBEDDER,
        3,
        StoreSpec::Vectorize {
            store: Box::new(store),
            label: format!("{}/{INDEX}", s.account()),
        },
    )
}

fn unit(v: &[f32]) -> Embedding {
    Embedding::normalised(v).unwrap()
}

fn enrol(g: &mut Gallery, name: Option<&str>, v: &[f32]) -> String {
    let now = SystemTime::now();
    let id = g.add_visitor(name, now).unwrap();
    g.add_exemplar(&id, &unit(v), "enroll", now).unwrap();
    id
}

#[test]
fn a_person_enrolled_a_moment_ago_is_recognised_before_the_index_applies_it() {
    let s = server(Apply::Manual);
    let dir = tempfile::tempdir().unwrap();
    let mut g = open(dir.path(), &s, &s.token()).unwrap();
    let ann = enrol(&mut g, Some("Ann"), &[1.0, 0.0, 0.0]);
    enrol(&mut g, Some("Bob"), &[0.0, 1.0, 0.0]);

    let report = g.sync(Duration::from_secs(2)).unwrap();
    assert_eq!((report.sent, report.queued, report.unconfirmed), (2, 0, 2));
    assert!(
        s.vectors(INDEX).is_empty(),
        "the index has not applied them"
    );
    let m = g.search(&unit(&[0.9, 0.1, 0.0]), 5).unwrap();
    assert_eq!(m[0].id, ann);
    assert_eq!(m[0].name.as_deref(), Some("Ann"));

    // Once the index shows them, the device drops its copies and the
    // answer comes from the index alone.
    s.flush();
    g.flush().unwrap();
    assert_eq!(g.outbox_status().unwrap(), (0, 0, 0));
    let m = g.search(&unit(&[0.9, 0.1, 0.0]), 5).unwrap();
    assert_eq!(
        m.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [ann.as_str(), "visitor-0002"]
    );
    assert!(m[0].score > 0.99);
    assert!(s.count("query") >= 2);
}

#[test]
fn writes_during_an_outage_are_sent_in_order_after_it_and_none_twice() {
    let mut s = server(Apply::Immediate);
    let dir = tempfile::tempdir().unwrap();
    let mut g = open(dir.path(), &s, &s.token()).unwrap();
    s.stop();

    let ids: Vec<String> = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        .iter()
        .map(|v| enrol(&mut g, None, v))
        .collect();
    let started = Instant::now();
    let report = g.sync(Duration::from_millis(50)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(report.queued, 3);
    assert!(report.offline.is_some());

    // The index cannot be asked; the device still knows its own writes.
    assert!(g.search(&unit(&[1.0, 0.0, 0.0]), 1).is_err());
    let found = g.search_tolerant(&unit(&[1.0, 0.0, 0.0]), 1).unwrap();
    assert!(!found.complete);
    assert_eq!(found.matches[0].id, ids[0]);

    s.restart();
    let report = g.flush().unwrap();
    assert_eq!((report.sent, report.queued), (3, 0));
    let stored = s.vectors(INDEX);
    let expected: Vec<String> = ids.iter().map(|id| format!("{id}.e1")).collect();
    assert_eq!(stored.keys().cloned().collect::<Vec<_>>(), expected);
    let writes = s.write_counts();
    assert!(expected.iter().all(|id| writes[id] == 1), "{writes:?}");
    let meta = stored[&expected[0]].metadata.as_ref().unwrap();
    assert_eq!(meta["visitor"], ids[0].as_str());
    assert_eq!(meta["kind"], "anonymous");
    assert_eq!(meta["embedder"], EMBEDDER);
}

#[test]
fn queued_writes_survive_closing_the_gallery_and_are_sent_by_the_next_process() {
    let mut s = server(Apply::Immediate);
    let dir = tempfile::tempdir().unwrap();
    s.stop();
    {
        let mut g = open(dir.path(), &s, &s.token()).unwrap();
        enrol(&mut g, Some("Ann"), &[1.0, 0.0, 0.0]);
        enrol(&mut g, Some("Bob"), &[0.0, 1.0, 0.0]);
        assert_eq!(g.sync(Duration::from_millis(50)).unwrap().queued, 2);
    }
    s.restart();
    let mut g = open(dir.path(), &s, &s.token()).unwrap();
    assert_eq!(g.outbox_status().unwrap().0, 2);
    assert_eq!(g.sync(Duration::from_secs(2)).unwrap().sent, 2);
    assert_eq!(
        s.vectors(INDEX).keys().cloned().collect::<Vec<_>>(),
        ["visitor-0001.e1", "visitor-0002.e1"]
    );
}

#[test]
fn forgetting_a_visitor_hides_them_at_once_and_deletes_their_vectors() {
    let s = server(Apply::Immediate);
    let dir = tempfile::tempdir().unwrap();
    let mut g = open(dir.path(), &s, &s.token()).unwrap();
    let ann = enrol(&mut g, Some("Ann"), &[1.0, 0.0, 0.0]);
    g.add_exemplar(&ann, &unit(&[1.0, 0.1, 0.0]), "visit", SystemTime::now())
        .unwrap();
    enrol(&mut g, Some("Bob"), &[0.0, 1.0, 0.0]);
    g.flush().unwrap();
    assert_eq!(s.vectors(INDEX).len(), 3);

    s.set_apply(Apply::Manual);
    assert_eq!(g.forget(&ann).unwrap().exemplars, 2);
    g.sync(Duration::from_secs(2)).unwrap();
    assert_eq!(s.vectors(INDEX).len(), 3, "the delete is not applied yet");
    let m = g.search(&unit(&[1.0, 0.0, 0.0]), 5).unwrap();
    assert!(m.iter().all(|m| m.id != ann), "{m:?}");

    s.flush();
    assert_eq!(
        s.vectors(INDEX).keys().cloned().collect::<Vec<_>>(),
        ["visitor-0002.e1"]
    );
}

#[test]
fn a_write_the_api_refuses_for_good_is_set_aside_and_the_rest_go_on() {
    let s = server(Apply::Immediate);
    let dir = tempfile::tempdir().unwrap();
    let mut g = open(dir.path(), &s, &s.token()).unwrap();
    for v in [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] {
        enrol(&mut g, None, &v);
    }
    // The batch, then the first write alone, are refused as unparsable.
    s.add_fault(Fault::new(
        Target::Op("upsert"),
        FaultKind::Error {
            status: 400,
            code: 40023,
            message: "failed to parse upsert vectors request in ndjson format".into(),
            retry_after_s: None,
        },
        2,
    ));
    let mut report = g.sync(Duration::from_secs(5)).unwrap();
    while report.queued > 0 {
        report = g.sync(Duration::from_secs(5)).unwrap();
    }
    assert_eq!(g.outbox_status().unwrap().2, 1, "one write set aside");
    assert_eq!(
        s.vectors(INDEX).keys().cloned().collect::<Vec<_>>(),
        ["visitor-0002.e1", "visitor-0003.e1"]
    );
}

#[test]
fn a_429_storm_backs_off_without_holding_up_the_caller() {
    let s = server(Apply::Immediate);
    let dir = tempfile::tempdir().unwrap();
    let mut g = open(dir.path(), &s, &s.token()).unwrap();
    s.add_fault(Fault::rate_limited(usize::MAX, 1));
    enrol(&mut g, None, &[1.0, 0.0, 0.0]);

    let started = Instant::now();
    let report = g.sync(Duration::from_millis(50)).unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(report.offline.unwrap().contains("retry after 1"));
    let sent = s.count("upsert");
    g.sync(Duration::from_millis(50)).unwrap();
    assert_eq!(s.count("upsert"), sent, "nothing sent before Retry-After");

    s.clear_faults();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(g.sync(Duration::from_secs(1)).unwrap().sent, 1);
}

#[test]
fn a_refused_token_stops_the_sync_keeps_the_writes_and_is_not_echoed() {
    let s = server(Apply::Immediate);
    let dir = tempfile::tempdir().unwrap();
    let wrong = "wrong-token-c0ffee";
    let mut g = open(dir.path(), &s, wrong).unwrap();
    enrol(&mut g, Some("Ann"), &[1.0, 0.0, 0.0]);
    let err = format!("{:#}", g.sync(Duration::from_secs(1)).unwrap_err());
    assert!(err.contains("refused the token"), "{err}");
    assert!(!err.contains(wrong) && !err.contains(&s.token()), "{err}");
    assert_eq!(g.outbox_status().unwrap().0, 1);
}

#[test]
fn a_long_non_latin_name_never_gets_a_write_rejected() {
    let s = server(Apply::Immediate);
    let dir = tempfile::tempdir().unwrap();
    let mut g = open(dir.path(), &s, &s.token()).unwrap();
    let name = "სახელისგვარისსახელისგვარისსახელისგვარი"; // 39 Georgian letters
    let long = name.repeat(20); // 2340 bytes
    enrol(&mut g, Some(name), &[1.0, 0.0, 0.0]);
    enrol(&mut g, Some(&long), &[0.0, 1.0, 0.0]);
    let report = g.flush().unwrap();
    assert_eq!((report.sent, report.rejected), (2, 0));
    let stored = s.vectors(INDEX);
    assert!(stored.keys().all(|id| id.len() <= 64));
    let names: Vec<String> = stored
        .values()
        .map(|v| {
            v.metadata.as_ref().unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names[0], name);
    assert!(long.starts_with(&names[1]) && names[1].len() <= 1024);
}

#[test]
fn a_gallery_file_is_never_paired_with_another_store() {
    let s = server(Apply::Immediate);
    let dir = tempfile::tempdir().unwrap();
    {
        let mut g = Gallery::open(&dir.path().join("gallery.sqlite"), EMBEDDER, 3).unwrap();
        enrol(&mut g, Some("Ann"), &[1.0, 0.0, 0.0]);
    }
    let err = open(dir.path(), &s, &s.token()).err().unwrap().to_string();
    assert!(err.contains("local") && err.contains("vectorize:"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_token_file_others_can_read_is_refused_and_a_private_one_is_used() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "secret-abc123\n").unwrap();
    for mode in [0o644, 0o640, 0o604, 0o620] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Token::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{mode:o}: {err}");
        assert!(!err.contains("secret-abc123"), "{err}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        format!("{:?}", Token::from_file(&path).unwrap()),
        "Token(<redacted>)"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(Token::from_file(&path).is_ok());
}

#[test]
fn a_stalled_server_costs_a_sync_one_timeout_then_nothing_until_the_back_off_ends() {
    let s = server(Apply::Immediate);
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(300);
    let store = Store::new(
        Client::new(
            &s.base_url(),
            &s.account(),
            INDEX,
            Token::new(&s.token()).unwrap(),
            timeout,
        ),
        EMBEDDER,
        Duration::from_secs(2),
    );
    let mut g = Gallery::open_with(
        &dir.path().join("gallery.sqlite"),
        EMBEDDER,
        3,
        StoreSpec::Vectorize {
            store: Box::new(store),
            label: format!("{}/{INDEX}", s.account()),
        },
    )
    .unwrap();
    enrol(&mut g, None, &[1.0, 0.0, 0.0]);
    s.add_fault(Fault::new(
        Target::Op("upsert"),
        FaultKind::Slow(Duration::from_secs(3)),
        usize::MAX,
    ));

    let started = Instant::now();
    let report = g.sync(Duration::from_millis(20)).unwrap();
    let first = started.elapsed();
    assert!(
        first >= timeout && first < timeout * 3,
        "first sync took {first:?}"
    );
    assert!(report.offline.unwrap().contains("timeout"));

    let started = Instant::now();
    for _ in 0..10 {
        g.sync(Duration::from_millis(20)).unwrap();
    }
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(g.outbox_status().unwrap().0, 1, "the write is still queued");
}
