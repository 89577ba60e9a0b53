//! Shared helpers for the integration tests: where the models, the demo
//! photos and the labelled photos are, and one pipeline loaded once.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use doorman::config::Config;
use doorman::models::Manifest;
use doorman::pipeline::Pipeline;

/// `$DOORMAN_CACHE` (set by tests/run), else ~/.cache/doorman.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("DOORMAN_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/doorman"),
    }
}

pub fn models_dir() -> PathBuf {
    let dir = cache_dir().join("models");
    assert!(
        dir.is_dir(),
        "{} is missing: run models/fetch (tests/run does)",
        dir.display()
    );
    dir
}

/// Photos shipped by packages, extracted by models/fetch.
pub fn demo_photo(name: &str) -> PathBuf {
    let p = cache_dir().join("demo").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run models/fetch (tests/run does)",
        p.display()
    );
    p
}

/// The labelled photos beside the project (never copied into it).
pub fn faces_dir() -> PathBuf {
    let dir = match std::env::var_os("DOORMAN_FACES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/faces"),
    };
    assert!(
        dir.join("identities.csv").is_file(),
        "labelled photos not found at {}",
        dir.display()
    );
    dir
}

/// `image,identity` rows of identities.csv.
pub fn identities() -> Vec<(PathBuf, String)> {
    let dir = faces_dir();
    let text = std::fs::read_to_string(dir.join("identities.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (img, id) = l.split_once(',').expect("image,identity");
            (dir.join(img), id.trim().to_string())
        })
        .collect()
}

pub fn manifest() -> Manifest {
    Manifest::builtin().clone()
}

/// The default-config pipeline, loaded once per test binary.
pub fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let config = Config::default();
        Pipeline::load(
            &models_dir(),
            &manifest(),
            config.detector_settings(),
            &config.models.embedder_variant,
        )
        .expect("loading the pipeline")
    })
}

/// Default `max_image_px`.
pub fn max_image_px() -> u32 {
    Config::default().detect.max_image_px
}

/// A command that runs the doorman binary under test.
///
/// When the tests run under an emulator (cross/test runs the aarch64 tests
/// under qemu-user, which cannot execute a second ARM program by itself),
/// `DOORMAN_TEST_RUNNER` names the emulator and its options, separated by
/// spaces, and the binary is started through it.
pub fn doorman() -> std::process::Command {
    let bin = env!("CARGO_BIN_EXE_doorman");
    let runner = std::env::var("DOORMAN_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        None => std::process::Command::new(bin),
        Some(emulator) => {
            let mut cmd = std::process::Command::new(emulator);
            cmd.args(words).arg(bin);
            cmd
        }
    }
}

/// `doorman --config CONFIG ARGS...`; its output, whatever the exit code.
pub fn doorman_with(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    doorman()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// `doorman --config CONFIG ARGS...`, which must succeed; its output.
pub fn doorman_ok(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = doorman_with(config, args);
    assert!(
        out.status.success(),
        "doorman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
