//! The owner's privacy commands leave no trace: after `forget` or `wipe`
//! neither the SQLite file (read raw, byte by byte, and through SQL) nor
//! the events file holds the person's name, id or face vectors; anonymous
//! visitors past `retention_days` are deleted by the running service.

mod common;
#[path = "support/scenes.rs"]
mod scenes;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use rusqlite::Connection;

struct Home {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Home {
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("doorman.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\n[models]\ndir = {:?}\n[visit]\nvisit_gap_s = 2.0\n{extra}",
                dir.path().join("state"),
                common::models_dir()
            ),
        )
        .unwrap();
        Self { dir, config }
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = common::doorman()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs doorman and insists that it succeeds.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run_with_stdin(args, "");
        assert!(
            out.status.success(),
            "doorman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state(&self, file: &str) -> PathBuf {
        self.dir.path().join("state").join(file)
    }

    fn events(&self) -> String {
        std::fs::read_to_string(self.state("events.jsonl")).unwrap_or_default()
    }

    fn db(&self) -> Connection {
        Connection::open(self.state("gallery.sqlite")).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Every byte doorman keeps about the gallery: the database file and
    /// its write-ahead log.
    fn gallery_bytes(&self) -> Vec<u8> {
        let mut bytes = std::fs::read(self.state("gallery.sqlite")).unwrap();
        for extra in ["gallery.sqlite-wal", "gallery.sqlite-journal"] {
            if let Ok(b) = std::fs::read(self.state(extra)) {
                bytes.extend(b);
            }
        }
        bytes
    }

    /// Replays visits by the people in `photos`, one after the other.
    fn replay(&self, photos: &[&Path]) {
        let frames = self.dir.path().join(format!(
            "frames-{}",
            std::fs::read_dir(self.dir.path()).unwrap().count()
        ));
        for photo in photos {
            let img = scenes::load(photo);
            scenes::write_visit(&frames, Some(&img), 2, 6, 14);
        }
        if photos.is_empty() {
            scenes::write_visit(&frames, None, 1, 0, 0);
        }
        self.ok(&["run", "--replay", frames.to_str().unwrap()]);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Enrols Obama (visitor-0001) and Biden (visitor-0002) and records a known
/// visit by each.
fn two_people() -> Home {
    let home = Home::new("");
    home.ok(&[
        "enroll",
        "--name",
        "Barack Obama",
        s(&common::demo_photo("obama.jpg")),
        s(&common::demo_photo("obama2.jpg")),
    ]);
    home.ok(&[
        "enroll",
        "--name",
        "Joe Biden",
        s(&common::demo_photo("biden.jpg")),
    ]);
    let biden2 =
        common::faces_dir().join("face_recognition/examples/knn_examples/train/biden/biden2.jpg");
    home.replay(&[&common::demo_photo("obama3.jpg"), &biden2]);
    let events = home.events();
    assert!(
        events.contains("Barack Obama") && events.contains("Joe Biden"),
        "{events}"
    );
    home
}

#[test]
fn forget_by_name_leaves_no_trace_of_the_person_and_keeps_the_others() {
    let home = two_people();
    // The person's first face vector, as stored, to look for afterwards.
    let vector: Vec<u8> = home
        .db()
        .query_row(
            "SELECT vector FROM exemplars WHERE visitor = 'visitor-0001' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(contains(&home.gallery_bytes(), b"Barack Obama"));

    let out = home.ok(&["forget", "Barack Obama"]);
    assert!(out.contains("visitor-0001"), "{out}");

    for table in [
        "visitors WHERE id",
        "exemplars WHERE visitor",
        "visits WHERE visitor",
    ] {
        assert_eq!(
            home.count(&format!("SELECT COUNT(*) FROM {table} = 'visitor-0001'")),
            0,
            "{table}"
        );
    }
    let bytes = home.gallery_bytes();
    assert!(
        !contains(&bytes, b"Barack Obama"),
        "the name is still in the file"
    );
    assert!(
        !contains(&bytes, &vector[..64]),
        "a face vector is still in the file"
    );
    let events = home.events();
    assert!(
        !events.contains("visitor-0001") && !events.contains("Obama"),
        "{events}"
    );

    // Biden is untouched, and still recognised by name.
    assert!(events.contains("Joe Biden"), "{events}");
    assert_eq!(home.count("SELECT COUNT(*) FROM visitors"), 1);
    let out = home.ok(&["identify", s(&common::demo_photo("obama3.jpg"))]);
    assert!(out.contains("unknown"), "{out}");
}

#[test]
fn label_names_a_visitor_and_forget_takes_the_new_name_or_the_id() {
    let home = two_people();
    home.ok(&["label", "visitor-0002", "Joseph"]);
    let out = home.ok(&["visitors"]);
    assert!(
        out.contains("Joseph") && !out.contains("Joe Biden"),
        "{out}"
    );
    // A name belongs to one visitor.
    let out = home.run_with_stdin(&["label", "visitor-0001", "Joseph"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("visitor-0002"));

    home.ok(&["forget", "visitor-0002"]);
    assert!(!contains(&home.gallery_bytes(), b"Joseph"));
    assert!(!home.events().contains("visitor-0002"));
    let out = home.run_with_stdin(&["forget", "Nobody"], "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn wipe_asks_first_and_then_leaves_nothing() {
    let home = two_people();
    let out = home.run_with_stdin(&["wipe"], "no\n");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(home.count("SELECT COUNT(*) FROM visitors"), 2);

    let out = home.run_with_stdin(&["wipe"], "yes\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for table in ["visitors", "exemplars", "visits"] {
        assert_eq!(
            home.count(&format!("SELECT COUNT(*) FROM {table}")),
            0,
            "{table}"
        );
    }
    let bytes = home.gallery_bytes();
    assert!(!contains(&bytes, b"Barack Obama") && !contains(&bytes, b"Joe Biden"));
    assert_eq!(home.events(), "");
    // The gallery still works afterwards.
    home.ok(&["wipe", "--yes"]);
    assert_eq!(home.ok(&["--json", "visitors"]), "");
}

#[test]
fn the_running_service_deletes_strangers_not_seen_for_retention_days() {
    let home = Home::new("[recognize]\nremember_strangers = true\nretention_days = 30\n");
    home.replay(&[&common::demo_photo("astronaut.png")]);
    let events = home.events();
    assert!(events.contains("visitor-0001"), "{events}");
    assert_eq!(home.count("SELECT COUNT(*) FROM visitors"), 1);

    // 29 days on, the stranger is kept; 31 days on, gone.
    let day = 86_400;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let age = |days: i64| {
        home.db()
            .execute(
                "UPDATE visitors SET last_seen = ?1, created_at = ?1",
                [now - days * day],
            )
            .unwrap();
    };
    age(29);
    home.ok(&["forget", "--expired"]);
    assert_eq!(home.count("SELECT COUNT(*) FROM visitors"), 1);

    age(31);
    home.replay(&[]);
    assert_eq!(home.count("SELECT COUNT(*) FROM visitors"), 0);
    assert_eq!(home.count("SELECT COUNT(*) FROM visits"), 0);
    assert!(!home.events().contains("visitor-0001"), "{}", home.events());
}
