//! The `doorman` binary with `store = "vectorize"` against the stand-in:
//! the same answers as the local store on the demo photos, the index
//! commands, an outage during a run, a kill -9 with writes queued, and a
//! token that never shows.

mod common;
#[path = "support/scenes.rs"]
mod scenes;
mod standin;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use scenes::{background, with_person_at as with_person};
use serde_json::Value;
use standin::{Apply, Fault, Options, Standin, Target};

const INDEX: &str = "front-door";

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    /// A config for the local store (`server` None) or for the stand-in.
    fn new(server: Option<&Standin>, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("doorman.toml");
        let mut text = format!(
            "state_dir = {:?}\n{}[models]\ndir = {:?}\n[camera]\nclock_fps = 5.0\n\
             [visit]\nvisit_gap_s = 2.0\n",
            dir.path().join("state"),
            if server.is_some() {
                "store = \"vectorize\"\n"
            } else {
                ""
            },
            common::models_dir()
        );
        if let Some(s) = server {
            let token = dir.path().join("token");
            std::fs::write(&token, format!("{}\n", s.token())).unwrap();
            std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
            text.push_str(&format!(
                "[vectorize]\naccount_id = {:?}\nindex = {INDEX:?}\nbase_url = {:?}\n\
                 token_file = {:?}\ntimeout_s = 2\nretry_max_s = 2\n",
                s.account(),
                s.base_url(),
                token
            ));
        }
        text.push_str(extra);
        std::fs::write(&config, text).unwrap();
        Self { dir, config }
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = common::doorman();
        c.arg("--config").arg(&self.config).args(args);
        c
    }

    fn doorman(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.doorman(args);
        assert!(
            out.status.success(),
            "doorman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        String::from_utf8_lossy(&self.ok(args).stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("state/events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn gallery(&self) -> PathBuf {
        self.dir.path().join("state/gallery.sqlite")
    }
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Enrols Barack Obama from two photos.
fn enrol_obama(env: &Env) {
    let (obama, obama2) = (
        common::demo_photo("obama.jpg"),
        common::demo_photo("obama2.jpg"),
    );
    env.ok(&[
        "enroll",
        "--name",
        "Barack Obama",
        arg(&obama),
        arg(&obama2),
    ]);
}

/// Enrols Barack Obama (two photos), then Joe Biden (one).
fn enrol_two(env: &Env) {
    enrol_obama(env);
    let biden = common::demo_photo("biden.jpg");
    env.ok(&["enroll", "--name", "Joe Biden", arg(&biden)]);
}

/// Writes queued in the gallery file's outbox.
fn outbox_len(gallery: &Path) -> i64 {
    let db =
        rusqlite::Connection::open_with_flags(gallery, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    db.query_row("SELECT COUNT(*) FROM vectorize_outbox", [], |r| r.get(0))
        .unwrap()
}

/// `script`: (photo or None for an empty doorstep, frames).
fn write_frames(dir: &Path, script: &[(Option<&str>, usize)]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut i = 0;
    for (photo, n) in script {
        let photo = photo.map(|p| image::open(common::demo_photo(p)).unwrap().to_rgb8());
        for k in 0..*n {
            let img = match &photo {
                Some(p) => with_person(p, 200 + (200 * k / n) as u32),
                None => background(),
            };
            img.save(dir.join(format!("frame-{i:04}.jpg"))).unwrap();
            i += 1;
        }
    }
}

#[test]
fn index_create_makes_the_index_with_its_metadata_index_and_info_shows_it() {
    let s = Standin::start(Options::default());
    let env = Env::new(Some(&s), "");
    let out = env.ok(&["index", "create"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("created index front-door (128 dimensions, cosine)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(s.metadata_indexes(INDEX), ["embedder"]);
    let again = env.json_lines(&["--json", "index", "create"]);
    assert_eq!(again[0]["created"], false);

    let info = env.json_lines(&["--json", "index", "info"]);
    assert_eq!(info[0]["dimensions"], 128);
    assert_eq!(info[0]["metric"], "cosine");
    assert_eq!(info[0]["vector_count"], 0);
    assert_eq!(info[0]["outbox"], 0);
    assert_eq!(info[0]["metadata_indexes"][0], "embedder");
    assert!(check_store(&env).0, "{:?}", check_store(&env));

    // An index of another dimension is not taken for doorman's.
    let other = Standin::start(Options::default());
    other.create_index(INDEX, 512, "cosine");
    let env2 = Env::new(Some(&other), "");
    let out = env2.doorman(&["index", "create"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("512") && err.contains("128"), "{err}");
    let (ok, detail) = check_store(&env2);
    assert!(!ok && detail.contains("512"), "{detail}");

    // `check` reads the token as `run` would.
    std::fs::remove_file(env.token_file()).unwrap();
    let (ok, detail) = check_store(&env);
    assert!(!ok && detail.contains("token"), "{detail}");
}

/// `doorman --json check`'s verdict on the store, with its detail.
fn check_store(env: &Env) -> (bool, String) {
    let out = env.doorman(&["--json", "check"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["check"] == "store")
        .map(|v| {
            (
                v["ok"].as_bool().unwrap(),
                v["detail"].as_str().unwrap().to_string(),
            )
        })
        .expect("a store line")
}

#[test]
fn enroll_and_identify_answer_as_the_local_store_does() {
    let s = Standin::start(Options::default());
    let remote = Env::new(Some(&s), "");
    let local = Env::new(None, "");
    remote.ok(&["index", "create"]);
    enrol_two(&remote);
    enrol_two(&local);
    // Every write reached the index and is confirmed there, so identify
    // is answered by the index, not by the device's recent writes.
    let info = remote.json_lines(&["--json", "index", "info"]);
    assert_eq!(info[0]["vector_count"], 3);
    assert_eq!(
        (
            info[0]["outbox"].as_u64(),
            info[0]["pending_writes"].as_u64()
        ),
        (Some(0), Some(0))
    );

    let held: Vec<PathBuf> = [
        "obama3.jpg",
        "obama_partial_face.jpg",
        "obama_partial_face2.jpg",
        "32bit.png",
        "astronaut.png",
    ]
    .map(common::demo_photo)
    .to_vec();
    let mut args = vec!["--json", "identify"];
    args.extend(held.iter().map(|p| arg(p)));
    let a = local.json_lines(&args);
    let b = remote.json_lines(&args);
    assert_eq!(a.len(), b.len());
    assert!(s.count("query") >= a.len());
    for (l, r) in a.iter().zip(&b) {
        for key in ["image", "box", "id", "name", "decision", "closest"] {
            assert_eq!(l[key], r[key], "{key}: local {l} vs vectorize {r}");
        }
        let (ls, rs) = (l["score"].as_f64().unwrap(), r["score"].as_f64().unwrap());
        assert!((ls - rs).abs() <= 0.002, "local {l} vs vectorize {r}");
    }
    let names: Vec<_> = b.iter().map(|l| l["name"].clone()).collect();
    assert_eq!(names.iter().filter(|n| *n == "Barack Obama").count(), 4);
    assert_eq!(b.last().unwrap()["decision"], "unknown");

    let visitors = remote.json_lines(&["--json", "visitors"]);
    let names: Vec<_> = visitors
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Barack Obama", "Joe Biden"]);
    assert_eq!(visitors[0]["exemplars"], 2);
}

#[test]
fn an_outage_during_a_run_loses_no_visit_and_writes_none_twice() {
    let mut s = Standin::start(Options::default());
    let env = Env::new(Some(&s), "[recognize]\nremember_strangers = true\n");
    env.ok(&["index", "create"]);
    // Writes are accepted but not applied: the index keeps answering with
    // nothing for minutes, as it may in real life.
    s.set_apply(Apply::Manual);
    enrol_two(&env);
    let frames = env.dir.path().join("frames");
    write_frames(
        &frames,
        &[
            (None, 3),
            (Some("obama3.jpg"), 10),
            (None, 15),
            (Some("astronaut.png"), 10),
            (None, 15),
            (Some("biden.jpg"), 10),
            (None, 5),
        ],
    );

    s.stop();
    let out = env.ok(&["run", "--replay", arg(&frames)]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("outbox"), "{log}");
    let ev = env.events();
    let who: Vec<_> = ev
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("-"),
                e["decision"].as_str().unwrap(),
            )
        })
        .collect();
    // Obama and Biden are known from the writes the device keeps; the
    // stranger cannot be told apart from somebody the index knows.
    assert_eq!(
        who,
        [
            ("Barack Obama", "known"),
            ("-", "uncertain"),
            ("Joe Biden", "known")
        ],
        "{ev:?}"
    );
    assert_eq!(outbox_len(&env.gallery()), 2, "two new exemplars queued");

    s.restart();
    let idle = env.dir.path().join("idle");
    write_frames(&idle, &[(None, 2)]);
    env.ok(&["run", "--replay", arg(&idle)]);
    assert_eq!(outbox_len(&env.gallery()), 0);
    s.flush();
    let ids: Vec<String> = s.vectors(INDEX).keys().cloned().collect();
    assert_eq!(
        ids,
        [
            "visitor-0001.e1",
            "visitor-0001.e2",
            "visitor-0001.e3",
            "visitor-0002.e1",
            "visitor-0002.e2"
        ]
    );
    let writes = s.write_counts();
    assert!(ids.iter().all(|id| writes[id] == 1), "{writes:?}");
}

#[test]
fn a_run_killed_with_writes_queued_loses_none_of_them() {
    let s = Standin::start(Options::default());
    let env = Env::new(Some(&s), "[recognize]\nremember_strangers = true\n");
    env.ok(&["index", "create"]);
    enrol_obama(&env);

    // Queries work, every write fails: the run's writes pile up.
    s.add_fault(Fault::server_error(Target::Writes, usize::MAX));
    let frames = env.dir.path().join("frames");
    write_frames(
        &frames,
        &[
            (Some("obama3.jpg"), 8),
            (None, 15),
            (Some("astronaut.png"), 8),
            (None, 400),
        ],
    );
    let mut child = env
        .command(&["run", "--replay", arg(&frames)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while env.events().len() < 2 || outbox_len(&env.gallery()) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "events {:?}",
            env.events()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended too early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(outbox_len(&env.gallery()), 2);

    s.clear_faults();
    let idle = env.dir.path().join("idle");
    write_frames(&idle, &[(None, 2)]);
    env.ok(&["run", "--replay", arg(&idle)]);
    assert_eq!(outbox_len(&env.gallery()), 0);
    let ids: Vec<String> = s.vectors(INDEX).keys().cloned().collect();
    assert_eq!(
        ids,
        [
            "visitor-0001.e1",
            "visitor-0001.e2",
            "visitor-0001.e3",
            "visitor-0002.e1"
        ]
    );
}

#[test]
fn the_token_never_appears_in_logs_or_error_output() {
    let s = Standin::start(Options::default());
    let env = Env::new(Some(&s), "");
    let token = s.token();
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let out = env.command(args).env("RUST_LOG", "trace").output().unwrap();
        outputs.push((
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        ));
    };
    run(&["-vv", "index", "create"]);
    // Retries log a warning per attempt.
    s.add_fault(Fault::server_error(Target::All, 2));
    run(&[
        "-vv",
        "enroll",
        "--name",
        "Joe Biden",
        arg(&common::demo_photo("biden.jpg")),
    ]);
    run(&["-vv", "identify", arg(&common::demo_photo("biden.jpg"))]);
    run(&["-vv", "index", "info"]);
    // A refused token: the error names the problem, not the token.
    std::fs::write(env.token_file(), format!("{token}x\n")).unwrap();
    run(&["-vv", "index", "info"]);
    let refused = outputs.last().unwrap().1.clone();
    assert!(refused.contains("refused the token"), "{refused}");
    // A wire dump splits the token over rows of 16 bytes: look for every
    // 8-character piece of it, and for the header itself.
    let pieces: Vec<&str> = (0..=token.len() - 8).map(|i| &token[i..i + 8]).collect();
    for (args, text) in &outputs {
        let leaked = pieces.iter().find(|p| text.contains(*p));
        assert!(
            leaked.is_none(),
            "doorman {args} printed {leaked:?} of the token:\n{text}"
        );
        assert!(
            !text.to_lowercase().contains("bearer"),
            "doorman {args} printed the Authorization header:\n{text}"
        );
    }
    assert!(outputs[1].1.contains("retrying"), "{}", outputs[1].1);
}

#[test]
fn a_token_file_others_can_read_is_refused_by_every_command() {
    let s = Standin::start(Options::default());
    let env = Env::new(Some(&s), "");
    std::fs::set_permissions(env.token_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    for args in [
        vec!["visitors"],
        vec!["index", "info"],
        vec!["identify", arg(&common::demo_photo("biden.jpg"))],
    ] {
        let out = env.doorman(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("mode 644") && err.contains("chmod 600"),
            "{err}"
        );
        assert!(!err.contains(&s.token()), "{err}");
    }
    assert!(s.requests().is_empty(), "nothing was sent with that token");
}
