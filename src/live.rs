//! The live loop of `doorman run`: frames in, one decision per visit out.
//!
//! Each frame goes through the motion gate; only frames with motion reach
//! the face detector (at most `detect.detect_fps` times a second), and only
//! the parts of them that moved, unless those are large. Faces are grouped
//! into visits; a visit closes `visit.visit_gap_s` after its face was last
//! seen and is handed to the caller to decide who it was. Counters of
//! everything that happened are logged every `events.counters_interval_s`
//! and on exit.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use serde::Serialize;

use crate::camera::{CameraFrame, FrameSource, Next};
use crate::config::Config;
use crate::detect::{Detection, FaceBox};
use crate::frame::Frame;
use crate::motion::{detection_areas, Motion, MotionDetector, Region};
use crate::pipeline::{Face, Pipeline};
use crate::recognize::Decision;
use crate::visit::{ClosedVisit, VisitTracker};

/// A crop smaller than this (pixels per side) is grown around its centre
/// before detection: MTCNN needs room around a face to find it.
const MIN_CROP_PX: u32 = 96;

/// What the loop has done since it started. Times are totals, so that the
/// log can show what the motion gate and the detector cost per frame.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    pub frames_read: u64,
    pub motion_frames: u64,
    pub global_changes: u64,
    pub detector_runs: u64,
    pub faces: u64,
    pub visits: u64,
    pub known: u64,
    pub new: u64,
    pub uncertain: u64,
    /// Frames the source could not deliver whole (corrupt, truncated).
    pub dropped_frames: u64,
    /// Times the camera failed and had to be reopened.
    pub camera_errors: u64,
    /// Time in the motion gate (JSON: milliseconds).
    #[serde(rename = "motion_ms", serialize_with = "millis")]
    pub motion_time: Duration,
    /// Time in detection, alignment and embedding, RGB conversion included
    /// (JSON: milliseconds).
    #[serde(rename = "detector_ms", serialize_with = "millis")]
    pub detector_time: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e4).round() / 10.0)
}

impl Counters {
    fn log(&self, when: &str) {
        let per = |t: Duration, n: u64| t.as_secs_f64() * 1e3 / n.max(1) as f64;
        log::info!(
            "{when}: {} frames read, {} with motion ({} global changes), {} detector runs, \
             {} faces, {} visits ({} known, {} new, {} uncertain), {} dropped frames, \
             {} camera errors; motion {:.2} ms/frame, detector {:.0} ms/run",
            self.frames_read,
            self.motion_frames,
            self.global_changes,
            self.detector_runs,
            self.faces,
            self.visits,
            self.known,
            self.new,
            self.uncertain,
            self.dropped_frames,
            self.camera_errors,
            per(self.motion_time, self.frames_read),
            per(self.detector_time, self.detector_runs),
        );
    }

    fn count(&mut self, decision: Decision) {
        self.visits += 1;
        match decision {
            Decision::Known => self.known += 1,
            Decision::Uncertain => self.uncertain += 1,
            Decision::New | Decision::Unknown => self.new += 1,
        }
    }
}

/// The appliance around the loop (systemd, signals, the status LED); the
/// running service implements it with [`crate::service::Service`].
pub trait Appliance {
    /// Whether SIGTERM or SIGINT asked doorman to stop.
    fn should_stop(&self) -> bool;
    /// A frame arrived (feeds the watchdog; ends a camera error).
    fn frame_arrived(&mut self);
    /// The camera failed and is being reopened.
    fn camera_failed(&mut self, why: &str);
    /// How many visits are open after a frame.
    fn visits_open(&mut self, open: usize);
    /// A visit was decided.
    fn visit_decided(&mut self, decision: Decision);
    /// Whether the retention sweep is due.
    fn sweep_due(&mut self) -> bool;
}

impl Appliance for crate::service::Service {
    fn should_stop(&self) -> bool {
        crate::service::Service::should_stop(self)
    }
    fn frame_arrived(&mut self) {
        crate::service::Service::frame_arrived(self)
    }
    fn camera_failed(&mut self, why: &str) {
        crate::service::Service::camera_failed(self, why)
    }
    fn visits_open(&mut self, open: usize) {
        crate::service::Service::visits_open(self, open)
    }
    fn visit_decided(&mut self, decision: Decision) {
        crate::service::Service::visit_decided(self, decision)
    }
    fn sweep_due(&mut self) -> bool {
        crate::service::Service::sweep_due(self)
    }
}

/// What the loop does with its results: decide closed visits (recognise,
/// update the gallery, write the event) and sweep expired records.
pub trait Door {
    fn decide(&mut self, visit: &ClosedVisit) -> Result<Decision>;
    /// The retention sweep; a failure is logged and retried later.
    fn sweep(&mut self);
    /// Per-frame upkeep outside the pipeline (sending the outbox), bounded
    /// in time; only a setup error stops the loop.
    fn tick(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The per-frame work: motion gate, detector, visits.
pub struct Loop<'a> {
    config: &'a Config,
    pipeline: &'a Pipeline,
    motion: MotionDetector,
    tracker: VisitTracker,
    counters: Counters,
    /// Capture time of the last detector run.
    last_detection: Option<SystemTime>,
    last_counters_log: Option<SystemTime>,
}

impl<'a> Loop<'a> {
    pub fn new(config: &'a Config, pipeline: &'a Pipeline) -> Self {
        let v = &config.visit;
        Self {
            config,
            pipeline,
            motion: MotionDetector::new(&config.motion),
            tracker: VisitTracker::new(
                Duration::from_secs_f32(v.visit_gap_s),
                v.best_faces,
                v.same_person_threshold,
            ),
            counters: Counters::default(),
            last_detection: None,
            last_counters_log: None,
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Visits in progress.
    pub fn open_visits(&self) -> usize {
        self.tracker.open_visits()
    }

    /// Handles one frame; returns the visits that closed with it.
    pub fn frame(&mut self, frame: &CameraFrame) -> Vec<ClosedVisit> {
        let at = frame.captured_at;
        self.counters.frames_read += 1;

        let started = Instant::now();
        let motion = if self.config.motion.enabled {
            self.motion.detect(&frame.luma())
        } else {
            Motion {
                global_change: true,
                ..Default::default()
            }
        };
        self.counters.motion_time += started.elapsed();
        if motion.any() {
            self.counters.motion_frames += 1;
        }
        if motion.global_change && self.config.motion.enabled {
            self.counters.global_changes += 1;
        }

        if motion.any() && self.detector_due(at) {
            self.last_detection = Some(at);
            let d = &self.config.detect;
            let areas = detection_areas(&motion, d.region_margin_pct, d.max_region_share_pct);
            let started = Instant::now();
            let rgb = frame.to_frame(d.max_image_px);
            let found = faces_in_areas(self.pipeline, &rgb, &areas);
            self.counters.detector_runs += 1;
            self.counters.detector_time += started.elapsed();
            match found {
                Ok(faces) => {
                    log::debug!(
                        "frame {}: {} motion region(s), detector on {} area(s), {} face(s)",
                        self.counters.frames_read,
                        motion.regions.len(),
                        areas.len(),
                        faces.len()
                    );
                    self.counters.faces += faces.len() as u64;
                    let open_before = self.tracker.open_visits();
                    self.tracker.observe(at, faces);
                    if self.tracker.open_visits() > open_before {
                        log::info!("visit started ({} open)", self.tracker.open_visits());
                    }
                }
                Err(e) => log::warn!("frame {}: {e:#}", self.counters.frames_read),
            }
        }

        let interval = Duration::from_secs_f32(self.config.events.counters_interval_s);
        match self.last_counters_log {
            None => self.last_counters_log = Some(at),
            Some(last) if at.duration_since(last).unwrap_or_default() >= interval => {
                self.counters.log("counters");
                self.last_counters_log = Some(at);
            }
            Some(_) => {}
        }

        self.tracker.close_expired(at)
    }

    /// At most `detect_fps` detector runs per second of capture time.
    fn detector_due(&self, at: SystemTime) -> bool {
        let min_gap = Duration::from_secs_f32(1.0 / self.config.detect.detect_fps);
        match self.last_detection {
            None => true,
            // A clock that went backwards (NTP at boot) must not stall it.
            Some(last) => at.duration_since(last).map_or(true, |d| d >= min_gap),
        }
    }

    /// Closes every open visit (end of stream, shutdown).
    pub fn finish(&mut self) -> Vec<ClosedVisit> {
        self.tracker.close_all()
    }
}

/// Runs `lp` over `source` until it ends or the appliance is asked to
/// stop; `door` decides each closed visit once. On a stop the open visits
/// are closed and decided too. Returns the final counters (also logged).
pub fn run(
    source: &mut dyn FrameSource,
    lp: &mut Loop,
    app: &mut dyn Appliance,
    door: &mut dyn Door,
) -> Result<Counters> {
    loop {
        if app.should_stop() {
            log::info!("stopping: closing {} open visit(s)", lp.open_visits());
            break;
        }
        if app.sweep_due() {
            door.sweep();
        }
        let frame = match source.next() {
            Next::Frame(f) => f,
            Next::Skipped { what, why } => {
                log::warn!("skipping {what}: {why}");
                lp.counters.dropped_frames += 1;
                continue;
            }
            Next::Failed {
                what,
                why,
                retry_in,
            } => {
                log::warn!(
                    "camera {what} failed: {why}; reopening in {:.1} s",
                    retry_in.as_secs_f32()
                );
                lp.counters.camera_errors += 1;
                app.camera_failed(&why);
                continue;
            }
            Next::End => break,
        };
        app.frame_arrived();
        let closed = lp.frame(&frame);
        for visit in &closed {
            let decision = door.decide(visit)?;
            lp.counters.count(decision);
            app.visit_decided(decision);
        }
        app.visits_open(lp.open_visits());
        door.tick()?;
    }
    for visit in lp.finish() {
        let decision = door.decide(&visit)?;
        lp.counters.count(decision);
        app.visit_decided(decision);
    }
    lp.counters.log("done");
    Ok(lp.counters.clone())
}

/// Detects, aligns and embeds the faces inside `areas` of the frame (the
/// whole frame when that is the one area). Detections are mapped back to
/// frame pixels, so alignment crops from the full frame.
pub fn faces_in_areas(pipeline: &Pipeline, frame: &Frame, areas: &[Region]) -> Result<Vec<Face>> {
    if areas == [Region::WHOLE] {
        return pipeline.faces(frame);
    }
    let (w, h) = frame.rgb.dimensions();
    let mut faces = Vec::new();
    for area in areas {
        let (x, y, cw, ch) = crop_box(area, w, h);
        let crop = image::imageops::crop_imm(&frame.rgb, x, y, cw, ch).to_image();
        for d in pipeline.detector.detect(&crop)? {
            let d = shifted(d, x as f32, y as f32);
            faces.push(pipeline.embed_detection(&frame.rgb, d)?);
        }
    }
    Ok(faces)
}

/// An area in frame pixels (left, top, width, height), at least
/// [`MIN_CROP_PX`] on each side where the frame allows.
fn crop_box(area: &Region, w: u32, h: u32) -> (u32, u32, u32, u32) {
    let grow = |lo: f32, hi: f32, size: u32| -> (u32, u32) {
        let (mut a, mut b) = ((lo * size as f32).floor(), (hi * size as f32).ceil());
        let min = MIN_CROP_PX.min(size) as f32;
        if b - a < min {
            let mid = (a + b) / 2.0;
            a = (mid - min / 2.0).clamp(0.0, size as f32 - min);
            b = a + min;
        }
        let a = a.clamp(0.0, size as f32 - 1.0) as u32;
        let b = (b.clamp(0.0, size as f32) as u32).max(a + 1);
        (a, b - a)
    };
    let (x, cw) = grow(area.x1, area.x2, w);
    let (y, ch) = grow(area.y1, area.y2, h);
    (x, y, cw, ch)
}

/// A detection moved by (dx, dy) pixels.
fn shifted(mut d: Detection, dx: f32, dy: f32) -> Detection {
    let b = d.face_box;
    d.face_box = FaceBox {
        x1: b.x1 + dx,
        y1: b.y1 + dy,
        x2: b.x2 + dx,
        y2: b.y2 + dy,
    };
    for p in &mut d.landmarks {
        p[0] += dx;
        p[1] += dy;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_areas_grow_to_the_minimum_crop_inside_the_frame() {
        let tiny = Region {
            x1: 0.98,
            y1: 0.5,
            x2: 1.0,
            y2: 0.52,
        };
        let (x, y, w, h) = crop_box(&tiny, 640, 480);
        assert_eq!((w, h), (MIN_CROP_PX, MIN_CROP_PX));
        assert_eq!(x + w, 640);
        assert!(y > 190 && y + h < 300, "{y} {h}");
        assert_eq!(crop_box(&Region::WHOLE, 640, 480), (0, 0, 640, 480));
    }
}
