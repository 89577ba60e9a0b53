//! `doorman run` on a folder of frames replayed as a camera would deliver
//! them: people walk up, stay, leave; each visit is decided once.

mod common;
#[path = "support/scenes.rs"]
mod scenes;

use std::path::{Path, PathBuf};

use image::RgbImage;
use scenes::{background, with_person_at as with_person};
use serde_json::Value;

enum Shot<'a> {
    Empty(usize),
    /// `n` frames of a person walking up: the photo grows from 200 to 400 px.
    Person(&'a RgbImage, usize),
}

fn write_frames(dir: &Path, script: &[Shot]) -> usize {
    let mut i = 0;
    let mut save = |img: RgbImage| {
        img.save(dir.join(format!("frame-{i:04}.jpg"))).unwrap();
        i += 1;
    };
    for shot in script {
        match shot {
            Shot::Empty(n) => (0..*n).for_each(|_| save(background())),
            Shot::Person(photo, n) => {
                (0..*n).for_each(|k| save(with_person(photo, 200 + (200 * k / n) as u32)))
            }
        }
    }
    i
}

fn load(path: &Path) -> RgbImage {
    image::open(path).unwrap().to_rgb8()
}

fn doorman(config: &Path, args: &[&str]) -> std::process::Output {
    common::doorman_ok(config, args)
}

fn setup(extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("doorman.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[models]\ndir = {:?}\n[camera]\nclock_fps = 5.0\n[visit]\nvisit_gap_s = 2.0\n{extra}",
            dir.path().join("state"),
            common::models_dir()
        ),
    )
    .unwrap();
    (dir, config)
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("state/events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn two_people_walking_up_one_after_the_other_give_two_known_visits() {
    let (dir, config) = setup("");
    let c = config.as_path();
    doorman(
        c,
        &[
            "enroll",
            "--name",
            "Barack Obama",
            common::demo_photo("obama.jpg").to_str().unwrap(),
            common::demo_photo("obama2.jpg").to_str().unwrap(),
        ],
    );
    doorman(
        c,
        &[
            "enroll",
            "--name",
            "Joe Biden",
            common::demo_photo("biden.jpg").to_str().unwrap(),
        ],
    );

    let obama = load(&common::demo_photo("obama3.jpg"));
    let biden = load(
        &common::faces_dir().join("face_recognition/examples/knn_examples/train/biden/biden2.jpg"),
    );
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    write_frames(
        &frames,
        &[
            Shot::Empty(5),
            Shot::Person(&obama, 10),
            Shot::Empty(15),
            Shot::Person(&biden, 10),
            Shot::Empty(5),
        ],
    );

    doorman(c, &["run", "--replay", frames.to_str().unwrap()]);
    let ev = events(dir.path());
    let who: Vec<_> = ev
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("-"),
                e["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [("Barack Obama", "known"), ("Joe Biden", "known")],
        "{ev:?}"
    );
    for e in &ev {
        assert_eq!(e["camera"], "front-door");
        assert!(e["frames"].as_u64().unwrap() >= 8, "{e}");
        assert!(e["duration_s"].as_f64().unwrap() >= 1.5, "{e}");
    }
    let out = doorman(c, &["--json", "visitors"]);
    let visits: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["visits"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(visits, [1, 1]);
}

#[test]
fn a_returning_stranger_is_recognised_when_strangers_are_remembered() {
    let (dir, config) = setup("[recognize]\nremember_strangers = true\n");
    let stranger = load(&common::demo_photo("astronaut.png"));
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    write_frames(
        &frames,
        &[
            Shot::Person(&stranger, 8),
            Shot::Empty(15),
            Shot::Person(&stranger, 8),
            Shot::Empty(3),
        ],
    );

    doorman(&config, &["run", "--replay", frames.to_str().unwrap()]);
    let ev = events(dir.path());
    let decisions: Vec<_> = ev.iter().map(|e| e["decision"].as_str().unwrap()).collect();
    assert_eq!(decisions, ["new", "known"], "{ev:?}");
    assert_eq!(ev[0]["visitor"], ev[1]["visitor"]);
    assert!(ev[1]["name"].is_null());
}

#[test]
fn strangers_are_not_stored_unless_the_owner_turns_it_on() {
    let (dir, config) = setup("");
    let stranger = load(&common::demo_photo("astronaut.png"));
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    write_frames(&frames, &[Shot::Person(&stranger, 6), Shot::Empty(3)]);
    doorman(&config, &["run", "--replay", frames.to_str().unwrap()]);
    let ev = events(dir.path());
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["decision"], "new");
    assert!(ev[0]["visitor"].is_null());
    let out = doorman(&config, &["--json", "visitors"]);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_stranger_right_after_a_known_person_is_a_separate_visit_and_never_becomes_them() {
    let (dir, config) = setup("");
    let c = config.as_path();
    doorman(
        c,
        &[
            "enroll",
            "--name",
            "Barack Obama",
            common::demo_photo("obama.jpg").to_str().unwrap(),
        ],
    );
    let obama = load(&common::demo_photo("obama3.jpg"));
    let stranger = load(&common::demo_photo("astronaut.png"));
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    // No gap between them: the stranger steps in as Obama steps out.
    write_frames(
        &frames,
        &[
            Shot::Person(&obama, 4),
            Shot::Person(&stranger, 4),
            Shot::Empty(2),
        ],
    );
    for _ in 0..3 {
        doorman(c, &["run", "--replay", frames.to_str().unwrap()]);
    }
    let ev = events(dir.path());
    let decisions: Vec<_> = ev
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("-"),
                e["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(decisions.len(), 6, "{ev:?}");
    for pair in decisions.chunks(2) {
        assert_eq!(pair[0], ("Barack Obama", "known"), "{ev:?}");
        assert_ne!(pair[1].0, "Barack Obama", "{ev:?}");
    }
    let out = doorman(
        c,
        &[
            "--json",
            "identify",
            common::demo_photo("astronaut.png").to_str().unwrap(),
        ],
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["decision"], "unknown", "{line}");
}
