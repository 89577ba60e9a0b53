//! The real networks on the labelled photos: every face found where the
//! labels say, and same and different people told apart at the default
//! threshold.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use doorman::config::Config;
use doorman::detect::FaceBox;
use doorman::embed::{Embedder, Embedding};
use doorman::frame::Frame;
use doorman::models::ChannelOrder;
use doorman::pipeline::Face;

/// The largest face of every labelled photo, computed once.
fn labelled_faces() -> &'static Vec<(PathBuf, String, Face, usize)> {
    static FACES: OnceLock<Vec<(PathBuf, String, Face, usize)>> = OnceLock::new();
    FACES.get_or_init(|| {
        common::identities()
            .into_iter()
            .map(|(path, identity)| {
                let frame = Frame::open(&path, common::max_image_px()).unwrap();
                let faces = common::pipeline().faces(&frame).unwrap();
                let count = faces.len();
                let largest = faces
                    .into_iter()
                    .max_by(|a, b| {
                        a.detection
                            .face_box
                            .area()
                            .total_cmp(&b.detection.face_box.area())
                    })
                    .unwrap_or_else(|| {
                        panic!("no face found in labelled photo {}", path.display())
                    });
                (path, identity, largest, count)
            })
            .collect()
    })
}

#[test]
fn every_labelled_photo_has_its_face_found() {
    let faces = labelled_faces();
    assert!(faces.len() >= 80, "only {} labelled photos", faces.len());
}

#[test]
fn photos_labelled_with_two_faces_give_two_detections() {
    let dir = common::faces_dir().join("face_recognition/examples");
    for name in [
        "two_people.jpg",
        "knn_examples/test/obama_and_biden.jpg",
        "knn_examples/test/kit_with_rose.jpg",
    ] {
        let frame = Frame::open(&dir.join(name), common::max_image_px()).unwrap();
        let n = common::pipeline()
            .detector
            .detect(&frame.rgb)
            .unwrap()
            .len();
        assert_eq!(n, 2, "{name}: {n} faces");
    }
}

/// (top, right, bottom, left) boxes that face_recognition's own tests
/// expect, including faces cut by the left and the right edge.
const EXPECTED_BOXES: &[(&str, [f32; 4])] = &[
    ("tests/test_images/obama.jpg", [142.0, 617.0, 409.0, 349.0]),
    (
        "tests/test_images/obama_partial_face.jpg",
        [142.0, 191.0, 365.0, 0.0],
    ),
    (
        "tests/test_images/obama_partial_face2.jpg",
        [142.0, 551.0, 409.0, 349.0],
    ),
];

#[test]
fn boxes_match_face_recognitions_expected_boxes_even_at_the_edges() {
    let dir = common::faces_dir().join("face_recognition");
    for (name, [top, right, bottom, left]) in EXPECTED_BOXES {
        let expected = FaceBox {
            x1: *left,
            y1: *top,
            x2: *right,
            y2: *bottom,
        };
        let frame = Frame::open(&dir.join(name), 0).unwrap();
        let found = common::pipeline().detector.detect(&frame.rgb).unwrap();
        let best = found
            .iter()
            .map(|d| d.face_box.iou(&expected))
            .fold(0.0, f32::max);
        assert!(
            best >= 0.5,
            "{name}: best IoU {best:.2} with {expected:?}; found {found:?}"
        );
        for d in &found {
            let (w, h) = frame.rgb.dimensions();
            assert!(d.face_box.x1 >= 0.0 && d.face_box.x2 <= w as f32 && d.face_box.y2 <= h as f32);
        }
    }
}

/// Pairs within one label namespace (the two sets' names are independent).
fn pairs(items: &[(String, Embedding)]) -> (Vec<f32>, Vec<f32>) {
    let (mut same, mut different) = (Vec::new(), Vec::new());
    for i in 0..items.len() {
        for j in i + 1..items.len() {
            let (a, b) = (&items[i], &items[j]);
            let namespace = |s: &str| s.split('_').next().unwrap().to_string();
            if namespace(&a.0) != namespace(&b.0) {
                continue;
            }
            let score = a.1.cosine(&b.1);
            if a.0 == b.0 {
                same.push(score);
            } else {
                different.push(score);
            }
        }
    }
    (same, different)
}

fn pair_accuracy(same: &[f32], different: &[f32], threshold: f32) -> f32 {
    let right = same.iter().filter(|&&s| s >= threshold).count()
        + different.iter().filter(|&&s| s < threshold).count();
    right as f32 / (same.len() + different.len()) as f32
}

#[test]
fn same_and_different_people_fall_on_either_side_of_the_default_threshold() {
    let items: Vec<_> = labelled_faces()
        .iter()
        .map(|(_, id, f, _)| (id.clone(), f.embedding.clone()))
        .collect();
    let (same, different) = pairs(&items);
    let threshold = Config::default().recognize.match_threshold;
    let accuracy = pair_accuracy(&same, &different, threshold);
    let false_accepts = different.iter().filter(|&&s| s >= threshold).count();
    eprintln!(
        "{} same-person and {} different-person pairs; accuracy {:.4} at {threshold}; {false_accepts} false accepts",
        same.len(),
        different.len(),
        accuracy
    );
    assert!(same.len() > 200 && different.len() > 1000);
    assert!(
        accuracy >= 0.97,
        "pair accuracy {accuracy:.4} < 0.97 at threshold {threshold}"
    );
}

/// dlib's own descriptors of the fixture chips (models/dlib-reference.json),
/// and the chips themselves as written by models/fetch.
fn dlib_reference() -> Vec<(image::RgbImage, Vec<f32>)> {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../models/dlib-reference.json")).unwrap();
    let dir = common::models_dir().join("reference-chips");
    fixture["chips"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, chip)| {
            let bytes = std::fs::read(dir.join(format!("chip-{i:02}.rgb"))).unwrap();
            let rgb = image::RgbImage::from_raw(150, 150, bytes).unwrap();
            let want = chip["descriptor"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            (rgb, want)
        })
        .collect()
}

#[test]
fn the_embedder_reproduces_dlibs_own_descriptors_and_a_wrong_channel_order_is_caught() {
    let m = common::manifest();
    let variant = Config::default().models.embedder_variant;
    let right = Embedder::load(&common::models_dir(), &m.embedder, &variant).unwrap();
    let wrong = Embedder::load(&common::models_dir(), &m.embedder, &variant)
        .unwrap()
        .with_channel_order(ChannelOrder::Bgr);
    let (mut worst_right, mut worst_wrong) = (0.0f32, 0.0f32);
    let reference = dlib_reference();
    assert_eq!(reference.len(), 16);
    for (chip, want) in &reference {
        let want = Embedding::normalised(want).unwrap();
        let diff = |e: &Embedding| {
            e.as_slice()
                .iter()
                .zip(want.as_slice())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max)
        };
        worst_right = worst_right.max(diff(&right.embed(chip).unwrap()));
        worst_wrong = worst_wrong.max(diff(&wrong.embed(chip).unwrap()));
    }
    eprintln!("max |doorman - dlib| on unit vectors: {worst_right:.2e} (manifest order), {worst_wrong:.2e} (swapped)");
    assert!(
        worst_right < 1e-4,
        "doorman's embedder differs from dlib by {worst_right}"
    );
    assert!(
        worst_wrong > 1e-2,
        "swapping channels went unnoticed ({worst_wrong})"
    );
}

#[test]
fn eval_on_the_labelled_photos_separates_people_with_no_false_accept_at_the_default_threshold() {
    let out = common::doorman()
        .args(["--json", "eval"])
        .arg(common::faces_dir().join("identities.csv"))
        .env("DOORMAN_CACHE", common::cache_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &report["verification"];
    eprintln!("{report}");
    assert_eq!(report["faces_found"], report["photos"], "{report}");
    assert!(v["roc_auc"].as_f64().unwrap() >= 0.99, "{v}");
    assert_eq!(v["false_accepts"], 0, "{v}");
    assert!(v["accuracy"].as_f64().unwrap() >= 0.97, "{v}");
    assert!(
        report["identification"]["rank1"].as_f64().unwrap() >= 0.95,
        "{report}"
    );
}
