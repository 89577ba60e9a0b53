//! The `doorman` binary end to end: enrol from photos, identify others,
//! replay a folder of frames, list visitors; bad input is named and skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("doorman.toml");
        let text = format!(
            "state_dir = {:?}\n[models]\ndir = {:?}\n{extra}\n",
            dir.path().join("state"),
            common::models_dir()
        );
        std::fs::write(&config, text).unwrap();
        Self { dir, config }
    }

    fn doorman(&self, args: &[&str]) -> Output {
        common::doorman_with(&self.config, args)
    }

    fn json_lines(&self, args: &[&str]) -> (Vec<Value>, Output) {
        let out = self.doorman(args);
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        (lines, out)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn enrolled_people_are_identified_and_the_astronaut_is_unknown() {
    let env = Env::new("");
    let (obama, obama2, biden) = (
        common::demo_photo("obama.jpg"),
        common::demo_photo("obama2.jpg"),
        common::demo_photo("biden.jpg"),
    );
    let out = env.doorman(&["enroll", "--name", "Barack Obama", s(&obama), s(&obama2)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.doorman(&["enroll", "--name", "Joe Biden", s(&biden)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let held = [
        "obama3.jpg",
        "obama_partial_face.jpg",
        "obama_partial_face2.jpg",
        "astronaut.png",
    ]
    .map(common::demo_photo);
    let mut args = vec!["--json", "identify"];
    args.extend(held.iter().map(|p| s(p)));
    let (lines, out) = env.json_lines(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for key in ["image", "box", "name", "id", "score", "decision"] {
        assert!(
            lines.iter().all(|l| l.get(key).is_some()),
            "key {key} missing in {lines:?}"
        );
    }
    for name in [
        "obama3.jpg",
        "obama_partial_face.jpg",
        "obama_partial_face2.jpg",
    ] {
        let line = lines
            .iter()
            .find(|l| l["image"].as_str().unwrap().ends_with(name))
            .unwrap();
        assert_eq!(line["name"], "Barack Obama", "{name}: {line}");
        assert_eq!(line["decision"], "known", "{name}: {line}");
    }
    let astronaut: Vec<_> = lines
        .iter()
        .filter(|l| l["image"].as_str().unwrap().ends_with("astronaut.png"))
        .collect();
    assert_eq!(astronaut.len(), 1, "{astronaut:?}");
    assert_eq!(astronaut[0]["decision"], "unknown");
    assert!(
        astronaut[0]["name"].is_null() && astronaut[0]["id"].is_null(),
        "{:?}",
        astronaut[0]
    );

    let (visitors, _) = env.json_lines(&["--json", "visitors"]);
    let names: Vec<_> = visitors
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Barack Obama", "Joe Biden"]);
    assert_eq!(visitors[0]["exemplars"], 2);
}

#[test]
fn enrolling_from_a_photo_without_one_face_names_it_and_enrols_nothing() {
    let env = Env::new("");
    let dir = common::faces_dir().join("face_recognition/examples");
    let two = dir.join("two_people.jpg");
    let out = env.doorman(&[
        "enroll",
        "--name",
        "Somebody",
        s(&common::demo_photo("obama.jpg")),
        s(&two),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("two_people.jpg") && err.contains("2 faces") && err.contains("--largest"),
        "{err}"
    );
    let (visitors, _) = env.json_lines(&["--json", "visitors"]);
    assert!(visitors.is_empty(), "{visitors:?}");

    let out = env.doorman(&["enroll", "--largest", "--name", "Somebody", s(&two)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_corrupt_photo_is_named_and_the_others_are_still_identified() {
    let env = Env::new("");
    let bad = env.dir.path().join("broken.jpg");
    let good = std::fs::read(common::demo_photo("biden.jpg")).unwrap();
    std::fs::write(&bad, &good[..good.len() / 4]).unwrap();
    let text = env.dir.path().join("notes.jpg");
    std::fs::write(&text, "just text").unwrap();
    let (lines, out) = env.json_lines(&[
        "--json",
        "identify",
        s(&bad),
        s(&text),
        s(&common::demo_photo("biden.jpg")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("notes.jpg") && err.contains("not an image format"),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["image"].as_str().unwrap().ends_with("biden.jpg")),
        "{lines:?}"
    );
}

#[test]
fn a_missing_model_stops_with_the_rebuild_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("d.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[models]\ndir = {:?}\n",
            dir.path(),
            dir.path()
        ),
    )
    .unwrap();
    let out = common::doorman()
        .args([
            "--config",
            s(&config),
            "identify",
            s(&common::demo_photo("biden.jpg")),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mtcnn-pnet.onnx") && err.contains("models/fetch"),
        "{err}"
    );
}

#[test]
fn a_bad_config_value_is_named_with_its_line() {
    let env = Env::new("[recognize]\nmatch_threshold = 7\n");
    let out = env.doorman(&["visitors"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 5") && err.contains("7") && err.contains("-1.0 to 1.0"),
        "{err}"
    );
}
