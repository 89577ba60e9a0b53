//! The TOML configuration, parsed strictly into typed settings.
//!
//! Every field has a default and carries its unit in its name. An unknown
//! key, a wrong type or a value out of range is an error that names the key,
//! the value, the line and what is allowed: a typo must never silently fall
//! back to a default on a device nobody watches.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Deserializer};

use crate::models::Manifest;

/// Where `doorman` looks when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/doorman/doorman.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Gallery database, events file and outbox live here.
    pub state_dir: PathBuf,
    /// Which gallery holds the embeddings.
    pub store: StoreKind,
    pub models: ModelsConfig,
    pub camera: CameraConfig,
    pub detect: DetectConfig,
    pub recognize: RecognizeConfig,
    pub visit: VisitConfig,
    pub led: LedConfig,
    pub log: LogConfig,
    /// The Cloudflare Vectorize index; read only when `store = "vectorize"`.
    pub vectorize: VectorizeConfig,
    pub motion: MotionConfig,
    pub events: EventsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// An SQLite file in `state_dir`: no account, no network.
    Local,
    /// Exemplar vectors in a Cloudflare Vectorize index (`[vectorize]`);
    /// visitors, visits and the outbox stay in the SQLite file.
    Vectorize,
}

/// Where the Vectorize index is and how doorman talks to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VectorizeConfig {
    /// The 32-character Cloudflare account id (from the dashboard).
    #[serde(deserialize_with = "account_id")]
    pub account_id: String,
    /// Index name: lowercase letters, digits and `-`, starting with a letter.
    #[serde(deserialize_with = "index_name")]
    pub index: String,
    /// The API base, up to and including `/client/v4`. Plain `http://` is
    /// accepted only for a loopback host (the test stand-in).
    #[serde(deserialize_with = "base_url")]
    pub base_url: String,
    /// The API token: an absolute path, or a bare name looked up in
    /// `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`). A file that
    /// group or others may read is refused.
    pub token_file: PathBuf,
    /// Time limit of one HTTP request, connect to last byte.
    #[serde(deserialize_with = "timeout_s")]
    pub timeout_s: f32,
    /// How long one operation keeps retrying (429, 5xx, network errors)
    /// before it gives up; writes stay in the outbox and are sent later.
    #[serde(deserialize_with = "retry_max_s")]
    pub retry_max_s: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Folder with the model files named in the manifest.
    pub dir: PathBuf,
    /// `float` or `int8`, as listed in the manifest.
    #[serde(deserialize_with = "embedder_variant")]
    pub embedder_variant: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraSource {
    /// JPEG/PNG files replayed in name order, or a raw YUV420 or MJPEG
    /// stream file: tests, demos, evaluation.
    Files,
    /// The CSI camera through `rpicam-vid`, read as raw YUV420 frames.
    Rpicam,
    /// A V4L2 capture node (USB webcam), through rscam.
    V4l2,
}

/// How frames are encoded by the camera or in a stream file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// `files`: image files, or a stream file by its extension (`.yuv`,
    /// `.i420`: YUV420; `.mjpeg`, `.mjpg`: MJPEG); `v4l2`: MJPEG;
    /// `rpicam`: YUV420.
    Auto,
    /// Planar YUV 4:2:0 (I420), rows padded to `stride_align_px`.
    Yuv420,
    /// Concatenated JPEG images (motion JPEG).
    Mjpeg,
    /// Packed YUV 4:2:2 (V4L2 `YUYV`).
    Yuyv,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    pub source: CameraSource,
    /// Written into every event, so several doormen can share a gallery.
    pub name: String,
    /// `files`: the folder (or single image) to replay.
    pub path: Option<PathBuf>,
    /// `files`: frames per second of the replay clock; 0 replays as fast as
    /// the pipeline goes, with capture times still spaced at `replay_fps`.
    #[serde(deserialize_with = "non_negative_f32")]
    pub replay_fps: f32,
    /// `files`: the capture clock's rate when replaying as fast as possible.
    #[serde(deserialize_with = "positive_f32")]
    pub clock_fps: f32,
    /// Frame encoding; see [`PixelFormat`].
    pub format: PixelFormat,
    /// Frame width asked of the camera (and of a raw stream file).
    #[serde(deserialize_with = "camera_side")]
    pub width_px: u32,
    /// Frame height asked of the camera (and of a raw stream file).
    #[serde(deserialize_with = "camera_side")]
    pub height_px: u32,
    /// `rpicam`, `v4l2`: frames per second asked of the camera.
    #[serde(deserialize_with = "camera_fps")]
    pub fps: f32,
    /// YUV420: each luma row is padded to a multiple of this many bytes
    /// and each chroma row to half of it (64 for rpicam-vid on the Pi's
    /// ISP; 1 for a tightly packed file).
    #[serde(deserialize_with = "stride_align")]
    pub stride_align_px: u32,
    /// `v4l2`: the capture node.
    pub device: PathBuf,
    /// `rpicam`: the program to run (a name on PATH or a path).
    pub rpicam_path: PathBuf,
    /// `rpicam`: extra arguments appended to doorman's own (for example
    /// `["--rotation", "180"]` or `["--camera", "1"]`).
    pub rpicam_args: Vec<String>,
    /// First wait before reopening a camera that failed; doubles on each
    /// failure in a row.
    #[serde(deserialize_with = "positive_f32")]
    pub retry_min_s: f32,
    /// Longest wait between two attempts to reopen the camera.
    #[serde(deserialize_with = "positive_f32")]
    pub retry_max_s: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Smallest face side, in frame pixels, that is looked for.
    #[serde(deserialize_with = "min_face")]
    pub min_face_px: u32,
    /// Final detector score a face needs (O-Net).
    #[serde(deserialize_with = "unit_interval")]
    pub score_threshold: f32,
    /// First-stage (P-Net) candidate threshold.
    #[serde(deserialize_with = "unit_interval")]
    pub pnet_threshold: f32,
    /// Second-stage (R-Net) threshold.
    #[serde(deserialize_with = "unit_interval")]
    pub rnet_threshold: f32,
    /// Frames and photos are shrunk so their longer side is at most this.
    #[serde(deserialize_with = "frame_side")]
    pub max_image_px: u32,
    /// `run`: the detector runs at most this often while there is motion.
    #[serde(deserialize_with = "positive_f32")]
    pub detect_fps: f32,
    /// `run`: motion regions are widened by this percentage of their size
    /// on each side before the detector looks at them (a face needs
    /// context, and motion often shows only its edge).
    #[serde(deserialize_with = "margin")]
    pub region_margin_pct: f32,
    /// `run`: when the widened motion regions cover more than this
    /// percentage of the frame, the detector looks at the whole frame.
    #[serde(deserialize_with = "percent")]
    pub max_region_share_pct: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecognizeConfig {
    /// Cosine similarity at or above which a face is a known visitor.
    #[serde(deserialize_with = "cosine")]
    pub match_threshold: f32,
    /// Below this a face is a new visitor (when strangers are remembered);
    /// between the two the visit is recorded as uncertain.
    #[serde(deserialize_with = "cosine")]
    pub new_threshold: f32,
    /// Keep anonymous visitors' embeddings. Off by default: it stores
    /// biometric data about people who never agreed to it.
    pub remember_strangers: bool,
    /// How many gallery matches a query asks for.
    #[serde(deserialize_with = "top_k")]
    pub top_k: usize,
    /// Good new exemplars added to a known person, at most.
    #[serde(deserialize_with = "exemplars")]
    pub max_exemplars: usize,
    /// Anonymous visitors (remembered strangers nobody named) not seen for
    /// this many days are deleted with their visits and events.
    #[serde(deserialize_with = "retention")]
    pub retention_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisitConfig {
    /// A visit ends after this long without its face.
    #[serde(deserialize_with = "positive_f32")]
    pub visit_gap_s: f32,
    /// The best face crops kept per visit for the decision.
    #[serde(deserialize_with = "best_faces")]
    pub best_faces: usize,
    /// Cosine similarity for a face to continue a visit. Different people
    /// reach 0.93 with this embedder, so anything much lower merges a
    /// stranger into the visit of whoever stood at the door just before.
    #[serde(deserialize_with = "cosine")]
    pub same_person_threshold: f32,
}

/// Which status LED doorman drives, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedKind {
    /// No LED: doorman makes no LED calls at all.
    None,
    /// An LED the kernel exposes under `sysfs_root/NAME`.
    Sysfs,
    /// A GPIO line driven through the character device, found by its name.
    Gpio,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedConfig {
    pub kind: LedKind,
    /// `sysfs`: the LED's folder under `sysfs_root` (`ACT` is the Pi's green
    /// activity LED). A plain name, never a path.
    #[serde(deserialize_with = "led_name")]
    pub name: String,
    /// `sysfs`: where the kernel lists its LEDs.
    pub sysfs_root: PathBuf,
    /// `gpio`: the line's name as the chip labels it (`GPIO17`), so the same
    /// config works on a Pi 4 and a Pi 5, whose chips number lines apart.
    pub line: String,
    /// `gpio`: the chip to look on; unset searches every `/dev/gpiochip*`.
    pub chip: Option<PathBuf>,
    /// `gpio`: the LED lights when the line is low.
    pub active_low: bool,
}

/// How much `doorman run` logs (the `log` crate's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            Self::Error => log::LevelFilter::Error,
            Self::Warn => log::LevelFilter::Warn,
            Self::Info => log::LevelFilter::Info,
            Self::Debug => log::LevelFilter::Debug,
            Self::Trace => log::LevelFilter::Trace,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// The level `doorman run` logs at; one-shot commands log warnings only
    /// unless `-v` is given. `RUST_LOG` overrides both.
    pub level: LogLevel,
}

impl Default for LedConfig {
    fn default() -> Self {
        Self {
            kind: LedKind::None,
            name: "ACT".into(),
            sysfs_root: PathBuf::from("/sys/class/leds"),
            line: String::new(),
            chip: None,
            active_low: false,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
        }
    }
}

/// The motion gate: which frames are worth running the face detector on.
/// It works on the luma plane shrunk to `frame_height_px`; see `motion.rs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionConfig {
    /// Off: the detector runs on every frame (at most `detect.detect_fps`).
    pub enabled: bool,
    /// Height of the shrunk luma plane motion is computed on.
    #[serde(deserialize_with = "motion_height")]
    pub frame_height_px: u32,
    /// Stretch the picture's contrast (from its 4th to 96th percentile,
    /// averaged over recent frames) before comparing, so that a dim scene
    /// does not hide motion.
    pub improve_contrast: bool,
    /// Difference from the background, in luma levels (0-255), above which
    /// a pixel counts as changed.
    #[serde(deserialize_with = "luma_levels")]
    pub threshold_levels: f32,
    /// Radius of the blur applied before comparing (0: none).
    #[serde(deserialize_with = "small_radius")]
    pub blur_radius_px: u32,
    /// Changed pixels are grown by this many pixels so that the parts of
    /// one moving thing join into one region (0: no dilation).
    #[serde(deserialize_with = "small_radius")]
    pub dilate_px: u32,
    /// Smallest motion region, in percent of the (unmasked) picture.
    #[serde(deserialize_with = "percent")]
    pub min_region_pct: f32,
    /// When more than this percentage of the picture changes at once, the
    /// change is global (lights, IR switch, clouds): the background is
    /// recalibrated, and the detector runs once on that frame.
    #[serde(deserialize_with = "percent")]
    pub global_change_pct: f32,
    /// A jump of the picture's mean brightness of more than this many luma
    /// levels from one frame to the next is a global change as well.
    #[serde(deserialize_with = "luma_levels")]
    pub brightness_jump_levels: f32,
    /// How much of each new frame is blended into the background (0-1):
    /// higher adapts faster to slow changes and absorbs still objects
    /// sooner.
    #[serde(deserialize_with = "unit_interval")]
    pub background_alpha_per_frame: f32,
    /// Areas where motion is ignored (a road, a tree, a timestamp): each a
    /// polygon of at least three `[x, y]` points, as fractions of the
    /// frame's width and height from its top left corner.
    pub mask: Vec<Vec<[f32; 2]>>,
}

/// What `run` reports besides the log line per visit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Save each visit's best face crop as a JPEG in `STATE_DIR/crops`.
    /// Off by default: frames and crops of people stay off the disk unless
    /// the owner turns this on.
    pub save_crops: bool,
    /// The counters (frames, motion, detector runs, faces, visits) are
    /// logged this often, on the capture clock, and on exit.
    #[serde(deserialize_with = "positive_f32")]
    pub counters_interval_s: f32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            store: StoreKind::Local,
            models: ModelsConfig::default(),
            camera: CameraConfig::default(),
            detect: DetectConfig::default(),
            recognize: RecognizeConfig::default(),
            visit: VisitConfig::default(),
            led: LedConfig::default(),
            log: LogConfig::default(),
            vectorize: VectorizeConfig::default(),
            motion: MotionConfig::default(),
            events: EventsConfig::default(),
        }
    }
}

/// The real API; the product's default (tests always point elsewhere).
pub const DEFAULT_VECTORIZE_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

impl Default for VectorizeConfig {
    fn default() -> Self {
        Self {
            account_id: String::new(),
            index: "doorman-faces".into(),
            base_url: DEFAULT_VECTORIZE_BASE_URL.into(),
            token_file: PathBuf::from("vectorize-token"),
            timeout_s: 10.0,
            retry_max_s: 60.0,
        }
    }
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            frame_height_px: 120,
            improve_contrast: true,
            threshold_levels: 25.0,
            blur_radius_px: 1,
            dilate_px: 1,
            min_region_pct: 0.1,
            global_change_pct: 60.0,
            brightness_jump_levels: 30.0,
            background_alpha_per_frame: 0.05,
            mask: Vec::new(),
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            save_crops: false,
            counters_interval_s: 300.0,
        }
    }
}

impl Default for ModelsConfig {
    fn default() -> Self {
        let variant = Manifest::builtin().embedder.default_variant.clone();
        Self {
            dir: crate::models::default_models_dir(),
            embedder_variant: variant,
        }
    }
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            source: CameraSource::Files,
            name: "front-door".into(),
            path: None,
            replay_fps: 0.0,
            clock_fps: 5.0,
            format: PixelFormat::Auto,
            width_px: 640,
            height_px: 480,
            fps: 10.0,
            stride_align_px: 64,
            device: PathBuf::from("/dev/video0"),
            rpicam_path: PathBuf::from("rpicam-vid"),
            rpicam_args: Vec::new(),
            retry_min_s: 1.0,
            retry_max_s: 30.0,
        }
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        let d = &Manifest::builtin().detector;
        Self {
            min_face_px: d.min_face_px,
            score_threshold: d.onet_threshold,
            pnet_threshold: d.pnet_threshold,
            rnet_threshold: d.rnet_threshold,
            max_image_px: 1280,
            detect_fps: 5.0,
            region_margin_pct: 50.0,
            max_region_share_pct: 50.0,
        }
    }
}

impl Default for RecognizeConfig {
    fn default() -> Self {
        let e = &Manifest::builtin().embedder;
        Self {
            match_threshold: e.match_threshold,
            new_threshold: e.new_threshold,
            remember_strangers: false,
            top_k: 5,
            max_exemplars: 10,
            retention_days: 30,
        }
    }
}

impl Default for VisitConfig {
    fn default() -> Self {
        Self {
            visit_gap_s: 3.0,
            best_faces: 5,
            same_person_threshold: 0.92,
        }
    }
}

/// `$STATE_DIRECTORY` under systemd, else the user's state folder.
fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("doorman");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/doorman"),
        None => PathBuf::from("/var/lib/doorman"),
    }
}

impl Config {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        config
            .check_relations()
            .with_context(|| format!("{origin}: invalid settings"))?;
        Ok(config)
    }

    /// Loads `path`; without an explicit path, a missing default file means
    /// built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut config = Self::parse(&text, &path.display().to_string())?;
                config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
                Ok(config)
            }
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                log::debug!("no {} found, using built-in defaults", path.display());
                Ok(Self::default())
            }
            Err(e) => Err(e).with_context(|| format!("reading the config file {}", path.display())),
        }
    }

    /// Makes relative paths relative to the config file's folder (not to
    /// wherever doorman happens to be started), and expands a leading `~/`.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if let (Ok(rest), Some(home)) = (p.strip_prefix("~"), std::env::var_os("HOME")) {
                *p = PathBuf::from(home).join(rest);
            } else if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.state_dir);
        fix(&mut self.models.dir);
        if let Some(p) = self.camera.path.as_mut() {
            fix(p);
        }
        fix(&mut self.camera.device);
        // A bare program name is looked up on PATH; only a path is resolved.
        if self.camera.rpicam_path.components().count() > 1 {
            fix(&mut self.camera.rpicam_path);
        }
    }

    /// Rules that tie several fields together.
    fn check_relations(&self) -> Result<()> {
        if self.state_dir.as_os_str().is_empty() {
            anyhow::bail!("state_dir is empty; name the folder for the gallery and events");
        }
        let r = &self.recognize;
        if r.new_threshold > r.match_threshold {
            anyhow::bail!(
                "recognize.new_threshold ({}) must not be above recognize.match_threshold ({})",
                r.new_threshold,
                r.match_threshold
            );
        }
        if self.led.kind == LedKind::Gpio && self.led.line.trim().is_empty() {
            anyhow::bail!(
                "led.kind is \"gpio\" but led.line is not set; name the GPIO line the LED \
                 is wired to, e.g. line = \"GPIO17\""
            );
        }
        if self.store == StoreKind::Vectorize && self.vectorize.account_id.is_empty() {
            anyhow::bail!(
                "store = \"vectorize\" needs vectorize.account_id (the 32-character \
                 Cloudflare account id)"
            );
        }
        self.check_camera()?;
        check_mask(&self.motion.mask)
    }

    /// Formats and sizes each camera source can deliver.
    fn check_camera(&self) -> Result<()> {
        let c = &self.camera;
        let allowed: &[PixelFormat] = match c.source {
            CameraSource::Files => &[PixelFormat::Auto, PixelFormat::Yuv420, PixelFormat::Mjpeg],
            CameraSource::Rpicam => &[PixelFormat::Auto, PixelFormat::Yuv420],
            CameraSource::V4l2 => &[PixelFormat::Auto, PixelFormat::Yuyv, PixelFormat::Mjpeg],
        };
        if !allowed.contains(&c.format) {
            anyhow::bail!(
                "camera.format {:?} does not work with camera.source {:?}; allowed: {:?}",
                c.format,
                c.source,
                allowed
            );
        }
        if !c.width_px.is_multiple_of(2) || !c.height_px.is_multiple_of(2) {
            anyhow::bail!(
                "camera.width_px ({}) and camera.height_px ({}) must be even (YUV 4:2:0 and 4:2:2 halve the colour planes)",
                c.width_px,
                c.height_px
            );
        }
        if c.retry_min_s > c.retry_max_s {
            anyhow::bail!(
                "camera.retry_min_s ({}) must not be above camera.retry_max_s ({})",
                c.retry_min_s,
                c.retry_max_s
            );
        }
        Ok(())
    }

    /// Makes `state_dir` when it is missing. The error names `state_dir`
    /// and its value when it, or a folder above it, is a file. Every
    /// command that reads or writes the gallery or the events goes through
    /// here (`commands::open_gallery`) before it touches either.
    pub fn prepare_state_dir(&self) -> Result<()> {
        let dir = self.state_dir.as_path();
        let mut probe = dir;
        loop {
            match std::fs::metadata(probe) {
                Ok(m) if m.is_dir() => break,
                Ok(_) if probe == dir => anyhow::bail!(
                    "state_dir {} is not a folder; set state_dir to the folder for the \
                     gallery and events (it is made when missing)",
                    dir.display()
                ),
                Ok(_) => anyhow::bail!(
                    "state_dir {} cannot be made: {} is not a folder",
                    dir.display(),
                    probe.display()
                ),
                // Missing (or unreadable): look at the folder above.
                Err(_) => match probe.parent() {
                    Some(up) if !up.as_os_str().is_empty() => probe = up,
                    _ => break,
                },
            }
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("state_dir {}: the folder cannot be made", dir.display()))
    }

    /// The SQLite gallery file.
    pub fn gallery_path(&self) -> PathBuf {
        self.state_dir.join("gallery.sqlite")
    }

    /// One JSON line per closed visit.
    pub fn events_path(&self) -> PathBuf {
        self.state_dir.join("events.jsonl")
    }

    pub fn detector_settings(&self) -> crate::detect::DetectorSettings {
        let scale_factor = Manifest::builtin().detector.scale_factor;
        crate::detect::DetectorSettings {
            min_face_px: self.detect.min_face_px,
            pnet_threshold: self.detect.pnet_threshold,
            rnet_threshold: self.detect.rnet_threshold,
            score_threshold: self.detect.score_threshold,
            scale_factor,
        }
    }
}

/// An embedder variant the compiled-in manifest lists.
fn embedder_variant<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let v = String::deserialize(d)?;
    let known = &Manifest::builtin().embedder.files;
    if known.contains_key(&v) {
        Ok(v)
    } else {
        let names: Vec<_> = known.keys().map(String::as_str).collect();
        Err(serde::de::Error::custom(format!(
            "{v:?} is not a variant of this embedder; allowed: {}",
            names.join(", ")
        )))
    }
}

/// Each mask polygon needs three corners inside the frame.
fn check_mask(mask: &[Vec<[f32; 2]>]) -> Result<()> {
    for (i, polygon) in mask.iter().enumerate() {
        if polygon.len() < 3 {
            anyhow::bail!(
                "motion.mask polygon {} has {} point(s); a polygon needs at least 3",
                i + 1,
                polygon.len()
            );
        }
        for p in polygon {
            if !p.iter().all(|v| (0.0..=1.0).contains(v)) {
                anyhow::bail!(
                    "motion.mask polygon {} has the point [{}, {}]; coordinates are fractions of the frame, 0.0 to 1.0",
                    i + 1,
                    p[0],
                    p[1]
                );
            }
        }
    }
    Ok(())
}

/// Deserialises a number and checks it against an allowed range; the error
/// (which toml places at the value's line and column) says what is allowed.
macro_rules! ranged {
    ($name:ident, $ty:ty, $ok:expr, $allowed:literal) => {
        fn $name<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<$ty, D::Error> {
            let v = <$ty>::deserialize(d)?;
            let ok: fn($ty) -> bool = $ok;
            if ok(v) {
                Ok(v)
            } else {
                Err(serde::de::Error::custom(format!(
                    "{v} is out of range; allowed: {}",
                    $allowed
                )))
            }
        }
    };
}

ranged!(
    unit_interval,
    f32,
    |v| (0.0..=1.0).contains(&v),
    "0.0 to 1.0"
);
ranged!(
    cosine,
    f32,
    |v| (-1.0..=1.0).contains(&v),
    "-1.0 to 1.0 (cosine similarity)"
);
ranged!(
    positive_f32,
    f32,
    |v| v.is_finite() && v > 0.0,
    "a number above 0"
);
ranged!(
    non_negative_f32,
    f32,
    |v| v.is_finite() && v >= 0.0,
    "0 or more"
);
ranged!(
    min_face,
    u32,
    |v| (12..=2000).contains(&v),
    "12 to 2000 pixels"
);
ranged!(
    frame_side,
    u32,
    |v| (64..=8192).contains(&v),
    "64 to 8192 pixels"
);
ranged!(
    camera_side,
    u32,
    |v| (16..=8192).contains(&v),
    "16 to 8192 pixels"
);
ranged!(
    camera_fps,
    f32,
    |v| v.is_finite() && (0.1..=120.0).contains(&v),
    "0.1 to 120 frames per second"
);
ranged!(
    stride_align,
    u32,
    |v| v.is_power_of_two() && v <= 256,
    "1, 2, 4, ... 256 bytes"
);
ranged!(
    motion_height,
    u32,
    |v| (32..=480).contains(&v),
    "32 to 480 pixels"
);
ranged!(
    luma_levels,
    f32,
    |v| v.is_finite() && (1.0..=255.0).contains(&v),
    "1 to 255 luma levels"
);
ranged!(small_radius, u32, |v| v <= 8, "0 to 8 pixels");
ranged!(
    percent,
    f32,
    |v| v.is_finite() && (0.0..=100.0).contains(&v),
    "0 to 100 percent"
);
ranged!(
    margin,
    f32,
    |v| v.is_finite() && (0.0..=400.0).contains(&v),
    "0 to 400 percent"
);
ranged!(top_k, usize, |v| (1..=100).contains(&v), "1 to 100");
ranged!(exemplars, usize, |v| (1..=100).contains(&v), "1 to 100");
ranged!(best_faces, usize, |v| (1..=50).contains(&v), "1 to 50");
ranged!(
    retention,
    u32,
    |v| (1..=3650).contains(&v),
    "1 to 3650 days"
);
ranged!(
    timeout_s,
    f32,
    |v| (0.1..=300.0).contains(&v),
    "0.1 to 300 seconds"
);
ranged!(
    retry_max_s,
    f32,
    |v| (0.0..=3600.0).contains(&v),
    "0 to 3600 seconds"
);

/// An LED name is one folder under `sysfs_root`, never a path out of it.
fn led_name<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let v = String::deserialize(d)?;
    let plain = !v.is_empty() && !v.contains('/') && v != "." && v != "..";
    if plain {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "{v:?} is not allowed; allowed: the name of one folder under led.sysfs_root, \
             such as \"ACT\""
        )))
    }
}

/// Deserialises a string and checks it; the error names what is allowed.
macro_rules! checked_string {
    ($name:ident, $ok:expr, $allowed:literal) => {
        fn $name<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
            let v = String::deserialize(d)?;
            let ok: fn(&str) -> bool = $ok;
            if ok(&v) {
                Ok(v)
            } else {
                Err(serde::de::Error::custom(format!(
                    "{v:?} is not allowed; expected {}",
                    $allowed
                )))
            }
        }
    };
}

checked_string!(
    account_id,
    |v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()),
    "the 32 hexadecimal characters of a Cloudflare account id"
);
checked_string!(
    index_name,
    crate::vectorize::valid_index_name,
    "lowercase letters, digits and '-', starting with a letter, at most 64 bytes"
);
checked_string!(
    base_url,
    crate::vectorize::valid_base_url,
    "an https:// URL (http:// only for 127.0.0.1, localhost or [::1]) without a trailing slash"
);
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = Config::parse("", "t.toml").unwrap();
        assert_eq!(c.store, StoreKind::Local);
        assert_eq!(c.detect.min_face_px, 20);
        assert!(c.recognize.match_threshold > c.recognize.new_threshold);
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let err = Config::parse("store = \"local\"\n[detect]\nmin_face = 20\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("min_face") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn an_out_of_range_value_names_key_value_line_and_range() {
        let err = Config::parse("[recognize]\nmatch_threshold = 1.5\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("match_threshold") || err.contains("line 2"),
            "{err}"
        );
        assert!(err.contains("1.5") && err.contains("-1.0 to 1.0"), "{err}");
    }

    #[test]
    fn a_wrong_type_is_an_error() {
        let err = Config::parse("[detect]\nmin_face_px = \"big\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("min_face_px"),
            "{err}"
        );
    }

    #[test]
    fn thresholds_in_the_wrong_order_are_refused() {
        let err = format!(
            "{:#}",
            Config::parse(
                "[recognize]\nmatch_threshold = 0.5\nnew_threshold = 0.6\n",
                "t.toml"
            )
            .unwrap_err()
        );
        assert!(
            err.contains("new_threshold") && err.contains("0.6"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_embedder_variant_is_named_with_its_line() {
        let err = Config::parse("[models]\nembedder_variant = \"int4\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("int4") && err.contains("float"),
            "{err}"
        );
    }

    #[test]
    fn the_appliance_sections_parse_and_default_to_no_led() {
        let c = Config::parse("", "t.toml").unwrap();
        assert_eq!(c.led.kind, LedKind::None);
        assert_eq!(c.log.level, LogLevel::Info);
        assert_eq!(c.recognize.retention_days, 30);
        let c = Config::parse(
            "[led]\nkind = \"gpio\"\nline = \"GPIO17\"\nactive_low = true\n\
             [log]\nlevel = \"debug\"\n[recognize]\nretention_days = 7\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!((c.led.kind, c.led.line.as_str()), (LedKind::Gpio, "GPIO17"));
        assert_eq!(c.log.level.filter(), log::LevelFilter::Debug);
        assert_eq!(c.recognize.retention_days, 7);
    }

    #[test]
    fn an_unknown_led_kind_names_the_allowed_ones() {
        let err = Config::parse("[led]\nkind = \"blink\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("blink") && err.contains("sysfs"),
            "{err}"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.toml");
        std::fs::write(
            &file,
            "state_dir = \"state\"\n[camera]\npath = \"frames\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file)).unwrap();
        assert_eq!(c.state_dir, dir.path().join("state"));
        assert_eq!(c.camera.path, Some(dir.path().join("frames")));
    }

    #[test]
    fn an_led_name_that_is_a_path_is_refused() {
        let err = Config::parse("[led]\nname = \"../../etc\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("../../etc"), "{err}");
    }

    #[test]
    fn a_gpio_led_without_a_line_name_is_refused() {
        let err = format!(
            "{:#}",
            Config::parse("[led]\nkind = \"gpio\"\n", "t.toml").unwrap_err()
        );
        assert!(err.contains("led.line"), "{err}");
    }

    #[test]
    fn a_retention_of_zero_days_is_out_of_range() {
        let err = Config::parse("[recognize]\nretention_days = 0\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 to 3650"), "{err}");
    }

    /// The keys a table accepts, read from the strict parser's own error
    /// for an unknown key, so a field added later is checked too.
    fn accepted_keys(section: &str) -> Vec<String> {
        let probe = if section.is_empty() {
            "zz_probe = 1\n".to_string()
        } else {
            format!("[{section}]\nzz_probe = 1\n")
        };
        let err = Config::parse(&probe, "probe").unwrap_err().to_string();
        let list = err
            .split("expected")
            .nth(1)
            .unwrap_or_else(|| panic!("{err}"));
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_shipped_example_config_parses_and_documents_every_field() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("doorman.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        Config::parse(&text, "doorman.example.toml").unwrap();

        // A key counts as documented when `key = ...` or `# key = ...`
        // stands in its section.
        let documented = |section: &str, key: &str| {
            let mut current = String::new();
            text.lines().any(|l| {
                let l = l.trim().trim_start_matches('#').trim();
                if let Some(s) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    current = s.to_string();
                    return false;
                }
                current == section && l.split('=').next().map(str::trim) == Some(key)
            })
        };
        let top = accepted_keys("");
        assert!(top.contains(&"led".to_string()), "{top:?}");
        let mut checked = 0;
        for key in &top {
            // A table answers the probe with its own list of keys.
            let as_table = Config::parse(&format!("[{key}]\nzz_probe = 1\n"), "probe")
                .unwrap_err()
                .to_string();
            if as_table.contains("unknown field") {
                for sub in accepted_keys(key) {
                    assert!(
                        documented(key, &sub),
                        "doorman.example.toml does not document [{key}] {sub}"
                    );
                    checked += 1;
                }
            } else {
                assert!(
                    documented("", key),
                    "doorman.example.toml does not document {key}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 30, "only {checked} keys found");

        // The values shown are the defaults (the folders depend on the
        // machine, so they are left out).
        let example = Config::parse(&text, "doorman.example.toml").unwrap();
        let defaults = Config::default();
        for (what, shown, default) in [
            (
                "store",
                format!("{:?}", example.store),
                format!("{:?}", defaults.store),
            ),
            (
                "camera",
                format!("{:?}", example.camera),
                format!("{:?}", defaults.camera),
            ),
            (
                "detect",
                format!("{:?}", example.detect),
                format!("{:?}", defaults.detect),
            ),
            (
                "recognize",
                format!("{:?}", example.recognize),
                format!("{:?}", defaults.recognize),
            ),
            (
                "visit",
                format!("{:?}", example.visit),
                format!("{:?}", defaults.visit),
            ),
            (
                "led",
                format!("{:?}", example.led),
                format!("{:?}", defaults.led),
            ),
            (
                "log",
                format!("{:?}", example.log),
                format!("{:?}", defaults.log),
            ),
            (
                "motion",
                format!("{:?}", example.motion),
                format!("{:?}", defaults.motion),
            ),
            (
                "events",
                format!("{:?}", example.events),
                format!("{:?}", defaults.events),
            ),
            (
                "embedder_variant",
                example.models.embedder_variant.clone(),
                defaults.models.embedder_variant.clone(),
            ),
        ] {
            assert_eq!(
                shown, default,
                "doorman.example.toml shows a non-default {what}"
            );
        }
    }

    #[test]
    fn a_vectorize_table_is_parsed_strictly() {
        let c = Config::parse(
            "store = \"vectorize\"\n[vectorize]\naccount_id = \"0123456789abcdef0123456789abcdef\"\n\
             index = \"front-door\"\ntimeout_s = 5\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.store, StoreKind::Vectorize);
        assert_eq!(c.vectorize.index, "front-door");
        assert_eq!(c.vectorize.timeout_s, 5.0);
        assert_eq!(c.vectorize.base_url, DEFAULT_VECTORIZE_BASE_URL);

        let err = Config::parse("[vectorize]\ntimeout_s = 0\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0.1 to 300") && err.contains("line 2"),
            "{err}"
        );
        let err = Config::parse("[vectorize]\nindex = \"Faces_1\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Faces_1") && err.contains("lowercase"),
            "{err}"
        );
        let err = Config::parse(
            "[vectorize]\nbase_url = \"http://example.org/v4\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("https://"), "{err}");
        let err = Config::parse("[vectorize]\ntoken = \"abc\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("token") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn the_vectorize_store_needs_an_account_id() {
        let err = format!(
            "{:#}",
            Config::parse("store = \"vectorize\"\n", "t.toml").unwrap_err()
        );
        assert!(err.contains("account_id"), "{err}");
    }

    #[test]
    fn camera_motion_and_events_settings_parse_with_their_units() {
        let c = Config::parse(
            "[camera]\nsource = \"rpicam\"\nwidth_px = 1296\nheight_px = 972\nrpicam_args = [\"--rotation\", \"180\"]\n\
             [motion]\nframe_height_px = 100\nmask = [[[0.0, 0.0], [0.3, 0.0], [0.3, 0.4]]]\n\
             [events]\nsave_crops = true\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.camera.source, CameraSource::Rpicam);
        assert_eq!((c.camera.width_px, c.camera.height_px), (1296, 972));
        assert_eq!(c.camera.rpicam_args, ["--rotation", "180"]);
        assert_eq!(c.motion.frame_height_px, 100);
        assert_eq!(c.motion.mask[0][2], [0.3, 0.4]);
        assert!(c.events.save_crops);
        assert!(!Config::default().events.save_crops);
    }

    #[test]
    fn a_mask_point_outside_the_frame_is_refused() {
        let err = format!(
            "{:#}",
            Config::parse(
                "[motion]\nmask = [[[0.0, 0.0], [1.5, 0.0], [0.3, 0.4]]]\n",
                "t.toml"
            )
            .unwrap_err()
        );
        assert!(err.contains("motion.mask") && err.contains("1.5"), "{err}");
    }

    #[test]
    fn a_format_the_source_cannot_deliver_is_refused() {
        let err = format!(
            "{:#}",
            Config::parse(
                "[camera]\nsource = \"rpicam\"\nformat = \"mjpeg\"\n",
                "t.toml"
            )
            .unwrap_err()
        );
        assert!(err.contains("camera.format"), "{err}");
    }

    #[test]
    fn an_explicit_missing_config_is_an_error_naming_it() {
        let err = format!(
            "{:#}",
            Config::load(Some(Path::new("/nonexistent/d.toml"))).unwrap_err()
        );
        assert!(err.contains("/nonexistent/d.toml"), "{err}");
    }
}
