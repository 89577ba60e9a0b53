//! The CSI camera through `rpicam-vid`, the reliable path on Raspberry Pi
//! OS Bookworm (where libcamera does not offer a plain V4L2 node).
//!
//! doorman runs `rpicam-vid --codec yuv420 ... --output -` as a child and
//! reads raw frames from its stdout; the Y plane feeds the motion gate as
//! it is, and only frames shown to the face detector are converted to RGB.
//! The child's stderr (libcamera's chatter) goes to the debug log, and its
//! last lines explain the failure when the child dies. A dead child is
//! restarted by [`super::reopen::Reopening`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use super::reopen::{Capture, CaptureError, Opener};
use super::yuv::{Yuv420Layout, Yuv420Reader};
use super::{CameraFrame, Pixels};
use crate::config::CameraConfig;

/// stderr lines kept to explain why the child stopped.
const STDERR_TAIL_LINES: usize = 4;
/// How long a child whose stdout closed may take to exit before it is
/// killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Starts `rpicam-vid`.
pub struct RpicamOpener {
    program: PathBuf,
    extra_args: Vec<String>,
    layout: Yuv420Layout,
    fps: f32,
}

impl RpicamOpener {
    pub fn new(c: &CameraConfig) -> Self {
        Self {
            program: c.rpicam_path.clone(),
            extra_args: c.rpicam_args.clone(),
            layout: Yuv420Layout::padded(c.width_px, c.height_px, c.stride_align_px),
            fps: c.fps,
        }
    }

    /// The arguments doorman passes, then the owner's `rpicam_args`.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--codec",
            "yuv420",
            "--width",
            &self.layout.width.to_string(),
            "--height",
            &self.layout.height.to_string(),
            "--framerate",
            &self.fps.to_string(),
            // Run until stopped, without a preview window.
            "--timeout",
            "0",
            "--nopreview",
            "--output",
            "-",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

impl Opener for RpicamOpener {
    type Device = RpicamChild;

    fn what(&self) -> String {
        self.program.display().to_string()
    }

    fn open(&mut self) -> anyhow::Result<RpicamChild> {
        let mut child = Command::new(&self.program)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        let stdout = child.stdout.take().context("the child has no stdout")?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&tail);
            let name = self.what();
            // A thread only drains the pipe, so that a chatty child never
            // blocks on a full stderr.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log::debug!("{name}: {line}");
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == STDERR_TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            });
        }
        Ok(RpicamChild {
            child,
            reader: Yuv420Reader::new(stdout, self.layout),
            stderr_tail: tail,
        })
    }
}

/// A running `rpicam-vid`; killed when dropped.
pub struct RpicamChild {
    child: Child,
    reader: Yuv420Reader<ChildStdout>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl RpicamChild {
    /// Why the child stopped: its exit status and last stderr lines.
    fn obituary(&mut self, what: &str) -> String {
        let deadline = Instant::now() + EXIT_GRACE;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break "killed after its output ended".to_string();
                }
                Err(e) => break format!("unknown status ({e})"),
            }
        };
        // Give the stderr thread a moment to catch the last words.
        std::thread::sleep(Duration::from_millis(50));
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        let last: Vec<&str> = tail.iter().map(String::as_str).collect();
        if last.is_empty() {
            format!("rpicam-vid {what} ({status})")
        } else {
            format!("rpicam-vid {what} ({status}): {}", last.join(" | "))
        }
    }
}

impl Capture for RpicamChild {
    // Limitation: a child that stalls without exiting blocks this read for
    // good; only the systemd watchdog (fed while frames arrive) notices. A
    // read timeout (poll on the pipe) would let doorman restart it itself.
    fn capture(&mut self) -> Result<CameraFrame, CaptureError> {
        let layout = self.reader.layout();
        match self.reader.read_frame() {
            Ok(Some(data)) => Ok(CameraFrame {
                // Limitation: the raw stream carries no timestamps, so a
                // frame's capture time is when its last byte arrived (a
                // frame interval late at worst).
                captured_at: SystemTime::now(),
                width: layout.width,
                height: layout.height,
                pixels: Pixels::Yuv420 { data, layout },
            }),
            Ok(None) => Err(CaptureError::Gone(self.obituary("stopped"))),
            Err(e) => Err(CaptureError::Gone(
                self.obituary(&format!("stopped mid-frame: {e}")),
            )),
        }
    }
}

impl Drop for RpicamChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
