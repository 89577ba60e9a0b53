//! The same photos give the same faces on every CPU: tract runs different
//! kernels on ARM (NEON) than on x86-64 (AVX), so the Pi's detections and
//! embeddings are checked against the ones x86-64 computed.
//!
//! On x86-64 the test records the pipeline's output for a few demo photos in
//! `$DOORMAN_CACHE/platform-reference/x86_64.json` (tests/run does this);
//! on any other CPU it compares its own output with that file
//! (cross/test runs it under qemu after the x86-64 run).

mod common;

use std::path::{Path, PathBuf};

use doorman::frame::Frame;
use doorman::models::sha256_file;
use serde_json::{json, Value};

/// Few and small: under qemu every photo costs tens of seconds.
const PHOTOS: &[&str] = &["obama.jpg", "biden.jpg", "obama_partial_face.jpg"];

/// Box corners and landmarks may differ by this much, in frame pixels:
/// a sub-pixel shift from another summation order, never another face.
const MAX_POINT_DIFF_PX: f64 = 0.5;

/// O-Net's face probability may differ by this much.
const MAX_SCORE_DIFF: f64 = 1e-3;

/// The embeddings of the same face on two CPUs must agree far beyond the
/// match threshold (0.94): the decision must never depend on the CPU.
const MIN_EMBEDDING_COSINE: f64 = 0.9999;

/// The reference platform; its results are written, not compared.
const REFERENCE_ARCH: &str = "x86_64";

fn reference_file() -> PathBuf {
    common::cache_dir()
        .join("platform-reference")
        .join(format!("{REFERENCE_ARCH}.json"))
}

/// Every face the pipeline finds in each photo, best first, as JSON.
fn pipeline_output() -> Value {
    let photos: Vec<Value> = PHOTOS
        .iter()
        .map(|name| {
            let path = common::demo_photo(name);
            let frame = Frame::open(&path, common::max_image_px()).unwrap();
            let faces: Vec<Value> = common::pipeline()
                .faces(&frame)
                .unwrap()
                .iter()
                .map(|f| {
                    let b = &f.detection.face_box;
                    json!({
                        "box": [b.x1, b.y1, b.x2, b.y2],
                        "score": f.detection.score,
                        "landmarks": f.detection.landmarks,
                        "embedding": f.embedding.as_slice(),
                    })
                })
                .collect();
            json!({
                "photo": name,
                "sha256": sha256_file(&path).unwrap(),
                "faces": faces,
            })
        })
        .collect();
    json!({ "arch": std::env::consts::ARCH, "photos": photos })
}

fn floats(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    match v {
        Value::Array(items) => items.iter().for_each(|i| out.extend(floats(i))),
        Value::Number(n) => out.push(n.as_f64().unwrap()),
        other => panic!("expected numbers, got {other}"),
    }
    out
}

fn max_abs_diff(a: &Value, b: &Value) -> f64 {
    let (a, b) = (floats(a), floats(b));
    assert_eq!(a.len(), b.len(), "different lengths");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn cosine(a: &Value, b: &Value) -> f64 {
    floats(a).iter().zip(floats(b)).map(|(x, y)| x * y).sum()
}

/// Writes `value` so that a concurrent reader never sees half a file.
fn write_atomically(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_string_pretty(value).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Asserts that `ours` matches `reference` face by face; returns the worst
/// differences seen, for the log.
fn compare(ours: &Value, reference: &Value) -> (f64, f64, f64) {
    let (mut worst_px, mut worst_score, mut worst_cos) = (0.0f64, 0.0f64, 1.0f64);
    let pairs = ours["photos"]
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["photos"].as_array().unwrap());
    for (mine, theirs) in pairs {
        let name = &mine["photo"];
        assert_eq!(
            mine["sha256"], theirs["sha256"],
            "{name} differs from the photo the reference was made from: \
             run tests/run on x86-64 again"
        );
        let (mine, theirs) = (
            mine["faces"].as_array().unwrap(),
            theirs["faces"].as_array().unwrap(),
        );
        assert!(!mine.is_empty(), "{name}: no face found");
        assert_eq!(mine.len(), theirs.len(), "{name}: number of faces");
        for (i, (a, b)) in mine.iter().zip(theirs).enumerate() {
            let px = max_abs_diff(&a["box"], &b["box"])
                .max(max_abs_diff(&a["landmarks"], &b["landmarks"]));
            let score = max_abs_diff(&a["score"], &b["score"]);
            let cos = cosine(&a["embedding"], &b["embedding"]);
            assert!(
                px <= MAX_POINT_DIFF_PX,
                "{name} face {i}: box or landmarks {px:.3} px off"
            );
            assert!(
                score <= MAX_SCORE_DIFF,
                "{name} face {i}: score {score:.2e} off"
            );
            assert!(
                cos >= MIN_EMBEDDING_COSINE,
                "{name} face {i}: embedding cosine {cos:.6} to the reference"
            );
            worst_px = worst_px.max(px);
            worst_score = worst_score.max(score);
            worst_cos = worst_cos.min(cos);
        }
    }
    (worst_px, worst_score, worst_cos)
}

#[test]
fn faces_and_embeddings_match_the_x86_64_reference() {
    let ours = pipeline_output();
    let path = reference_file();

    if std::env::consts::ARCH == REFERENCE_ARCH {
        // The reference must itself be a real result, not an empty file.
        for photo in ours["photos"].as_array().unwrap() {
            assert!(
                !photo["faces"].as_array().unwrap().is_empty(),
                "{}: no face found",
                photo["photo"]
            );
        }
        write_atomically(&path, &ours);
        let read_back: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        compare(&read_back, &ours);
        eprintln!("recorded the reference in {}", path.display());
        return;
    }

    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the {REFERENCE_ARCH} reference {} cannot be read ({e}): \
             run tests/run on an {REFERENCE_ARCH} machine first (cross/test does)",
            path.display()
        )
    });
    let reference: Value = serde_json::from_str(&text).unwrap();
    let (px, score, cos) = compare(&ours, &reference);
    eprintln!(
        "{} vs {REFERENCE_ARCH}: max point difference {px:.2e} px, \
         max score difference {score:.2e}, min embedding cosine {cos:.8}",
        std::env::consts::ARCH
    );
}
