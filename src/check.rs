//! `doorman check`: is this device set up to work? One line per part
//! (config, models, camera, store, LED), each `ok` or `FAIL` with the
//! reason, so an owner fixes everything in one round instead of one error
//! per restart.
//!
//! The checks only look: they load no network, grab no camera frame and
//! light no LED. The gallery is opened only if it exists.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::camera::{FilesSource, ReplayInput};
use crate::commands::{embedder_id, Outcome};
use crate::config::{CameraSource, Config, LedConfig, LedKind, StoreKind, DEFAULT_CONFIG_PATH};
use crate::gallery::Gallery;
use crate::led;
use crate::models::{verified_path, Manifest};

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Verdict {
    fn from(check: &'static str, result: Result<String>) -> Self {
        match result {
            Ok(detail) => Self {
                check,
                ok: true,
                detail,
            },
            Err(e) => Self {
                check,
                ok: false,
                detail: format!("{e:#}"),
            },
        }
    }
}

/// Runs every check; a config that does not load stops the rest (they
/// would only repeat its error).
pub fn verdicts(config_path: Option<&Path>) -> Vec<Verdict> {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => return vec![Verdict::from("config", Err(e))],
    };
    let source = match config_path {
        Some(p) => p.display().to_string(),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => DEFAULT_CONFIG_PATH.to_string(),
        None => format!("built-in defaults (no {DEFAULT_CONFIG_PATH})"),
    };
    let manifest = Manifest::builtin();
    vec![
        Verdict::from("config", Ok(source)),
        Verdict::from("models", models(&config, manifest)),
        Verdict::from("camera", camera(&config)),
        Verdict::from("store", store(&config, manifest)),
        Verdict::from("led", led(&config.led)),
    ]
}

/// `doorman check`: prints the verdicts; fails when any check failed.
pub fn check(config_path: Option<&Path>, json: bool) -> Result<Outcome> {
    let verdicts = verdicts(config_path);
    for v in &verdicts {
        if json {
            println!("{}", serde_json::to_string(v)?);
        } else {
            let mark = if v.ok { "ok  " } else { "FAIL" };
            println!("{mark} {:<7} {}", v.check, v.detail);
        }
    }
    let failed: Vec<_> = verdicts.iter().filter(|v| !v.ok).map(|v| v.check).collect();
    if !failed.is_empty() {
        bail!("{} check(s) failed: {}", failed.len(), failed.join(", "));
    }
    Ok(Outcome::Done)
}

/// Every model file the config uses, against its pinned checksum.
fn models(config: &Config, manifest: &Manifest) -> Result<String> {
    let dir = &config.models.dir;
    let mut files = manifest.detector.files.values().collect::<Vec<_>>();
    files.push(manifest.embedder.variant(&config.models.embedder_variant)?);
    let problems: Vec<String> = files
        .iter()
        .filter_map(|f| verified_path(dir, f).err().map(|e| format!("{e:#}")))
        .collect();
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(format!(
        "{} files in {} match their pinned sha256",
        files.len(),
        dir.display()
    ))
}

fn camera(config: &Config) -> Result<String> {
    #[allow(unreachable_patterns)]
    match config.camera.source {
        CameraSource::Files => {
            let Some(path) = &config.camera.path else {
                bail!("camera.source is \"files\" but camera.path is not set");
            };
            let input = ReplayInput {
                path: path.clone(),
                setting: "camera.path",
            };
            let c = &config.camera;
            let source = FilesSource::open(&input, c.replay_fps, c.clock_fps, 0)?;
            Ok(format!(
                "files: {} images in {}",
                source.len(),
                input.path.display()
            ))
        }
        CameraSource::Rpicam => {
            let program = &config.camera.rpicam_path;
            let found = find_program(program).with_context(|| {
                format!(
                    "camera.source is \"rpicam\" but {} was not found (install rpicam-apps, \
                     or set camera.rpicam_path)",
                    program.display()
                )
            })?;
            // Only the program is checked: starting it would take the camera
            // from a running service.
            Ok(format!(
                "rpicam: {} (the camera itself is not probed)",
                found.display()
            ))
        }
        CameraSource::V4l2 => {
            use std::os::unix::fs::FileTypeExt;
            let device = &config.camera.device;
            let meta = std::fs::metadata(device).with_context(|| {
                format!(
                    "camera.source is \"v4l2\" but {} is not there (is the webcam plugged in? \
                     `v4l2-ctl --list-devices` lists the nodes)",
                    device.display()
                )
            })?;
            if !meta.file_type().is_char_device() {
                bail!("{} is not a device node", device.display());
            }
            // Only the node is checked: opening it would take the camera from
            // a running service.
            Ok(format!("v4l2: {} (formats not probed)", device.display()))
        }
        // Limitation: a source added later is not probed until it gets a
        // check of its own here.
        #[allow(unreachable_patterns)]
        _ => Ok("not checked for this camera source".to_string()),
    }
}

/// An executable file at `program` (a path), or on PATH (a bare name).
fn find_program(program: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        if executable(program) {
            return Ok(program.to_path_buf());
        }
        bail!("{} is not an executable file", program.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .with_context(|| format!("no {} on PATH", program.display()))
}

fn store(config: &Config, manifest: &Manifest) -> Result<String> {
    match config.store {
        StoreKind::Local => {
            let path = config.gallery_path();
            let model = embedder_id(manifest, &config.models.embedder_variant);
            let detail = if path.exists() {
                let g = Gallery::open(&path, &model, manifest.embedder.output_dim)?;
                format!(
                    "local gallery {}: {} visitor(s), embedder {model}",
                    path.display(),
                    g.visitors()?.len()
                )
            } else {
                writable_folder(&config.state_dir)?;
                format!(
                    "no gallery yet; it will be made in {}",
                    config.state_dir.display()
                )
            };
            let events = config.events_path();
            if events.exists() {
                OpenOptions::new()
                    .append(true)
                    .open(&events)
                    .map_err(|e| anyhow::anyhow!("the events file {}: {e}", events.display()))?;
            }
            Ok(detail)
        }
        StoreKind::Vectorize => {
            // The token file, then the index as `run` would find it.
            let client = crate::commands::client_for(config)?;
            let index = client.get_index(crate::vectorize::Retry::Once)?;
            let (dims, metric) = (index.config.dimensions, index.config.metric);
            let want = manifest.embedder.output_dim;
            if dims != Some(want) || metric.as_deref() != Some("cosine") {
                bail!(
                    "the Vectorize index {} has dimensions {} and metric {}; doorman needs \
                     {want} and cosine",
                    client.index_name(),
                    dims.map_or("unknown".into(), |d| d.to_string()),
                    metric.as_deref().unwrap_or("unknown")
                );
            }
            Ok(format!(
                "Vectorize index {}: {want} dimensions, cosine, token accepted",
                client.index_name()
            ))
        }
    }
}

/// `dir`, or the nearest folder above it that exists, can be written to.
fn writable_folder(dir: &Path) -> Result<()> {
    let mut probe: PathBuf = dir.to_path_buf();
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p.to_path_buf(),
            None => bail!("state_dir {} cannot be made", dir.display()),
        }
    }
    if !probe.is_dir() {
        bail!(
            "state_dir {}: {} is not a folder",
            dir.display(),
            probe.display()
        );
    }
    let test = probe.join(format!(".doorman-check-{}", std::process::id()));
    fs::write(&test, b"").map_err(|e| {
        anyhow::anyhow!(
            "state_dir {}: cannot write in {}: {e}",
            dir.display(),
            probe.display()
        )
    })?;
    let _ = fs::remove_file(&test);
    Ok(())
}

fn led(config: &LedConfig) -> Result<String> {
    match config.kind {
        LedKind::None => Ok("none configured".to_string()),
        LedKind::Sysfs => {
            let dir = config.sysfs_root.join(&config.name);
            if !dir.is_dir() {
                let known = led::list_leds(&config.sysfs_root);
                bail!(
                    "no LED {}; {} has: {}",
                    dir.display(),
                    config.sysfs_root.display(),
                    if known.is_empty() {
                        "nothing".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
            let trigger = dir.join("trigger");
            let listing = fs::read_to_string(&trigger)
                .map_err(|e| anyhow::anyhow!("{}: {e}", trigger.display()))?;
            if !listing
                .split_whitespace()
                .any(|t| t.trim_matches(['[', ']']) == "none")
            {
                bail!("{} offers no \"none\" trigger", trigger.display());
            }
            for file in ["trigger", "brightness"] {
                let path = dir.join(file);
                // Opening for writing writes nothing: the LED stays as it is.
                OpenOptions::new().write(true).open(&path).map_err(|e| {
                    anyhow::anyhow!(
                        "{} cannot be written: {e} (the service's user needs write access; \
                         see the README)",
                        path.display()
                    )
                })?;
            }
            Ok(format!("sysfs LED {}", dir.display()))
        }
        LedKind::Gpio => {
            let found = led::find_gpio_line(&config.line, config.chip.as_deref())?;
            if found.info.used {
                bail!(
                    "GPIO line {} ({} offset {}) is in use by {:?}",
                    config.line,
                    found.chip.display(),
                    found.info.offset,
                    found.info.consumer
                );
            }
            Ok(format!(
                "GPIO line {} ({} offset {})",
                config.line,
                found.chip.display(),
                found.info.offset
            ))
        }
    }
}
