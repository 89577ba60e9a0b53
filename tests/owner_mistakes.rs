//! What an owner's first mistakes get back from the `doorman` binary: a
//! damaged gallery, a `state_dir` that is a file, index commands on the
//! local store, a replay with nothing in it or a path that is not there,
//! and `eval` on one person or on quoted CSV. Each gets an error (or an
//! "n/a") that names the setting and the value, and no file is changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A config in a temp folder: `state_dir` is `state` unless `extra` sets
/// it, the models are the cached ones.
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::in_dir(dir, extra)
    }

    fn in_dir(dir: tempfile::TempDir, extra: &str) -> Self {
        let config = dir.path().join("doorman.toml");
        let state = if extra.contains("state_dir") {
            String::new()
        } else {
            format!("state_dir = {:?}\n", dir.path().join("state"))
        };
        let text = format!(
            "{state}{extra}\n[models]\ndir = {:?}\n",
            common::models_dir()
        );
        std::fs::write(&config, text).unwrap();
        Self { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn doorman(&self, args: &[&str]) -> Output {
        common::doorman_with(&self.config, args)
    }

    /// Runs a command that must fail with exit code 2; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.doorman(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        err
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Bytes that look like nothing in particular.
fn noise(len: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

#[test]
fn a_gallery_file_that_is_not_sqlite_is_named_and_left_as_it_was() {
    for bytes in [
        noise(8192),
        b"Ann,visitor-0001\nBob,visitor-0002\n".to_vec(),
    ] {
        let env = Env::new("");
        let state = env.path("state");
        std::fs::create_dir(&state).unwrap();
        let gallery = state.join("gallery.sqlite");
        std::fs::write(&gallery, &bytes).unwrap();

        let err = env.fails(&["visitors"]);
        let want = format!(
            "the gallery {} is not an SQLite database",
            gallery.display()
        );
        assert!(err.contains(&want), "{err}");
        assert_eq!(std::fs::read(&gallery).unwrap(), bytes, "the file changed");
        let left: Vec<_> = std::fs::read_dir(&state).unwrap().collect();
        assert_eq!(left.len(), 1, "SQLite left files beside it: {left:?}");
    }
}

#[test]
fn a_state_dir_that_is_a_file_is_named_by_every_command_that_opens_state() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "precious\n").unwrap();
    let env = Env::in_dir(dir, &format!("state_dir = {file:?}"));
    let photo = common::demo_photo("obama.jpg");
    let commands: &[&[&str]] = &[
        &["visitors"],
        &["label", "visitor-0001", "Ann"],
        &["forget", "Ann"],
        &["forget", "--expired"],
        &["wipe", "--yes"],
        &["enroll", "--name", "Ann", s(&photo)],
        &["identify", s(&photo)],
        &["run", "--replay", s(&photo)],
    ];
    let want = format!("state_dir {} is not a folder", file.display());
    for args in commands {
        let err = env.fails(args);
        assert!(err.contains(&want), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious\n");

    // A file further up the path is named too.
    let below = file.join("doorman");
    let env = Env::new(&format!("state_dir = {below:?}"));
    let err = env.fails(&["visitors"]);
    let want = format!(
        "state_dir {} cannot be made: {} is not a folder",
        below.display(),
        file.display()
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn index_commands_on_the_local_store_say_they_need_the_vectorize_store() {
    let env = Env::new("store = \"local\"");
    for action in ["info", "create"] {
        let err = env.fails(&["index", action]);
        assert!(
            err.contains("the gallery's store is local")
                && err.contains("need store = \"vectorize\""),
            "{action}: {err}"
        );
        assert!(!err.contains("account_id is not set"), "{action}: {err}");
    }
    assert!(!env.path("state").exists(), "the index commands made state");
}

#[test]
fn a_replay_without_one_decodable_frame_fails_naming_the_file() {
    let env = Env::new("[motion]\nenabled = false");
    let junk = env.path("door.mjpeg");
    std::fs::write(&junk, b"this is not a motion JPEG stream\n").unwrap();
    let empty = env.path("door.yuv");
    std::fs::write(&empty, b"").unwrap();
    let short = env.path("short.yuv");
    std::fs::write(&short, noise(1000)).unwrap();

    let err = env.fails(&["run", "--replay", s(&junk)]);
    let want = format!("--replay {}: no frame could be decoded", junk.display());
    assert!(
        err.contains(&want) && err.contains("no whole JPEG"),
        "{err}"
    );

    for yuv in [&empty, &short] {
        let err = env.fails(&["run", "--replay", s(yuv)]);
        let want = format!("--replay {}: no frame could be decoded", yuv.display());
        assert!(err.contains(&want), "{err}");
        // The default 640×480 frame is 460800 bytes.
        assert!(err.contains("460800 bytes"), "{err}");
    }

    // The same file named by camera.path is named as camera.path.
    let env = Env::new(&format!(
        "[camera]\nsource = \"files\"\npath = {junk:?}\n[motion]\nenabled = false"
    ));
    let err = env.fails(&["run"]);
    let want = format!("camera.path {}: no frame could be decoded", junk.display());
    assert!(err.contains(&want), "{err}");
}

#[test]
fn a_missing_replay_path_is_named_as_the_replay_option() {
    let env = Env::new("");
    for missing in ["/nonexistent/doorman-frames", "/nonexistent/door.mjpeg"] {
        let err = env.fails(&["run", "--replay", missing]);
        assert!(
            err.contains(&format!("--replay {missing}: no such file or folder")),
            "{err}"
        );
        assert!(!err.contains("camera.path"), "{err}");
    }
}

/// Copies demo photos into `dir` under new names.
fn copy_photos(dir: &Path, photos: &[(&str, &str)]) {
    for (demo, name) in photos {
        std::fs::copy(common::demo_photo(demo), dir.join(name)).unwrap();
    }
}

#[test]
fn eval_of_one_identity_prints_no_auc_and_says_why() {
    let env = Env::new("");
    copy_photos(
        env.dir.path(),
        &[("obama.jpg", "o1.jpg"), ("obama2.jpg", "o2.jpg")],
    );
    let labels = env.path("one.csv");
    std::fs::write(&labels, "image,identity\no1.jpg,Obama\no2.jpg,Obama\n").unwrap();

    let out = env.doorman(&["eval", s(&labels)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ROC AUC            n/a: it needs photos of at least two identities")
            && text.contains("\"Obama\""),
        "{text}"
    );
    assert!(!text.contains("NaN"), "{text}");

    let out = env.doorman(&["--json", "eval", s(&labels)]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verification"]["roc_auc"], Value::Null, "{report}");
    assert!(
        report["verification_note"]
            .as_str()
            .is_some_and(|n| n.contains("at least two identities")),
        "{report}"
    );
}

#[test]
fn eval_reads_quoted_csv_fields_and_names_a_bad_line() {
    let env = Env::new("");
    copy_photos(
        env.dir.path(),
        &[
            ("obama.jpg", "a b.jpg"),
            ("obama2.jpg", "c, d.jpg"),
            ("biden.jpg", "e.jpg"),
        ],
    );
    let labels = env.path("identities.csv");
    std::fs::write(
        &labels,
        "\"image\",\"identity\"\n\
         \"a b.jpg\",\"Obama, Barack\"\n\
         \"c, d.jpg\",\"Obama, Barack\"\n\
         e.jpg,\"Biden, Joe\"\n",
    )
    .unwrap();
    let out = env.doorman(&["--json", "eval", s(&labels)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["faces_found"], 3, "{report}");
    assert_eq!(report["verification"]["same_pairs"], 1, "{report}");
    assert_eq!(report["verification"]["different_pairs"], 2, "{report}");

    let bad = env.path("bad.csv");
    std::fs::write(&bad, "image,identity\n\"a b.jpg\",Obama\n\"e.jpg\"\n").unwrap();
    let err = env.fails(&["eval", s(&bad)]);
    assert!(
        err.contains(&format!(
            "{}: line 3: expected `image,identity`",
            bad.display()
        )),
        "{err}"
    );
}
