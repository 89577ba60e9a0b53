//! Frame sources: where frames come from.
//!
//! One trait for every kind of camera, chosen by `camera.source`: `rpicam`
//! (the CSI camera through rpicam-vid), `v4l2` (USB webcams) and `files`
//! (a folder of images, or a raw YUV420 or MJPEG stream file, replayed on
//! a steady clock so that tests feed exactly what a camera would). A frame
//! keeps its capture time and its pixels as the camera sent them: the
//! motion gate reads the luma plane, and only frames shown to the face
//! detector are turned into RGB. A frame that cannot be used is reported
//! and skipped; a camera that fails is reopened; neither ends the stream.

mod mjpeg;
mod reopen;
mod rpicam;
mod v4l2;
mod yuv;

use std::borrow::Cow;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::config::{CameraSource, Config, PixelFormat};
use crate::frame::Frame;

pub use mjpeg::MjpegReader;
pub use reopen::{Backoff, Capture, CaptureError, Opener, Reopening, HEALTHY_AFTER_FRAMES};
pub use rpicam::RpicamOpener;
pub use v4l2::{frame_interval, yuyv_frame, V4l2Format, V4l2Opener};
pub use yuv::{encode_yuv420, rgb_to_ycbcr, ycbcr_to_rgb, Yuv420Layout, Yuv420Reader};

/// What a source yields next.
#[derive(Debug)]
pub enum Next {
    Frame(CameraFrame),
    /// A frame that could not be used; the source goes on.
    Skipped {
        what: String,
        why: String,
    },
    /// The camera failed (child exited, device vanished); it will be
    /// reopened after `retry_in` on the next call.
    Failed {
        what: String,
        why: String,
        retry_in: Duration,
    },
    /// The source is exhausted (files only; cameras never end).
    End,
}

pub trait FrameSource {
    /// Blocks until the next frame is due.
    fn next(&mut self) -> Next;
}

/// One frame as the camera delivered it.
#[derive(Debug, Clone)]
pub struct CameraFrame {
    pub captured_at: SystemTime,
    /// Picture size in pixels (padding excluded).
    pub width: u32,
    pub height: u32,
    pub pixels: Pixels,
}

/// The pixels of a [`CameraFrame`].
#[derive(Debug, Clone)]
pub enum Pixels {
    /// Planar YUV 4:2:0 with padded rows (rpicam-vid, `.yuv` files).
    Yuv420 { data: Vec<u8>, layout: Yuv420Layout },
    /// Packed YUV 4:2:2, `stride` bytes per row (V4L2 `YUYV`).
    Yuyv { data: Vec<u8>, stride: usize },
    /// Already decoded to RGB (image files, JPEG frames).
    Decoded(Frame),
}

/// An 8-bit luma plane: pixel (x, y) is `data[y * stride + x * step]`.
#[derive(Debug, Clone)]
pub struct Plane<'a> {
    pub data: Cow<'a, [u8]>,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    /// Bytes from one pixel to the next in a row (2 for YUYV).
    pub step: usize,
}

impl Plane<'_> {
    pub fn at(&self, x: u32, y: u32) -> u8 {
        self.data[y as usize * self.stride + x as usize * self.step]
    }
}

impl CameraFrame {
    /// The luma plane: borrowed from YUV frames, computed for decoded ones.
    pub fn luma(&self) -> Plane<'_> {
        match &self.pixels {
            Pixels::Yuv420 { data, layout } => Plane {
                data: Cow::Borrowed(&data[..layout.y_stride * layout.height as usize]),
                width: self.width,
                height: self.height,
                stride: layout.y_stride,
                step: 1,
            },
            Pixels::Yuyv { data, stride } => Plane {
                data: Cow::Borrowed(data),
                width: self.width,
                height: self.height,
                stride: *stride,
                step: 2,
            },
            Pixels::Decoded(frame) => {
                let (w, h) = frame.rgb.dimensions();
                let luma = frame
                    .rgb
                    .pixels()
                    .map(|p| ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8) as u8)
                    .collect();
                Plane {
                    data: Cow::Owned(luma),
                    width: w,
                    height: h,
                    stride: w as usize,
                    step: 1,
                }
            }
        }
    }

    /// The frame in RGB for the face detector, shrunk to `max_side_px`.
    pub fn to_frame(&self, max_side_px: u32) -> Cow<'_, Frame> {
        let rgb = match &self.pixels {
            Pixels::Decoded(frame) => return Cow::Borrowed(frame),
            Pixels::Yuv420 { data, layout } => layout.to_rgb(data),
            Pixels::Yuyv { data, stride } => {
                yuv::yuyv_to_rgb(data, self.width, self.height, *stride)
            }
        };
        Cow::Owned(Frame::from_rgb_at(rgb, max_side_px, self.captured_at))
    }
}

/// The file or folder the `files` source replays, and the setting that
/// named it, so that every message about it names what the owner typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayInput {
    pub path: PathBuf,
    /// `--replay` or `camera.path`.
    pub setting: &'static str,
}

impl ReplayInput {
    /// The `--replay` path when there is one, else `camera.path`.
    pub fn new(config: &Config, replay: Option<&Path>) -> Result<Self> {
        if let Some(path) = replay {
            return Ok(Self {
                path: path.to_path_buf(),
                setting: "--replay",
            });
        }
        let path = config.camera.path.clone().context(
            "camera.source is \"files\" but camera.path is not set (or pass --replay PATH)",
        )?;
        Ok(Self {
            path,
            setting: "camera.path",
        })
    }

    /// Why a replay that ended delivered no frame at all: an error naming
    /// the input, with what its format needs. `skipped` frames could not
    /// be decoded.
    pub fn nothing_replayed(&self, config: &Config, skipped: u64) -> anyhow::Error {
        let why = match stream_format(config, &self.path) {
            PixelFormat::Yuv420 => {
                let c = &config.camera;
                let layout = Yuv420Layout::padded(c.width_px, c.height_px, c.stride_align_px);
                let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
                format!(
                    "it holds {size} bytes, and one YUV420 frame of {}×{} (camera.width_px, \
                     camera.height_px, rows padded to camera.stride_align_px = {}) is {} bytes",
                    c.width_px,
                    c.height_px,
                    c.stride_align_px,
                    layout.frame_len()
                )
            }
            PixelFormat::Mjpeg if skipped == 0 => {
                "it holds no whole JPEG image (FF D8 ... FF D9)".to_string()
            }
            _ => format!("{skipped} frame(s) were skipped as unreadable (named above)"),
        };
        anyhow::anyhow!("{self}: no frame could be decoded; {why}")
    }
}

impl std::fmt::Display for ReplayInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.setting, self.path.display())
    }
}

/// Opens the source the config names; `replay` (the `--replay` option)
/// replays that path with the `files` source whatever the config says.
pub fn open(config: &Config, replay: Option<&Path>) -> Result<Box<dyn FrameSource>> {
    let c = &config.camera;
    let max_image_px = config.detect.max_image_px;
    let backoff = Backoff::new(
        Duration::from_secs_f32(c.retry_min_s),
        Duration::from_secs_f32(c.retry_max_s),
    );
    let source = if replay.is_some() {
        CameraSource::Files
    } else {
        c.source
    };
    match source {
        CameraSource::Files => open_files(config, &ReplayInput::new(config, replay)?),
        CameraSource::Rpicam => {
            // A missing program is a setup mistake, not a camera to wait for.
            if find_program(&c.rpicam_path).is_none() {
                bail!(
                    "camera.rpicam_path {} was not found{}; install it with `sudo apt install rpicam-apps` (rpicam-apps-lite on Lite images)",
                    c.rpicam_path.display(),
                    if c.rpicam_path.components().count() > 1 { "" } else { " on PATH" }
                );
            }
            let opener = RpicamOpener::new(c);
            log::info!(
                "camera {:?}: {} {}",
                c.name,
                opener.what(),
                opener.args().join(" ")
            );
            Ok(Box::new(Reopening::new(opener, backoff)))
        }
        CameraSource::V4l2 => {
            let opener = V4l2Opener::new(c, max_image_px)?;
            log::info!(
                "camera {:?}: {} at {}×{}, {} fps, {:?}",
                c.name,
                opener.what(),
                c.width_px,
                c.height_px,
                c.fps,
                V4l2Format::from_config(c.format)?
            );
            Ok(Box::new(Reopening::new(opener, backoff)))
        }
    }
}

/// `program` itself when it is a path, else the first match on PATH.
fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// How a replayed file is read: `camera.format`, or when that is `auto`
/// the file's extension (`.yuv`/`.i420`, `.mjpeg`/`.mjpg`).
fn stream_format(config: &Config, path: &Path) -> PixelFormat {
    let by_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match (config.camera.format, by_extension.as_deref()) {
        (PixelFormat::Auto, Some("yuv" | "i420")) => PixelFormat::Yuv420,
        (PixelFormat::Auto, Some("mjpeg" | "mjpg")) => PixelFormat::Mjpeg,
        (f, _) => f,
    }
}

/// A folder or image file, or a YUV420 or MJPEG stream file.
fn open_files(config: &Config, input: &ReplayInput) -> Result<Box<dyn FrameSource>> {
    let c = &config.camera;
    let max = config.detect.max_image_px;
    let path = input.path.as_path();
    if let Err(e) = std::fs::metadata(path) {
        if e.kind() == std::io::ErrorKind::NotFound {
            bail!("{input}: no such file or folder");
        }
        return Err(e).with_context(|| input.to_string());
    }
    let source: Box<dyn FrameSource> = match stream_format(config, path) {
        PixelFormat::Yuv420 => {
            let layout = Yuv420Layout::padded(c.width_px, c.height_px, c.stride_align_px);
            Box::new(StreamFileSource::open(
                input,
                Stream::Yuv420(layout),
                c.replay_fps,
                c.clock_fps,
                max,
            )?)
        }
        PixelFormat::Mjpeg => Box::new(StreamFileSource::open(
            input,
            Stream::Mjpeg,
            c.replay_fps,
            c.clock_fps,
            max,
        )?),
        _ => {
            let files = FilesSource::open(input, c.replay_fps, c.clock_fps, max)?;
            log::info!(
                "replaying {} frames from {} as camera {:?}",
                files.len(),
                path.display(),
                c.name
            );
            Box::new(files)
        }
    };
    Ok(source)
}

/// Capture times of a replay: one frame every `interval`, optionally
/// paced in real time.
struct ReplayClock {
    /// Time between frames on the capture clock.
    interval: Duration,
    /// Sleep so frames arrive in real time (`replay_fps` > 0).
    paced: bool,
    started_at: SystemTime,
    started: Instant,
    position: u32,
}

impl ReplayClock {
    fn new(replay_fps: f32, clock_fps: f32) -> Self {
        let rate = if replay_fps > 0.0 {
            replay_fps
        } else {
            clock_fps
        };
        Self {
            interval: Duration::from_secs_f32(1.0 / rate),
            paced: replay_fps > 0.0,
            started_at: SystemTime::now(),
            started: Instant::now(),
            position: 0,
        }
    }

    /// Waits until the next frame is due (when paced); its capture time.
    fn tick(&mut self) -> SystemTime {
        let offset = self.interval * self.position;
        self.position += 1;
        if self.paced {
            let due = self.started + offset;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        self.started_at + offset
    }
}

/// Replays image files in name order.
pub struct FilesSource {
    files: Vec<PathBuf>,
    position: usize,
    clock: ReplayClock,
    max_image_px: u32,
}

/// File names the replay picks up (by extension; content decides the
/// format when decoding).
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

impl FilesSource {
    /// A folder's images (or one image), replayed at `replay_fps` (0: as fast
    /// as decoding goes), with capture times spaced at `clock_fps`.
    pub fn open(
        input: &ReplayInput,
        replay_fps: f32,
        clock_fps: f32,
        max_image_px: u32,
    ) -> Result<Self> {
        let path = input.path.as_path();
        let files = if path.is_dir() {
            let mut files = Vec::new();
            for entry in
                std::fs::read_dir(path).with_context(|| format!("{input}: reading the folder"))?
            {
                let p = entry?.path();
                let hidden = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                let known = p
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
                if p.is_file() && !hidden && known {
                    files.push(p);
                }
            }
            files.sort();
            files
        } else if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            bail!("{input} is neither a folder nor a file");
        };
        if files.is_empty() {
            bail!("{input} holds no images ({})", IMAGE_EXTENSIONS.join(", "));
        }
        Ok(Self {
            files,
            position: 0,
            clock: ReplayClock::new(replay_fps, clock_fps),
            max_image_px,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl FrameSource for FilesSource {
    fn next(&mut self) -> Next {
        let Some(path) = self.files.get(self.position).cloned() else {
            return Next::End;
        };
        self.position += 1;
        let at = self.clock.tick();
        match Frame::open(&path, self.max_image_px) {
            Ok(mut frame) => {
                frame.captured_at = at;
                let (width, height) = frame.rgb.dimensions();
                Next::Frame(CameraFrame {
                    captured_at: at,
                    width,
                    height,
                    pixels: Pixels::Decoded(frame),
                })
            }
            Err(e) => Next::Skipped {
                what: path.display().to_string(),
                why: e.to_string(),
            },
        }
    }
}

/// The kind of a stream file.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Yuv420(Yuv420Layout),
    Mjpeg,
}

enum StreamReader {
    Yuv420(Yuv420Reader<BufReader<File>>),
    Mjpeg(MjpegReader<BufReader<File>>),
}

/// Replays a raw YUV420 or MJPEG stream file frame by frame: the bytes a
/// camera would have sent.
pub struct StreamFileSource {
    reader: StreamReader,
    what: String,
    clock: ReplayClock,
    max_image_px: u32,
    frames: u64,
    ended: bool,
}

impl StreamFileSource {
    fn open(
        input: &ReplayInput,
        kind: Stream,
        replay_fps: f32,
        clock_fps: f32,
        max_image_px: u32,
    ) -> Result<Self> {
        let path = input.path.as_path();
        let file = File::open(path).with_context(|| format!("{input}: opening the stream file"))?;
        let input = BufReader::new(file);
        let reader = match kind {
            Stream::Yuv420(layout) => {
                log::info!(
                    "replaying the YUV420 stream {} ({}×{}, rows of {} bytes) as camera frames",
                    path.display(),
                    layout.width,
                    layout.height,
                    layout.y_stride
                );
                StreamReader::Yuv420(Yuv420Reader::new(input, layout))
            }
            Stream::Mjpeg => {
                log::info!(
                    "replaying the MJPEG stream {} as camera frames",
                    path.display()
                );
                StreamReader::Mjpeg(MjpegReader::new(input))
            }
        };
        Ok(Self {
            reader,
            what: path.display().to_string(),
            clock: ReplayClock::new(replay_fps, clock_fps),
            max_image_px,
            frames: 0,
            ended: false,
        })
    }

    fn skipped(&self, why: String) -> Next {
        Next::Skipped {
            what: format!("{} frame {}", self.what, self.frames + 1),
            why,
        }
    }
}

impl FrameSource for StreamFileSource {
    fn next(&mut self) -> Next {
        if self.ended {
            return Next::End;
        }
        let read = match &mut self.reader {
            StreamReader::Yuv420(r) => {
                let layout = r.layout();
                r.read_frame().map(|d| {
                    d.map(|data| (layout.width, layout.height, Pixels::Yuv420 { data, layout }))
                })
            }
            StreamReader::Mjpeg(r) => match r.next_jpeg() {
                Ok(Some(bytes)) => match Frame::decode(&bytes, self.max_image_px) {
                    Ok(frame) => {
                        let (w, h) = frame.rgb.dimensions();
                        Ok(Some((w, h, Pixels::Decoded(frame))))
                    }
                    Err(e) => {
                        let next = self.skipped(e.to_string());
                        self.frames += 1;
                        self.clock.tick();
                        return next;
                    }
                },
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            },
        };
        match read {
            Ok(Some((width, height, mut pixels))) => {
                let at = self.clock.tick();
                self.frames += 1;
                if let Pixels::Decoded(frame) = &mut pixels {
                    frame.captured_at = at;
                }
                Next::Frame(CameraFrame {
                    captured_at: at,
                    width,
                    height,
                    pixels,
                })
            }
            Ok(None) => {
                self.ended = true;
                Next::End
            }
            Err(e) => {
                // A truncated raw frame ends the file; a damaged JPEG is
                // skipped and the reader resynchronises.
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    self.ended = true;
                }
                let next = self.skipped(e.to_string());
                self.frames += 1;
                self.clock.tick();
                next
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_config(path: &Path) -> ReplayInput {
        ReplayInput {
            path: path.to_path_buf(),
            setting: "camera.path",
        }
    }

    fn frame_of(next: Next) -> CameraFrame {
        match next {
            Next::Frame(f) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn files_replay_in_name_order_on_a_steady_clock_and_skip_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_pixel(16, 16, image::Rgb([10, 20, 30]));
        img.save(dir.path().join("b.png")).unwrap();
        img.save(dir.path().join("a.png")).unwrap();
        std::fs::write(dir.path().join("c.jpg"), b"garbage").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
        let mut src = FilesSource::open(&from_config(dir.path()), 0.0, 2.0, 0).unwrap();
        assert_eq!(src.len(), 3);
        let a = frame_of(src.next());
        let b = frame_of(src.next());
        assert_eq!(
            b.captured_at.duration_since(a.captured_at).unwrap(),
            Duration::from_millis(500)
        );
        match src.next() {
            Next::Skipped { what, .. } => assert!(what.ends_with("c.jpg")),
            other => panic!("expected a skipped frame, got {other:?}"),
        }
        assert!(matches!(src.next(), Next::End));
    }

    #[test]
    fn an_empty_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = FilesSource::open(&from_config(dir.path()), 0.0, 5.0, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn a_padded_yuv420_file_gives_its_luma_and_rgb_and_names_a_cut_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cam.yuv");
        // 100 px wide: rows padded to 128 bytes of luma, 64 of chroma.
        let layout = Yuv420Layout::padded(100, 20, 64);
        let red = image::RgbImage::from_pixel(100, 20, image::Rgb([200, 30, 30]));
        let mut bytes = encode_yuv420(&red, &layout);
        bytes.extend(encode_yuv420(&red, &layout));
        bytes.truncate(bytes.len() - 10);
        std::fs::write(&path, bytes).unwrap();

        let mut config = Config::default();
        config.camera.width_px = 100;
        config.camera.height_px = 20;
        let mut src = open(&config, Some(&path)).unwrap();
        let f = frame_of(src.next());
        assert_eq!((f.width, f.height), (100, 20));
        let luma = f.luma();
        assert_eq!(luma.stride, 128);
        assert_eq!(luma.at(99, 19), rgb_to_ycbcr([200, 30, 30])[0]);
        let rgb = f.to_frame(0);
        let p = rgb.rgb.get_pixel(50, 10).0;
        assert!(p[0] > 180 && p[1] < 60 && p[2] < 60, "{p:?}");
        match src.next() {
            Next::Skipped { why, .. } => assert!(why.contains("inside a frame"), "{why}"),
            other => panic!("expected the cut frame to be skipped, got {other:?}"),
        }
        assert!(matches!(src.next(), Next::End));
    }

    #[test]
    fn a_missing_rpicam_vid_stops_at_start_with_how_to_install_it() {
        let mut config = Config::default();
        config.camera.source = CameraSource::Rpicam;
        config.camera.rpicam_path = PathBuf::from("/nonexistent/rpicam-vid");
        let err = format!("{:#}", open(&config, None).err().unwrap());
        assert!(
            err.contains("/nonexistent/rpicam-vid") && err.contains("rpicam-apps"),
            "{err}"
        );
        config.camera.rpicam_path = PathBuf::from("sh");
        assert!(open(&config, None).is_ok(), "sh is on PATH");
    }

    #[test]
    fn an_mjpeg_file_gives_one_frame_per_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cam.mjpeg");
        let mut bytes = Vec::new();
        for shade in [20u8, 220] {
            let img = image::RgbImage::from_pixel(32, 16, image::Rgb([shade; 3]));
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
            bytes.extend(out.into_inner());
        }
        std::fs::write(&path, bytes).unwrap();
        let mut src = open(&Config::default(), Some(&path)).unwrap();
        let dark = frame_of(src.next());
        let light = frame_of(src.next());
        assert!(dark.luma().at(5, 5) < 40 && light.luma().at(5, 5) > 200);
        assert!(light.captured_at > dark.captured_at);
        assert!(matches!(src.next(), Next::End));
    }
}
