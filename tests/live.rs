//! `doorman run` as it meets a live camera: a doorstep with sensor noise
//! and a tree flickering in a masked corner, people walking up to the door
//! and leaving, the lights coming on with nobody there; the same frames as
//! a JPEG folder, a raw YUV420 stream and an MJPEG stream; and a camera
//! child (a fake rpicam-vid) that dies mid-frame and is restarted.
//!
//! Every sequence is generated here, at test time, from the demo photos
//! and the labelled photos; nothing is stored in the repository.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use doorman::camera::{encode_yuv420, Yuv420Layout};
use image::{imageops, Rgb, RgbImage};
use serde_json::Value;

/// Not a multiple of 64: YUV420 rows are padded from 600 to 640 bytes.
const W: u32 = 600;
const H: u32 = 450;

/// The masked corner where the tree stands: fractions of the frame.
const TREE_MASK: &str = "[[[0.0, 0.0], [0.25, 0.0], [0.25, 0.3], [0.0, 0.3]]]";

/// One frame of the sequence.
#[derive(Clone, Copy)]
enum Shot<'a> {
    /// Nobody there.
    Empty,
    /// A person's photo `height` px high, centred.
    Person(&'a RgbImage, u32),
}

struct Scene {
    /// Added to every pixel of the doorstep (the lights).
    brightness: i32,
    /// A flickering tree in the top left corner.
    tree: bool,
}

/// A textured doorstep with a little sensor noise that differs per frame.
fn doorstep(scene: &Scene, index: u32) -> RgbImage {
    let mut seed = index.wrapping_mul(747796405).wrapping_add(2891336453);
    RgbImage::from_fn(W, H, |x, y| {
        seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
        let noise = (seed >> 29) as i32 - 4;
        let t = ((x * 7 + y * 13) % 17) as i32;
        let base = [
            70 + (y / 8) as i32 + t,
            80 + (x / 10) as i32,
            60 + t + (y / 12) as i32,
        ];
        Rgb(base.map(|v| (v + scene.brightness + noise).clamp(0, 255) as u8))
    })
}

fn frame(scene: &Scene, index: u32, shot: Shot) -> RgbImage {
    let mut img = doorstep(scene, index);
    if scene.tree {
        // Leaves: a dark and a light pattern, alternating every frame.
        let (tw, th) = (W / 5, H / 4);
        let shade = if index.is_multiple_of(2) { 30 } else { 200 };
        for y in 10..10 + th {
            for x in 10..10 + tw {
                let leaf = ((x / 6 + y / 5 + index) % 3) as u8 * 20;
                img.put_pixel(
                    x,
                    y,
                    Rgb([shade / 2, shade.saturating_add(leaf), shade / 3]),
                );
            }
        }
    }
    if let Shot::Person(photo, height) = shot {
        let width = photo.width() * height / photo.height();
        let person = imageops::resize(photo, width, height, imageops::FilterType::Triangle);
        let x = (W as i64 - width as i64) / 2 + 40;
        imageops::replace(&mut img, &person, x, (H as i64 - height as i64) / 2);
    }
    img
}

/// `n` frames of a person walking up to the door: the photo grows from
/// 180 to 380 px high.
fn walk_up(photo: &RgbImage, n: u32) -> Vec<Shot<'_>> {
    (0..n)
        .map(|k| Shot::Person(photo, 180 + 200 * k / n))
        .collect()
}

fn empty(n: u32) -> Vec<Shot<'static>> {
    vec![Shot::Empty; n as usize]
}

/// Renders a script: each part with its scene.
fn render(parts: &[(&Scene, Vec<Shot>)]) -> Vec<RgbImage> {
    let mut frames = Vec::new();
    for (scene, shots) in parts {
        for shot in shots {
            let i = frames.len() as u32;
            frames.push(frame(scene, i, *shot));
        }
    }
    frames
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn write_folder(dir: &Path, frames: &[RgbImage]) -> PathBuf {
    let folder = dir.join("frames");
    std::fs::create_dir_all(&folder).unwrap();
    for (i, f) in frames.iter().enumerate() {
        std::fs::write(folder.join(format!("frame-{i:04}.jpg")), jpeg(f)).unwrap();
    }
    folder
}

fn write_yuv(path: &Path, frames: &[RgbImage]) {
    let layout = Yuv420Layout::padded(W, H, 64);
    assert_eq!(layout.y_stride, 640);
    let bytes: Vec<u8> = frames
        .iter()
        .flat_map(|f| encode_yuv420(f, &layout))
        .collect();
    std::fs::write(path, bytes).unwrap();
}

fn write_mjpeg(path: &Path, frames: &[RgbImage]) {
    let bytes: Vec<u8> = frames.iter().flat_map(jpeg).collect();
    std::fs::write(path, bytes).unwrap();
}

fn load(path: &Path) -> RgbImage {
    image::open(path).unwrap().to_rgb8()
}

fn obama() -> RgbImage {
    load(&common::demo_photo("obama3.jpg"))
}

fn biden() -> RgbImage {
    load(&common::faces_dir().join("face_recognition/examples/knn_examples/train/biden/biden2.jpg"))
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a config with `extra` appended and returns its path.
    fn config(&self, name: &str, extra: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(
            &path,
            format!(
                "state_dir = {:?}\n[models]\ndir = {:?}\n{extra}\n",
                self.path().join("state"),
                common::models_dir()
            ),
        )
        .unwrap();
        path
    }

    fn doorman(&self, config: &Path, args: &[&str]) -> Output {
        common::doorman_ok(config, args)
    }

    fn enroll(&self, config: &Path, name: &str, photos: &[PathBuf]) {
        let mut args = vec!["enroll", "--name", name];
        args.extend(photos.iter().map(|p| p.to_str().unwrap()));
        self.doorman(config, &args);
    }

    fn enroll_both(&self, config: &Path) {
        self.enroll(
            config,
            "Barack Obama",
            &[
                common::demo_photo("obama.jpg"),
                common::demo_photo("obama2.jpg"),
            ],
        );
        self.enroll(config, "Joe Biden", &[common::demo_photo("biden.jpg")]);
    }

    /// `doorman --json run`: the events and the final counters.
    fn run(&self, config: &Path, replay: &Path) -> (Vec<Value>, Value) {
        let out = self.doorman(
            config,
            &["--json", "run", "--replay", replay.to_str().unwrap()],
        );
        split(&out)
    }
}

/// Splits `run --json` output into events and the counters line.
fn split(out: &Output) -> (Vec<Value>, Value) {
    let mut events = Vec::new();
    let mut counters = Value::Null;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        match v.get("counters") {
            Some(c) => counters = c.clone(),
            None => events.push(v),
        }
    }
    assert!(
        !counters.is_null(),
        "no counters line; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (events, counters)
}

fn who(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("-").to_string(),
                e["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn n(counters: &Value, key: &str) -> u64 {
    counters[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {counters}"))
}

#[test]
fn two_visits_through_the_motion_gate_and_none_from_lights_or_the_masked_tree() {
    let env = Env::new();
    let config = env.config(
        "doorman.toml",
        &format!(
            "[camera]\nclock_fps = 5.0\n[visit]\nvisit_gap_s = 2.0\n[motion]\nmask = {TREE_MASK}\n"
        ),
    );
    env.enroll_both(&config);
    let (obama, biden) = (obama(), biden());
    let day = Scene {
        brightness: 0,
        tree: true,
    };
    let lit = Scene {
        brightness: 45,
        tree: true,
    };
    let frames = render(&[
        (&day, empty(8)),
        (&day, walk_up(&obama, 15)),
        (&day, empty(14)),
        // The porch light comes on with nobody there.
        (&lit, empty(12)),
        (&lit, walk_up(&biden, 15)),
        (&lit, empty(12)),
    ]);
    let folder = write_folder(env.path(), &frames);

    let (events, counters) = env.run(&config, &folder);
    assert_eq!(
        who(&events),
        [
            ("Barack Obama".into(), "known".into()),
            ("Joe Biden".into(), "known".into())
        ],
        "{events:?}"
    );
    for e in &events {
        assert!(e["frames"].as_u64().unwrap() >= 8, "{e}");
        assert!(e.get("crop").is_none(), "crops are off by default: {e}");
    }
    assert_eq!(n(&counters, "frames_read"), 76);
    assert_eq!(n(&counters, "visits"), 2);
    assert_eq!(n(&counters, "known"), 2);
    assert!(n(&counters, "global_changes") >= 1, "{counters}");
    // 30 frames show somebody walking up; each departure and the light
    // switch add a few. The 46 other frames (tree included) are still.
    let motion = n(&counters, "motion_frames");
    assert!((25..=38).contains(&motion), "{counters}");
    assert!(n(&counters, "detector_runs") <= motion, "{counters}");
    assert!(n(&counters, "detector_runs") >= 20, "{counters}");
}

#[test]
fn nobody_there_means_no_detector_runs_but_one_look_at_a_lighting_change() {
    let env = Env::new();
    let masked = env.config(
        "masked.toml",
        &format!("[camera]\nclock_fps = 5.0\n[motion]\nmask = {TREE_MASK}\n"),
    );
    let open = env.config("open.toml", "[camera]\nclock_fps = 5.0\n");
    let day = Scene {
        brightness: 0,
        tree: true,
    };
    let lit = Scene {
        brightness: 45,
        tree: true,
    };
    let frames = render(&[(&day, empty(20)), (&lit, empty(20))]);
    let folder = write_folder(env.path(), &frames);

    let (events, counters) = env.run(&masked, &folder);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(n(&counters, "frames_read"), 40);
    // The light switch is the only motion, a global change: the detector
    // looks once, finds nobody, and the background recalibrates.
    assert_eq!(n(&counters, "global_changes"), 1, "{counters}");
    assert_eq!(n(&counters, "motion_frames"), 1, "{counters}");
    assert_eq!(n(&counters, "detector_runs"), 1, "{counters}");
    assert_eq!(n(&counters, "faces"), 0, "{counters}");

    // Without the mask the tree is motion (so the mask is what kept the
    // detector idle above): at least in the frames where its leaves differ
    // from the empty scene remembered, about every other one. It never
    // becomes a visit.
    let (events, counters) = env.run(&open, &folder);
    assert!(events.is_empty(), "{events:?}");
    assert!(n(&counters, "motion_frames") >= 15, "{counters}");
    assert_eq!(n(&counters, "visits"), 0, "{counters}");
}

#[test]
fn yuv420_and_mjpeg_streams_give_the_same_decisions_as_a_jpeg_folder() {
    let env = Env::new();
    let base =
        "[camera]\nclock_fps = 5.0\nwidth_px = 600\nheight_px = 450\n[visit]\nvisit_gap_s = 2.0\n";
    let config = env.config("doorman.toml", base);
    env.enroll_both(&config);
    let (obama, biden) = (obama(), biden());
    let day = Scene {
        brightness: 0,
        tree: false,
    };
    let frames = render(&[
        (&day, empty(5)),
        (&day, walk_up(&obama, 12)),
        (&day, empty(12)),
        (&day, walk_up(&biden, 12)),
        (&day, empty(4)),
    ]);
    let folder = write_folder(env.path(), &frames);
    let yuv = env.path().join("camera.yuv");
    write_yuv(&yuv, &frames);
    let mjpeg = env.path().join("camera.mjpeg");
    write_mjpeg(&mjpeg, &frames);

    let expected = [
        ("Barack Obama".to_string(), "known".to_string()),
        ("Joe Biden".to_string(), "known".to_string()),
    ];
    let mut seen_frames = Vec::new();
    for input in [&folder, &yuv, &mjpeg] {
        let (events, counters) = env.run(&config, input);
        assert_eq!(who(&events), expected, "{}: {events:?}", input.display());
        assert_eq!(n(&counters, "frames_read"), 45, "{}", input.display());
        assert_eq!(n(&counters, "dropped_frames"), 0);
        seen_frames.push(
            events
                .iter()
                .map(|e| e["frames"].as_i64().unwrap())
                .collect::<Vec<_>>(),
        );
    }
    // The faces are found in about the same frames whatever the encoding.
    for frames in &seen_frames[1..] {
        for (a, b) in frames.iter().zip(&seen_frames[0]) {
            assert!((a - b).abs() <= 2, "{seen_frames:?}");
        }
    }
}

/// A stand-in for rpicam-vid: it records its arguments, then plays the
/// stream file `stream.yuv` beside it in parts, one part per start: the
/// first start dies in the middle of a frame, the second plays the rest
/// and exits, the third stops doorman with SIGTERM (as systemd would).
const FAKE_RPICAM: &str = r#"#!/usr/bin/env python3
import os, signal, sys, time
here = os.path.dirname(os.path.abspath(__file__))
starts_file = os.path.join(here, "starts")
start = int(open(starts_file).read()) + 1 if os.path.exists(starts_file) else 1
open(starts_file, "w").write(str(start))
open(os.path.join(here, "args-%d" % start), "w").write("\n".join(sys.argv[1:]))
frame_len, cut, pace = (float(v) for v in open(os.path.join(here, "plan")).read().split())
frame_len, cut = int(frame_len), int(cut)
data = open(os.path.join(here, "stream.yuv"), "rb").read()
frames = [data[i:i + frame_len] for i in range(0, len(data), frame_len)]
out = sys.stdout.buffer
def play(chunks):
    for chunk in chunks:
        out.write(chunk)
        out.flush()
        time.sleep(pace)
if start == 1:
    play(frames[:cut])
    play([frames[cut][:frame_len // 2]])
    sys.stderr.write("fake rpicam-vid: sensor timeout\n")
    sys.exit(3)
elif start == 2:
    play(frames[cut + 1:])
else:
    os.kill(os.getppid(), signal.SIGTERM)
"#;

#[test]
fn a_camera_child_that_dies_mid_frame_is_restarted_and_the_visit_is_still_decided() {
    use std::os::unix::fs::PermissionsExt;

    let env = Env::new();
    let fake = env.path().join("rpicam-vid");
    std::fs::write(&fake, FAKE_RPICAM).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = env.config(
        "doorman.toml",
        &format!(
            "[camera]\nsource = \"rpicam\"\nrpicam_path = {fake:?}\nrpicam_args = [\"--rotation\", \"0\"]\n\
             width_px = 600\nheight_px = 450\nfps = 10.0\nretry_min_s = 0.05\nretry_max_s = 0.2\n\
             [detect]\ndetect_fps = 20.0\n[visit]\nvisit_gap_s = 3.0\n[events]\nsave_crops = true\n"
        ),
    );
    env.enroll(
        &config,
        "Barack Obama",
        &[
            common::demo_photo("obama.jpg"),
            common::demo_photo("obama2.jpg"),
        ],
    );

    // Obama walks up; the camera dies while he does (after frame 8).
    let obama = obama();
    let day = Scene {
        brightness: 0,
        tree: false,
    };
    let frames = render(&[
        (&day, empty(4)),
        (&day, walk_up(&obama, 14)),
        (&day, empty(2)),
    ]);
    write_yuv(&env.path().join("stream.yuv"), &frames);
    let layout = Yuv420Layout::padded(W, H, 64);
    std::fs::write(
        env.path().join("plan"),
        format!("{} 8 0.05", layout.frame_len()),
    )
    .unwrap();

    let out = common::doorman_with(&config, &["--json", "run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let (events, counters) = split(&out);

    // Started three times: the death was reported with its cause, and the
    // arguments asked for raw YUV420 of the configured size on stdout.
    let starts = std::fs::read_to_string(env.path().join("starts")).unwrap();
    assert_eq!(starts, "3");
    assert!(stderr.contains("sensor timeout"), "{stderr}");
    assert!(stderr.contains("stopped mid-frame"), "{stderr}");
    let args = std::fs::read_to_string(env.path().join("args-1")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    for pair in [
        ["--codec", "yuv420"],
        ["--width", "600"],
        ["--height", "450"],
        ["--output", "-"],
    ] {
        assert!(args.windows(2).any(|w| w == pair), "{args:?}");
    }
    assert_eq!(&args[args.len() - 2..], ["--rotation", "0"]);

    // 20 frames minus the one cut in half; the visit spans the restart.
    assert_eq!(n(&counters, "frames_read"), 19, "{counters}");
    assert!(n(&counters, "camera_errors") >= 2, "{counters}");
    assert_eq!(
        who(&events),
        [("Barack Obama".into(), "known".into())],
        "{events:?}\n{stderr}"
    );

    // save_crops is on here: the visit's best face crop is on disk.
    let crop = PathBuf::from(events[0]["crop"].as_str().expect("a crop path"));
    assert!(crop.starts_with(env.path().join("state/crops")), "{crop:?}");
    let img = image::open(&crop).unwrap();
    assert_eq!((img.width(), img.height()), (150, 150));
}
