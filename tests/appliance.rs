//! doorman as an appliance: `doorman check` catches each broken part, the
//! service unit verifies, SIGTERM ends a run cleanly with the open visit
//! recorded and systemd told, and a fatal misconfiguration stops early with
//! the configuration-error LED pattern (on a fake sysfs LED folder).

mod common;
#[path = "support/scenes.rs"]
mod scenes;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A device set up in a temp folder: config, frames, state, fake LEDs.
struct Device {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Device {
    /// Everything in order: real models, one frame to replay, a fake ACT LED.
    fn new() -> Self {
        Self::with(|_| {}, "")
    }

    /// `tweak` edits the folder before the config is written; `extra` is
    /// appended to the config.
    fn with(tweak: impl FnOnce(&Path), extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        scenes::fake_leds(&root.join("leds"));
        scenes::write_visit(&root.join("frames"), None, 1, 0, 0);
        tweak(root);
        let config = root.join("doorman.toml");
        let text = format!(
            "state_dir = {:?}\n\
             [models]\ndir = {:?}\n\
             [camera]\npath = {:?}\n\
             [led]\nkind = \"sysfs\"\nname = \"ACT\"\nsysfs_root = {:?}\n\
             {extra}\n",
            root.join("state"),
            common::models_dir(),
            root.join("frames"),
            root.join("leds"),
        );
        // A later table of the same name would be a duplicate: `extra` may
        // only add tables the base text does not have.
        std::fs::write(&config, text).unwrap();
        Self { dir, config }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn doorman(&self, args: &[&str]) -> Output {
        common::doorman_with(&self.config, args)
    }

    /// `doorman --json check`: each check's name and whether it passed.
    fn check(&self) -> (Vec<(String, bool, String)>, Output) {
        let out = self.doorman(&["--json", "check"]);
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
                (
                    v["check"].as_str().unwrap().to_string(),
                    v["ok"].as_bool().unwrap(),
                    v["detail"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (lines, out)
    }
}

/// Asserts that exactly `broken` failed (naming `why`) and the others passed.
fn only_failed(device: &Device, broken: &str, why: &str) {
    let (lines, out) = device.check();
    assert_eq!(out.status.code(), Some(2), "{lines:?}");
    let failed: Vec<_> = lines.iter().filter(|l| !l.1).collect();
    assert_eq!(failed.len(), 1, "{lines:?}");
    assert_eq!(failed[0].0, broken, "{lines:?}");
    assert!(failed[0].2.contains(why), "{lines:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(broken), "{err}");
}

#[test]
fn check_passes_every_check_on_a_good_setup() {
    let device = Device::new();
    let (lines, out) = device.check();
    assert!(out.status.success(), "{lines:?}");
    let names: Vec<_> = lines.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(names, ["config", "models", "camera", "store", "led"]);
    assert!(lines.iter().all(|l| l.1), "{lines:?}");

    let text = device.doorman(&["check"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.lines().all(|l| l.starts_with("ok ")), "{text}");
}

#[test]
fn check_names_a_bad_config_value_and_stops_there() {
    let device = Device::with(|_| {}, "[detect]\nmin_face_px = 5\n");
    let (lines, out) = device.check();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (name, ok, detail) = &lines[0];
    assert_eq!((name.as_str(), *ok), ("config", false));
    assert!(
        detail.contains("min_face_px") && detail.contains("12 to 2000"),
        "{detail}"
    );
}

#[test]
fn check_catches_a_missing_or_damaged_model() {
    let device = Device::with(
        |root| {
            // A models folder with a file of the right name but wrong bytes.
            let models = root.join("models");
            std::fs::create_dir(&models).unwrap();
            std::fs::write(models.join("mtcnn-pnet.onnx"), b"not a network").unwrap();
        },
        "",
    );
    let text = std::fs::read_to_string(&device.config).unwrap();
    let models = device.path().join("models");
    let text = text.replace(
        &format!("dir = {:?}", common::models_dir()),
        &format!("dir = {models:?}"),
    );
    std::fs::write(&device.config, text).unwrap();
    only_failed(&device, "models", "mtcnn-pnet.onnx");
}

#[test]
fn check_catches_a_camera_folder_without_images() {
    let device = Device::with(
        |root| {
            for f in std::fs::read_dir(root.join("frames")).unwrap() {
                std::fs::remove_file(f.unwrap().path()).unwrap();
            }
        },
        "",
    );
    only_failed(&device, "camera", "holds no images");
}

#[test]
fn check_catches_a_gallery_made_by_another_embedder() {
    let device = Device::with(
        |root| {
            let g = doorman::gallery::Gallery::open(
                &root.join("state/gallery.sqlite"),
                "another-network",
                128,
            );
            drop(g.unwrap());
        },
        "",
    );
    only_failed(&device, "store", "another-network");
}

#[test]
fn check_catches_an_led_that_is_not_there() {
    let device = Device::new();
    let text = std::fs::read_to_string(&device.config)
        .unwrap()
        .replace("name = \"ACT\"", "name = \"PWR\"");
    std::fs::write(&device.config, text).unwrap();
    only_failed(&device, "led", "PWR");
}

#[test]
fn check_catches_an_led_without_a_brightness_file() {
    let device = Device::with(
        |root| std::fs::remove_file(root.join("leds/ACT/brightness")).unwrap(),
        "",
    );
    only_failed(&device, "led", "brightness");
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed (.ci/run installs it); not verified");
        return;
    }
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/doorman.service"))
            .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/doorman "), "{unit}");
    // verify checks that ExecStart is executable: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("doorman.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/doorman", env!("CARGO_BIN_EXE_doorman")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Unknown keys are only warnings: any word about the unit is a failure.
    assert!(!err.contains("doorman.service"), "{err}");
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StartLimitBurst=",
        "User=doorman",
        "SupplementaryGroups=video gpio",
        "StateDirectory=doorman",
        "LoadCredential=",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(unit.contains(key), "the unit lacks {key}");
    }
}

/// Reads every notification sent to `socket` so far.
fn notifications(socket: &UnixDatagram) -> Vec<String> {
    socket.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        out.extend(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .map(str::to_string),
        );
    }
    out
}

#[test]
fn sigterm_records_the_open_visit_tells_systemd_and_exits_0_within_5_s() {
    let stranger = scenes::load(&common::demo_photo("astronaut.png"));
    // Half a minute of somebody standing at the door, in real time.
    let device = Device::with(
        |root| scenes::write_visit(&root.join("frames"), Some(&stranger), 2, 120, 0),
        "",
    );
    let text = std::fs::read_to_string(&device.config)
        .unwrap()
        .replace("[camera]\n", "[camera]\nreplay_fps = 4.0\n");
    std::fs::write(&device.config, text).unwrap();
    let socket_path = device.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();

    let mut child = common::doorman()
        .arg("--config")
        .arg(&device.config)
        .arg("run")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait for the visit to start, keeping the rest of stderr for later.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log.contains("visit started") {
        assert!(Instant::now() < deadline, "no visit started:\n{log}");
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("doorman ended early:\n{log}");
        }
        log.push_str(&line);
    }
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        rest
    });
    let before = notifications(&socket);
    assert!(before.iter().any(|m| m == "READY=1"), "{before:?}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("doorman did not stop within 5 s of SIGTERM:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    log.push_str(&rest.join().unwrap());
    assert_eq!(status.code(), Some(0), "{log}");

    let events = std::fs::read_to_string(device.path().join("state/events.jsonl")).unwrap();
    let events: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}\n{log}");
    assert_eq!(events[0]["decision"], "new");
    assert!(events[0]["frames"].as_u64().unwrap() >= 1, "{events:?}");

    let after = notifications(&socket);
    assert!(
        before.iter().chain(&after).any(|m| m == "WATCHDOG=1"),
        "{before:?} {after:?}"
    );
    assert_eq!(
        after.last().map(String::as_str),
        Some("STOPPING=1"),
        "{after:?}"
    );

    // The LED is dark and has its own trigger back.
    let act = device.path().join("leds/ACT");
    assert_eq!(
        std::fs::read_to_string(act.join("trigger")).unwrap(),
        "mmc0"
    );
    assert_eq!(
        std::fs::read_to_string(act.join("brightness")).unwrap(),
        "0"
    );
    assert!(
        log.contains("status LED") && log.contains("visit in progress"),
        "{log}"
    );
}

fn assert_configuration_error_led(device: &Device) {
    let act = device.path().join("leds/ACT");
    assert_eq!(
        std::fs::read_to_string(act.join("trigger")).unwrap(),
        "timer"
    );
    assert_eq!(
        std::fs::read_to_string(act.join("delay_on")).unwrap(),
        "500"
    );
    assert_eq!(
        std::fs::read_to_string(act.join("delay_off")).unwrap(),
        "500"
    );
}

#[test]
fn a_config_file_with_a_bad_value_stops_run_with_one_message_and_the_error_led() {
    let device = Device::with(|_| {}, "[recognize]\nmatch_threshold = 3.0\n");
    let out = device.doorman(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    // One message (toml quotes the line under it, with a caret).
    let errors = err.lines().filter(|l| l.contains("error")).count();
    assert_eq!(errors, 1, "{err}");
    assert!(
        err.contains("match_threshold") && err.contains("3.0"),
        "{err}"
    );
    assert_configuration_error_led(&device);
    assert!(!device.path().join("state").exists(), "nothing was started");
}

#[test]
fn missing_models_stop_run_early_with_the_error_led_instead_of_retrying() {
    let device = Device::new();
    let empty = device.path().join("no-models");
    std::fs::create_dir(&empty).unwrap();
    let text = std::fs::read_to_string(&device.config).unwrap().replace(
        &format!("dir = {:?}", common::models_dir()),
        &format!("dir = {empty:?}"),
    );
    std::fs::write(&device.config, text).unwrap();
    let started = Instant::now();
    let out = device.doorman(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<_> = err
        .lines()
        .filter(|l| l.starts_with("doorman: error"))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("models/fetch"), "{err}");
    assert_configuration_error_led(&device);
}
